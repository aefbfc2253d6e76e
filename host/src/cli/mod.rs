//! The command-line interface: one module per subcommand, each a thin client of the host.
