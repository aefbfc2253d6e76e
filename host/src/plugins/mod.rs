//! Plugin discovery, loading, version negotiation and the typed client for a loaded backend.
