//! Shared support for the integration tests lives in `it/support`.
