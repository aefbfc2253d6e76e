//! clauderon: the host. It owns config, secrets, the session store, the daemon's API and the
//! CLI; sandbox backends are plugins loaded through `clauderon-plugin-api`.

pub mod agent;
pub mod api;
pub mod app;
pub mod cache;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod home;
pub mod installation;
pub mod plugins;
pub mod proxy;
pub mod secrets;
pub mod session;
pub mod store;
pub mod sync;
