//! `config credentials` for the proxy: which rules have a secret, where it comes from, and a
//! redacted preview. Never a value.

use super::rules::{Format, Policy};
use crate::secrets::{SecretResolver, SecretSource};

/// One rule and the state of its secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleCredential {
    /// The host pattern.
    pub host: String,
    /// The header the value goes into.
    pub header: String,
    /// How it is formatted.
    pub format: Format,
    /// The secret's name.
    pub secret: String,
    /// Whether the rule is built in.
    pub builtin: bool,
    /// Where the value comes from, when a source has it.
    pub source: Option<SecretSource>,
    /// A redacted preview.
    pub preview: Option<String>,
    /// Why resolving failed, if it did (names the source and the fix, never the value).
    pub error: Option<String>,
}

/// Resolves every rule's secret (each name once) and reports whether it has a value.
pub async fn rule_credentials(policy: &Policy, resolver: &SecretResolver) -> Vec<RuleCredential> {
    let mut resolved = std::collections::BTreeMap::new();
    for name in policy.secret_names() {
        let r = resolver.resolve(&name).await;
        resolved.insert(name, r);
    }
    policy
        .rules
        .iter()
        .map(|r| {
            let (source, preview, error) = match resolved.get(&r.secret) {
                Some(Ok(Some(v))) => (Some(v.source.clone()), Some(v.secret.preview()), None),
                Some(Ok(None)) | None => (None, None, None),
                Some(Err(e)) => (None, None, Some(e.to_string())),
            };
            RuleCredential {
                host: r.host.to_string(),
                header: r.header.as_str().to_string(),
                format: r.format,
                secret: r.secret.clone(),
                builtin: r.builtin,
                source,
                preview,
                error,
            }
        })
        .collect()
}
