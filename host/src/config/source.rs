//! Locating things in a TOML file: byte offsets to line and column, a position to the key path
//! that holds it, and a key path to its span. Every config error goes through here so each one
//! names file, line, column and key.

use super::ConfigError;
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

fn walk(
    table: &DeTable<'_>,
    offset: usize,
    path: &mut Vec<String>,
    best: &mut Option<Vec<String>>,
) {
    for (k, v) in table.iter() {
        path.push(k.get_ref().to_string());
        if contains(&k.span(), offset) || contains(&v.span(), offset) {
            *best = Some(path.clone());
        }
        walk_value(v.get_ref(), offset, path, best);
        path.pop();
    }
}

fn walk_value(
    v: &DeValue<'_>,
    offset: usize,
    path: &mut Vec<String>,
    best: &mut Option<Vec<String>>,
) {
    match v {
        DeValue::Table(t) => walk(t, offset, path, best),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                let last = path.pop().unwrap_or_default();
                path.push(format!("{last}[{i}]"));
                if contains(&item.span(), offset) {
                    *best = Some(path.clone());
                }
                walk_value(item.get_ref(), offset, path, best);
                path.pop();
                path.push(last);
            }
        }
        _ => {}
    }
}

/// The dotted key path (`agent.model_args[1]`) of the innermost key or value at `offset`.
pub(crate) fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    let mut best = None;
    walk(doc.get_ref(), offset, &mut Vec::new(), &mut best);
    best.map(|p| p.join("."))
}

/// The spans of the key and of the value at `path` (e.g. `["sprites", "api_url"]`).
pub(crate) fn spans_of(text: &str, path: &[&str]) -> Option<(Range<usize>, Range<usize>)> {
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut found = None;
    for (i, seg) in path.iter().enumerate() {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref() == seg)?;
        found = Some((k.span(), v.span()));
        if i + 1 < path.len() {
            match v.get_ref() {
                DeValue::Table(t) => table = t,
                _ => return None,
            }
        }
    }
    found
}

/// An error at byte `offset` of `file`, naming its line, column and `key`.
pub(crate) fn error_at(
    file: &Path,
    text: &str,
    offset: usize,
    key: Option<String>,
    message: impl Into<String>,
) -> ConfigError {
    let (line, column) = line_col(text, offset);
    ConfigError::Invalid {
        file: file.to_path_buf(),
        line,
        column,
        key,
        message: message.into(),
    }
}

/// An error about the value (or, with `at_key`, the key) at `path`; falls back to the start of
/// the file when the path cannot be found (it always can for keys we read from the file).
pub(crate) fn error_at_path(
    file: &Path,
    text: &str,
    path: &[&str],
    at_key: bool,
    message: impl Into<String>,
) -> ConfigError {
    let offset = spans_of(text, path)
        .map(|(k, v)| if at_key { k.start } else { v.start })
        .unwrap_or(0);
    error_at(file, text, offset, Some(path.join(".")), message)
}

/// Turns a `toml` error (syntax, unknown key, wrong type) into a located [`ConfigError`].
pub(crate) fn from_toml(file: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map_or(0, |s| s.start);
    let key = e.span().and_then(|_| key_path_at(text, offset));
    let message = e.message().trim().replace("unknown field", "unknown key");
    error_at(file, text, offset, key, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 9), (2, 3));
        assert_eq!(line_col(t, 999), (3, 1));
    }

    #[test]
    fn key_paths() {
        let t = "top = 1\n[agent]\nmodel_args = [\"--model\", 5]\n[x.y]\nz = true\n";
        assert_eq!(
            key_path_at(t, t.find("5]").unwrap()).as_deref(),
            Some("agent.model_args[1]")
        );
        assert_eq!(
            key_path_at(t, t.find("z =").unwrap()).as_deref(),
            Some("x.y.z")
        );
        assert_eq!(key_path_at(t, 0).as_deref(), Some("top"));
        let (k, v) = spans_of(t, &["x", "y", "z"]).unwrap();
        assert_eq!(&t[k], "z");
        assert_eq!(&t[v], "true");
    }
}
