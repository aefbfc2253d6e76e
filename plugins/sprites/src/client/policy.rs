//! The sprite's policies: the network policy (DNS-based egress allowlist: get and set) and the
//! resources policy (a memory limit: get, set, clear; there is no CPU policy).

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::handle::SpriteHandle;
use super::retry::Idempotency;

/// One rule: a domain with an action, or an `include` of a named rule set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct PolicyRule {
    /// Exact host, `*.domain`, or `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `allow` or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// A named rule set, e.g. `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
}

/// The whole policy; no rules means unrestricted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct NetworkPolicy {
    /// The rules, most specific match wins.
    #[serde(default, deserialize_with = "super::lenient::null_as_empty")]
    pub rules: Vec<PolicyRule>,
}

/// The memory part of the resources policy.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemoryPolicy {
    /// The limit in MiB.
    pub limit_mb: u64,
    /// Whether the service scales the sprite's memory as needed up to the limit (else, as the
    /// JS SDK leaves it, the service decides).
    #[serde(default)]
    pub autoscale: bool,
}

/// The resources policy (`policy/resources`), as the official JS SDK 0.1.0 sends it:
/// `{"memory":{"limit_mb":N,"autoscale":bool}}`; no `memory` means no limit set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ResourcePolicy {
    /// The memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryPolicy>,
}

impl SpriteHandle {
    /// Reads the network policy.
    pub async fn network_policy(&self) -> Result<NetworkPolicy> {
        let op = self.op("GET", "policy/network");
        self.client
            .send_json(&op, Idempotency::Read, |http| {
                http.get(self.url(&["policy", "network"]))
            })
            .await
    }

    /// Replaces the network policy (the service answers 204, or 200 echoing it).
    pub async fn set_network_policy(&self, policy: &NetworkPolicy) -> Result<()> {
        let op = self.op("POST", "policy/network");
        self.client
            .send(&op, Idempotency::Write, |http| {
                http.post(self.url(&["policy", "network"])).json(policy)
            })
            .await?;
        Ok(())
    }

    /// Reads the resources policy.
    pub async fn resource_policy(&self) -> Result<ResourcePolicy> {
        let op = self.op("GET", "policy/resources");
        self.client
            .send_json(&op, Idempotency::Read, |http| {
                http.get(self.url(&["policy", "resources"]))
            })
            .await
    }

    /// Replaces the resources policy (any 2xx is success, as in the JS SDK).
    pub async fn set_resource_policy(&self, policy: &ResourcePolicy) -> Result<()> {
        if let Some(m) = policy.memory
            && m.limit_mb == 0
        {
            return Err(Error::InvalidInput(
                "a memory limit of 0 MiB cannot be set; clear the policy instead".into(),
            ));
        }
        let op = self.op("POST", "policy/resources");
        self.client
            .send(&op, Idempotency::Write, |http| {
                http.post(self.url(&["policy", "resources"])).json(policy)
            })
            .await?;
        Ok(())
    }

    /// Clears the resources policy.
    pub async fn clear_resource_policy(&self) -> Result<()> {
        let op = self.op("DELETE", "policy/resources");
        self.client
            .send(&op, Idempotency::Write, |http| {
                http.delete(self.url(&["policy", "resources"]))
            })
            .await?;
        Ok(())
    }
}
