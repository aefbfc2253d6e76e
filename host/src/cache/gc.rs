//! Housekeeping decisions, kept apart from I/O so they are tested with any clock: which
//! entries have gone unused for too long, which to drop when a store is over its size cap
//! (least recently used first), and whether a daily collection is due.

use time::{Duration, OffsetDateTime};

/// The clock cache ages are measured with: the system's, shifted by an offset (the daemon
/// reads `CLAUDERON_CLOCK_OFFSET`, e.g. `31days`, so tests can age caches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    offset: Duration,
}

impl Clock {
    /// The system clock shifted by `offset`.
    pub fn shifted(offset: std::time::Duration) -> Clock {
        Clock {
            offset: Duration::try_from(offset).unwrap_or(Duration::ZERO),
        }
    }

    /// Now, by this clock.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset
    }
}

/// The variable that shifts the daemon's cache clock (a duration such as `31days`).
pub const CLOCK_ENV: &str = "CLAUDERON_CLOCK_OFFSET";

/// How often a collection runs at most.
pub const GC_EVERY: Duration = Duration::days(1);

/// Whether a collection is due at `now` when the last one ran at `last`.
pub fn due(last: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    last.is_none_or(|l| now - l >= GC_EVERY || now < l)
}

/// One entry as housekeeping sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aged {
    /// The entry's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last saved or restored.
    pub last_used: OffsetDateTime,
}

/// The entries unused for `max_age` or more at `now`.
pub fn expired(entries: &[Aged], now: OffsetDateTime, max_age: Duration) -> Vec<String> {
    entries
        .iter()
        .filter(|e| now - e.last_used >= max_age)
        .map(|e| e.key.clone())
        .collect()
}

/// The entries to drop so the store's total size is at most `cap`: least recently used
/// first, never `keep` (the entry just saved).
pub fn over_cap(entries: &[Aged], cap: u64, keep: &str) -> Vec<String> {
    let mut total: u64 = entries.iter().map(|e| e.size).sum();
    let mut by_age: Vec<&Aged> = entries.iter().filter(|e| e.key != keep).collect();
    by_age.sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.key.cmp(&b.key)));
    let mut out = Vec::new();
    for e in by_age {
        if total <= cap {
            break;
        }
        total = total.saturating_sub(e.size);
        out.push(e.key.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(days)
    }

    fn e(key: &str, size: u64, used: i64) -> Aged {
        Aged {
            key: key.into(),
            size,
            last_used: at(used),
        }
    }

    #[test]
    fn thirty_one_idle_days_expire_and_twenty_nine_do_not() {
        let now = at(100);
        let entries = [
            e("old", 1, 100 - 31),
            e("young", 1, 100 - 29),
            e("edge", 1, 70),
        ];
        assert_eq!(expired(&entries, now, Duration::days(30)), ["old", "edge"]);
    }

    #[test]
    fn the_cap_drops_least_recently_used_first_and_keeps_the_new_entry() {
        let entries = [e("a", 40, 1), e("b", 40, 3), e("c", 40, 2), e("new", 40, 0)];
        assert_eq!(over_cap(&entries, 100, "new"), ["a", "c"]);
        assert!(over_cap(&entries, 160, "new").is_empty());
        // A new entry bigger than the cap alone drops every other one.
        assert_eq!(over_cap(&entries, 10, "new"), ["a", "c", "b"]);
    }

    #[test]
    fn collections_run_once_a_day() {
        assert!(due(None, at(5)));
        assert!(!due(Some(at(5)), at(5) + Duration::hours(23)));
        assert!(due(Some(at(5)), at(6)));
        // A clock that went back (a shifted clock undone) runs again.
        assert!(due(Some(at(6)), at(5)));
    }
}
