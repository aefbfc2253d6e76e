//! Which hosts get which credential: rules from proxy.toml plus built-ins, the hosts the
//! sandbox may reach at all, and upstream overrides (tests point a rule host at a local server).
//!
//! ```toml
//! allow = ["registry.npmjs.org", "*.pypi.org"]   # reachable, never injected
//!
//! [[rules]]
//! host = "api.example.com"          # exact, or "*.example.com" (never the apex)
//! secret = "example_token"          # a name the secret resolver knows
//! format = "bearer"                 # raw | bearer | basic (x-access-token:<v>)
//! header = "authorization"          # default: authorization (required for raw)
//! env = ["EXAMPLE_TOKEN"]           # sandbox variables that get this session's placeholder
//!
//! [upstreams."api.anthropic.com"]   # connect here instead, still verifying the name
//! address = "127.0.0.1:4433"
//! ca_file = "/path/to/extra-ca.pem" # trusted for this upstream only, with the system roots
//! ```

use super::ProxyError;
use super::ca::pem_certs;
use crate::home::Home;
use http::HeaderName;
use rustls::pki_types::CertificateDer;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A host pattern: an exact name, or `*.suffix`, which matches any name under the suffix
/// but never the suffix itself (`*.github.com` does not match `github.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host (lowercase).
    Exact(String),
    /// Any host ending in this suffix, which starts with `.` (lowercase).
    Suffix(String),
}

impl HostPattern {
    /// Parses `host` or `*.suffix`; `None` when it is neither.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        let (suffix, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, s),
        };
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !ok {
            return None;
        }
        Some(if suffix {
            Self::Suffix(format!(".{name}"))
        } else {
            Self::Exact(name)
        })
    }

    /// Whether `host` (any case) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => host.eq_ignore_ascii_case(h),
            Self::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(h) => f.write_str(h),
            Self::Suffix(s) => write!(f, "*{s}"),
        }
    }
}

/// How a secret becomes a header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The value as is.
    Raw,
    /// `Bearer <value>`.
    Bearer,
    /// `Basic base64("x-access-token:<value>")`, git over HTTPS.
    Basic,
    /// Anthropic: `x-api-key: <value>`, or `Authorization: Bearer <value>` when the value is
    /// an OAuth token (`sk-ant-oat…`). Both headers are stripped first.
    Anthropic,
}

/// One credential rule: requests to `host` get `secret` in `header`, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Which hosts.
    pub host: HostPattern,
    /// The header set (after every same-name header the sandbox sent is removed).
    pub header: HeaderName,
    /// The secret's name, resolved on the host.
    pub secret: String,
    /// How the value is written.
    pub format: Format,
    /// Sandbox variables that carry this session's placeholder for the secret.
    pub env: Vec<String>,
    /// Written before the placeholder in those variables, so a client that looks at the
    /// shape of the value takes the right path (Claude Code's OAuth tokens start with
    /// `sk-ant-oat01-`). The proxy still finds the placeholder inside.
    pub env_prefix: String,
    /// Whether this is a built-in rule.
    pub builtin: bool,
}

impl Rule {
    /// The headers removed before the one header is set.
    pub fn strip_headers(&self) -> Vec<HeaderName> {
        match self.format {
            Format::Anthropic => vec![
                HeaderName::from_static("x-api-key"),
                http::header::AUTHORIZATION,
            ],
            _ => vec![self.header.clone()],
        }
    }

    /// The header name and value to set for secret `value`.
    pub fn header_for(&self, value: &str) -> (HeaderName, String) {
        use base64::Engine as _;
        match self.format {
            Format::Raw => (self.header.clone(), value.to_string()),
            Format::Bearer => (self.header.clone(), format!("Bearer {value}")),
            Format::Basic => (
                self.header.clone(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("x-access-token:{value}"))
                ),
            ),
            Format::Anthropic if value.starts_with("sk-ant-oat") => {
                (http::header::AUTHORIZATION, format!("Bearer {value}"))
            }
            Format::Anthropic => (HeaderName::from_static("x-api-key"), value.to_string()),
        }
    }
}

/// Where to connect for a rule host instead of the host itself (tests), and an extra CA
/// trusted for it alongside the system roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamOverride {
    /// `host:port` to connect to; the certificate must still name the original host.
    pub address: String,
    /// Extra trusted certificates for this upstream only.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

/// The secret of a Claude Pro/Max subscription token (`CLAUDE_CODE_OAUTH_TOKEN`).
pub const CLAUDE_OAUTH_SECRET: &str = "claude_code_oauth_token";

/// Hosts reachable through the proxy without a credential by default. This is the one list
/// of what the presets' agents need besides their rule hosts (api.anthropic.com,
/// api.openai.com, github.com and api.github.com are reachable through their rules), as seen
/// in this proxy's audit log with the versions pinned in README, plus package registries.
/// Anything else is refused, and the refusal in `clauderon proxy audit` names the `allow`
/// line that would admit it.
pub const DEFAULT_ALLOW: &[&str] = &[
    // Claude Code: sign-in and the start-up connectivity check (`GET /v1/oauth/hello`).
    "platform.claude.com",
    "claude.ai",
    // Claude Code: its model catalog and official plugin marketplace.
    "downloads.claude.ai",
    // Claude Code: feature flags of earlier 2.x versions.
    "statsig.anthropic.com",
    // Claude Code's release notes, and git-hosted sources.
    "raw.githubusercontent.com",
    "codeload.github.com",
    "objects.githubusercontent.com",
    // Package registries.
    "registry.npmjs.org",
    "pypi.org",
    "files.pythonhosted.org",
    "crates.io",
    "index.crates.io",
    "static.crates.io",
    "proxy.golang.org",
];

/// The proxy's policy: rules (user rules first, then built-ins), allowed hosts, overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Credential rules, first match wins.
    pub rules: Vec<Rule>,
    /// Hosts reachable without a credential.
    pub allow: Vec<HostPattern>,
    /// Per-host upstream overrides (exact host).
    pub upstreams: BTreeMap<String, UpstreamOverride>,
}

/// The built-in rules.
pub fn builtin_rules() -> Vec<Rule> {
    let auth = http::header::AUTHORIZATION;
    let gh_env = vec!["GH_TOKEN".to_string(), "GITHUB_TOKEN".to_string()];
    vec![
        Rule {
            host: HostPattern::Exact("api.anthropic.com".into()),
            header: HeaderName::from_static("x-api-key"),
            secret: "anthropic_api_key".into(),
            format: Format::Anthropic,
            env: vec!["ANTHROPIC_API_KEY".into()],
            env_prefix: String::new(),
            builtin: true,
        },
        // A Claude Pro/Max subscription token (`claude setup-token`). Second: with both on the
        // host, sessions use the API key, as Claude Code itself does.
        Rule {
            host: HostPattern::Exact("api.anthropic.com".into()),
            header: auth.clone(),
            secret: CLAUDE_OAUTH_SECRET.into(),
            format: Format::Anthropic,
            env: vec!["CLAUDE_CODE_OAUTH_TOKEN".into()],
            env_prefix: "sk-ant-oat01-".into(),
            builtin: true,
        },
        Rule {
            host: HostPattern::Exact("api.openai.com".into()),
            header: auth.clone(),
            secret: "openai_api_key".into(),
            format: Format::Bearer,
            env: vec!["OPENAI_API_KEY".into()],
            env_prefix: String::new(),
            builtin: true,
        },
        Rule {
            host: HostPattern::Exact("github.com".into()),
            header: auth.clone(),
            secret: "github_token".into(),
            format: Format::Basic,
            env: gh_env.clone(),
            env_prefix: String::new(),
            builtin: true,
        },
        Rule {
            host: HostPattern::Exact("api.github.com".into()),
            header: auth,
            secret: "github_token".into(),
            format: Format::Bearer,
            env: gh_env,
            env_prefix: String::new(),
            builtin: true,
        },
    ]
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            rules: builtin_rules(),
            allow: DEFAULT_ALLOW
                .iter()
                .filter_map(|h| HostPattern::parse(h))
                .collect(),
            upstreams: BTreeMap::new(),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    allow: Vec<toml::Spanned<String>>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    upstreams: BTreeMap<String, RawUpstream>,
    /// Read by `config::ProxyConfig`.
    #[serde(default)]
    #[allow(dead_code)]
    onepassword: Option<toml::Value>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    host: toml::Spanned<String>,
    secret: toml::Spanned<String>,
    format: Option<toml::Spanned<String>>,
    header: Option<toml::Spanned<String>>,
    #[serde(default)]
    env: Vec<toml::Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    address: toml::Spanned<String>,
    ca_file: Option<toml::Spanned<PathBuf>>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Policy {
    /// The policy from `proxy.toml` in `home` (built-ins and default allow list when absent).
    pub fn load(home: &Home) -> Result<Self, ProxyError> {
        let file = home.proxy_file();
        match std::fs::read_to_string(&file) {
            Ok(text) => Self::parse(&file, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ProxyError::io(&file, e)),
        }
    }

    /// Parses proxy.toml text as if read from `file`. Errors give `file:line:column`, the
    /// key, and what is expected; they never quote a value.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ProxyError> {
        let at = |offset: usize, key: &str, message: &str| {
            let (line, column) = line_col(text, offset);
            ProxyError::Config {
                file: file.to_path_buf(),
                line,
                column,
                key: key.to_string(),
                message: message.to_string(),
            }
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, "", e.message())
        })?;
        let mut policy = Self::default();
        for a in raw.allow {
            let p = HostPattern::parse(a.get_ref())
                .ok_or_else(|| at(a.span().start, "allow", "expected a host name or *.suffix"))?;
            policy.allow.push(p);
        }
        let mut user = Vec::new();
        for (i, r) in raw.rules.into_iter().enumerate() {
            let key = |k: &str| format!("rules[{i}].{k}");
            let host = HostPattern::parse(r.host.get_ref()).ok_or_else(|| {
                at(
                    r.host.span().start,
                    &key("host"),
                    "expected a host name (api.example.com) or *.suffix (*.example.com)",
                )
            })?;
            if !crate::secrets::valid_secret_name(r.secret.get_ref()) {
                return Err(at(
                    r.secret.span().start,
                    &key("secret"),
                    "expected a secret name: lowercase letters, digits and `_` (e.g. github_token)",
                ));
            }
            let format = match r.format.as_ref().map(|f| f.get_ref().as_str()) {
                None | Some("bearer") => Format::Bearer,
                Some("raw") => Format::Raw,
                Some("basic") => Format::Basic,
                Some("anthropic") => Format::Anthropic,
                Some(_) => {
                    let span = r.format.as_ref().map_or(0, |f| f.span().start);
                    return Err(at(
                        span,
                        &key("format"),
                        "expected one of raw, bearer, basic, anthropic",
                    ));
                }
            };
            let header = match &r.header {
                Some(h) => HeaderName::from_bytes(h.get_ref().trim().as_bytes()).map_err(|_| {
                    at(
                        h.span().start,
                        &key("header"),
                        "expected an HTTP header name",
                    )
                })?,
                None if format == Format::Raw => {
                    return Err(at(
                        r.host.span().start,
                        &key("header"),
                        "a raw rule needs `header = \"...\"` (the header that carries the value)",
                    ));
                }
                None if format == Format::Anthropic => HeaderName::from_static("x-api-key"),
                None => http::header::AUTHORIZATION,
            };
            if [
                "proxy-authorization",
                "host",
                "content-length",
                "transfer-encoding",
            ]
            .contains(&header.as_str())
            {
                let span = r.header.as_ref().map_or(0, |h| h.span().start);
                return Err(at(
                    span,
                    &key("header"),
                    "this header cannot carry a credential",
                ));
            }
            let mut env = Vec::new();
            for e in r.env {
                let ok = !e.get_ref().is_empty()
                    && e.get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !e.get_ref().starts_with(|c: char| c.is_ascii_digit());
                if !ok {
                    return Err(at(
                        e.span().start,
                        &key("env"),
                        "expected environment variable names (letters, digits, `_`)",
                    ));
                }
                env.push(e.into_inner());
            }
            user.push(Rule {
                host,
                header,
                secret: r.secret.into_inner(),
                format,
                env,
                env_prefix: String::new(),
                builtin: false,
            });
        }
        // A user rule for a built-in host replaces the built-in.
        policy
            .rules
            .retain(|b| !user.iter().any(|u| u.host == b.host));
        user.append(&mut policy.rules);
        policy.rules = user;
        for (host, u) in raw.upstreams {
            let key = format!("upstreams.{host}");
            if HostPattern::parse(&host).is_none_or(|p| matches!(p, HostPattern::Suffix(_))) {
                return Err(at(
                    u.address.span().start,
                    &key,
                    "an upstream override is for one exact host name",
                ));
            }
            let addr = u.address.get_ref();
            if addr
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(at(
                    u.address.span().start,
                    &format!("{key}.address"),
                    "expected host:port",
                ));
            }
            let mut extra_roots = Vec::new();
            if let Some(ca) = &u.ca_file {
                let path = ca.get_ref();
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    at(
                        ca.span().start,
                        &format!("{key}.ca_file"),
                        &format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                extra_roots = pem_certs(&pem);
                if extra_roots.is_empty() {
                    return Err(at(
                        ca.span().start,
                        &format!("{key}.ca_file"),
                        "the file holds no PEM certificate",
                    ));
                }
            }
            policy.upstreams.insert(
                host.to_ascii_lowercase(),
                UpstreamOverride {
                    address: addr.clone(),
                    extra_roots,
                },
            );
        }
        Ok(policy)
    }

    /// The rule for `host`, if any (first match).
    pub fn rule_for(&self, host: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.host.matches(host))
    }

    /// Every rule for `host`, in order: alternatives for the same host (an API key and a
    /// subscription token), of which the first whose secret has a value is used.
    pub fn rules_for<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| r.host.matches(host))
    }

    /// Whether `secret` belongs to a rule for `host`.
    pub fn secret_serves(&self, secret: &str, host: &str) -> bool {
        self.rules_for(host).any(|r| r.secret == secret)
    }

    /// The rules sessions use, given which secrets have a value: of the rules for one host
    /// pattern, the first whose secret is in `available`, else the first. Rules for other
    /// patterns are independent.
    pub fn chosen_rules(&self, available: &std::collections::BTreeSet<String>) -> Vec<&Rule> {
        let mut out: Vec<&Rule> = Vec::new();
        for r in &self.rules {
            if out.iter().any(|c| c.host == r.host) {
                continue;
            }
            let group = self.rules.iter().filter(|o| o.host == r.host);
            let pick = group
                .clone()
                .find(|o| available.contains(&o.secret))
                .unwrap_or(r);
            out.push(pick);
        }
        out
    }

    /// Whether the sandbox may reach `host` at all (a rule host or an allowed one).
    pub fn allows(&self, host: &str) -> bool {
        self.rule_for(host).is_some() || self.allow.iter().any(|a| a.matches(host))
    }

    /// The secret names the rules use, once each.
    pub fn secret_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rules.iter().map(|r| r.secret.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_never_matches_the_apex() {
        let p = HostPattern::parse("*.github.com").unwrap();
        assert!(p.matches("api.github.com"));
        assert!(p.matches("A.B.GitHub.com"));
        assert!(!p.matches("github.com"));
        assert!(!p.matches("evilgithub.com"));
        assert!(!p.matches("github.com.evil.net"));
        let e = HostPattern::parse("GitHub.com").unwrap();
        assert!(e.matches("github.com") && !e.matches("api.github.com"));
        for bad in ["", "*.", "a..b", "http://x", "a/b", "*.*.x", "x y"] {
            assert!(HostPattern::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_default_policy_lets_claude_code_start_and_work() {
        let p = Policy::default();
        // Its connectivity check and sign-in, its model catalog and plugin marketplace, its
        // release notes; the API through its rule.
        for host in [
            "platform.claude.com",
            "claude.ai",
            "downloads.claude.ai",
            "raw.githubusercontent.com",
            "api.anthropic.com",
        ] {
            assert!(p.allows(host), "{host}");
        }
        assert!(!p.allows("example.com"));
    }

    #[test]
    fn an_api_key_comes_before_a_subscription_token_and_either_serves_the_host() {
        let p = Policy::default();
        let secrets: Vec<&str> = p
            .rules_for("api.anthropic.com")
            .map(|r| r.secret.as_str())
            .collect();
        assert_eq!(secrets, ["anthropic_api_key", CLAUDE_OAUTH_SECRET]);
        assert!(p.secret_serves(CLAUDE_OAUTH_SECRET, "api.anthropic.com"));
        assert!(!p.secret_serves(CLAUDE_OAUTH_SECRET, "api.openai.com"));
        let pick = |have: &[&str]| -> Vec<String> {
            let available = have.iter().map(|s| s.to_string()).collect();
            p.chosen_rules(&available)
                .iter()
                .map(|r| r.secret.clone())
                .collect()
        };
        // One rule per host pattern: the first with a value, else the first.
        assert_eq!(
            pick(&[]),
            [
                "anthropic_api_key",
                "openai_api_key",
                "github_token",
                "github_token"
            ]
        );
        assert_eq!(pick(&[CLAUDE_OAUTH_SECRET])[0], CLAUDE_OAUTH_SECRET);
        assert_eq!(
            pick(&[CLAUDE_OAUTH_SECRET, "anthropic_api_key"])[0],
            "anthropic_api_key"
        );
        let oauth = p.rules_for("api.anthropic.com").nth(1).unwrap();
        assert_eq!(oauth.env, ["CLAUDE_CODE_OAUTH_TOKEN"]);
        assert_eq!(oauth.env_prefix, "sk-ant-oat01-");
    }

    #[test]
    fn builtins_and_formats() {
        let p = Policy::default();
        let a = p.rule_for("api.anthropic.com").unwrap();
        assert_eq!(
            a.header_for("sk-ant-api03-x"),
            (
                HeaderName::from_static("x-api-key"),
                "sk-ant-api03-x".into()
            )
        );
        assert_eq!(
            a.header_for("sk-ant-oat01-x"),
            (http::header::AUTHORIZATION, "Bearer sk-ant-oat01-x".into())
        );
        let g = p.rule_for("github.com").unwrap();
        // base64("x-access-token:tok")
        assert_eq!(g.header_for("tok").1, "Basic eC1hY2Nlc3MtdG9rZW46dG9r");
        assert_eq!(
            p.rule_for("api.github.com").unwrap().header_for("t").1,
            "Bearer t"
        );
        assert_eq!(p.rule_for("api.openai.com").unwrap().format, Format::Bearer);
        assert!(p.rule_for("gist.github.com").is_none());
        assert!(p.allows("registry.npmjs.org") && !p.allows("evil.example"));
    }

    #[test]
    fn user_rules_come_first_and_replace_builtins() {
        let text = "allow = [\"*.example.org\"]\n\
            [[rules]]\nhost = \"*.corp.example\"\nsecret = \"corp_token\"\nformat = \"raw\"\nheader = \"X-Token\"\nenv = [\"CORP_TOKEN\"]\n\
            [[rules]]\nhost = \"api.openai.com\"\nsecret = \"other_key\"\n\
            [onepassword.credentials]\nother_key = \"op://a/b/c\"\n\
            [upstreams.\"api.anthropic.com\"]\naddress = \"127.0.0.1:9\"\n";
        let p = Policy::parse(Path::new("/h/proxy.toml"), text).unwrap();
        let r = p.rule_for("x.corp.example").unwrap();
        assert_eq!((r.header.as_str(), r.format), ("x-token", Format::Raw));
        assert!(p.rule_for("corp.example").is_none());
        assert_eq!(p.rule_for("api.openai.com").unwrap().secret, "other_key");
        assert_eq!(
            p.rules
                .iter()
                .filter(|r| r.host.matches("api.openai.com"))
                .count(),
            1
        );
        assert!(p.allows("a.example.org") && !p.allows("example.org"));
        assert_eq!(p.upstreams["api.anthropic.com"].address, "127.0.0.1:9");
    }

    #[test]
    fn errors_are_located() {
        let err = |t: &str| {
            Policy::parse(Path::new("/h/proxy.toml"), t)
                .unwrap_err()
                .to_string()
        };
        let e = err("[[rules]]\nhost = \"a b\"\nsecret = \"x\"\n");
        assert!(e.starts_with("/h/proxy.toml:2:8: `rules[0].host`"), "{e}");
        let e = err("[[rules]]\nhost = \"a.b\"\nsecret = \"ghp_Secret-Value\"\n");
        assert!(e.contains("rules[0].secret") && !e.contains("ghp_"), "{e}");
        let e = err("[[rules]]\nhost = \"a.b\"\nsecret = \"x\"\nformat = \"raw\"\n");
        assert!(e.contains("needs `header"), "{e}");
        let e = err("[[rules]]\nhost = \"a.b\"\nsecret = \"x\"\nformat = \"digest\"\n");
        assert!(e.contains("raw, bearer, basic"), "{e}");
        let e =
            err("[[rules]]\nhost = \"a.b\"\nsecret = \"x\"\nheader = \"proxy-authorization\"\n");
        assert!(e.contains("cannot carry"), "{e}");
        let e = err("[[rules]]\nhost = \"a.b\"\nsecrt = \"x\"\n");
        assert!(e.starts_with("/h/proxy.toml:"), "{e}");
        let e = err("[upstreams.\"a.b\"]\naddress = \"nohost\"\n");
        assert!(e.contains("host:port"), "{e}");
    }
}
