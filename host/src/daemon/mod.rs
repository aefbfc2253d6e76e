//! The daemon: the REST API of DESIGN §9 (its types are [`crate::api`]) and the web UI behind
//! the request guard, the session engine, and the files it writes (`daemon.json`, `api-token`,
//! its lock).
//!
//! The CLI's entry is [`run`] (`clauderon daemon` in the foreground); clients find the daemon
//! with [`crate::api::files`].

pub mod api;
pub mod bus;
pub mod engine;
pub mod error;
pub mod files;
pub mod guard;
mod server;
pub mod web;

pub use server::run;
