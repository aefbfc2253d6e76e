//! The SQLite session store: migrations, sessions, events, checkpoints.
