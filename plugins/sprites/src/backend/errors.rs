//! Client errors as plugin errors: the right kind, a message that says what to do.

use clauderon_plugin_sdk::{ErrorKind, PluginError};

use crate::client::Error;

/// `err` (while doing `what`) as a [`PluginError`].
pub fn plugin_error(what: &str, err: &Error) -> PluginError {
    let (kind, retryable) = match err {
        Error::Api { status, .. } => match *status {
            400 | 422 => (ErrorKind::InvalidRequest, false),
            401 => (ErrorKind::Unauthenticated, false),
            403 => (ErrorKind::PermissionDenied, false),
            404 | 410 => (ErrorKind::NotFound, false),
            409 => (ErrorKind::Conflict, false),
            s if s >= 500 => (ErrorKind::Unavailable, true),
            _ => (ErrorKind::Internal, false),
        },
        Error::RateLimited { .. } => (ErrorKind::RateLimited, true),
        Error::ExecEndedWithoutExit | Error::Transport(_) => (ErrorKind::Unavailable, true),
        Error::Timeout { .. } => (ErrorKind::Timeout, true),
        Error::InvalidInput(_) => (ErrorKind::InvalidRequest, false),
        Error::InStream { .. } | Error::Protocol(_) => (ErrorKind::Internal, false),
    };
    let mut e = PluginError::new(kind, format!("{what}: {err}"));
    e.retryable = retryable;
    e
}

/// A closure mapping a client error while doing `what`.
pub fn ctx(what: &str) -> impl Fn(Error) -> PluginError + '_ {
    move |e| plugin_error(what, &e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_status() {
        let api = |status| Error::Api {
            status,
            message: "m".into(),
            code: None,
        };
        assert_eq!(
            plugin_error("x", &api(401)).kind,
            ErrorKind::Unauthenticated
        );
        assert_eq!(plugin_error("x", &api(404)).kind, ErrorKind::NotFound);
        let e = plugin_error("creating sprite a", &api(503));
        assert!(e.retryable && e.message.starts_with("creating sprite a: "));
        assert_eq!(
            plugin_error(
                "x",
                &Error::InStream {
                    message: "boom".into()
                }
            )
            .kind,
            ErrorKind::Internal
        );
    }
}
