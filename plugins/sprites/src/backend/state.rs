//! The instance state the plugin keeps in the host's store: versioned JSON (`"v": 1`).
//!
//! The plugin is stateless between calls; everything it must remember about a sprite (its name,
//! labels, limits, the agent's detachable session, how the workspace was cloned) travels in
//! `Instance.state` and comes back with every call.

use std::collections::BTreeMap;

use clauderon_plugin_sdk::PluginError;
use clauderon_plugin_sdk::ops::Instance;
use serde::{Deserialize, Serialize};

/// The current state version.
pub const STATE_VERSION: u32 = 1;

/// How the workspace got into the sprite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneRecord {
    /// `remote` (cloned from the origin inside the sprite) or `bundle` (shipped from the host).
    pub method: String,
    /// Where it lives in the sprite.
    pub dest: String,
    /// The session branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// The commit checked out.
    #[serde(default)]
    pub commit: Option<String>,
    /// Why the bundle path was taken, when it was.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Version 1 of the Sprites instance state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpriteState {
    /// The state version ([`STATE_VERSION`]).
    pub v: u32,
    /// The sprite's name (also `Instance.id`).
    pub sprite: String,
    /// The sprite's opaque id at the provider.
    #[serde(default)]
    pub sprite_id: Option<String>,
    /// The host's session id.
    #[serde(default)]
    pub session_id: String,
    /// The labels the sprite was created with (`key=value`).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Environment for every command (never secrets).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// CPU limit requested (cores).
    #[serde(default)]
    pub cpu_limit: Option<f64>,
    /// Memory limit requested (MiB).
    #[serde(default)]
    pub memory_limit_mib: Option<u64>,
    /// The agent's detachable TTY session id.
    #[serde(default)]
    pub agent_session: Option<String>,
    /// The workspace clone.
    #[serde(default)]
    pub clone: Option<CloneRecord>,
    /// How long the last wake took, in milliseconds.
    #[serde(default)]
    pub last_wake_ms: Option<u64>,
}

impl SpriteState {
    /// Reads the state of `instance`; an instance without state (made by an older host) is
    /// understood from its id alone.
    pub fn of(instance: &Instance) -> Result<SpriteState, PluginError> {
        let mut state = match &instance.state {
            serde_json::Value::Null => SpriteState::default(),
            v => serde_json::from_value::<SpriteState>(v.clone()).map_err(|e| {
                PluginError::invalid_request(format!(
                    "the stored sprites instance state is not understood ({e}); recreate the session"
                ))
            })?,
        };
        if state.v > STATE_VERSION {
            return Err(PluginError::invalid_request(format!(
                "the instance state has version {} but this sprites plugin knows up to {STATE_VERSION}; update the plugin",
                state.v
            )));
        }
        state.v = STATE_VERSION;
        if state.sprite.is_empty() {
            state.sprite = instance.id.clone();
        }
        if state.sprite.is_empty() {
            return Err(PluginError::invalid_request(
                "the instance has no sprite name (empty id); recreate the session",
            ));
        }
        Ok(state)
    }

    /// The instance carrying this state.
    pub fn instance(&self) -> Instance {
        Instance {
            id: self.sprite.clone(),
            state: serde_json::to_value(self).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_newer_versions() {
        let s = SpriteState {
            v: STATE_VERSION,
            sprite: "demo-1234abcd".into(),
            agent_session: Some("7".into()),
            ..SpriteState::default()
        };
        let inst = s.instance();
        assert_eq!(inst.id, "demo-1234abcd");
        assert_eq!(SpriteState::of(&inst).unwrap(), s);
        let bare = Instance {
            id: "x".into(),
            state: serde_json::Value::Null,
        };
        assert_eq!(SpriteState::of(&bare).unwrap().sprite, "x");
        let newer = Instance {
            id: "x".into(),
            state: serde_json::json!({"v": 9, "sprite": "x"}),
        };
        assert!(
            SpriteState::of(&newer)
                .unwrap_err()
                .message
                .contains("version 9")
        );
        let empty = Instance::default();
        assert!(SpriteState::of(&empty).is_err());
    }
}
