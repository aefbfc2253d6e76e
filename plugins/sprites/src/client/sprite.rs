//! The sprite resource: its JSON, and create / get / list / update / delete on the client.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::builder::SpritesClient;
use super::error::{Error, Result};
use super::events::ClientEvent;
use super::lenient;
use super::retry::Idempotency;
use super::transport::decode_json;

/// A sprite's reported state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpriteStatus {
    /// Stopped; memory dropped; wakes in seconds on the next request.
    Cold,
    /// Paused with memory intact; wakes in well under a second.
    Warm,
    /// Running.
    Running,
    /// A state this client does not know (kept verbatim).
    Other(String),
}

impl<'de> Deserialize<'de> for SpriteStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        Ok(match s.as_str() {
            "cold" => SpriteStatus::Cold,
            "warm" => SpriteStatus::Warm,
            "running" => SpriteStatus::Running,
            _ => SpriteStatus::Other(s),
        })
    }
}

impl Default for SpriteStatus {
    fn default() -> Self {
        SpriteStatus::Other(String::new())
    }
}

/// Who may reach a sprite's public URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UrlSettings {
    /// `sprite` (organisation token required) or `public`.
    #[serde(default)]
    pub auth: String,
    /// `admins` or `organization`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_access: Option<String>,
}

/// A sprite as the API reports it (unknown fields ignored; missing ones defaulted).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Sprite {
    /// Opaque id (`sprite-<uuid>`; a number is accepted and kept as text).
    #[serde(default, deserialize_with = "lenient::string_or_number")]
    pub id: String,
    /// The name, unique in the organisation.
    #[serde(default)]
    pub name: String,
    /// The organisation slug (`organization`, or the older `org_slug`).
    #[serde(default, alias = "org_slug")]
    pub organization: Option<String>,
    /// The sprite's public URL.
    #[serde(default)]
    pub url: Option<String>,
    /// URL access settings.
    #[serde(default)]
    pub url_settings: Option<UrlSettings>,
    /// `cold`, `warm` or `running`.
    #[serde(default)]
    pub status: SpriteStatus,
    /// Labels (absent means none).
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub labels: Vec<String>,
    /// Creation time.
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    pub created_at: Option<OffsetDateTime>,
    /// Last update time.
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    pub updated_at: Option<OffsetDateTime>,
    /// Last time seen running.
    #[serde(
        default,
        deserialize_with = "lenient::opt_timestamp",
        alias = "last_started_at"
    )]
    pub last_running_at: Option<OffsetDateTime>,
    /// Last time seen warm.
    #[serde(
        default,
        deserialize_with = "lenient::opt_timestamp",
        alias = "last_active_at"
    )]
    pub last_warming_at: Option<OffsetDateTime>,
    /// The environment version (`v0.0.1-rcNN`), often null.
    #[serde(default)]
    pub version: Option<String>,
    /// The environment version under its other name, often null.
    #[serde(default)]
    pub environment_version: Option<String>,
}

/// What to create: `POST /v1/sprites`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CreateSprite {
    /// The name (required; DNS-label-like).
    pub name: String,
    /// Labels to attach (they also identify our sprite when recovering an ambiguous create).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// URL access settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_settings: Option<UrlSettings>,
    /// Wait for capacity instead of failing when none is free.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub wait_for_capacity: bool,
    /// Resource settings (the documented legacy `config` object: `cpus`, `ram_mb`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<SpriteConfig>,
}

/// The `config` object of a create request: CPU and memory limits.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct SpriteConfig {
    /// CPU cores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ram_mb: Option<u64>,
}

impl CreateSprite {
    /// A request for a sprite called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        CreateSprite {
            name: name.into(),
            ..CreateSprite::default()
        }
    }

    /// Adds a label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.labels.push(label.into());
        self
    }

    /// Sets the URL settings.
    pub fn url_settings(mut self, s: UrlSettings) -> Self {
        self.url_settings = Some(s);
        self
    }

    /// Waits for capacity instead of failing.
    pub fn wait_for_capacity(mut self, wait: bool) -> Self {
        self.wait_for_capacity = wait;
        self
    }
}

/// A partial update: `PUT /v1/sprites/{name}`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct UpdateSprite {
    /// New URL settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_settings: Option<UrlSettings>,
    /// A replacement label list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Removes every label.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clear_labels: bool,
}

/// Filters for listing sprites.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only names starting with this.
    pub prefix: Option<String>,
    /// Page size (default 50, which every documented range accepts).
    pub page_size: Option<u32>,
}

/// Organisation counters some list answers carry (top level or under `org`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct OrgCounts {
    /// The organisation name.
    #[serde(default)]
    pub name: Option<String>,
    /// Sprites running.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub running: Option<u64>,
    /// Sprites warm.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub warm: Option<u64>,
    /// Sprites cold.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub cold: Option<u64>,
    /// How many may run at once.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub running_limit: Option<u64>,
    /// How many may be warm at once.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub warm_limit: Option<u64>,
}

/// One page of `GET /v1/sprites`.
#[derive(Debug, Clone, Default)]
pub struct SpritePage {
    /// The sprites on this page.
    pub sprites: Vec<Sprite>,
    /// Whether the service says more pages follow.
    pub has_more: bool,
    /// The token for the next page (null is common even with `has_more`).
    pub next_token: Option<String>,
    /// Organisation counters, when present.
    pub org: Option<OrgCounts>,
}

/// The most pages [`SpritesClient::list`] follows (a guard against a server that never ends).
const MAX_PAGES: usize = 10_000;

impl SpritePage {
    /// Decodes either documented shape: `{sprites, has_more, next_continuation_token, ...counts}`
    /// (counts at the top or under `org`) or a bare array of sprites.
    pub(crate) fn from_json(v: serde_json::Value) -> Result<Self> {
        let bad = |e: serde_json::Error| Error::Protocol(format!("sprite list: {e}"));
        match v {
            serde_json::Value::Array(_) => Ok(SpritePage {
                sprites: serde_json::from_value(v).map_err(bad)?,
                ..SpritePage::default()
            }),
            serde_json::Value::Object(mut m) => {
                let sprites = match m.remove("sprites") {
                    None | Some(serde_json::Value::Null) => Vec::new(),
                    Some(s) => serde_json::from_value(s).map_err(bad)?,
                };
                let has_more = m.get("has_more").and_then(|v| v.as_bool()).unwrap_or(false);
                let next_token = match m.get("next_continuation_token") {
                    Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
                    Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                let org_value = match m.remove("org") {
                    Some(o @ serde_json::Value::Object(_)) => o,
                    _ => serde_json::Value::Object(m),
                };
                let org: OrgCounts = serde_json::from_value(org_value).unwrap_or_default();
                let org = (org != OrgCounts::default()).then_some(org);
                Ok(SpritePage {
                    sprites,
                    has_more,
                    next_token,
                    org,
                })
            }
            other => Err(Error::Protocol(format!(
                "sprite list: expected an object or array, got {other}"
            ))),
        }
    }
}

impl SpritesClient {
    /// A handle for the sprite `name` (no network call).
    pub fn sprite(&self, name: impl Into<String>) -> super::handle::SpriteHandle {
        super::handle::SpriteHandle::new(self.clone(), name.into())
    }

    /// Creates a sprite. A refused connection or a 429 is retried; an ambiguous failure (reset,
    /// timeout, 5xx) is never blindly repeated: the client looks the name up and adopts the
    /// sprite when its labels match the request, or creates again only when it is absent.
    pub async fn create(&self, req: &CreateSprite) -> Result<Sprite> {
        check_name(&req.name)?;
        let op = "POST /v1/sprites";
        let mut failed = 0u32;
        let mut ambiguous: Option<Error> = None;
        loop {
            let result = self
                .send(op, Idempotency::Write, |http| {
                    http.post(self.endpoint(&["sprites"])).json(req)
                })
                .await;
            let err = match result {
                Ok(resp) => {
                    let mut sprite: Sprite = decode_json(op, resp).await?;
                    if sprite.name.is_empty() {
                        sprite.name = req.name.clone();
                    }
                    return Ok(sprite);
                }
                // A duplicate after our own ambiguous attempt is most likely that attempt.
                Err(e) if e.is_conflict() && ambiguous.is_some() => e,
                Err(e) if e.is_ambiguous() => e,
                Err(e) => return Err(e),
            };
            failed += 1;
            self.emit(ClientEvent::CreateRecovering {
                name: req.name.clone(),
                reason: err.to_string(),
            });
            match self.find(&req.name).await? {
                Some(existing) if same_labels(&existing.labels, &req.labels) => {
                    self.emit(ClientEvent::CreateAdopted {
                        name: req.name.clone(),
                    });
                    return Ok(existing);
                }
                Some(_) => {
                    return Err(Error::Api {
                        status: 409,
                        message: format!(
                            "a sprite named {:?} exists but its labels differ from the request, so it is not ours; choose another name",
                            req.name
                        ),
                        code: None,
                    });
                }
                None => {}
            }
            if err.is_conflict() || !self.inner.retry.allows_another(failed) {
                return Err(err);
            }
            let wait = self.inner.retry.backoff(failed);
            self.announce(op, &err, wait, failed);
            ambiguous = Some(err);
            tokio::time::sleep(wait).await;
        }
    }

    /// Gets a sprite by name (an error, typically 404 or the service's 500, when it is missing).
    pub async fn get(&self, name: &str) -> Result<Sprite> {
        check_name(name)?;
        self.send_json(
            &format!("GET /v1/sprites/{name}"),
            Idempotency::Read,
            |http| http.get(self.endpoint(&["sprites", name])),
        )
        .await
    }

    /// Looks a sprite up by name: `None` when it does not exist. Copes with the service answering
    /// 500 instead of 404 for a missing sprite by confirming through the list.
    pub async fn find(&self, name: &str) -> Result<Option<Sprite>> {
        match self.get(name).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(Error::Api { status: 500, .. }) => {
                let listed = self
                    .list(&ListOptions {
                        prefix: Some(name.to_owned()),
                        page_size: None,
                    })
                    .await?;
                Ok(listed.into_iter().find(|s| s.name == name))
            }
            Err(e) => Err(e),
        }
    }

    /// A cheap authenticated call (one sprite listed) that proves the URL and token work.
    pub async fn check_auth(&self) -> Result<()> {
        let opts = ListOptions {
            prefix: None,
            page_size: Some(1),
        };
        self.list_page(&opts, None).await.map(|_| ())
    }

    /// Fetches one page of sprites.
    pub async fn list_page(&self, opts: &ListOptions, token: Option<&str>) -> Result<SpritePage> {
        let mut url = self.endpoint(&["sprites"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(p) = &opts.prefix {
                q.append_pair("prefix", p);
            }
            q.append_pair("max_results", &opts.page_size.unwrap_or(50).to_string());
            if let Some(t) = token {
                q.append_pair("continuation_token", t);
            }
        }
        let v: serde_json::Value = self
            .send_json("GET /v1/sprites", Idempotency::Read, |http| {
                http.get(url.clone())
            })
            .await?;
        SpritePage::from_json(v)
    }

    /// Lists every sprite, following pages until the token is missing, null or repeats.
    pub async fn list(&self, opts: &ListOptions) -> Result<Vec<Sprite>> {
        let mut all = Vec::new();
        let mut seen = HashSet::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.list_page(opts, token.as_deref()).await?;
            all.extend(page.sprites);
            match page.next_token {
                Some(t) if page.has_more && seen.insert(t.clone()) => token = Some(t),
                _ => return Ok(all),
            }
        }
        Ok(all)
    }

    /// Updates URL settings and/or labels; returns the updated sprite.
    pub async fn update(&self, name: &str, update: &UpdateSprite) -> Result<Sprite> {
        check_name(name)?;
        self.send_json(
            &format!("PUT /v1/sprites/{name}"),
            Idempotency::Write,
            |http| http.put(self.endpoint(&["sprites", name])).json(update),
        )
        .await
    }

    /// Deletes a sprite and everything in it.
    pub async fn delete(&self, name: &str) -> Result<()> {
        check_name(name)?;
        self.send(
            &format!("DELETE /v1/sprites/{name}"),
            Idempotency::Write,
            |http| http.delete(self.endpoint(&["sprites", name])),
        )
        .await?;
        Ok(())
    }
}

fn same_labels(a: &[String], b: &[String]) -> bool {
    let a: HashSet<&String> = a.iter().collect();
    let b: HashSet<&String> = b.iter().collect();
    a == b
}

/// Refuses an empty name before it turns into a request for the collection itself.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::InvalidInput(
            "a sprite name is required (lowercase letters, digits and hyphens)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_recorded_sprite_and_a_lenient_one() {
        let s: Sprite = serde_json::from_str(r#"{"id":"sprite-1f0","name":"a","organization":"acme","url":"https://a-x1y2.sprites.app","url_settings":{"auth":"sprite"},"status":"cold","created_at":"2026-01-31T10:00:00.123456Z","updated_at":"2026-01-31T10:00:00.123456Z","version":null,"environment_version":null,"new_field":{"x":1}}"#).unwrap();
        assert_eq!(s.status, SpriteStatus::Cold);
        assert!(s.labels.is_empty());
        assert_eq!(s.url_settings.unwrap().auth, "sprite");
        let s: Sprite = serde_json::from_str(r#"{"id":42,"name":"b","org_slug":"o","status":"hibernating","labels":["x"],"url_settings":null}"#).unwrap();
        assert_eq!(s.id, "42");
        assert_eq!(s.organization.as_deref(), Some("o"));
        assert_eq!(s.status, SpriteStatus::Other("hibernating".into()));
    }

    #[test]
    fn decodes_both_list_shapes() {
        let p = SpritePage::from_json(serde_json::json!({
            "sprites":[{"id":"1","name":"a"}], "has_more":true, "next_continuation_token":"t",
            "running":1,"warm":0,"cold":3,"name":"acme","running_limit":3,"warm_limit":10
        }))
        .unwrap();
        assert_eq!(p.sprites.len(), 1);
        assert_eq!(p.next_token.as_deref(), Some("t"));
        assert_eq!(p.org.unwrap().cold, Some(3));
        let p = SpritePage::from_json(serde_json::json!({
            "sprites":[], "has_more":true, "next_continuation_token":null, "org":{"running":2}
        }))
        .unwrap();
        assert!(p.next_token.is_none());
        assert_eq!(p.org.unwrap().running, Some(2));
        let p = SpritePage::from_json(serde_json::json!([{"id":7,"name":"z"}])).unwrap();
        assert_eq!(p.sprites[0].id, "7");
        assert!(SpritePage::from_json(serde_json::json!("x")).is_err());
    }

    #[test]
    fn create_body_omits_defaults() {
        let b = serde_json::to_value(CreateSprite::new("a")).unwrap();
        assert_eq!(b, serde_json::json!({"name":"a"}));
        let b = serde_json::to_value(
            CreateSprite::new("a")
                .label("clauderon")
                .wait_for_capacity(true)
                .url_settings(UrlSettings {
                    auth: "public".into(),
                    private_access: None,
                }),
        )
        .unwrap();
        assert_eq!(
            b,
            serde_json::json!({"name":"a","labels":["clauderon"],"wait_for_capacity":true,"url_settings":{"auth":"public"}})
        );
    }
}
