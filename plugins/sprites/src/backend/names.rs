//! Sprite names and labels: a valid sprite name from the session name and id, and the
//! `key=value` labels that mark a sprite as clauderon's.

use std::collections::BTreeMap;

use clauderon_plugin_sdk::labels::{MARKER, MARKER_VALUE, SESSION};

/// The label every clauderon sprite carries.
pub const OURS: &str = "clauderon=1";

/// The longest sprite name we make (the API's DNS-label limit is 63).
const MAX_NAME: usize = 63;

/// A valid sprite name (`[a-z0-9-]`, no leading/trailing `-`, at most 63 characters) from a
/// human name and the session id: `<name>-<first 8 id characters>`.
pub fn sprite_name(name: &str, session_id: &str) -> String {
    let short: String = session_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(8)
        .collect();
    let mut base = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            base.push(c);
        } else if !base.ends_with('-') {
            base.push('-');
        }
    }
    let room = MAX_NAME - short.len() - 1;
    let base: String = base.trim_matches('-').chars().take(room).collect();
    let base = base.trim_end_matches('-');
    match (base.is_empty(), short.is_empty()) {
        (true, true) => "clauderon".to_owned(),
        (true, false) => format!("clauderon-{short}"),
        (false, true) => base.to_owned(),
        (false, false) => format!("{base}-{short}"),
    }
}

/// The label strings for a request's labels, always including [`OURS`] and
/// `clauderon.session=<id>`.
pub fn labels(requested: &BTreeMap<String, String>, session_id: &str) -> Vec<String> {
    let mut map = requested.clone();
    map.insert(MARKER.into(), MARKER_VALUE.into());
    if !session_id.is_empty() {
        map.insert(SESSION.into(), session_id.into());
    }
    map.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Label strings back into a map (`key=value`; a bare `key` maps to an empty value).
pub fn parse_labels(labels: &[String]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(n: &str) -> bool {
        !n.is_empty()
            && n.len() <= 63
            && n.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !n.starts_with('-')
            && !n.ends_with('-')
    }

    #[test]
    fn names_are_valid_and_carry_the_short_id() {
        let id = "3F2A9C1B-0000-4000-8000-000000000000";
        assert_eq!(sprite_name("My Repo_2", id), "my-repo-2-3f2a9c1b");
        assert_eq!(sprite_name("", id), "clauderon-3f2a9c1b");
        assert_eq!(sprite_name("--", ""), "clauderon");
        let long = "x".repeat(200);
        let n = sprite_name(&long, id);
        assert!(valid(&n) && n.ends_with("-3f2a9c1b"), "{n}");
        for s in ["Ünïcode!!", "a--b", "-lead", "trail-", "ok"] {
            assert!(valid(&sprite_name(s, id)), "{s}");
        }
    }

    #[test]
    fn labels_always_mark_the_sprite_as_ours() {
        let mut req = BTreeMap::new();
        req.insert("team".to_owned(), "x".to_owned());
        let l = labels(&req, "abc");
        assert!(l.contains(&OURS.to_owned()));
        assert_eq!(OURS, format!("{MARKER}={MARKER_VALUE}"));
        assert!(l.contains(&"clauderon.session=abc".to_owned()));
        assert_eq!(parse_labels(&l)["team"], "x");
    }
}
