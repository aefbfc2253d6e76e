//! The record of panics caught from one plugin: how many, and the last one (operation and the
//! plugin's own panic message, truncated). A plugin with such a record is reported `faulted`;
//! the record is informational, since a caught panic leaves the plugin's runtime serving calls.

use std::sync::Mutex;

use serde::Serialize;

/// The longest panic message kept, in characters; longer ones end in `…`.
pub const MAX_PANIC_MESSAGE_CHARS: usize = 500;

/// The panics caught from one plugin in this process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginFault {
    /// How many panics were caught (init or any operation).
    pub panics: u64,
    /// The operation of the last one (`init`, `exec`, `check_auth`, ...).
    pub last_op: String,
    /// The plugin's panic message of the last one, truncated to
    /// [`MAX_PANIC_MESSAGE_CHARS`].
    pub last_message: String,
}

impl PluginFault {
    /// The one-line reason shown by `plugins list` / `info`:
    /// `panicked in exec: <message> (2 panics caught; calls keep working)`.
    pub fn reason(&self) -> String {
        let plural = if self.panics == 1 { "" } else { "s" };
        format!(
            "panicked in {}: {} ({} panic{plural} caught; calls keep working)",
            self.last_op, self.last_message, self.panics
        )
    }
}

/// Where a plugin's panics are recorded; shared by every holder of the plugin's client.
#[derive(Debug, Default)]
pub(crate) struct FaultLog(Mutex<Option<PluginFault>>);

impl FaultLog {
    /// Records one caught panic in `op` with the plugin's `message`.
    pub(crate) fn record(&self, op: &str, message: &str) {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let panics = slot.as_ref().map_or(0, |f| f.panics).saturating_add(1);
        *slot = Some(PluginFault {
            panics,
            last_op: op.to_owned(),
            last_message: truncate(message),
        });
    }

    /// The record so far, if anything panicked.
    pub(crate) fn snapshot(&self) -> Option<PluginFault> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A fault record for a single panic (init).
pub(crate) fn single(op: &str, message: &str) -> PluginFault {
    PluginFault {
        panics: 1,
        last_op: op.to_owned(),
        last_message: truncate(message),
    }
}

/// The plugin's message as it is, cut at [`MAX_PANIC_MESSAGE_CHARS`] characters.
fn truncate(message: &str) -> String {
    match message.char_indices().nth(MAX_PANIC_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_are_counted_and_the_last_one_kept() {
        let log = FaultLog::default();
        assert_eq!(log.snapshot(), None);
        log.record("exec", "first");
        log.record("attach", "second");
        let f = log.snapshot().unwrap();
        assert_eq!(f.panics, 2);
        assert_eq!(f.last_op, "attach");
        assert_eq!(f.last_message, "second");
        assert_eq!(
            f.reason(),
            "panicked in attach: second (2 panics caught; calls keep working)"
        );
        assert_eq!(
            single("init", "boom").reason(),
            "panicked in init: boom (1 panic caught; calls keep working)"
        );
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(MAX_PANIC_MESSAGE_CHARS + 10);
        let t = truncate(&long);
        assert_eq!(t.chars().count(), MAX_PANIC_MESSAGE_CHARS + 1);
        assert!(t.ends_with('…'));
        let exact = "x".repeat(MAX_PANIC_MESSAGE_CHARS);
        assert_eq!(truncate(&exact), exact);
    }
}
