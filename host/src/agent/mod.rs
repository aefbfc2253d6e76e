//! The agent a session runs, beyond its command line: what it needs in the sandbox to start
//! with nobody at the keyboard (its own config merged, its state hooks, the files `[agent]
//! files` names), and the state it reports. Backend-agnostic: the engine carries the plan out
//! through the plugin's `exec` (DESIGN §12).

pub mod claude;
pub mod setup;
pub mod state;

pub use state::{AgentState, HookReport, read_hook};
