//! A sprite's resource limits and how this machine enforces them.
//!
//! The limits come from the sprite's `config` object, the documented (legacy) create field
//! `config {ram_mb, cpus, region, storage_gb}` (sprites-api.md §2.1). The real service says its
//! resources are fixed; the emulator enforces what it is given, "where the OS allows":
//!
//! - **Memory** (`ram_mb`): `RLIMIT_DATA` on every exec'd process (heap and private writable
//!   mappings; unlike `RLIMIT_AS` it does not count address space reserved but never written,
//!   so runtimes that reserve large ranges still start). It is per process, not per sprite: an
//!   allocation beyond the limit fails inside that process.
//! - **CPU** (`cpus`, fractional cores): a cgroup per sprite with a CFS quota, cgroup v2
//!   `cpu.max` when the unified hierarchy's cpu controller is writable, else the cgroup v1 `cpu`
//!   controller's `cpu.cfs_quota_us`. Every exec'd process joins the sprite's cgroup before it
//!   enters the sprite's namespaces. When neither is writable (unprivileged, read-only cgroupfs)
//!   CPU limits are stored but not enforced, and the emulator says so at start and in
//!   `GET /_emulator/info`.
//!
//! The cgroups live under `<controller root>/sprites-emulator-<pid>/<sprite>`; stale trees of
//! emulators that are gone are removed at start.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The CFS period the CPU quota is expressed in (100 ms, the kernel default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// A sprite's `config` (the legacy create field; every member optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpriteConfig {
    /// Memory limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_mb: Option<u64>,
    /// CPU limit in cores (fractions allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Region (stored and echoed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Storage in GB (stored and echoed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_gb: Option<u64>,
}

impl SpriteConfig {
    /// Parses and validates a `config` object; the error says which field is wrong and why.
    pub fn parse(v: &serde_json::Value) -> Result<SpriteConfig, String> {
        let obj = v
            .as_object()
            .ok_or("config must be an object like {\"ram_mb\": 1024, \"cpus\": 2}")?;
        let mut c = SpriteConfig::default();
        for (k, val) in obj {
            if val.is_null() {
                continue;
            }
            match k.as_str() {
                "ram_mb" => match val.as_u64() {
                    Some(n) if (16..=1 << 24).contains(&n) => c.ram_mb = Some(n),
                    _ => {
                        return Err(format!(
                            "config.ram_mb must be an integer number of MiB between 16 and 16777216, got {val}"
                        ));
                    }
                },
                "cpus" => match val.as_f64() {
                    Some(n) if n > 0.0 && n <= 1024.0 => c.cpus = Some(n),
                    _ => {
                        return Err(format!(
                            "config.cpus must be a number of cores above 0 (at most 1024), got {val}"
                        ));
                    }
                },
                "region" => match val.as_str() {
                    Some(s) => c.region = Some(s.to_owned()),
                    None => return Err(format!("config.region must be a string, got {val}")),
                },
                "storage_gb" => match val.as_u64() {
                    Some(n) => c.storage_gb = Some(n),
                    None => {
                        return Err(format!(
                            "config.storage_gb must be a non-negative integer, got {val}"
                        ));
                    }
                },
                // Unknown members are ignored, like the rest of the API ignores unknown fields.
                _ => {}
            }
        }
        Ok(c)
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == SpriteConfig::default()
    }
}

/// The memory part of a sprite's resources policy (`policy/resources`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryPolicy {
    /// The limit in MiB.
    pub limit_mb: u64,
    /// Whether the service may scale memory up to the limit (stored and echoed only).
    pub autoscale: bool,
}

/// A sprite's resources policy, as the official JS SDK sends it:
/// `{"memory": {"limit_mb": N, "autoscale": bool}}`; `{}` is "no policy".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourcesPolicy {
    /// The memory limit, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryPolicy>,
}

impl ResourcesPolicy {
    /// Parses and validates a policy body; the error names the field and what is accepted.
    pub fn parse(v: &serde_json::Value) -> Result<ResourcesPolicy, String> {
        let obj = v.as_object().ok_or(
            "the policy must be an object like {\"memory\": {\"limit_mb\": 2048, \"autoscale\": true}}",
        )?;
        let mut p = ResourcesPolicy::default();
        for (k, val) in obj {
            match k.as_str() {
                "memory" if val.is_null() => {}
                "memory" => {
                    let m = val
                        .as_object()
                        .ok_or_else(|| format!("memory must be an object, got {val}"))?;
                    let limit_mb = match m.get("limit_mb").and_then(serde_json::Value::as_u64) {
                        Some(n) if (16..=1 << 24).contains(&n) => n,
                        _ => {
                            return Err(format!(
                                "memory.limit_mb must be an integer number of MiB between 16 and \
                                 16777216, got {}",
                                m.get("limit_mb")
                                    .map_or("nothing".to_owned(), |x| x.to_string())
                            ));
                        }
                    };
                    let autoscale = match m.get("autoscale") {
                        None | Some(serde_json::Value::Null) => false,
                        Some(serde_json::Value::Bool(b)) => *b,
                        Some(other) => {
                            return Err(format!(
                                "memory.autoscale must be true or false, got {other}"
                            ));
                        }
                    };
                    if let Some(extra) = m.keys().find(|k| *k != "limit_mb" && *k != "autoscale") {
                        return Err(format!(
                            "memory.{extra} is not a known field (limit_mb, autoscale)"
                        ));
                    }
                    p.memory = Some(MemoryPolicy {
                        limit_mb,
                        autoscale,
                    });
                }
                "cpu" | "cpus" => {
                    return Err(format!(
                        "{k}: there is no CPU policy; a sprite's CPUs are sized by the service"
                    ));
                }
                other => return Err(format!("{other} is not a known resource (memory)")),
            }
        }
        Ok(p)
    }
}

/// The limits a sprite's processes get: the legacy `config`, with the resources policy's memory
/// limit in place of `ram_mb` when one is set.
pub fn effective(config: &SpriteConfig, policy: &ResourcesPolicy) -> SpriteConfig {
    let mut c = config.clone();
    if let Some(m) = policy.memory {
        c.ram_mb = Some(m.limit_mb);
    }
    c
}

/// How CPU limits are enforced on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuControl {
    /// cgroup v2: `cpu.max` under this directory's `sprites-emulator-<pid>`.
    V2(PathBuf),
    /// cgroup v1 `cpu` controller: `cpu.cfs_quota_us` under this directory.
    V1(PathBuf),
    /// Not enforced, with the reason.
    Off(String),
}

/// The limits machinery, decided once at start.
#[derive(Debug)]
pub struct Enforcer {
    cpu: CpuControl,
}

/// What an exec'd child applies to itself between fork and exec (prepared before the fork: no
/// allocation happens in the child).
#[derive(Debug, Clone, Default)]
pub struct ChildLimits {
    /// `RLIMIT_DATA` in bytes.
    pub data_bytes: Option<u64>,
    /// The sprite cgroup's `cgroup.procs` to join.
    pub cgroup_procs: Option<CString>,
}

fn own_cgroup(controller: Option<&str>) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match controller {
            None => ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        hit.then(|| path.to_owned())
    })
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Tries to make `dir` (and remove it again): the cgroup tree is writable for us.
fn probe_dir(parent: &Path) -> Result<(), String> {
    let probe = parent.join(format!("sprites-emulator-probe-{}", std::process::id()));
    std::fs::create_dir(&probe).map_err(|e| format!("mkdir in {}: {e}", parent.display()))?;
    let _ = std::fs::remove_dir(&probe);
    Ok(())
}

fn detect_v2() -> Result<PathBuf, String> {
    let root = Path::new("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers"))
        .map_err(|_| "no cgroup v2 unified hierarchy at /sys/fs/cgroup".to_owned())?;
    if !controllers.split_whitespace().any(|c| c == "cpu") {
        return Err("the cgroup v2 cpu controller is not available".to_owned());
    }
    // The root cgroup has no "no internal processes" rule, so a subtree there can use cpu.
    write(&root.join("cgroup.subtree_control"), "+cpu")?;
    probe_dir(root)?;
    Ok(root.to_path_buf())
}

fn detect_v1() -> Result<PathBuf, String> {
    let mounts =
        std::fs::read_to_string("/proc/mounts").map_err(|e| format!("/proc/mounts: {e}"))?;
    let mount = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f[2] == "cgroup" && f[3].split(',').any(|o| o == "cpu"))
                .then(|| PathBuf::from(f[1]))
        })
        .next()
        .ok_or("no cgroup v1 cpu controller is mounted")?;
    let own = own_cgroup(Some("cpu")).unwrap_or_else(|| "/".to_owned());
    let parent = mount.join(own.trim_start_matches('/'));
    if !parent.join("cpu.cfs_quota_us").exists() {
        return Err(format!("{} has no cpu.cfs_quota_us", parent.display()));
    }
    probe_dir(&parent)?;
    Ok(parent)
}

/// Removes `sprites-emulator-<pid>` trees under `parent` whose emulator is gone.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("sprites-emulator-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(kids) = std::fs::read_dir(e.path()) {
            for k in kids.flatten() {
                if k.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(k.path());
                }
            }
        }
        let _ = std::fs::remove_dir(e.path());
    }
}

impl Enforcer {
    /// Decides how CPU limits are enforced here (cgroup v2, v1, or not at all).
    pub fn detect() -> Enforcer {
        let cpu = match detect_v2() {
            Ok(p) => CpuControl::V2(p),
            Err(v2) => match detect_v1() {
                Ok(p) => CpuControl::V1(p),
                Err(v1) => CpuControl::Off(format!("{v2}; {v1}")),
            },
        };
        if let CpuControl::V2(p) | CpuControl::V1(p) = &cpu {
            remove_stale(p);
        }
        Enforcer { cpu }
    }

    /// An enforcer that never touches cgroups (CPU limits not enforced, with `reason`).
    pub fn cpu_off(reason: impl Into<String>) -> Enforcer {
        Enforcer {
            cpu: CpuControl::Off(reason.into()),
        }
    }

    /// How CPU limits are enforced.
    pub fn cpu(&self) -> &CpuControl {
        &self.cpu
    }

    /// `{"memory": ..., "cpu": ..., "cpu_cgroup"?: ..., "cpu_note"?: ...}` for `/_emulator/info`.
    pub fn describe(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"memory": "rlimit_data"});
        match &self.cpu {
            CpuControl::V2(_) => v["cpu"] = "cgroup_v2".into(),
            CpuControl::V1(_) => v["cpu"] = "cgroup_v1".into(),
            CpuControl::Off(why) => {
                v["cpu"] = "not_enforced".into();
                v["cpu_note"] = why.clone().into();
            }
        }
        if let Some(dir) = self.base() {
            v["cpu_cgroup"] = dir.display().to_string().into();
        }
        v
    }

    /// `<controller root>/sprites-emulator-<pid>`, when CPU limits are enforced.
    pub fn base(&self) -> Option<PathBuf> {
        match &self.cpu {
            CpuControl::V2(p) | CpuControl::V1(p) => {
                Some(p.join(format!("sprites-emulator-{}", std::process::id())))
            }
            CpuControl::Off(_) => None,
        }
    }

    /// Makes the sprite's limits current (cgroup created or updated: running processes of the
    /// sprite follow a changed CPU quota at once) and returns what an exec'd child applies.
    pub fn prepare(&self, sprite: &str, cfg: &SpriteConfig) -> Result<ChildLimits, String> {
        let data_bytes = cfg.ram_mb.map(|mb| mb.saturating_mul(1024 * 1024));
        let Some(base) = self.base() else {
            return Ok(ChildLimits {
                data_bytes,
                cgroup_procs: None,
            });
        };
        let dir = base.join(sprite);
        let Some(cpus) = cfg.cpus else {
            // No limit (any more): lift the quota of processes still in the cgroup.
            if dir.is_dir() {
                self.write_quota(&dir, None)?;
            }
            return Ok(ChildLimits {
                data_bytes,
                cgroup_procs: None,
            });
        };
        if !base.is_dir() {
            std::fs::create_dir(&base).map_err(|e| format!("mkdir {}: {e}", base.display()))?;
            if matches!(self.cpu, CpuControl::V2(_)) {
                write(&base.join("cgroup.subtree_control"), "+cpu")?;
            }
        }
        if !dir.is_dir() {
            std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        }
        self.write_quota(&dir, Some(cpus))?;
        let procs = CString::new(
            dir.join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .map_err(|_| "cgroup path contains a NUL byte".to_owned())?;
        Ok(ChildLimits {
            data_bytes,
            cgroup_procs: Some(procs),
        })
    }

    fn write_quota(&self, dir: &Path, cpus: Option<f64>) -> Result<(), String> {
        let quota = cpus.map(|c| ((c * CPU_PERIOD_US as f64).round() as u64).max(1000));
        match (&self.cpu, quota) {
            (CpuControl::V2(_), Some(q)) => {
                write(&dir.join("cpu.max"), &format!("{q} {CPU_PERIOD_US}"))
            }
            (CpuControl::V2(_), None) => {
                write(&dir.join("cpu.max"), &format!("max {CPU_PERIOD_US}"))
            }
            (CpuControl::V1(_), q) => {
                write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                let q = q.map_or_else(|| "-1".to_owned(), |q| q.to_string());
                write(&dir.join("cpu.cfs_quota_us"), &q)
            }
            (CpuControl::Off(_), _) => Ok(()),
        }
    }

    /// Removes the sprite's cgroup (best effort: it must be empty, so call it after the
    /// sprite's processes are gone).
    pub fn remove(&self, sprite: &str) {
        if let Some(base) = self.base() {
            let _ = std::fs::remove_dir(base.join(sprite));
        }
    }
}

impl Drop for Enforcer {
    fn drop(&mut self) {
        if let Some(base) = self.base()
            && let Ok(kids) = std::fs::read_dir(&base)
        {
            for k in kids.flatten() {
                let _ = std::fs::remove_dir(k.path());
            }
            let _ = std::fs::remove_dir(&base);
        }
    }
}

/// Writes the decimal `n` into `buf`; returns the used tail. No allocation (runs after fork).
fn decimal(mut n: u32, buf: &mut [u8; 12]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Applies `limits` to the calling process: joins the sprite's cgroup (best effort: a failure
/// leaves the process unlimited rather than failing the exec) and sets `RLIMIT_DATA`.
///
/// # Safety
/// Only async-signal-safe calls: meant for the child between fork and exec.
pub unsafe fn apply_in_child(limits: &ChildLimits) -> std::io::Result<()> {
    if let Some(procs) = &limits.cgroup_procs {
        // SAFETY: open/write/close with a valid C string and a stack buffer.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                let mut buf = [0u8; 12];
                let pid = decimal(libc::getpid() as u32, &mut buf);
                let _ = libc::write(fd, pid.as_ptr().cast(), pid.len());
                libc::close(fd);
            }
        }
    }
    if let Some(bytes) = limits.data_bytes {
        let lim = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: bytes,
        };
        // SAFETY: setrlimit with a valid struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &lim) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_names_the_field() {
        let c =
            SpriteConfig::parse(&serde_json::json!({"ram_mb": 512, "cpus": 1.5, "x": 1})).unwrap();
        assert_eq!((c.ram_mb, c.cpus), (Some(512), Some(1.5)));
        let e = SpriteConfig::parse(&serde_json::json!({"ram_mb": "lots"})).unwrap_err();
        assert!(e.contains("config.ram_mb"), "{e}");
        let e = SpriteConfig::parse(&serde_json::json!({"cpus": 0})).unwrap_err();
        assert!(e.contains("config.cpus"), "{e}");
        assert!(SpriteConfig::parse(&serde_json::json!(3)).is_err());
    }

    #[test]
    fn resources_policy_validation_names_the_field() {
        let p = ResourcesPolicy::parse(
            &serde_json::json!({"memory": {"limit_mb": 512, "autoscale": true}}),
        )
        .unwrap();
        assert_eq!(
            p.memory,
            Some(MemoryPolicy {
                limit_mb: 512,
                autoscale: true
            })
        );
        assert_eq!(
            ResourcesPolicy::parse(&serde_json::json!({})).unwrap(),
            ResourcesPolicy::default()
        );
        for (body, field) in [
            (
                serde_json::json!({"memory": {"limit_mb": "big"}}),
                "memory.limit_mb",
            ),
            (
                serde_json::json!({"memory": {"limit_mb": 64, "autoscale": 1}}),
                "memory.autoscale",
            ),
            (
                serde_json::json!({"memory": {"limit_mb": 64, "swap": 1}}),
                "memory.swap",
            ),
            (serde_json::json!({"cpu": {"limit": 2}}), "no CPU policy"),
            (serde_json::json!([]), "must be an object"),
        ] {
            let e = ResourcesPolicy::parse(&body).unwrap_err();
            assert!(e.contains(field), "{e}");
        }
        let cfg = SpriteConfig {
            ram_mb: Some(100),
            cpus: Some(1.0),
            ..SpriteConfig::default()
        };
        assert_eq!(effective(&cfg, &p).ram_mb, Some(512));
        assert_eq!(effective(&cfg, &ResourcesPolicy::default()), cfg);
    }

    #[test]
    fn decimal_without_allocation() {
        let mut b = [0u8; 12];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(4_294_967_295, &mut b), b"4294967295");
    }
}
