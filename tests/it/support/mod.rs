//! Shared helpers for the integration tests: artifacts, temporary homes, child processes.

#![allow(dead_code)]

pub mod artifacts;
pub mod attached;
pub mod daemon;
pub mod emulator;
pub mod home;
pub mod upstream;
