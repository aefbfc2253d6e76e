//! Housekeeping decisions, kept apart from I/O so they are tested with any clock: which
//! entries have gone unused for too long, which to drop when a store is over its size cap
//! (least recently used first), and whether a daily collection is due.

use std::collections::HashMap;

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
    /// The entry it is a layer over (which must stay while it does).
    pub base: Option<String>,
}

/// `keys` and every entry lying on one of them, directly or through other layers: what goes
/// when they go (a layer cannot be restored without what it lies on).
pub fn with_layers(entries: &[Aged], keys: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut todo: Vec<String> = keys.to_vec();
    while let Some(k) = todo.pop() {
        if out.contains(&k) {
            continue;
        }
        todo.extend(
            entries
                .iter()
                .filter(|e| e.base.as_deref() == Some(k.as_str()))
                .map(|e| e.key.clone()),
        );
        out.push(k);
    }
    out
}

/// `key` and every entry under it (what a restore of it unpacks).
fn with_bases<'a>(entries: &'a [Aged], key: &'a str) -> Vec<&'a str> {
    let mut out = vec![key];
    let mut cur = key;
    while let Some(b) = entries
        .iter()
        .find(|e| e.key == cur)
        .and_then(|e| e.base.as_deref())
    {
        if out.contains(&b) {
            break;
        }
        out.push(b);
        cur = b;
    }
    out
}

/// Each entry's last use, counting the use of every layer lying on it (restoring a layer
/// unpacks what it lies on).
fn last_uses(entries: &[Aged]) -> HashMap<&str, OffsetDateTime> {
    let mut uses: HashMap<&str, OffsetDateTime> = HashMap::new();
    for e in entries {
        for k in with_bases(entries, &e.key) {
            let t = uses.entry(k).or_insert(e.last_used);
            *t = (*t).max(e.last_used);
        }
    }
    uses
}

/// The entries unused for `max_age` or more at `now` (an entry some fresher layer lies on is
/// in use).
pub fn expired(entries: &[Aged], now: OffsetDateTime, max_age: Duration) -> Vec<String> {
    let uses = last_uses(entries);
    entries
        .iter()
        .filter(|e| {
            uses.get(e.key.as_str())
                .is_some_and(|t| now - *t >= max_age)
        })
        .map(|e| e.key.clone())
        .collect()
}

/// The entries to drop so the store's total size is at most `cap`: least recently used
/// first, each with the layers lying on it; never `keep` (the entry just saved) nor what it
/// lies on.
pub fn over_cap(entries: &[Aged], cap: u64, keep: &str) -> Vec<String> {
    let uses = last_uses(entries);
    let kept = with_bases(entries, keep);
    let mut total: u64 = entries.iter().map(|e| e.size).sum();
    let mut by_age: Vec<&Aged> = entries
        .iter()
        .filter(|e| !kept.contains(&e.key.as_str()))
        .collect();
    by_age.sort_by(|a, b| {
        let (ua, ub) = (uses.get(a.key.as_str()), uses.get(b.key.as_str()));
        ua.cmp(&ub).then(a.key.cmp(&b.key))
    });
    let mut out: Vec<String> = Vec::new();
    for e in by_age {
        if total <= cap {
            break;
        }
        if out.contains(&e.key) {
            continue;
        }
        for k in with_layers(entries, std::slice::from_ref(&e.key)) {
            if !out.contains(&k) {
                total =
                    total.saturating_sub(entries.iter().find(|x| x.key == k).map_or(0, |x| x.size));
                out.push(k);
            }
        }
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
            base: None,
        }
    }

    fn layer(key: &str, size: u64, used: i64, base: &str) -> Aged {
        Aged {
            base: Some(base.into()),
            ..e(key, size, used)
        }
    }

    #[test]
    fn a_base_lives_as_long_as_a_layer_on_it_is_used_and_goes_with_its_layers() {
        let now = at(100);
        // base (old) <- mid (old) <- top (fresh); lone (old) has no layer.
        let entries = [
            e("base", 50, 10),
            layer("mid", 5, 20, "base"),
            layer("top", 5, 95, "mid"),
            e("lone", 50, 10),
        ];
        assert_eq!(expired(&entries, now, Duration::days(30)), ["lone"]);
        // Everything old: all of the chain expires.
        assert_eq!(
            expired(&entries, at(200), Duration::days(30)),
            ["base", "mid", "top", "lone"]
        );
        // Clearing a base takes every layer on it.
        let mut gone = with_layers(&entries, &["base".into()]);
        gone.sort();
        assert_eq!(gone, ["base", "mid", "top"]);
        assert_eq!(with_layers(&entries, &["top".into()]), ["top"]);
        // Over the cap: `lone` is the least recently used (the chain counts top's use).
        assert_eq!(over_cap(&entries, 60, "top"), ["lone"]);
        // The entry just saved and what it lies on are never dropped, even over the cap.
        assert_eq!(over_cap(&entries, 0, "top"), ["lone"]);
        // Dropping a base for the cap drops its layers too.
        let fresh = [
            e("new", 10, 99),
            e("base", 50, 10),
            layer("mid", 5, 20, "base"),
        ];
        let mut dropped = over_cap(&fresh, 20, "new");
        dropped.sort();
        assert_eq!(dropped, ["base", "mid"]);
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
