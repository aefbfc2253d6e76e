//! Sessions: ids, names, options and the status state machine.

mod id;
mod name;
mod options;
mod status;

pub use id::{SessionId, SessionIdError};
pub use name::{SessionName, SessionNameError};
pub use options::{
    BuildCache, CACHE_KINDS, CacheScope, CpuLimit, HibernationTimeout, MemoryLimit, OptionError,
    OptionField, RawOptions, SessionOptions, TIMEOUTS, parse_build_caches, parse_cpu_limit,
    parse_model,
};
pub use status::{Event, Observed, Status, TransitionError, UnknownStatus, transition};
