//! A sprite's network policy as rules to decide by: `{"rules":[{"domain","action"} |
//! {"include":"defaults"}]}`, where a domain is an exact host, `*.suffix` (subdomains only, never
//! the suffix itself) or `*`. The most specific matching rule decides (exact over `*.suffix`,
//! a longer suffix over a shorter one, any over `*`); between equally specific rules, deny wins.
//! No rules at all is unrestricted; with rules, a host no rule matches is denied (an allowlist).

use serde_json::Value;

/// The emulator's stand-in for the service's `defaults` preset, whose contents are not
/// published: code hosts and the package registries a coding agent needs.
pub const DEFAULTS: &[&str] = &[
    "github.com",
    "*.github.com",
    "*.githubusercontent.com",
    "registry.npmjs.org",
    "*.npmjs.org",
    "pypi.org",
    "files.pythonhosted.org",
    "crates.io",
    "*.crates.io",
    "static.rust-lang.org",
    "proxy.golang.org",
    "sum.golang.org",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    /// `*.suffix`: the suffix with its leading dot (`.example.com`).
    Suffix(String),
    Any,
}

impl Pattern {
    fn parse(domain: &str) -> Pattern {
        let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        match d.strip_prefix('*') {
            Some("") => Pattern::Any,
            Some(rest) if rest.starts_with('.') => Pattern::Suffix(rest.to_owned()),
            _ => Pattern::Exact(d),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Pattern::Exact(h) => h == host,
            Pattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
            Pattern::Any => true,
        }
    }

    /// Higher is more specific.
    fn specificity(&self) -> (u8, usize) {
        match self {
            Pattern::Exact(h) => (2, h.len()),
            Pattern::Suffix(s) => (1, s.len()),
            Pattern::Any => (0, 0),
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    allow: bool,
    /// How the rule was written, for messages.
    text: String,
}

/// What the policy says about a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Reachable.
    Allow,
    /// Refused by this rule (its text).
    Deny(String),
    /// Refused: the policy has rules and none matches.
    Unlisted,
}

/// A compiled network policy.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// Compiles a stored policy (already validated when it was set; anything unreadable in it
    /// is skipped).
    pub fn compile(policy: &Value) -> Rules {
        let mut rules = Vec::new();
        let items = policy
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for r in items {
            if r.get("include").and_then(Value::as_str) == Some("defaults") {
                rules.extend(DEFAULTS.iter().map(|d| Rule {
                    pattern: Pattern::parse(d),
                    allow: true,
                    text: format!("allow {d} (defaults)"),
                }));
            }
            let (Some(domain), Some(action)) = (
                r.get("domain").and_then(Value::as_str),
                r.get("action").and_then(Value::as_str),
            ) else {
                continue;
            };
            rules.push(Rule {
                pattern: Pattern::parse(domain),
                allow: action == "allow",
                text: format!("{action} {domain}"),
            });
        }
        Rules { rules }
    }

    /// True when the policy has no rules (everything public is reachable).
    pub fn unrestricted(&self) -> bool {
        self.rules.is_empty()
    }

    /// What the policy says about `host` (a name, lower-cased, without a trailing dot).
    pub fn decide(&self, host: &str) -> Decision {
        if self.unrestricted() {
            return Decision::Allow;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let best = self
            .rules
            .iter()
            .filter(|r| r.pattern.matches(&host))
            .map(|r| r.pattern.specificity())
            .max();
        let Some(best) = best else {
            return Decision::Unlisted;
        };
        let top: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.pattern.matches(&host) && r.pattern.specificity() == best)
            .collect();
        match top.iter().find(|r| !r.allow) {
            Some(deny) => Decision::Deny(deny.text.clone()),
            None => Decision::Allow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: Value) -> Rules {
        Rules::compile(&json!({ "rules": v }))
    }

    #[test]
    fn the_most_specific_rule_wins_and_deny_breaks_ties() {
        let r = rules(json!([
            {"domain": "*", "action": "deny"},
            {"domain": "*.example.com", "action": "allow"},
            {"domain": "bad.example.com", "action": "deny"},
            {"domain": "*.deep.example.com", "action": "deny"},
            {"domain": "tie.org", "action": "allow"},
            {"domain": "tie.org", "action": "deny"},
        ]));
        assert_eq!(r.decide("a.example.com"), Decision::Allow);
        assert_eq!(r.decide("A.Example.COM."), Decision::Allow);
        assert_eq!(
            r.decide("bad.example.com"),
            Decision::Deny("deny bad.example.com".into())
        );
        assert_eq!(
            r.decide("x.deep.example.com"),
            Decision::Deny("deny *.deep.example.com".into())
        );
        // `*.example.com` does not cover example.com itself: `*` decides.
        assert_eq!(r.decide("example.com"), Decision::Deny("deny *".into()));
        assert_eq!(r.decide("tie.org"), Decision::Deny("deny tie.org".into()));
    }

    #[test]
    fn no_rules_is_unrestricted_and_rules_make_an_allowlist() {
        assert!(rules(json!([])).unrestricted());
        assert_eq!(rules(json!([])).decide("anything.net"), Decision::Allow);
        let r = rules(json!([{"domain": "github.com", "action": "allow"}]));
        assert_eq!(r.decide("github.com"), Decision::Allow);
        assert_eq!(r.decide("gitlab.com"), Decision::Unlisted);
    }

    #[test]
    fn defaults_expand_to_allow_rules_that_a_more_specific_deny_overrides() {
        let r = rules(json!([
            {"include": "defaults"},
            {"domain": "gist.github.com", "action": "deny"},
        ]));
        assert_eq!(r.decide("api.github.com"), Decision::Allow);
        assert_eq!(r.decide("pypi.org"), Decision::Allow);
        assert!(matches!(r.decide("gist.github.com"), Decision::Deny(_)));
        assert_eq!(r.decide("example.com"), Decision::Unlisted);
    }
}
