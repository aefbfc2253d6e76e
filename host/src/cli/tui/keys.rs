//! The session table's keys, in one table that both the key handling and the help screen read,
//! so the help cannot drift from what the keys do.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key on the session table does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Select the row above.
    Up,
    /// Select the row below.
    Down,
    /// Ten rows up.
    PageUp,
    /// Ten rows down.
    PageDown,
    /// The first row.
    Top,
    /// The last row.
    Bottom,
    /// Open the create form.
    New,
    /// Hand the terminal to the agent (Ctrl-] comes back).
    Attach,
    /// Wake the session.
    Wake,
    /// Hibernate the session.
    Hibernate,
    /// The session's checkpoints (list, create, restore).
    Checkpoints,
    /// The build caches (list, clear, collect).
    Caches,
    /// Delete the session (asks first).
    Delete,
    /// The key reference.
    Help,
    /// Leave the TUI.
    Quit,
}

/// Every binding of the table: keys as the help shows them, the action of the first, what
/// they do.
pub const BINDINGS: [(&str, Action, &str); 13] = [
    ("↑ k", Action::Up, "select the session above"),
    ("↓ j", Action::Down, "select the session below"),
    ("PgUp PgDn", Action::PageUp, "move ten rows"),
    ("g G", Action::Top, "first / last session"),
    ("n", Action::New, "new session (the create form)"),
    (
        "a Enter",
        Action::Attach,
        "attach to the agent; Ctrl-] comes back",
    ),
    ("w", Action::Wake, "wake a hibernated session"),
    ("h", Action::Hibernate, "hibernate the session now"),
    (
        "c",
        Action::Checkpoints,
        "checkpoints: list, create, restore",
    ),
    ("b", Action::Caches, "build caches: list, clear, collect"),
    (
        "d",
        Action::Delete,
        "delete (asks; warns of unpushed commits)",
    ),
    ("?", Action::Help, "this help"),
    ("q", Action::Quit, "quit (the sessions keep running)"),
];

/// The action of a key on the session table, if it has one.
pub fn list_action(key: &KeyEvent) -> Option<Action> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char('c') if ctrl => Action::Quit,
        _ if ctrl => return None,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Top,
        KeyCode::End | KeyCode::Char('G') => Action::Bottom,
        KeyCode::Char('n') => Action::New,
        KeyCode::Char('a') | KeyCode::Enter => Action::Attach,
        KeyCode::Char('w') => Action::Wake,
        KeyCode::Char('h') => Action::Hibernate,
        KeyCode::Char('c') => Action::Checkpoints,
        KeyCode::Char('b') => Action::Caches,
        KeyCode::Char('d') => Action::Delete,
        KeyCode::Char('?') => Action::Help,
        KeyCode::Char('q') => Action::Quit,
        _ => return None,
    })
}

/// The lines of the help screen: `(keys, what they do)`, the table's bindings and then the
/// other screens' keys.
pub fn help() -> Vec<(&'static str, &'static str)> {
    let mut lines: Vec<(&str, &str)> = BINDINGS
        .iter()
        .map(|(keys, _, what)| (*keys, *what))
        .collect();
    lines.extend([
        ("", ""),
        (
            "in the form",
            "Tab/↓ next · ↑ back · ←→ choose · Space toggle",
        ),
        ("", "Ctrl-S or Enter on [Create] creates · Esc cancels"),
        (
            "checkpoints",
            "n new (type a comment, Enter) · r restore · Esc back",
        ),
        (
            "caches",
            "x clear (asks) · g collect unused · r reread · Esc back",
        ),
        ("attached", "Ctrl-] detaches; the agent keeps running"),
    ]);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bound_key_does_what_the_help_says() {
        let press = |c| KeyEvent::new(c, KeyModifiers::NONE);
        for (keys, action, _) in BINDINGS {
            let first = keys.split(' ').next().unwrap_or_default();
            let code = match first {
                "↑" => KeyCode::Up,
                "↓" => KeyCode::Down,
                "PgUp" => KeyCode::PageUp,
                "Enter" => KeyCode::Enter,
                k => KeyCode::Char(k.chars().next().unwrap()),
            };
            assert_eq!(list_action(&press(code)), Some(action), "{keys}");
        }
        assert_eq!(
            list_action(&KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(list_action(&press(KeyCode::Char('x'))), None);
    }
}
