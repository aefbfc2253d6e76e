//! A local, sprites.dev-compatible API server.
//!
//! It speaks the public Sprites API as recorded in `shared/notes/sprites-api.md` (paths, payloads,
//! WebSocket framing, status codes and the observed quirks) and backs it with real things: every
//! sprite is a directory tree under the data directory, exec runs real processes inside a
//! per-sprite set of Linux namespaces (mount, PID, user, network with only `lo`, UTS, IPC),
//! checkpoints are real copies of the sprite's files, and the lifecycle (running, warm, cold) is
//! driven by idle timers, `SIGSTOP` and killing the sprite's PID namespace.
//!
//! It shares no code with the Sprites client in `plugins/sprites`: each is written from the notes,
//! so the tests of one check the other.
//!
//! Linux-only: the sandbox, PTYs and namespaces use Linux system calls.

#[cfg(not(target_os = "linux"))]
compile_error!("sprites-emulator runs sprites in Linux namespaces and only builds on Linux");

pub mod admin;
pub mod api;
pub mod app;
pub mod checkpoint;
pub mod cli;
pub mod duration;
pub mod egress;
pub mod error;
pub mod exec;
pub mod faults;
pub mod fsops;
pub mod languages;
pub mod lifecycle;
pub mod limits;
pub mod ndjson;
pub mod policy;
pub mod proxy;
pub mod sandbox;
pub mod server;
pub mod session;
pub mod sprite_url;
pub mod sprites;
pub mod store;
pub mod time_fmt;
