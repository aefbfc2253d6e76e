//! Config tests: every error names file, line, column and key path exactly.

use super::*;
use std::path::Path;

const FILE: &str = "/h/config.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new(FILE), text.to_string(), Path::new("/h"))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn sprites_schema() -> BackendSchema {
    BackendSchema::from_details(
        r#"{"config_keys":[
              {"name":"api_url","type":"string","description":"the Sprites API","default":"https://api.sprites.dev"},
              {"name":"hibernation_timeout","type":"string","description":"default idle time","default":"30m"},
              {"name":"max_sessions","type":"integer","description":"limit"}],
            "secrets":[{"name":"sprites_api_key","env":"SPRITES_API_KEY","config_key":"api_key","description":"token"}]}"#,
    )
    .unwrap()
}

#[test]
fn defaults_when_empty() {
    let c = parse("").unwrap();
    assert_eq!(c.server.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.agent, AgentConfig::default());
    assert_eq!(c.default_backend(), None);
    assert!(c.warnings().is_empty());
    let dir = tempfile::tempdir().unwrap();
    let c = Config::load(&Home::new(dir.path())).unwrap();
    assert_eq!(c.file(), dir.path().join("config.toml"));
}

#[test]
fn reads_a_full_file() {
    let c = parse(
        r#"default_backend = "sprites"

[plugins.sprites]
path = "plugins/libclauderon_sprites.so"
[plugins.other]
path = "/opt/x.so"

[server]
listen = "127.0.0.1:4000"

[agent]
preset = "codex"
model_args = ["-m", "{model}"]

[sprites]
api_url = "http://127.0.0.1:9"
max_sessions = 3
api_key = "literal-key"
"#,
    )
    .unwrap();
    assert_eq!(c.default_backend(), Some("sprites"));
    assert_eq!(
        c.plugin_path("sprites"),
        Some(Path::new("/h/plugins/libclauderon_sprites.so"))
    );
    assert_eq!(c.plugin_path("other"), Some(Path::new("/opt/x.so")));
    assert_eq!(c.plugin_path("nope"), None);
    assert_eq!(c.server.listen.port(), 4000);
    assert_eq!(c.agent.preset, AgentPreset::Codex);
    assert_eq!(
        c.agent.argv(Some("p"), Some("o3"), false, false, None)[5..],
        ["-m", "o3", "p"]
    );
    assert_eq!(c.backend_table("sprites").unwrap()["max_sessions"], 3);
    let plugin_view = c.backend_config("sprites", &sprites_schema()).unwrap();
    assert_eq!(
        plugin_view,
        serde_json::json!({"api_url":"http://127.0.0.1:9","max_sessions":3,"hibernation_timeout":"30m"})
    );
    let (secret, loc) = c.backend_literal("sprites", "api_key").unwrap();
    assert_eq!(secret.expose(), "literal-key");
    assert_eq!(loc, "/h/config.toml:18 [sprites] api_key");
}

#[test]
fn syntax_errors_are_located() {
    let e = err("default_backend = \"sprites\n");
    assert!(e.starts_with("/h/config.toml:1:27:"), "{e}");
    let e = err("[server]\nlisten = \n");
    assert!(e.starts_with("/h/config.toml:2:"), "{e}");
    let e = err("a = 1\na = 2\n");
    assert!(e.starts_with("/h/config.toml:2:1:"), "{e}");
}

#[test]
fn unknown_keys_in_host_tables() {
    assert_eq!(
        err("[server]\nlisten = \"127.0.0.1:1\"\nport = 3\n"),
        "/h/config.toml:3:1: `server.port`: unknown key `port`, expected `listen`"
    );
    let e = err("[agent]\nmodle = \"x\"\n");
    assert!(
        e.starts_with("/h/config.toml:2:1: `agent.modle`: unknown key `modle`, expected one of"),
        "{e}"
    );
    let e = err("[plugins.sprites]\npth = \"/x.so\"\n");
    assert!(
        e.starts_with("/h/config.toml:2:1: `plugins.sprites.pth`: unknown key `pth`"),
        "{e}"
    );
    assert_eq!(
        err("\ndefualt_backend = \"sprites\"\n"),
        "/h/config.toml:2:1: `defualt_backend`: unknown key `defualt_backend`; top-level keys are \
         default_backend, plugins, server, agent, secrets, proxy, sessions, cache or a backend \
         table such as [sprites]"
    );
}

#[test]
fn wrong_types() {
    assert_eq!(
        err("[server]\nlisten = 3030\n"),
        "/h/config.toml:2:10: `server.listen`: invalid type: integer `3030`, expected a string"
    );
    let e = err("[agent]\ncommand = \"claude\"\n");
    assert!(
        e.starts_with("/h/config.toml:2:11: `agent.command`: invalid type"),
        "{e}"
    );
    let e = err("[agent]\nmodel_args = [\"--model\", 5]\n");
    assert!(e.starts_with("/h/config.toml:2:"), "{e}");
    assert!(e.contains("`agent.model_args"), "{e}");
    let e = err("default_backend = 1\n");
    assert!(
        e.starts_with("/h/config.toml:1:19: `default_backend`: invalid type"),
        "{e}"
    );
    let e = err("[plugins]\nsprites = \"/x.so\"\n");
    assert!(
        e.starts_with("/h/config.toml:2:11: `plugins.sprites`: invalid type"),
        "{e}"
    );
    let e = err("[secrets]\ngithub_token = 5\n");
    assert!(
        e.starts_with("/h/config.toml:2:16: `secrets.github_token`"),
        "{e}"
    );
}

#[test]
fn bad_values() {
    assert_eq!(
        err("[server]\nlisten = \"0.0.0.0:3030\"\n"),
        "/h/config.toml:2:10: `server.listen`: the API listens on loopback only (127.0.0.1 or \
         [::1]); it is not meant to be reachable from other machines"
    );
    assert_eq!(
        err("[server]\nlisten = \"localhost\"\n"),
        "/h/config.toml:2:10: `server.listen`: expected an address with a port, e.g. \"127.0.0.1:3030\""
    );
    let e = err("default_backend = \"Sprites!\"\n");
    assert!(
        e.starts_with("/h/config.toml:1:19: `default_backend`:"),
        "{e}"
    );
    assert_eq!(
        err("[agent]\npreset = \"gpt\"\n"),
        "/h/config.toml:2:10: `agent.preset`: unknown preset; expected \"claude\", \"codex\" or \"custom\""
    );
    let e = err("[agent]\npreset = \"custom\"\n");
    assert!(
        e.starts_with("/h/config.toml:2:10: `agent.command`: preset \"custom\" needs"),
        "{e}"
    );
    let e = err("[agent]\ncommand = []\n");
    assert!(
        e.starts_with("/h/config.toml:2:11: `agent.command`: the command is empty"),
        "{e}"
    );
    assert_eq!(
        err("[agent]\nmodel_args = [\"--model\"]\n"),
        "/h/config.toml:2:14: `agent.model_args`: must contain {model} where the value goes"
    );
    let e = err("[secrets]\n\"Bad\" = \"x\"\n");
    assert!(e.starts_with("/h/config.toml:2:1: `secrets.Bad`:"), "{e}");
}

#[test]
fn custom_agent() {
    let c = parse(
        "[agent]\npreset = \"custom\"\ncommand = [\"aider\", \"--yes\"]\nprompt_args = [\"--message\", \"{prompt}\"]\nplan_args = []\n",
    )
    .unwrap();
    assert_eq!(
        c.agent.argv(Some("hi"), None, true, false, None),
        ["aider", "--yes", "--message", "hi"]
    );
}

#[test]
fn backend_tables_checked_against_the_schema() {
    let text = "[sprites]\napi_url = \"x\"\napi_ur = \"y\"\n";
    let c = parse(text).unwrap();
    assert_eq!(
        c.backend_config("sprites", &sprites_schema())
            .unwrap_err()
            .to_string(),
        "/h/config.toml:3:1: `sprites.api_ur`: unknown key `api_ur` for the sprites backend; \
         accepted keys: api_key, api_url, hibernation_timeout, max_sessions"
    );
    let c = parse("[sprites]\n\nmax_sessions = \"3\"\n").unwrap();
    assert_eq!(
        c.backend_config("sprites", &sprites_schema())
            .unwrap_err()
            .to_string(),
        "/h/config.toml:3:16: `sprites.max_sessions`: expected an integer (limit)"
    );
    let c = parse("[sprites]\napi_key = 5\n").unwrap();
    let e = c
        .backend_config("sprites", &sprites_schema())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/h/config.toml:2:11: `sprites.api_key`: a secret is a string"),
        "{e}"
    );
    // No table: the plugin gets its defaults.
    let c = parse("").unwrap();
    assert_eq!(
        c.backend_config("sprites", &sprites_schema()).unwrap(),
        serde_json::json!({"api_url":"https://api.sprites.dev","hibernation_timeout":"30m"})
    );
    let c = parse("[x]\na = 1\n").unwrap();
    let e = c
        .backend_config("x", &BackendSchema::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("it takes no keys"), "{e}");
}

#[test]
fn literal_secrets_warn_and_render_redacted() {
    let c = parse(
        "[secrets]\ngithub_token = \"ghp_abcdefghijklmnopqrstuvwxyz\"\n[sprites]\napi_key = \"sk-spr-literal-value-123456\"\napi_url = \"http://x\"\n[other]\nauth_token = \"t0k3n-undeclared\"\n",
    )
    .unwrap();
    assert_eq!(c.warnings().len(), 1);
    assert!(c.warnings()[0].contains("/h/config.toml:2: secret `github_token`"));
    assert!(!c.warnings()[0].contains("ghp_"));
    assert!(!format!("{c:?}").contains("ghp_"), "Debug leaks");
    let mut schemas = BTreeMap::new();
    schemas.insert("sprites".to_string(), sprites_schema());
    for shown in [
        render::show_text(&c, &schemas),
        render::show_json(&c, &schemas).to_string(),
        render::show_text(&c, &BTreeMap::new()),
        render::show_json(&c, &BTreeMap::new()).to_string(),
    ] {
        for secret in ["ghp_", "sk-spr", "t0k3n"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(shown.contains("http://x"), "{shown}");
    }
    let j = render::show_json(&c, &schemas);
    assert_eq!(j["backends"]["sprites"]["api_key"], "[redacted]");
    assert_eq!(j["backends"]["sprites"]["hibernation_timeout"], "30m");
    assert_eq!(j["server"]["listen"], "127.0.0.1:3030");
    assert_eq!(j["agent"]["command"], serde_json::json!(["claude"]));
    let text = render::show_text(&c, &schemas);
    let back: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(back["sprites"]["api_url"].as_str(), Some("http://x"));
}

#[test]
fn paths_render() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    home.ensure().unwrap();
    let t = render::paths_text(&home);
    assert!(
        t.contains(&format!(
            "config     {}/config.toml  (missing)",
            dir.path().display()
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!("secrets    {}/secrets\n", dir.path().display())),
        "{t}"
    );
    let j = render::paths_json(&home);
    assert_eq!(j[3]["name"], "secrets");
    assert_eq!(j[3]["exists"], true);
    assert_eq!(j[1]["exists"], false);
}

#[test]
fn backend_tables_without_a_plugin() {
    let c = parse("[sprites]\na = 1\n\n[sprties]\nb = 2\n").unwrap();
    assert_eq!(
        c.check_backend_tables(&["sprites", "test"])
            .unwrap_err()
            .to_string(),
        "/h/config.toml:4:2: `sprties`: no plugin named `sprties` claims this table; known \
         plugins: sprites, test"
    );
    assert!(c.check_backend_tables(&["sprites", "sprties"]).is_ok());
    let e = c.check_backend_tables(&[]).unwrap_err().to_string();
    assert!(e.ends_with("no plugins were found"), "{e}");
}

#[test]
fn a_readable_config_with_secrets_warns() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let f = home.config_file();
    std::fs::write(
        &f,
        "[secrets]\ngithub_token = \"ghp_0123456789abcdefghij\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = Config::load(&home).unwrap();
    assert_eq!(c.warnings().len(), 2);
    assert!(c.warnings()[1].ends_with(&format!("run: chmod 600 {}", f.display())));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(Config::load(&home).unwrap().warnings().len(), 1);
}

#[test]
fn proxy_listen_is_loopback_only_and_defaults_to_any_port() {
    assert_eq!(parse("").unwrap().proxy.listen.to_string(), "127.0.0.1:0");
    let c = parse("[proxy]\nlisten = \"127.0.0.1:18080\"\n").unwrap();
    assert_eq!(c.proxy.listen.port(), 18080);
    assert_eq!(
        err("[proxy]\nlisten = \"0.0.0.0:18080\"\n"),
        "/h/config.toml:2:10: `proxy.listen`: the credential proxy listens on loopback only \
         (127.0.0.1 or [::1]): sandboxes reach it through the backend's tunnel, never over the \
         network"
    );
    let e = err("[proxy]\nlisten = \"nowhere\"\n");
    assert!(
        e.starts_with("/h/config.toml:2:10: `proxy.listen`: expected an address with a port"),
        "{e}"
    );
    let e = err("[proxy]\nport = 1\n");
    assert!(e.starts_with("/h/config.toml:2:1: `proxy.port`"), "{e}");
}

#[test]
fn agent_files_and_continue_args() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("agent.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let text = "[agent]\npreset = \"custom\"\ncommand = [\"/x/agent\"]\n\
         continue_args = [\"--again\"]\n\
         files = { \".clauderon/bin/agent\" = \"agent.sh\" }\n"
        .to_owned();
    let c = Config::parse(Path::new(FILE), text.clone(), dir.path()).unwrap();
    assert_eq!(
        c.agent.files,
        [crate::config::SandboxFile {
            sandbox_path: ".clauderon/bin/agent".into(),
            host_path: script.clone(),
        }]
    );
    assert_eq!(
        c.agent.argv(
            None,
            None,
            false,
            false,
            Some(&crate::config::Resume::Latest)
        ),
        ["/x/agent", "--again"]
    );
    // A file that does not exist is an error at its value, naming the fix.
    let missing = text.replace("agent.sh", "nope.sh");
    let e = Config::parse(Path::new(FILE), missing, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&format!("{FILE}:5:")), "{e}");
    assert!(e.contains("agent.files..clauderon/bin/agent"), "{e}");
    assert!(e.contains("nope.sh is not a file"), "{e}");
}

#[test]
fn the_cache_table_sets_age_size_and_the_direct_path() {
    let home = Home::new("/h");
    let c = Config::parse(
        &home.config_file(),
        "[cache]\nmax_age = \"14days\"\nmax_size = \"2G\"\ndirect = false\n".into(),
        home.root(),
    )
    .unwrap();
    assert_eq!(c.cache.max_age, std::time::Duration::from_secs(14 * 86_400));
    assert_eq!(c.cache.max_size, 2 << 30);
    assert!(!c.cache.direct);
    assert_eq!(
        Config::parse(&home.config_file(), String::new(), home.root())
            .unwrap()
            .cache,
        super::CacheConfig::default()
    );
    let e = err("[cache]\nmax_size = \"lots\"\n");
    assert!(
        e.starts_with("/h/config.toml:2:12: `cache.max_size`: `lots` is not a size"),
        "{e}"
    );
    let e = err("[cache]\nmax_ages = \"1d\"\n");
    assert!(e.contains("unknown key `max_ages`"), "{e}");
}

#[test]
fn event_retention_is_configurable_and_checked() {
    let c = parse("").unwrap();
    assert_eq!(c.sessions.retention, crate::store::Retention::default());
    let c = parse(
        "[sessions]\nkeep_events = 500\nkeep_output = \"64 KiB\"\nkeep_deleted_events = \"2d\"\n",
    )
    .unwrap();
    assert_eq!(c.sessions.retention.max_events, 500);
    assert_eq!(c.sessions.retention.max_output_bytes, 64 * 1024);
    assert_eq!(
        c.sessions.retention.deleted_for,
        std::time::Duration::from_secs(2 * 24 * 3600)
    );
    let e = err("[sessions]\nkeep_events = 0\n");
    assert!(
        e.starts_with("/h/config.toml:2:15: `sessions.keep_events`: `0` is not a number of events"),
        "{e}"
    );
    let e = err("[sessions]\nkeep_output = \"lots\"\n");
    assert!(
        e.starts_with("/h/config.toml:2:15: `sessions.keep_output`: `lots` is not a size"),
        "{e}"
    );
    let e = err("[sessions]\nkeep_deleted_events = \"a week\"\n");
    assert!(
        e.contains("`sessions.keep_deleted_events`: `a week` is not a duration"),
        "{e}"
    );
    for (text, bytes) in [
        ("50MiB", 50 << 20),
        ("1g", 1 << 30),
        ("4096", 4096),
        ("2 K", 2048),
    ] {
        assert_eq!(super::parse_size(text), Ok(bytes), "{text}");
    }
    assert!(super::parse_size("-1").is_err());
    assert!(super::parse_size("5 PB").is_err());
}

#[test]
fn the_hookless_start_grace_is_configurable() {
    assert_eq!(
        parse("").unwrap().agent.start_grace,
        crate::config::DEFAULT_START_GRACE
    );
    let c = parse("[agent]\npreset = \"codex\"\nstart_grace = \"500ms\"\n").unwrap();
    assert_eq!(c.agent.start_grace, std::time::Duration::from_millis(500));
    let e = err("[agent]\nstart_grace = \"soon\"\n");
    assert!(
        e.starts_with("/h/config.toml:2:15: `agent.start_grace`: `soon` is not a duration"),
        "{e}"
    );
}
