//! Panics turned into errors at the boundary: both the SDK (around author code) and the host
//! (around a plugin future) catch panics and report them the same way.

use crate::error::{ErrorKind, PluginError};

/// The message of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// The error for a panic caught while the plugin ran `what` (an op in backticks, or `init`):
/// `the plugin panicked in <what>: <message>`.
pub fn panicked(what: &str, payload: &(dyn std::any::Any + Send)) -> PluginError {
    PluginError::new(
        ErrorKind::Panicked,
        format!("the plugin panicked in {what}: {}", panic_message(payload)),
    )
}

/// The panic's own message inside the message of a [`panicked`] error for `what`; the whole
/// message when it has another form. Plugins built against 1.0 write the same form.
pub fn panic_reason<'a>(what: &str, message: &'a str) -> &'a str {
    message
        .strip_prefix("the plugin panicked in ")
        .and_then(|m| m.strip_prefix(what))
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_string_and_other_payloads() {
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(caught.as_ref()), "boom 1");
        let caught = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        let e = panicked("`status`", caught.as_ref());
        assert_eq!(e.kind, ErrorKind::Panicked);
        assert_eq!(e.message, "the plugin panicked in `status`: plain");
        assert_eq!(panic_reason("`status`", &e.message), "plain");
        assert_eq!(panic_reason("init", &e.message), e.message);
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
        assert_eq!(panic_message(caught.as_ref()), "a non-string panic payload");
    }
}
