//! `SpriteHandle`: one sprite's operations (exec, sessions, checkpoints, fs, policy, proxy).
//! Making a handle costs nothing; each operation is one call (which wakes the sprite).

use super::builder::SpritesClient;
use super::error::Result;
use super::sprite::{Sprite, UpdateSprite};

/// The operations of one sprite, by name. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SpriteHandle {
    pub(crate) client: SpritesClient,
    pub(crate) name: String,
    pub(crate) working_dir: String,
}

/// Where relative paths resolve (the sprite user's home, also exec's default directory).
pub const DEFAULT_WORKING_DIR: &str = "/home/sprite";

impl SpriteHandle {
    pub(crate) fn new(client: SpritesClient, name: String) -> Self {
        SpriteHandle {
            client,
            name,
            working_dir: DEFAULT_WORKING_DIR.to_owned(),
        }
    }

    /// The sprite's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client this handle uses.
    pub fn client(&self) -> &SpritesClient {
        &self.client
    }

    /// Sets the directory relative filesystem paths resolve against (default `/home/sprite`).
    pub fn with_working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = dir.into();
        self
    }

    /// Fetches this sprite's resource.
    pub async fn info(&self) -> Result<Sprite> {
        self.client.get(&self.name).await
    }

    /// Updates this sprite's URL settings or labels.
    pub async fn update(&self, update: &UpdateSprite) -> Result<Sprite> {
        self.client.update(&self.name, update).await
    }

    /// Moves this sprite to the latest environment version (`POST .../upgrade`).
    pub async fn upgrade(&self) -> Result<()> {
        let op = self.op("POST", "upgrade");
        self.client
            .send(&op, super::retry::Idempotency::Write, |http| {
                http.post(self.url(&["upgrade"]))
            })
            .await?;
        Ok(())
    }

    /// The environment version (`Sprite-Version` header) probed with `HEAD .../exec`, as the Go
    /// SDK does; `None` when the server sends no header. Wakes the sprite.
    pub async fn environment_version(&self) -> Result<Option<String>> {
        let op = self.op("HEAD", "exec");
        let resp = self
            .client
            .send(&op, super::retry::Idempotency::Read, |http| {
                http.head(self.url(&["exec"]))
            })
            .await?;
        Ok(resp
            .headers()
            .get("sprite-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned))
    }

    /// Deletes this sprite.
    pub async fn delete(&self) -> Result<()> {
        self.client.delete(&self.name).await
    }

    /// `/v1/sprites/{name}/<rest...>` as a REST URL.
    pub(crate) fn url(&self, rest: &[&str]) -> url::Url {
        let mut segs = vec!["sprites", self.name.as_str()];
        segs.extend_from_slice(rest);
        self.client.endpoint(&segs)
    }

    /// `/v1/sprites/{name}/<rest...>` as a WebSocket URL.
    pub(crate) fn ws_url(&self, rest: &[&str]) -> url::Url {
        let mut segs = vec!["sprites", self.name.as_str()];
        segs.extend_from_slice(rest);
        self.client.ws_endpoint(&segs)
    }

    /// A label for errors and events: `METHOD /v1/sprites/{name}/<rest>`.
    pub(crate) fn op(&self, method: &str, rest: &str) -> String {
        format!("{method} /v1/sprites/{}/{rest}", self.name)
    }
}
