//! The emulator enforces a sprite's resource limits (`config {ram_mb, cpus}` on create, and on
//! update as an emulator extension; the memory limit of `policy/resources`, which replaces
//! `ram_mb`): memory as `RLIMIT_DATA` on every exec'd process, CPU as a per-sprite cgroup quota
//! where the machine's cgroups are writable.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::support::emulator::Emulator;

async fn create(emu: &Emulator, body: Value) -> (u16, Value) {
    let r = emu
        .http_client()
        .post(format!("{}/v1/sprites", emu.base_url()))
        .bearer_auth(emu.token())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn info(emu: &Emulator) -> Value {
    emu.get_json("/_emulator/info").await
}

/// Runs argv through `POST .../exec` (stream framing); returns (stdout+stderr text, exit code).
async fn exec(emu: &Emulator, sprite: &str, argv: &[&str]) -> (String, u8) {
    let mut url =
        reqwest::Url::parse(&format!("{}/v1/sprites/{sprite}/exec", emu.base_url())).unwrap();
    for a in argv {
        url.query_pairs_mut().append_pair("cmd", a);
    }
    let r = emu
        .http_client()
        .post(url)
        .bearer_auth(emu.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "exec {argv:?}");
    let body = r.bytes().await.unwrap();
    assert!(
        body.len() >= 2 && body[body.len() - 2] == 3,
        "ends with an exit frame: {body:?}"
    );
    let text = String::from_utf8_lossy(&body[..body.len() - 2]).into_owned();
    (text, body[body.len() - 1])
}

/// Perl allocating a string of `mib` MiB (perl is in /usr, visible inside every sprite).
fn alloc(mib: u32) -> Vec<String> {
    vec![
        "perl".into(),
        "-e".into(),
        format!(
            "my $x = \"a\" x ({mib} * 1024 * 1024); print \"allocated \", length($x), \"\\n\";"
        ),
    ]
}

#[tokio::test]
async fn a_process_exceeding_the_sprites_memory_limit_fails() {
    let emu = Emulator::start();
    let (status, limited) = create(
        &emu,
        json!({"name": "lim", "config": {"ram_mb": 48, "cpus": 0.5}}),
    )
    .await;
    assert_eq!(status, 201, "{limited}");
    assert_eq!(limited["config"], json!({"ram_mb": 48, "cpus": 0.5}));
    let (status, _) = create(&emu, json!({"name": "free"})).await;
    assert_eq!(status, 201);

    let big = alloc(96);
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let small = alloc(4);
    let small: Vec<&str> = small.iter().map(String::as_str).collect();

    // Over the limit: the allocation fails inside the process.
    let (out, code) = exec(&emu, "lim", &big).await;
    assert_ne!(
        code, 0,
        "allocating 96 MiB under a 48 MiB limit must fail: {out}"
    );
    assert!(!out.contains("allocated"), "{out}");
    // Under the limit, and the same allocation without a limit, succeed.
    let (out, code) = exec(&emu, "lim", &small).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("allocated 4194304"), "{out}");
    let (out, code) = exec(&emu, "free", &big).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("allocated 100663296"), "{out}");

    // Raising the limit (PUT config) applies to the next process.
    let r = emu
        .http_client()
        .put(format!("{}/v1/sprites/lim", emu.base_url()))
        .bearer_auth(emu.token())
        .json(&json!({"config": {"ram_mb": 512, "cpus": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["config"]["ram_mb"], 512);
    let (out, code) = exec(&emu, "lim", &big).await;
    assert_eq!(code, 0, "{out}");

    // Limits survive a restart (they are part of the sprite's record).
    let (status, again) = {
        let r = emu
            .http_client()
            .get(format!("{}/v1/sprites/lim", emu.base_url()))
            .bearer_auth(emu.token())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200);
    assert_eq!(again["config"]["cpus"], 2.0);
}

/// `method` on `.../policy/resources` of `sprite` with an optional JSON body: (status, JSON).
async fn resources(
    emu: &Emulator,
    method: &str,
    sprite: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}/v1/sprites/{sprite}/policy/resources", emu.base_url());
    let c = emu.http_client();
    let req = match method {
        "GET" => c.get(url),
        "POST" => c.post(url).json(&body.unwrap()),
        "DELETE" => c.delete(url),
        other => panic!("{other}"),
    };
    let r = req.bearer_auth(emu.token()).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn the_resources_policy_sets_the_memory_limit_and_is_enforced() {
    let mut emu = Emulator::start();
    let (status, _) = create(&emu, json!({"name": "pol", "config": {"ram_mb": 512}})).await;
    assert_eq!(status, 201);
    let big = alloc(96);
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    // No policy: `{}`, and the legacy ram_mb (512) lets 96 MiB through.
    assert_eq!(resources(&emu, "GET", "pol", None).await, (200, json!({})));
    let (_, code) = exec(&emu, "pol", &big).await;
    assert_eq!(code, 0);
    // The JS SDK's body: stored, echoed, read back in the same shape, and it wins over ram_mb.
    let policy = json!({"memory": {"limit_mb": 48, "autoscale": true}});
    assert_eq!(
        resources(&emu, "POST", "pol", Some(policy.clone())).await,
        (200, policy.clone())
    );
    assert_eq!(
        resources(&emu, "GET", "pol", None).await,
        (200, policy.clone())
    );
    let (out, code) = exec(&emu, "pol", &big).await;
    assert_ne!(code, 0, "96 MiB under a 48 MiB policy must fail: {out}");
    let (out, code) = exec(&emu, "pol", &["sh", "-c", "ulimit -d"]).await;
    // (The first byte is the stdout stream byte.)
    assert_eq!((out.trim_start_matches('\u{1}').trim(), code), ("49152", 0));
    // It survives a restart.
    emu.restart();
    assert_eq!(resources(&emu, "GET", "pol", None).await, (200, policy));
    // Bad bodies name the field; a CPU policy does not exist.
    for (body, field) in [
        (json!({"memory": {"limit_mb": 8}}), "memory.limit_mb"),
        (
            json!({"memory": {"limit_mb": 64, "autoscale": "yes"}}),
            "memory.autoscale",
        ),
        (json!({"cpu": {"limit": 2}}), "no CPU policy"),
    ] {
        let (status, v) = resources(&emu, "POST", "pol", Some(body)).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains(field), "{v}");
    }
    // DELETE clears it: the legacy limit applies again.
    assert_eq!(
        resources(&emu, "DELETE", "pol", None).await,
        (200, json!({}))
    );
    assert_eq!(resources(&emu, "GET", "pol", None).await, (200, json!({})));
    let (_, code) = exec(&emu, "pol", &big).await;
    assert_eq!(code, 0);
    let (status, _) = resources(&emu, "GET", "nobody", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_limits_are_refused_with_the_field_named() {
    let emu = Emulator::start();
    for (config, field) in [
        (json!({"ram_mb": "lots"}), "config.ram_mb"),
        (json!({"ram_mb": 1}), "config.ram_mb"),
        (json!({"cpus": 0}), "config.cpus"),
        (json!("big"), "config must be an object"),
    ] {
        let (status, body) = create(&emu, json!({"name": "bad", "config": config})).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains(field), "{body}");
    }
}

#[tokio::test]
async fn cpu_limits_use_a_cgroup_quota_or_are_reported_as_not_enforced() {
    let emu = Emulator::start();
    let limits = info(&emu).await["limits"].clone();
    assert_eq!(limits["memory"], "rlimit_data", "{limits}");
    let (status, _) = create(&emu, json!({"name": "cpu", "config": {"cpus": 0.5}})).await;
    assert_eq!(status, 201);
    let (out, code) = exec(&emu, "cpu", &["cat", "/proc/self/cgroup"]).await;
    assert_eq!(code, 0, "{out}");
    let (quota_file, want_half, want_two) = match limits["cpu"].as_str().unwrap() {
        "cgroup_v2" => ("cpu.max", "50000 100000", "200000 100000"),
        "cgroup_v1" => ("cpu.cfs_quota_us", "50000", "200000"),
        other => {
            assert_eq!(other, "not_enforced", "{limits}");
            assert!(limits["cpu_note"].as_str().is_some_and(|n| !n.is_empty()));
            eprintln!("CPU limits are not enforceable on this machine: {limits}");
            return;
        }
    };
    let base = std::path::PathBuf::from(limits["cpu_cgroup"].as_str().unwrap());
    let dir = base.join("cpu");
    let quota = std::fs::read_to_string(dir.join(quota_file)).unwrap();
    assert_eq!(quota.trim(), want_half);
    // The exec'd process ran inside the sprite's cgroup.
    let rel = base.file_name().unwrap().to_string_lossy().into_owned() + "/cpu";
    assert!(out.contains(&rel), "{rel} not in {out}");
    // Updating the limit changes the quota of the live cgroup.
    let r = emu
        .http_client()
        .put(format!("{}/v1/sprites/cpu", emu.base_url()))
        .bearer_auth(emu.token())
        .json(&json!({"config": {"cpus": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let quota = std::fs::read_to_string(dir.join(quota_file)).unwrap();
    assert_eq!(quota.trim(), want_two);
    // Deleting the sprite removes its cgroup.
    let r = emu
        .http_client()
        .delete(format!("{}/v1/sprites/cpu", emu.base_url()))
        .bearer_auth(emu.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(!dir.exists(), "{} left behind", dir.display());
}
