//! Build caches that outlive sessions (DESIGN §16): what the host decides, with no I/O of its
//! own. The engine probes the sandbox ([`probe`]), resolves each `--build-cache` type to paths,
//! environment and keys ([`kinds`], [`keys`]) into a session's [`plan::Plan`], keeps the index
//! in the store, and asks the backend plugin to move bytes (`cache_save`, `cache_restore`,
//! `cache_delete`); [`gc`] decides what housekeeping drops.

pub mod gc;
pub mod keys;
pub mod kinds;
pub mod plan;
pub mod probe;

pub use gc::Clock;
pub use plan::Plan;
