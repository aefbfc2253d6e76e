//! The host's side of the two-way sync (DESIGN §15): the pure three-way decision ([`plan`]),
//! one cycle over two endpoints ([`cycle`]), conflict resolution ([`resolve`]), and the commits ([`history`]). The daemon's
//! per-session sync task (`daemon/engine/sync*.rs`) drives them with the local worktree and
//! the sandbox's replica over the plugin's `sync_stream`.

pub mod cycle;
pub mod history;
pub mod local;
pub mod plan;
pub mod remote;
pub mod resolve;
#[cfg(test)]
mod sim;

pub use cycle::{Change, CycleOptions, Endpoint, EndpointError, Report, SyncState};
pub use plan::{Conflict, Side};
