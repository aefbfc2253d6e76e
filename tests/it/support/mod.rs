//! Shared helpers for the integration tests: artifacts, temporary homes, child processes.

#![allow(dead_code)]

pub mod artifacts;
pub mod attached;
pub mod daemon;
pub mod emulator;
pub mod files;
pub mod git;
pub mod home;
pub mod sprites_plugin;
pub mod upstream;
