//! One side of clauderon's two-way sync (DESIGN §15): what a path holds ([`entry`]), a root
//! directory scanned with git's ignores and changed only by compare-and-swap ([`replica`]),
//! extra ignore patterns ([`ignore`]), the checked-out history as bundles ([`history`]), inotify watching ([`watch`]), and the wire protocol
//! ([`wire`]) with its server ([`serve`]), which the sandbox-side helper runs. The host uses
//! the same replica for its local worktree, so both sides scan and write alike; the three-way
//! decisions are the host's.

pub mod entry;
pub mod history;
pub mod ignore;
pub mod replica;
pub mod serve;
pub mod watch;
pub mod wire;

pub use entry::{ContentHash, Entry, Tree, check_path};
pub use replica::{ApplyError, Change, Probe, Replica, Scan};

/// Locks `m`, taking the data of a poisoned lock as it is (a panicked holder leaves nothing
/// half-done that these locks guard).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
