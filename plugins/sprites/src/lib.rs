//! The Sprites (sprites.dev) backend plugin for clauderon.

pub mod backend;
pub mod cache;
pub mod client;
pub mod plugin;
pub mod tunnel;
