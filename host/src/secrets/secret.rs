//! A value that must never be printed: Debug and Display show `[redacted]`.

use std::fmt;

/// A secret value. Debug, Display and Serialize print `[redacted]`; the value is reachable only
/// through [`Secret::expose`], so every use is explicit and easy to find in review. The buffer is
/// overwritten when dropped (other copies, such as HTTP headers, are the caller's to keep short).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// What every redacted value prints as.
pub const REDACTED: &str = "[redacted]";

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Self {
        Self(value)
    }
    /// The value itself. Callers must not log or return it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A preview safe to show: the first and last 4 characters of a long secret
    /// (`sk-a…wxyz`), `****` for anything shorter than 20 characters.
    pub fn preview(&self) -> String {
        let n = self.0.chars().count();
        if n < 20 {
            return "****".to_string();
        }
        let head: String = self.0.chars().take(4).collect();
        let tail: String = self.0.chars().skip(n - 4).collect();
        format!("{head}…{tail}")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        // Keep the zeroing from being optimised away as a dead store.
        std::hint::black_box(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("sk-ant-0123456789abcdefXYZ".into());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        assert_eq!(s.expose(), "sk-ant-0123456789abcdefXYZ");
        assert_eq!(s.preview(), "sk-a…fXYZ");
        assert_eq!(Secret::new("short".into()).preview(), "****");
    }
}
