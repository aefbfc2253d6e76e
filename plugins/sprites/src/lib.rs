//! The Sprites (sprites.dev) backend plugin for clauderon.

pub mod client;
pub mod plugin;
