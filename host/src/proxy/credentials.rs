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
    /// Whether sessions use this rule for its host: of several rules for one host (an API key
    /// and a subscription token), only the first whose secret has a value is used.
    pub used: bool,
    /// Why it is used or not, when the host has other rules.
    pub note: Option<String>,
}

/// Resolves every rule's secret (each name once) and reports whether it has a value.
pub async fn rule_credentials(policy: &Policy, resolver: &SecretResolver) -> Vec<RuleCredential> {
    let mut resolved = std::collections::BTreeMap::new();
    for name in policy.secret_names() {
        let r = resolver.resolve(&name).await;
        resolved.insert(name, r);
    }
    let available: std::collections::BTreeSet<String> = resolved
        .iter()
        .filter(|(_, r)| matches!(r, Ok(Some(_))))
        .map(|(n, _)| n.clone())
        .collect();
    let chosen = policy.chosen_rules(&available);
    policy
        .rules
        .iter()
        .map(|r| {
            let (source, preview, error) = match resolved.get(&r.secret) {
                Some(Ok(Some(v))) => (Some(v.source.clone()), Some(v.secret.preview()), None),
                Some(Ok(None)) | None => (None, None, None),
                Some(Err(e)) => (None, None, Some(e.to_string())),
            };
            let used = chosen.iter().any(|c| std::ptr::eq(*c, r));
            let others: Vec<&str> = policy
                .rules
                .iter()
                .filter(|o| o.host == r.host && o.secret != r.secret)
                .map(|o| o.secret.as_str())
                .collect();
            let note = (!others.is_empty()).then(|| {
                let winner = chosen
                    .iter()
                    .find(|c| c.host == r.host)
                    .map_or("", |c| c.secret.as_str());
                match (used, source.is_some()) {
                    (true, true) => format!(
                        "sessions use this for {}: the first of its rules with a value{}",
                        r.host,
                        if r.secret == "anthropic_api_key" {
                            " (an API key before a subscription token, as Claude Code does)"
                        } else {
                            ""
                        }
                    ),
                    (true, false) => format!(
                        "no rule for {} has a value; set one of {}, {}",
                        r.host,
                        r.secret,
                        others.join(", ")
                    ),
                    (false, true) => format!(
                        "set, but sessions use `{winner}` for {} (an earlier rule with a value); \
                         remove `{winner}` to use this one",
                        r.host
                    ),
                    (false, false) => format!("not set; sessions use `{winner}` for {}", r.host),
                }
            });
            RuleCredential {
                host: r.host.to_string(),
                header: r.header.as_str().to_string(),
                format: r.format,
                secret: r.secret.clone(),
                builtin: r.builtin,
                source,
                preview,
                error,
                used,
                note,
            }
        })
        .collect()
}
