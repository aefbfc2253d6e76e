//! Per-session proxy credentials and placeholders: a session authenticates every request with
//! `Proxy-Authorization: Basic <session-id>:<password>`; revoking it refuses the next request,
//! even on a tunnel that is already open.

use super::ca::random_hex;
use super::rules::Policy;
use crate::secrets::Secret;
use crate::session::SessionId;
use base64::Engine as _;
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

/// Every placeholder starts with this, so a request can be scanned cheaply.
pub const PLACEHOLDER_PREFIX: &str = "clauderon-placeholder-";

/// What a sandbox presents to the proxy: the session id as user name and a random password.
#[derive(Debug, Clone)]
pub struct ProxyCredential {
    /// The session id (the user name).
    pub username: String,
    /// The password (redacted in Debug).
    pub password: Secret,
}

impl ProxyCredential {
    /// `http://<user>:<password>@<addr>`, for `HTTPS_PROXY` inside the sandbox.
    pub fn proxy_url(&self, addr: &str) -> String {
        format!("http://{}:{}@{addr}", self.username, self.password.expose())
    }

    /// The `Proxy-Authorization` header value.
    pub fn header_value(&self) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                self.username,
                self.password.expose()
            ))
        )
    }
}

struct Entry {
    password: Secret,
    /// Secret name → this session's placeholder.
    placeholders: BTreeMap<String, String>,
}

/// The live sessions.
#[derive(Default)]
pub struct Sessions {
    map: RwLock<HashMap<SessionId, Entry>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("count", &self.map.read().map(|m| m.len()).unwrap_or(0))
            .finish()
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// Registers `id` (replacing an earlier registration) with a fresh password and a
    /// placeholder for every secret the policy's rules use.
    pub fn register(&self, id: SessionId, policy: &Policy) -> ProxyCredential {
        let password = Secret::new(random_hex(24));
        self.restore(id, password, &BTreeMap::new(), policy)
    }

    /// Registers `id` with a credential and placeholders made earlier (kept across a daemon
    /// restart, so a running agent's environment stays valid). Placeholders for secrets the
    /// policy no longer uses are dropped; secrets it uses now but `placeholders` lacks get
    /// fresh ones. A placeholder without [`PLACEHOLDER_PREFIX`] is replaced too.
    pub fn restore(
        &self,
        id: SessionId,
        password: Secret,
        placeholders: &BTreeMap<String, String>,
        policy: &Policy,
    ) -> ProxyCredential {
        let placeholders = policy
            .secret_names()
            .into_iter()
            .map(|s| {
                let p = placeholders
                    .get(&s)
                    .filter(|p| p.starts_with(PLACEHOLDER_PREFIX))
                    .cloned()
                    .unwrap_or_else(|| format!("{PLACEHOLDER_PREFIX}{s}-{}", random_hex(12)));
                (s, p)
            })
            .collect();
        if let Ok(mut m) = self.map.write() {
            m.insert(
                id,
                Entry {
                    password: password.clone(),
                    placeholders,
                },
            );
        }
        ProxyCredential {
            username: id.to_string(),
            password,
        }
    }

    /// Forgets `id`; its credential stops working at once. Returns whether it was registered.
    pub fn revoke(&self, id: SessionId) -> bool {
        self.map
            .write()
            .map(|mut m| m.remove(&id).is_some())
            .unwrap_or(false)
    }

    /// Whether `id` is registered.
    pub fn is_live(&self, id: SessionId) -> bool {
        self.map
            .read()
            .map(|m| m.contains_key(&id))
            .unwrap_or(false)
    }

    /// The session a `Proxy-Authorization` value authenticates, if any.
    pub fn authenticate(&self, header: Option<&http::HeaderValue>) -> Option<SessionId> {
        let v = header?.to_str().ok()?;
        let (scheme, b64) = v.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let raw = std::str::from_utf8(&raw).ok()?;
        let (user, pass) = raw.split_once(':')?;
        let id: SessionId = user.parse().ok()?;
        let m = self.map.read().ok()?;
        let e = m.get(&id)?;
        ct_eq(e.password.expose().as_bytes(), pass.as_bytes()).then_some(id)
    }

    /// `id`'s proxy password.
    pub fn password(&self, id: SessionId) -> Option<Secret> {
        self.map.read().ok()?.get(&id).map(|e| e.password.clone())
    }

    /// `id`'s placeholders (secret name → placeholder).
    pub fn placeholders(&self, id: SessionId) -> Option<BTreeMap<String, String>> {
        self.map
            .read()
            .ok()?
            .get(&id)
            .map(|e| e.placeholders.clone())
    }

    /// Which session and secret a placeholder belongs to.
    pub fn owner_of(&self, placeholder: &str) -> Option<(SessionId, String)> {
        let m = self.map.read().ok()?;
        m.iter().find_map(|(id, e)| {
            e.placeholders
                .iter()
                .find(|(_, p)| p.as_str() == placeholder)
                .map(|(s, _)| (*id, s.clone()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn authenticate_accepts_only_the_live_password() {
        let s = Sessions::default();
        let policy = Policy::default();
        let id = SessionId::new();
        let cred = s.register(id, &policy);
        let hv = |v: &str| HeaderValue::from_str(v).unwrap();
        assert_eq!(s.authenticate(Some(&hv(&cred.header_value()))), Some(id));
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        for bad in [
            String::new(),
            "Basic".into(),
            "Bearer x".into(),
            "Basic !!!notbase64".into(),
            format!("Basic {}", b64("no-colon")),
            format!("Basic {}", b64("not-a-uuid:pw")),
            format!("Basic {}", b64(&format!("{id}:wrong"))),
            format!("Basic {}", b64(&format!("{id}:"))),
            format!(
                "Basic {}",
                b64(&format!("{}:{}", SessionId::new(), cred.password.expose()))
            ),
        ] {
            assert_eq!(s.authenticate(Some(&hv(&bad))), None, "{bad}");
        }
        assert_eq!(s.authenticate(None), None);
        assert!(!format!("{cred:?}").contains(cred.password.expose()));

        // Placeholders: one per rule secret, unique, owned by this session.
        let ph = s.placeholders(id).unwrap();
        assert_eq!(ph.len(), policy.secret_names().len());
        let p = &ph["github_token"];
        assert!(p.starts_with(PLACEHOLDER_PREFIX));
        assert_eq!(s.owner_of(p), Some((id, "github_token".to_string())));

        // Re-registering replaces both; revoking forgets the session.
        let again = s.register(id, &policy);
        assert_eq!(s.authenticate(Some(&hv(&cred.header_value()))), None);
        assert_ne!(&s.placeholders(id).unwrap()["github_token"], p);
        assert!(s.revoke(id));
        assert_eq!(s.authenticate(Some(&hv(&again.header_value()))), None);
        assert!(!s.revoke(id));
        assert_eq!(s.owner_of(p), None);
    }

    #[test]
    fn restore_brings_back_the_same_credential_and_placeholders() {
        let policy = Policy::default();
        let first = Sessions::default();
        let id = SessionId::new();
        let cred = first.register(id, &policy);
        let mut ph = first.placeholders(id).unwrap();
        // A later process (a restarted daemon) restores what the first one handed out.
        let second = Sessions::default();
        ph.insert("no_longer_used".into(), format!("{PLACEHOLDER_PREFIX}x"));
        ph.insert("github_token".into(), "not-a-placeholder".into());
        let back = second.restore(id, cred.password.clone(), &ph, &policy);
        let hv = HeaderValue::from_str(&cred.header_value()).unwrap();
        assert_eq!(second.authenticate(Some(&hv)), Some(id));
        assert_eq!(back.header_value(), cred.header_value());
        let got = second.placeholders(id).unwrap();
        assert_eq!(got["anthropic_api_key"], ph["anthropic_api_key"]);
        assert!(!got.contains_key("no_longer_used"));
        assert!(got["github_token"].starts_with(PLACEHOLDER_PREFIX));
        assert_eq!(got.len(), policy.secret_names().len());
    }
}
