//! The bearer token, held in a type that never prints it.

use std::fmt;

/// A Sprites API token. `Debug` and `Display` print `[redacted]`; only the request builder reads it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a token string (surrounding whitespace, such as a file's trailing newline, is dropped).
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into().trim().to_owned())
    }

    /// True when the token is empty (a configuration mistake caught before any request).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `Authorization` header value.
    pub(crate) fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted_in_debug_and_display() {
        let t = Token::new("org/id/s3cret\n");
        assert_eq!(format!("{t}"), "[redacted]");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(t.header_value(), "Bearer org/id/s3cret");
    }
}
