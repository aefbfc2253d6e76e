//! Shared helpers for the integration tests: artifacts, temporary homes, child processes.

#![allow(dead_code)]

pub mod agents;
pub mod artifacts;
pub mod attached;
pub mod browser;
pub mod daemon;
pub mod elf;
pub mod emulator;
pub mod files;
pub mod frames;
pub mod git;
pub mod home;
pub mod sprites_plugin;
pub mod upstream;

/// The `[agent]` table that runs the demo agent (`examples/demo-agent`), installed into each
/// sandbox by the host through `[agent] files`, as the quick start does.
pub fn demo_agent_toml() -> String {
    let script = artifacts::workspace_root().join("examples/demo-agent/clauderon-demo-agent");
    format!(
        "[agent]\npreset = \"custom\"\n\
         command = [\"/home/sprite/.clauderon/bin/clauderon-demo-agent\"]\n\
         prompt_args = [\"{{prompt}}\"]\nmodel_args = [\"--model\", \"{{model}}\"]\n\
         plan_args = [\"--plan\"]\nprint_args = [\"--print\"]\n\
         resume_args = [\"--resume\", \"{{resume}}\"]\n\
         files = {{ \".clauderon/bin/clauderon-demo-agent\" = \"{}\" }}\n",
        script.display()
    )
}

/// The object named `name` (`"name"` field) in the JSON array `rows`; panics naming what is
/// there when it is missing.
pub fn row_named(rows: &serde_json::Value, name: &str) -> serde_json::Value {
    rows.as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in {rows:#}"))
}
