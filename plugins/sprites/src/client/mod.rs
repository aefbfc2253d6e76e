//! A faithful client of the public Sprites API (sprites.dev): REST, exec WebSockets, checkpoints, fs.
//!
//! Built from `shared/notes/sprites-api.md`, not from the emulator: the two check each other.
//! Entry points: [`SpritesClient::builder`], [`SpritesClient::sprite`] for a [`SpriteHandle`],
//! and [`SpriteHandle::command`] for exec.
//!
//! ```no_run
//! # async fn demo() -> Result<(), clauderon_sprites::client::Error> {
//! use clauderon_sprites::client::{CreateSprite, SpritesClient, Token, WriteOptions};
//! use tokio::io::AsyncWriteExt;
//!
//! let client = SpritesClient::builder()
//!     .token(Token::new("org/id/secret"))
//!     .on_event(|e| eprintln!("{e}")) // e.g. "waiting 3s (rate limited)"
//!     .build()?;
//! client.create(&CreateSprite::new("work-1").label("clauderon")).await?;
//! let sprite = client.sprite("work-1");
//! sprite.write_file("notes.txt", b"hi".to_vec(), &WriteOptions::default()).await?;
//! let out = sprite.command("cat").arg("notes.txt").output().await?;
//! assert_eq!(out.stdout, b"hi");
//!
//! // An interactive terminal that survives a disconnect.
//! let mut shell = sprite.command("bash").tty(80, 24).spawn().await?;
//! let mut stdin = shell.stdin.take().expect("TTY execs have stdin");
//! stdin.write_all(b"echo hello\r").await.map_err(|e| clauderon_sprites::client::Error::Transport(e.to_string()))?;
//! let id = shell.session_info(std::time::Duration::from_secs(10)).await.map(|i| i.session_id);
//! shell.detach();
//! if let Some(id) = id {
//!     let again = sprite.attach(&id).await?;
//!     again.signal("HUP").await?;
//! }
//! let ckpt = sprite.create_checkpoint(Some("before"), |ev| eprintln!("{}", ev.text())).await?;
//! sprite.restore_checkpoint(&ckpt.id, |_| {}).await?;
//! # Ok(()) }
//! ```

mod builder;
mod checkpoints;
mod error;
mod events;
mod exec;
mod exec_http;
mod fs;
mod handle;
mod lenient;
mod ndjson;
mod policy;
mod proxy;
mod retry;
mod sessions;
mod sprite;
mod token;
mod transport;
mod ws;

pub use builder::{DEFAULT_BASE_URL, SpritesClient, SpritesClientBuilder};
pub use checkpoints::{CURRENT, Checkpoint, CreatedCheckpoint};
pub use error::{Error, Result};
pub use events::{ClientEvent, EventCallback};
pub use exec::{Child, ChildControl, ChildStdin, Command, Output, OutputStream, SessionInfo};
pub use exec_http::MAX_HTTP_STDIN;
pub use fs::{FsEntry, MAX_WRITE, WriteOptions, WriteResult, fs_code};
pub use handle::{DEFAULT_WORKING_DIR, SpriteHandle};
pub use ndjson::StreamEvent;
pub use policy::{MemoryPolicy, NetworkPolicy, PolicyRule, ResourcePolicy};
pub use proxy::ProxyStream;
pub use retry::{Idempotency, RetryPolicy};
pub use sessions::{ExecSession, KillOutcome};
pub use sprite::{
    CreateSprite, ListOptions, OrgCounts, Sprite, SpriteConfig, SpritePage, SpriteStatus,
    UpdateSprite, UrlSettings,
};
pub use token::Token;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod loopback_tests;
