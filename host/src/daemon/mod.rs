//! The daemon: the REST API of DESIGN §9 and the web UI behind the request guard, the session
//! engine, and the files a CLI uses to find it (`daemon.json`, `api-token`).
//!
//! The CLI's entry is [`run`] (`clauderon daemon` in the foreground); clients find the daemon
//! with [`files::read_info`] and authenticate with [`files::read_token`].

pub mod api;
pub mod bus;
pub mod engine;
pub mod error;
pub mod files;
pub mod guard;
mod server;
pub mod views;
pub mod web;

pub use files::{DaemonInfo, read_info, read_token};
pub use server::run;
