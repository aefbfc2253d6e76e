//! Host core through the real binary: config, secrets, store, daemon API and CLI.
