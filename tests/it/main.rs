//! One integration-test binary for the whole workspace (fewer links on two cores).
//!
//! Every test drives real artifacts: the `clauderon` binary, plugin libraries loaded through the
//! real loader, and the `sprites-emulator` over real HTTP and WebSocket on loopback. Each test
//! gets its own temporary `CLAUDERON_HOME` and port 0, so tests run in parallel.

mod caches;
mod cli;
mod client;
mod core;
mod daemon;
mod emulator;
mod emulator_egress;
mod emulator_limits;
mod emulator_tty;
mod install;
mod local_backend;
mod plugins;
mod proxy;
mod proxy_wiring;
mod real_agents;
mod sprites_backend;
mod sprites_cli;
mod sprites_tunnel;
mod sprites_upload;
mod support;
mod sync;
mod tui;
mod web;
