//! A local, sprites.dev-compatible API server.
