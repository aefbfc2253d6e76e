//! The contract between the clauderon host and its backend plugins.
