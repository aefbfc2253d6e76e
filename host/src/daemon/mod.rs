//! The daemon's HTTP API: request guards (token, loopback Host, no foreign Origin).
//!
//! The daemon itself (routes, session manager, reconcile) builds on these; see issue 4.

pub mod guard;
