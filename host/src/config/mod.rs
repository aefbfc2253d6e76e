//! `config.toml`: loading with file:line:column errors, the effective view, backend tables.
