//! Lenient serde helpers: the service's fields drift between versions (ids as strings or numbers,
//! timestamps with or without fractions, nulls where lists are expected), so decoding accepts all
//! documented forms instead of failing a whole response on one field.

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A JSON string or number, as a string (`"v1"`, `42` -> `"42"`).
pub fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number id, got {other}"
        ))),
    }
}

/// Like [`string_or_number`], but `null` or absent gives `None`.
pub fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// A timestamp as RFC 3339 text or unix seconds; anything else (null, garbage) gives `None`.
pub fn opt_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => OffsetDateTime::parse(&s, &Rfc3339).ok(),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok()),
        _ => None,
    })
}

/// A list that may be `null` or absent (both mean empty).
pub fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// An optional number that may arrive as a JSON number or numeric string.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "string_or_number")]
        id: String,
        #[serde(default, deserialize_with = "opt_timestamp")]
        at: Option<OffsetDateTime>,
        #[serde(default, deserialize_with = "null_as_empty")]
        labels: Vec<String>,
    }

    #[test]
    fn accepts_every_documented_form() {
        let a: T = serde_json::from_str(r#"{"id":7,"at":1700000000,"labels":null}"#).unwrap();
        assert_eq!(a.id, "7");
        assert_eq!(a.at.unwrap().unix_timestamp(), 1_700_000_000);
        assert!(a.labels.is_empty());
        let b: T =
            serde_json::from_str(r#"{"id":"s-1","at":"2026-01-31T10:00:00.123456Z"}"#).unwrap();
        assert_eq!(b.id, "s-1");
        assert!(b.at.is_some());
        let c: T = serde_json::from_str(r#"{"id":"x","at":"yesterday","extra":1}"#).unwrap();
        assert!(c.at.is_none());
        assert!(serde_json::from_str::<T>(r#"{"id":[1]}"#).is_err());
    }
}
