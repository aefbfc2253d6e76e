//! The sprite's network policy (DNS-based egress allowlist): get and set.

use serde::{Deserialize, Serialize};

use super::error::Result;
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
}
