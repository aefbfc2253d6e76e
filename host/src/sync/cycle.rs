//! One sync cycle over two endpoints: scan both, probe what one side lacks, plan
//! ([`super::plan`]), then apply: deletions, then copies, each a compare-and-swap on the target
//! side; the ancestor moves only for paths that were applied (Unison's invariant, so a cycle
//! may be cut off anywhere: the next one finds both sides equal, or the change still to do).
//! Mass deletions pause instead of applying anything.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

pub use clauderon_sync::Change;
use clauderon_sync::{ApplyError, Entry, Probe, Scan, Tree};

use super::plan::{self, Action, Conflict, Side, View};

/// A side of the sync as the cycle drives it (the local worktree, the sandbox over the wire,
/// or an in-memory tree in tests).
pub trait Endpoint: Send {
    /// Scans the whole side.
    fn scan(&mut self) -> impl Future<Output = Result<Scan, EndpointError>> + Send;
    /// Probes paths the scan lacks.
    fn probe(
        &mut self,
        paths: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Probe>, EndpointError>> + Send;
    /// Reads the content of each path, which should hold the given entry.
    fn read(
        &mut self,
        items: Vec<(String, Entry)>,
    ) -> impl Future<Output = Result<Vec<Result<Vec<u8>, ApplyError>>, EndpointError>> + Send;
    /// Applies changes, each a compare-and-swap; one result per change, in order.
    fn apply(
        &mut self,
        changes: Vec<Change>,
    ) -> impl Future<Output = Result<Vec<Result<(), ApplyError>>, EndpointError>> + Send;
}

/// An endpoint that cannot be reached (the stream is gone): the cycle stops; what it applied
/// so far is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EndpointError(pub String);

/// The durable sync state of a session: the last agreed state of every path, the held
/// conflicts, and whether the next cycle starts a new epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// The ancestor.
    pub ancestor: Tree,
    /// Paths held in conflict.
    pub conflicts: BTreeMap<String, Conflict>,
    /// The next cycle reconciles as a new epoch: union of both sides, nothing deleted.
    pub new_epoch: bool,
}

/// How a cycle runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CycleOptions {
    /// Apply a mass deletion instead of pausing (the user confirmed it).
    pub allow_mass_deletion: bool,
}

/// A conflict found by a cycle, with both versions' bytes for the conflict store.
#[derive(Debug, Clone)]
pub struct FoundConflict {
    /// The conflict.
    pub conflict: Conflict,
    /// The local version's bytes, when they could be read.
    pub local: Option<Vec<u8>>,
    /// The sandbox version's bytes, when they could be read.
    pub remote: Option<Vec<u8>>,
}

/// What a cycle did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Changes applied on the local side.
    pub to_local: usize,
    /// Changes applied on the sandbox side.
    pub to_remote: usize,
    /// New conflicts.
    pub conflicts: Vec<FoundConflict>,
    /// Files that gave way to a directory on the other side (kept in the conflict store
    /// through the cycle's [`Keep`] before they were removed).
    pub kept: Vec<(Side, String)>,
    /// Conflicts that went away (both sides agree again).
    pub resolved: Vec<String>,
    /// Changes not made, with why (retried by the next cycle).
    pub failed: Vec<(String, String)>,
    /// Changes skipped because a side changed meanwhile (the next cycle sees the new state).
    pub raced: usize,
    /// Set when the cycle paused instead of applying: why.
    pub paused: Option<String>,
    /// The local side's checked-out commit.
    pub local_head: Option<String>,
    /// The sandbox side's checked-out commit.
    pub remote_head: Option<String>,
}

impl Report {
    /// Whether the cycle changed anything on either side, or released held paths (whose
    /// content the next cycle then carries).
    pub fn changed(&self) -> bool {
        self.to_local + self.to_remote > 0 || !self.resolved.is_empty()
    }
}

/// A version a cycle is about to remove from its side, handed over before the removal so it
/// is stored durably first (a file giving way to a directory the other side filled).
#[derive(Debug, Clone)]
pub struct Kept<'a> {
    /// The side it is removed from.
    pub side: Side,
    /// The path.
    pub path: &'a str,
    /// The version.
    pub entry: &'a Entry,
    /// Its bytes (empty for a link).
    pub bytes: &'a [u8],
}

/// Where a cycle keeps versions before removing them; an error leaves the file in place.
pub type Keep<'k> = dyn FnMut(Kept<'_>) -> Result<(), String> + Send + 'k;

/// More deleted than this in one cycle on one side pauses the sync.
pub const MASS_DELETION: usize = 100;

/// Why deleting `n` paths of `ancestor` on `side` is a mass deletion, if it is.
fn mass_deletion(side: Side, n: usize, ancestor: usize, emptied: bool) -> Option<String> {
    let who = match side {
        Side::Local => "the sprite",
        Side::Remote => "the local worktree",
    };
    if emptied && ancestor > 0 {
        return Some(format!(
            "mass deletion: {who} is empty ({ancestor} synced file(s) gone); not propagated"
        ));
    }
    // The half rule needs a tree of some size: in a small one, "emptied" is the guard.
    if n > MASS_DELETION || (ancestor >= 10 && n * 2 > ancestor) {
        return Some(format!(
            "mass deletion: {n} of {ancestor} synced file(s) deleted in {who} at once; not propagated"
        ));
    }
    None
}

/// Bytes of content moved per batch (reads, then writes).
const BATCH_BYTES: u64 = 16 << 20;
/// Changes per batch.
const BATCH_ITEMS: usize = 4096;
/// The first copy batch's bounds (see [`batches`]).
const FIRST_BATCH_ITEMS: usize = 64;
const FIRST_BATCH_BYTES: u64 = 1 << 20;

fn side_mut<'a, L: Endpoint, R: Endpoint>(
    side: Side,
    local: &'a mut L,
    remote: &'a mut R,
) -> Either<'a, L, R> {
    match side {
        Side::Local => Either::L(local),
        Side::Remote => Either::R(remote),
    }
}

enum Either<'a, L, R> {
    L(&'a mut L),
    R(&'a mut R),
}

impl<L: Endpoint, R: Endpoint> Either<'_, L, R> {
    async fn read(
        &mut self,
        items: Vec<(String, Entry)>,
    ) -> Result<Vec<Result<Vec<u8>, ApplyError>>, EndpointError> {
        match self {
            Either::L(e) => e.read(items).await,
            Either::R(e) => e.read(items).await,
        }
    }
    async fn apply(
        &mut self,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<(), ApplyError>>, EndpointError> {
        match self {
            Either::L(e) => e.apply(changes).await,
            Either::R(e) => e.apply(changes).await,
        }
    }
}

fn size_of(e: &Entry) -> u64 {
    match e {
        Entry::File { size, .. } => *size,
        Entry::Link { .. } => 0,
    }
}

fn record(report: &mut Report, side: Side, path: &str, r: Result<(), ApplyError>) -> bool {
    match r {
        Ok(()) => {
            match side {
                Side::Local => report.to_local += 1,
                Side::Remote => report.to_remote += 1,
            }
            true
        }
        Err(ApplyError::Changed(_)) => {
            report.raced += 1;
            false
        }
        Err(e) => {
            report.failed.push((path.to_owned(), e.to_string()));
            false
        }
    }
}

/// Runs one cycle, updating `state` for every path it settled.
pub async fn run<L: Endpoint, R: Endpoint>(
    state: &mut SyncState,
    local: &mut L,
    remote: &mut R,
    opts: CycleOptions,
    keep: &mut Keep<'_>,
) -> Result<Report, EndpointError> {
    let mut report = Report::default();
    let started = std::time::Instant::now();
    // The two sides scan at once (one is this host's disk, the other the sandbox's).
    let (ls, rs) = tokio::join!(local.scan(), remote.scan());
    let (ls, rs) = (ls?, rs?);
    let t_scan = started.elapsed();
    report.local_head = ls.head.clone();
    report.remote_head = rs.head.clone();
    for (side, scan) in [(Side::Local, &ls), (Side::Remote, &rs)] {
        if !scan.root_present {
            report.paused = Some(format!(
                "the {} root directory is gone; nothing is propagated until it is back",
                side.name()
            ));
            return Ok(report);
        }
    }
    let epoch = state.new_epoch;
    let mut ancestor = if epoch {
        Tree::new()
    } else {
        state.ancestor.clone()
    };
    if !opts.allow_mass_deletion {
        // A side emptied: its own deletions would go to the other side.
        for (target, scan) in [(Side::Remote, &ls), (Side::Local, &rs)] {
            if let Some(why) = mass_deletion(target, 0, ancestor.len(), scan.entries.is_empty()) {
                report.paused = Some(why);
                return Ok(report);
            }
        }
    }
    let (lp, rp) = plan::to_probe(&ancestor, &ls.entries, &rs.entries);
    let (lprobed, rprobed) = tokio::join!(local.probe(lp.clone()), remote.probe(rp.clone()));
    let lprobes = zip(lp, lprobed?);
    let rprobes = zip(rp, rprobed?);
    let t_probe = started.elapsed();
    let held: BTreeSet<String> = state.conflicts.keys().cloned().collect();
    let mut plan = plan::reconcile(
        &ancestor,
        &held,
        View {
            tree: &ls.entries,
            probes: &lprobes,
        },
        View {
            tree: &rs.entries,
            probes: &rprobes,
        },
    );
    if epoch {
        settle_by_old_ancestor(&mut plan, &state.ancestor);
    }
    if !opts.allow_mass_deletion {
        for side in [Side::Local, Side::Remote] {
            if let Some(why) = mass_deletion(side, plan.deletions_on(side), ancestor.len(), false) {
                report.paused = Some(why);
                return Ok(report);
            }
        }
    }
    for (p, e) in &plan.agreed {
        match e {
            Some(e) => ancestor.insert(p.clone(), e.clone()),
            None => ancestor.remove(p),
        };
    }
    for p in &plan.resolved {
        state.conflicts.remove(p);
    }
    report.resolved = plan.resolved.clone();

    let t_plan = started.elapsed();
    let outcome = apply(&plan, &mut ancestor, local, remote, &mut report, keep).await;
    tracing::debug!(
        scan_ms = t_scan.as_millis() as u64,
        probe_ms = (t_probe - t_scan).as_millis() as u64,
        plan_ms = (t_plan - t_probe).as_millis() as u64,
        apply_ms = (started.elapsed() - t_plan).as_millis() as u64,
        "sync cycle phases"
    );
    if outcome.is_ok() || !epoch {
        state.ancestor = ancestor;
    }
    outcome?;
    // Conflicts last: both versions stay in place; their bytes go to the conflict store.
    for c in plan.conflicts {
        let lb = local
            .read(vec![(c.path.clone(), c.local.clone())])
            .await?
            .pop()
            .and_then(Result::ok);
        let rb = remote
            .read(vec![(c.path.clone(), c.remote.clone())])
            .await?
            .pop()
            .and_then(Result::ok);
        state.conflicts.insert(c.path.clone(), c.clone());
        report.conflicts.push(FoundConflict {
            conflict: c,
            local: lb,
            remote: rb,
        });
    }
    state.new_epoch = false;
    Ok(report)
}

/// A new epoch plans against nothing (so nothing is deleted), which makes every path the two
/// sides hold differently a conflict. Where one side still holds the last agreed version, only
/// the other side changed it (an edit made since, or the state a restore brought back): that
/// version goes across instead.
fn settle_by_old_ancestor(plan: &mut plan::Plan, old: &Tree) {
    let conflicts = std::mem::take(&mut plan.conflicts);
    for c in conflicts {
        let from = match old.get(&c.path) {
            Some(a) if *a == c.local => Side::Remote,
            Some(a) if *a == c.remote => Side::Local,
            _ => {
                plan.conflicts.push(c);
                continue;
            }
        };
        let (entry, expected) = match from {
            Side::Local => (c.local, c.remote),
            Side::Remote => (c.remote, c.local),
        };
        plan.actions.push(Action::Copy {
            path: c.path,
            from,
            entry,
            expected: Some(expected),
        });
    }
}

fn zip(paths: Vec<String>, probes: Vec<Probe>) -> BTreeMap<String, Probe> {
    paths.into_iter().zip(probes).collect()
}

async fn apply<L: Endpoint, R: Endpoint>(
    plan: &plan::Plan,
    ancestor: &mut Tree,
    local: &mut L,
    remote: &mut R,
    report: &mut Report,
    keeper: &mut Keep<'_>,
) -> Result<(), EndpointError> {
    // Deletions first (deepest paths first), so a type change (a file becoming a directory)
    // frees its path before the copies arrive.
    for side in [Side::Local, Side::Remote] {
        let mut dels: Vec<(&String, &Entry)> = Vec::new();
        for a in &plan.actions {
            let Action::Delete {
                path,
                on,
                expected,
                keep,
            } = a
            else {
                continue;
            };
            if *on != side {
                continue;
            }
            if *keep {
                // Its bytes first; a file that cannot be read now is left for the next cycle.
                let got = side_mut(side, local, remote)
                    .read(vec![(path.clone(), expected.clone())])
                    .await?
                    .pop();
                let stored = match got {
                    Some(Ok(bytes)) => keeper(Kept {
                        side,
                        path,
                        entry: expected,
                        bytes: &bytes,
                    }),
                    _ => Err(String::new()),
                };
                match stored {
                    Ok(()) => report.kept.push((side, path.clone())),
                    Err(e) if e.is_empty() => {
                        report.raced += 1;
                        continue;
                    }
                    Err(e) => {
                        report.failed.push((path.clone(), e));
                        continue;
                    }
                }
            }
            dels.push((path, expected));
        }
        dels.sort_by(|a, b| b.0.cmp(a.0));
        for chunk in dels.chunks(BATCH_ITEMS) {
            let changes = chunk
                .iter()
                .map(|(p, e)| Change::Delete {
                    path: (*p).clone(),
                    expected: (*e).clone(),
                })
                .collect();
            let results = side_mut(side, local, remote).apply(changes).await?;
            for ((p, _), r) in chunk.iter().zip(results) {
                if record(report, side, p, r) {
                    ancestor.remove(*p);
                }
            }
        }
    }
    // Copies, shallow paths first, in batches bounded by bytes.
    for from in [Side::Local, Side::Remote] {
        let copies: Vec<Copy<'_>> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Copy {
                    path,
                    from: f,
                    entry,
                    expected,
                } if *f == from => Some((path, entry, expected)),
                _ => None,
            })
            .collect();
        match from {
            Side::Local => copy(from, &copies, local, remote, ancestor, report).await?,
            Side::Remote => copy(from, &copies, remote, local, ancestor, report).await?,
        }
    }
    Ok(())
}

/// A copy to make: the path, the entry to copy, what the target side should hold now.
type Copy<'a> = (&'a String, &'a Entry, &'a Option<Entry>);

/// The copies split into batches bounded by items and bytes. The first batches are small and
/// each is twice the last, up to the bounds: the first read is not overlapped with anything,
/// so it should be short.
fn batches<'a, 'c>(copies: &'c [Copy<'a>]) -> Vec<&'c [Copy<'a>]> {
    let mut out = Vec::new();
    let mut start = 0;
    let (mut items, mut max_bytes) = (FIRST_BATCH_ITEMS, FIRST_BATCH_BYTES);
    while start < copies.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < copies.len()
            && end - start < items
            && (end == start || bytes + size_of(copies[end].1) <= max_bytes)
        {
            bytes += size_of(copies[end].1);
            end += 1;
        }
        out.push(&copies[start..end]);
        start = end;
        items = (items * 2).min(BATCH_ITEMS);
        max_bytes = (max_bytes * 2).min(BATCH_BYTES);
    }
    out
}

fn read_items(batch: &[Copy<'_>]) -> Vec<(String, Entry)> {
    batch
        .iter()
        .map(|(p, e, _)| ((*p).clone(), (*e).clone()))
        .collect()
}

/// Copies from `src` (side `from`) to `dst` in batches, reading the next batch while the
/// current one is applied (the two sides work at once, so a large sync costs about the slower
/// side's time, not the sum).
async fn copy<S: Endpoint, D: Endpoint>(
    from: Side,
    copies: &[Copy<'_>],
    src: &mut S,
    dst: &mut D,
    ancestor: &mut Tree,
    report: &mut Report,
) -> Result<(), EndpointError> {
    let target = from.other();
    let batches = batches(copies);
    let mut next = match batches.first() {
        Some(b) => Some(src.read(read_items(b)).await?),
        None => None,
    };
    for (i, chunk) in batches.iter().enumerate() {
        let Some(contents) = next.take() else { break };
        let mut changes = Vec::new();
        let mut which = Vec::new();
        for ((p, e, x), c) in chunk.iter().zip(contents) {
            match c {
                Ok(content) => {
                    changes.push(Change::Write {
                        path: (*p).clone(),
                        expected: (*x).clone(),
                        entry: (*e).clone(),
                        content,
                    });
                    which.push((*p, *e));
                }
                Err(e) => {
                    record(report, from, p, Err(e));
                }
            }
        }
        let following = batches.get(i + 1).map(|b| read_items(b));
        let read_next = async {
            match following {
                Some(items) => src.read(items).await.map(Some),
                None => Ok(None),
            }
        };
        let apply = async {
            if changes.is_empty() {
                Ok(Vec::new())
            } else {
                dst.apply(changes).await
            }
        };
        let (results, read) = tokio::join!(apply, read_next);
        for ((p, e), r) in which.into_iter().zip(results?) {
            if record(report, target, p, r) {
                ancestor.insert(p.clone(), e.clone());
            }
        }
        next = read?;
    }
    Ok(())
}

/// Paths whose local state differs from the ancestor (changes waiting for the sandbox, e.g.
/// while it hibernates).
pub fn pending(ancestor: &Tree, side: &Tree) -> usize {
    let gone = ancestor.keys().filter(|p| !side.contains_key(*p)).count();
    let changed = side
        .iter()
        .filter(|(p, e)| ancestor.get(*p) != Some(e))
        .count();
    gone + changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_batches_start_small_double_and_stay_within_their_bounds() {
        let entry = |size| Entry::File {
            hash: clauderon_sync::ContentHash::of(b""),
            size,
            exec: false,
        };
        let none = None;
        let (paths, small, big): (Vec<String>, _, _) = (
            (0..20_000).map(|i| format!("f{i}")).collect(),
            entry(10),
            entry(BATCH_BYTES),
        );
        let copies: Vec<Copy<'_>> = paths.iter().map(|p| (p, &small, &none)).collect();
        let sizes: Vec<usize> = batches(&copies).iter().map(|b| b.len()).collect();
        assert_eq!(&sizes[..7], &[64, 128, 256, 512, 1024, 2048, 4096]);
        assert!(sizes[7..].iter().all(|n| *n <= BATCH_ITEMS));
        assert_eq!(sizes.iter().sum::<usize>(), copies.len());
        // A file as large as the bound travels alone.
        let mixed: Vec<Copy<'_>> = paths[..6]
            .iter()
            .enumerate()
            .map(|(i, p)| (p, if i % 2 == 0 { &big } else { &small }, &none))
            .collect();
        let sizes: Vec<usize> = batches(&mixed).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![1; 6]);
    }
}
