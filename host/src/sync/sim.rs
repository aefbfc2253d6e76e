//! The property test of the sync engine: two in-memory sides with a filesystem's rules (a path
//! is a file, a link, or a directory of other paths, never two of them), random create /
//! modify / delete / rename / chmod / symlink / type-change edits on either side, sync cycles
//! interleaved, some cut off midway (a dropped stream) and some raced by an edit between scan
//! and apply. Checked: every version written since it was last agreed ends up on both sides or
//! in the conflict store unless a later edit on a side that held it replaced it, and quiet
//! sides converge once conflicts are resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use clauderon_sync::{ApplyError, ContentHash, Entry, Probe, Scan};
use proptest::prelude::*;

use super::cycle::{self, Change, CycleOptions, Endpoint, EndpointError, SyncState};
use super::plan::Side;
use super::resolve::resolve;

const PATHS: [&str; 7] = ["a", "b", "d", "d/x", "d/y", "e/f/g", "e/f"];

/// What the test remembers across both sides.
#[derive(Debug, Default)]
struct Tracker {
    seq: u64,
    /// Every (path, entry) a user edit wrote.
    written: Vec<(String, Entry)>,
    /// (path, entry) replaced or removed by a user edit on a side that held it.
    superseded: BTreeSet<(String, Entry)>,
}

#[derive(Debug, Clone, Default)]
struct Mem {
    files: BTreeMap<String, (Entry, Vec<u8>)>,
    /// The next `apply` fails after this many changes (a dropped stream).
    fail_after: Option<usize>,
    /// A user edit made right before the next `apply` (a race with the cycle).
    race: Option<(usize, u8)>,
    tracker: Arc<Mutex<Tracker>>,
}

fn entry_of(content: &[u8], exec: bool, link: bool) -> Entry {
    if link {
        Entry::Link {
            target: String::from_utf8_lossy(content).into_owned(),
        }
    } else {
        Entry::File {
            hash: ContentHash::of(content),
            size: content.len() as u64,
            exec,
        }
    }
}

fn parents(p: &str) -> Vec<String> {
    let comps: Vec<&str> = p.split('/').collect();
    (1..comps.len()).map(|n| comps[..n].join("/")).collect()
}

impl Mem {
    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap()
    }

    /// Whether `p` can hold an entry: no parent is an entry (a file where a directory goes).
    fn parents_free(&self, p: &str) -> bool {
        parents(p).iter().all(|d| !self.files.contains_key(d))
    }

    fn children(&self, p: &str) -> Vec<String> {
        let prefix = format!("{p}/");
        self.files
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect()
    }

    /// A user removes `p` (recording what it replaced).
    fn user_remove(&mut self, p: &str) {
        if let Some((e, _)) = self.files.remove(p) {
            self.tracker().superseded.insert((p.to_owned(), e));
        }
    }

    /// A user puts a new version at `p`, clearing what stands in the way (a type change).
    fn user_put(&mut self, p: &str, content: Vec<u8>, exec: bool, link: bool) {
        for d in parents(p) {
            self.user_remove(&d);
        }
        for c in self.children(p) {
            self.user_remove(&c);
        }
        self.user_remove(p);
        let e = entry_of(&content, exec, link);
        self.tracker().written.push((p.to_owned(), e.clone()));
        self.files.insert(p.to_owned(), (e, content));
    }

    fn fresh(&self, tag: &str) -> Vec<u8> {
        let mut t = self.tracker();
        t.seq += 1;
        format!("{tag}-{}", t.seq).into_bytes()
    }

    /// One random user edit.
    fn edit(&mut self, kind: u8, a: usize, b: usize) {
        let (pa, pb) = (PATHS[a % PATHS.len()], PATHS[b % PATHS.len()]);
        match kind % 8 {
            // create or modify
            0 | 1 => {
                let c = self.fresh("v");
                let exec = matches!(
                    self.files.get(pa),
                    Some((Entry::File { exec: true, .. }, _))
                );
                self.user_put(pa, c, exec, false);
            }
            // delete
            2 => {
                self.user_remove(pa);
                for c in self.children(pa) {
                    self.user_remove(&c);
                }
            }
            // rename a → b (new content, as a rename with an edit)
            3 => {
                if let Some((e, c)) = self.files.get(pa).cloned()
                    && pa != pb
                    && !pb.starts_with(&format!("{pa}/"))
                {
                    self.user_remove(pa);
                    let link = matches!(e, Entry::Link { .. });
                    let exec = matches!(e, Entry::File { exec: true, .. });
                    self.user_put(pb, c, exec, link);
                }
            }
            // chmod
            4 => {
                if let Some((Entry::File { exec, .. }, c)) = self.files.get(pa).cloned() {
                    self.user_put(pa, c, !exec, false);
                }
            }
            // symlink
            5 => {
                let c = self.fresh("target");
                self.user_put(pa, c, false, true);
            }
            // type change: a file becomes a directory with a file in it
            6 => {
                let c = self.fresh("child");
                self.user_put(&format!("{pa}/z"), c, false, false);
            }
            // nothing
            _ => {}
        }
    }

    fn cas(&self, path: &str, expected: Option<&Entry>) -> Result<(), ApplyError> {
        let now = self.files.get(path).map(|(e, _)| e);
        if now != expected {
            return Err(ApplyError::Changed(format!("{path} changed")));
        }
        Ok(())
    }
}

impl Endpoint for Mem {
    async fn scan(&mut self) -> Result<Scan, EndpointError> {
        Ok(Scan {
            root_present: true,
            entries: self
                .files
                .iter()
                .map(|(p, (e, _))| (p.clone(), e.clone()))
                .collect(),
            head: None,
        })
    }

    async fn probe(&mut self, paths: Vec<String>) -> Result<Vec<Probe>, EndpointError> {
        Ok(paths.iter().map(|_| Probe::default()).collect())
    }

    async fn read(
        &mut self,
        items: Vec<(String, Entry)>,
    ) -> Result<Vec<Result<Vec<u8>, ApplyError>>, EndpointError> {
        Ok(items
            .iter()
            .map(|(p, e)| {
                self.cas(p, Some(e))?;
                Ok(self
                    .files
                    .get(p)
                    .map(|(_, c)| c.clone())
                    .unwrap_or_default())
            })
            .collect())
    }

    async fn apply(
        &mut self,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<(), ApplyError>>, EndpointError> {
        if let Some((a, k)) = self.race.take() {
            self.edit(k, a, a + 1);
        }
        let mut out = Vec::new();
        for (i, ch) in changes.into_iter().enumerate() {
            if self.fail_after.is_some_and(|n| i >= n) {
                self.fail_after = None;
                return Err(EndpointError("the stream dropped".into()));
            }
            out.push(match ch {
                Change::Write {
                    path,
                    expected,
                    entry,
                    content,
                } => (|| {
                    self.cas(&path, expected.as_ref())?;
                    if !self.parents_free(&path) || !self.children(&path).is_empty() {
                        return Err(ApplyError::Changed(format!("{path}: a type clash")));
                    }
                    self.files.insert(path, (entry, content));
                    Ok(())
                })(),
                Change::Delete { path, expected } => (|| {
                    self.cas(&path, Some(&expected))?;
                    self.files.remove(&path);
                    Ok(())
                })(),
            });
        }
        Ok(out)
    }
}

#[derive(Debug, Clone)]
enum Step {
    Edit(Side, u8, usize, usize),
    Cycle {
        fail: Option<(Side, usize)>,
        race: Option<(Side, usize, u8)>,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (any::<bool>(), 0u8..8, 0usize..7, 0usize..7).prop_map(|(l, k, a, b)| {
            Step::Edit(if l { Side::Local } else { Side::Remote }, k, a, b)
        }),
        2 => (
            proptest::option::weighted(0.2, (any::<bool>(), 0usize..3)),
            proptest::option::weighted(0.2, (any::<bool>(), 0usize..7, 0u8..8)),
        )
            .prop_map(|(fail, race)| Step::Cycle {
                fail: fail.map(|(l, n)| (if l { Side::Local } else { Side::Remote }, n)),
                race: race.map(|(l, a, k)| (if l { Side::Local } else { Side::Remote }, a, k)),
            }),
    ]
}

fn run_cycle(
    state: &mut SyncState,
    l: &mut Mem,
    r: &mut Mem,
    store: &mut Vec<(String, Entry)>,
) -> bool {
    let mut keep = |k: cycle::Kept<'_>| {
        store.push((k.path.to_owned(), k.entry.clone()));
        Ok(())
    };
    let rep = futures::executor::block_on(cycle::run(
        state,
        l,
        r,
        CycleOptions {
            allow_mass_deletion: true,
        },
        &mut keep,
    ));
    match rep {
        Ok(rep) => {
            for c in &rep.conflicts {
                store.push((c.conflict.path.clone(), c.conflict.local.clone()));
                store.push((c.conflict.path.clone(), c.conflict.remote.clone()));
            }
            rep.changed() || !rep.failed.is_empty() || rep.raced > 0 || !rep.conflicts.is_empty()
        }
        Err(_) => true,
    }
}

fn tree(m: &Mem) -> BTreeMap<String, Entry> {
    m.files
        .iter()
        .map(|(p, (e, _))| (p.clone(), e.clone()))
        .collect()
}

fn check(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let mut l = Mem {
        tracker: Arc::clone(&tracker),
        ..Mem::default()
    };
    let mut r = Mem {
        tracker: Arc::clone(&tracker),
        ..Mem::default()
    };
    let mut state = SyncState {
        new_epoch: true,
        ..SyncState::default()
    };
    let mut store = Vec::new();
    for s in steps {
        match s {
            Step::Edit(Side::Local, k, a, b) => l.edit(k, a, b),
            Step::Edit(Side::Remote, k, a, b) => r.edit(k, a, b),
            Step::Cycle { fail, race } => {
                match fail {
                    Some((Side::Local, n)) => l.fail_after = Some(n),
                    Some((Side::Remote, n)) => r.fail_after = Some(n),
                    None => {}
                }
                match race {
                    Some((Side::Local, a, k)) => l.race = Some((a, k)),
                    Some((Side::Remote, a, k)) => r.race = Some((a, k)),
                    None => {}
                }
                run_cycle(&mut state, &mut l, &mut r, &mut store);
                l.fail_after = None;
                r.fail_after = None;
                l.race = None;
                r.race = None;
            }
        }
    }
    // Quiet: cycles until nothing moves; then the user resolves every conflict (taking the
    // local version), which may surface newer edits as new conflicts; repeat.
    for _round in 0..6 {
        let mut quiet = false;
        for _ in 0..12 {
            if !run_cycle(&mut state, &mut l, &mut r, &mut store) {
                quiet = true;
                break;
            }
        }
        prop_assert!(quiet, "the sides never went quiet");
        // Every path agreed on is the same on both sides.
        let (lt, rt) = (tree(&l), tree(&r));
        for (p, e) in &state.ancestor {
            if !state.conflicts.contains_key(p) {
                prop_assert_eq!(lt.get(p), Some(e));
                prop_assert_eq!(rt.get(p), Some(e));
            }
        }
        if state.conflicts.is_empty() {
            break;
        }
        let held: Vec<String> = state.conflicts.keys().cloned().collect();
        for p in held {
            resolve(&mut state, &p, Side::Local).unwrap();
        }
    }
    prop_assert!(state.conflicts.is_empty(), "conflicts kept coming back");
    let (lt, rt) = (tree(&l), tree(&r));
    prop_assert_eq!(&lt, &rt, "quiet sides did not converge");
    let t = tracker.lock().unwrap();
    for (p, e) in &t.written {
        if t.superseded.contains(&(p.clone(), e.clone())) {
            continue;
        }
        let both = lt.get(p) == Some(e) && rt.get(p) == Some(e);
        let stored = store.iter().any(|(sp, se)| sp == p && se == e);
        prop_assert!(
            both || stored,
            "version {e:?} of {p} was lost (local {:?}, sprite {:?})",
            lt.get(p),
            rt.get(p)
        );
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("SYNC_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_edit_is_lost_and_quiet_sides_converge(steps in proptest::collection::vec(step(), 1..40)) {
        check(steps)?;
    }
}
