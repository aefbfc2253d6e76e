//! A faithful client of the public Sprites API (sprites.dev): REST, exec WebSockets, checkpoints, fs.
//!
//! Built from `shared/notes/sprites-api.md`, not from the emulator: the two check each other.
//! Entry points: [`SpritesClient::builder`], [`SpritesClient::sprite`] for a [`SpriteHandle`],
//! and [`SpriteHandle::command`] for exec.

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
pub use policy::{NetworkPolicy, PolicyRule};
pub use proxy::ProxyStream;
pub use retry::{Idempotency, RetryPolicy};
pub use sessions::{ExecSession, KillOutcome};
pub use sprite::{
    CreateSprite, ListOptions, OrgCounts, Sprite, SpritePage, SpriteStatus, UpdateSprite,
    UrlSettings,
};
pub use token::Token;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod loopback_tests;
