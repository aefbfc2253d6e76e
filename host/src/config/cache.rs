//! `[cache]`: how long unused build caches are kept, how large one may grow, and whether
//! restores and saves may take the backend's direct path (DESIGN §16).

use std::time::Duration;

/// The file form of `[cache]`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CacheFile {
    pub(super) max_age: Option<toml::Spanned<String>>,
    pub(super) max_size: Option<toml::Spanned<String>>,
    pub(super) direct: Option<bool>,
}

/// `[cache]`: build-cache housekeeping.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CacheConfig {
    /// Caches unused this long are deleted (default 30 days).
    pub max_age: Duration,
    /// The most bytes one cache (a project's store in one scope) keeps; older entries are
    /// dropped first (default 20 GiB).
    pub max_size: u64,
    /// Whether restores and saves may move bytes directly between the backend's store and
    /// the sandbox when the backend offers it (default true; false: always through the host).
    pub direct: bool,
}

/// The default of `max_age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The default of `max_size`.
pub const DEFAULT_MAX_SIZE: u64 = 20 << 30;

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_MAX_AGE,
            max_size: DEFAULT_MAX_SIZE,
            direct: true,
        }
    }
}

/// A size as config writes it: a number with an optional binary unit (`500M`, `20G`, `4096`).
pub fn parse_size(v: &str) -> Result<u64, String> {
    let t = v.trim();
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let help = || format!("`{v}` is not a size; expected e.g. 500M, 20G or 1T (binary units)");
    let n: u64 = num.parse().map_err(|_| help())?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KI" | "KIB" => 10,
        "M" | "MB" | "MI" | "MIB" => 20,
        "G" | "GB" | "GI" | "GIB" => 30,
        "T" | "TB" | "TI" | "TIB" => 40,
        _ => return Err(help()),
    };
    let bytes = n.checked_mul(1u64 << shift).ok_or_else(help)?;
    if bytes == 0 {
        return Err(format!("`{v}`: the size must be more than 0"));
    }
    Ok(bytes)
}

/// A positive duration (`30days`, `720h`).
pub fn parse_age(v: &str) -> Result<Duration, String> {
    match humantime::parse_duration(v.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "`{v}` is not a duration; expected e.g. 30days, 2weeks or 720h"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages() {
        assert_eq!(parse_size("20G"), Ok(20 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "0", "G", "2X", "-1G", "99999999999999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_age("30days"), Ok(DEFAULT_MAX_AGE));
        assert_eq!(parse_age("30d"), Ok(DEFAULT_MAX_AGE));
        assert!(parse_age("0s").is_err());
        assert!(parse_age("soon").is_err());
    }
}
