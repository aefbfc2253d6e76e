//! The three-way decision, pure: from the last agreed state of every path (the ancestor) and
//! each side's scan, what to copy, delete, agree on, or hold as a conflict. No I/O, so the
//! property test can run it thousands of times in memory.
//!
//! Rules per path, with A the ancestor, L and R the two sides (`None`: absent):
//! - L = R: agreed (identical changes on both sides are no conflict);
//! - only one side differs from A: that side's change propagates (a deletion too);
//! - both differ, one deleted: the modification wins (copied back to the deleting side);
//! - both differ, both present: a conflict; each side keeps its own version, the path is held;
//! - a path one side has but ignores, or has as something the sync does not carry, is out of
//!   scope: never deleted, never written, dropped from the ancestor.

use std::collections::{BTreeMap, BTreeSet};

use clauderon_sync::{Entry, Probe, Tree};

/// One of the two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The host's worktree.
    Local,
    /// The sandbox's workspace.
    Remote,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Local => Side::Remote,
            Side::Remote => Side::Local,
        }
    }

    /// How the user calls it.
    pub fn name(self) -> &'static str {
        match self {
            Side::Local => "local",
            Side::Remote => "sprite",
        }
    }
}

/// A path changed differently on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The path.
    pub path: String,
    /// The local version.
    pub local: Entry,
    /// The sandbox's version.
    pub remote: Entry,
}

/// One change to make on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Put `from`'s `entry` on the other side, where `expected` is now.
    Copy {
        /// The path.
        path: String,
        /// The side the version comes from.
        from: Side,
        /// The version.
        entry: Entry,
        /// What the target side holds now (the compare-and-swap guard).
        expected: Option<Entry>,
    },
    /// Remove the path on `on`, which holds `expected`.
    Delete {
        /// The path.
        path: String,
        /// The side to delete on.
        on: Side,
        /// What it holds now.
        expected: Entry,
        /// Keep its bytes in the conflict store first: an edited file giving way to a
        /// directory the other side filled (a file-versus-directory conflict).
        keep: bool,
    },
}

impl Action {
    /// The path the action is about.
    pub fn path(&self) -> &str {
        match self {
            Action::Copy { path, .. } | Action::Delete { path, .. } => path,
        }
    }

    /// The side it changes.
    pub fn target(&self) -> Side {
        match self {
            Action::Copy { from, .. } => from.other(),
            Action::Delete { on, .. } => *on,
        }
    }
}

/// What a cycle should do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Changes to apply (each updates the ancestor only once it succeeded).
    pub actions: Vec<Action>,
    /// Ancestor updates needing no transfer: both sides agree (`None`: the path is gone, or
    /// left the sync's scope).
    pub agreed: Vec<(String, Option<Entry>)>,
    /// New conflicts (paths held from now on).
    pub conflicts: Vec<Conflict>,
    /// Held paths whose two sides agree again: no longer conflicts.
    pub resolved: Vec<String>,
}

impl Plan {
    /// Deletions the plan would make on `side`.
    pub fn deletions_on(&self, side: Side) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::Delete { on, .. } if *on == side))
            .count()
    }
}

/// One side as the planner sees it: its scan, and probes for paths the scan lacks.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Every synced path of the side.
    pub tree: &'a Tree,
    /// Probes of paths missing from `tree` (a path not probed counts as absent and not ignored).
    pub probes: &'a BTreeMap<String, Probe>,
}

impl View<'_> {
    fn probe(&self, path: &str) -> Probe {
        self.probes.get(path).copied().unwrap_or_default()
    }
}

/// For each directory of a side (a parent of one of its paths): whether anything under it
/// differs from the ancestor.
fn dirs(tree: &Tree, ancestor: &Tree) -> BTreeMap<String, bool> {
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    for (p, e) in tree {
        let changed = ancestor.get(p) != Some(e);
        let mut at = 0;
        while let Some(i) = p[at..].find('/') {
            let d = &p[..at + i];
            *out.entry(d.to_owned()).or_default() |= changed;
            at += i + 1;
        }
    }
    out
}

/// Paths each side must be probed for: those it lacks that the ancestor or the other side has.
pub fn to_probe(ancestor: &Tree, local: &Tree, remote: &Tree) -> (Vec<String>, Vec<String>) {
    let missing = |mine: &Tree, other: &Tree| -> Vec<String> {
        ancestor
            .keys()
            .chain(other.keys())
            .filter(|p| !mine.contains_key(*p))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    (missing(local, remote), missing(remote, local))
}

/// The plan for one cycle. `held` are paths in conflict (left alone until resolved, unless
/// both sides agree again).
pub fn reconcile(
    ancestor: &Tree,
    held: &BTreeSet<String>,
    local: View<'_>,
    remote: View<'_>,
) -> Plan {
    let mut plan = Plan::default();
    let paths: BTreeSet<&String> = ancestor
        .keys()
        .chain(local.tree.keys())
        .chain(remote.tree.keys())
        .chain(held.iter())
        .collect();
    let (ldirs, rdirs) = (dirs(local.tree, ancestor), dirs(remote.tree, ancestor));
    for path in paths {
        if held_above(held, path) {
            continue;
        }
        let a = ancestor.get(path);
        let l = local.tree.get(path);
        let r = remote.tree.get(path);
        // Out of scope on a side: something is there that the sync does not carry (an ignored
        // file, a special file), or the path is ignored there.
        let out_of_scope = (l.is_none() && (local.probe(path).exists || local.probe(path).ignored))
            || (r.is_none() && (remote.probe(path).exists || remote.probe(path).ignored));
        if out_of_scope {
            if a.is_some() {
                plan.agreed.push((path.clone(), None));
            }
            continue;
        }
        if l == r {
            if held.contains(path) {
                plan.resolved.push(path.clone());
            }
            if a != l {
                plan.agreed.push((path.clone(), l.cloned()));
            }
            continue;
        }
        if held.contains(path) {
            continue;
        }
        // A file edited on one side where the other side filled a directory: the directory
        // stays, the file goes to the conflict store (nothing is lost, nothing is stuck).
        for (side, mine, theirs) in [(Side::Local, l, &rdirs), (Side::Remote, r, &ldirs)] {
            if let Some(e) = mine
                && mine != a
                && theirs.get(path.as_str()) == Some(&true)
            {
                plan.actions.push(Action::Delete {
                    path: path.clone(),
                    on: side,
                    expected: e.clone(),
                    keep: true,
                });
            }
        }
        if plan
            .actions
            .last()
            .is_some_and(|x| x.path() == path.as_str())
        {
            continue;
        }
        let copy = |from: Side, entry: &Entry, expected: Option<&Entry>| Action::Copy {
            path: path.clone(),
            from,
            entry: entry.clone(),
            expected: expected.cloned(),
        };
        match (l == a, r == a) {
            // Only the sandbox changed.
            (true, false) => plan.actions.push(match (r, l) {
                (Some(r), l) => copy(Side::Remote, r, l),
                (None, Some(l)) => Action::Delete {
                    path: path.clone(),
                    on: Side::Local,
                    expected: l.clone(),
                    keep: false,
                },
                (None, None) => unreachable_both_absent(),
            }),
            // Only the local side changed.
            (false, true) => plan.actions.push(match (l, r) {
                (Some(l), r) => copy(Side::Local, l, r),
                (None, Some(r)) => Action::Delete {
                    path: path.clone(),
                    on: Side::Remote,
                    expected: r.clone(),
                    keep: false,
                },
                (None, None) => unreachable_both_absent(),
            }),
            // Both changed (or a new epoch, where nothing is agreed): modify beats delete.
            _ => match (l, r) {
                (Some(l), None) => plan.actions.push(copy(Side::Local, l, None)),
                (None, Some(r)) => plan.actions.push(copy(Side::Remote, r, None)),
                (Some(l), Some(r)) => plan.conflicts.push(Conflict {
                    path: path.clone(),
                    local: l.clone(),
                    remote: r.clone(),
                }),
                (None, None) => {}
            },
        }
    }
    plan
}

/// Whether a directory above `path` is held (its content waits with it).
fn held_above(held: &BTreeSet<String>, path: &str) -> bool {
    let mut at = 0;
    while let Some(i) = path[at..].find('/') {
        if held.contains(&path[..at + i]) {
            return true;
        }
        at += i + 1;
    }
    false
}

/// `l == r` was handled first, so two absent sides never reach the match arms.
fn unreachable_both_absent() -> Action {
    unreachable!("two absent sides are equal and handled before")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clauderon_sync::ContentHash;

    fn f(s: &str) -> Entry {
        Entry::File {
            hash: ContentHash::of(s.as_bytes()),
            size: s.len() as u64,
            exec: false,
        }
    }

    fn tree(items: &[(&str, &str)]) -> Tree {
        items.iter().map(|(p, c)| ((*p).to_owned(), f(c))).collect()
    }

    fn plan(a: &Tree, l: &Tree, r: &Tree) -> Plan {
        let none = BTreeMap::new();
        reconcile(
            a,
            &BTreeSet::new(),
            View {
                tree: l,
                probes: &none,
            },
            View {
                tree: r,
                probes: &none,
            },
        )
    }

    #[test]
    fn one_sided_changes_propagate_and_identical_ones_agree() {
        let a = tree(&[("x", "1"), ("y", "1"), ("z", "1")]);
        let l = tree(&[("x", "2"), ("y", "1"), ("z", "3"), ("n", "new")]);
        let r = tree(&[("x", "1"), ("z", "3")]);
        let p = plan(&a, &l, &r);
        assert!(p.conflicts.is_empty());
        assert!(p.actions.contains(&Action::Copy {
            path: "x".into(),
            from: Side::Local,
            entry: f("2"),
            expected: Some(f("1")),
        }));
        assert!(p.actions.contains(&Action::Delete {
            path: "y".into(),
            on: Side::Local,
            expected: f("1"),
            keep: false,
        }));
        assert!(p.agreed.contains(&("z".into(), Some(f("3")))));
        assert_eq!(p.actions.len(), 3, "{p:?}");
    }

    #[test]
    fn modify_beats_delete_and_different_edits_conflict() {
        let a = tree(&[("m", "1"), ("c", "1")]);
        let l = tree(&[("c", "local")]);
        let r = tree(&[("m", "2"), ("c", "sprite")]);
        let p = plan(&a, &l, &r);
        assert_eq!(
            p.actions,
            vec![Action::Copy {
                path: "m".into(),
                from: Side::Remote,
                entry: f("2"),
                expected: None,
            }]
        );
        assert_eq!(p.conflicts.len(), 1);
        assert_eq!(p.conflicts[0].path, "c");
    }

    #[test]
    fn a_new_epoch_never_deletes() {
        let l = tree(&[("a", "1"), ("b", "2")]);
        let r = tree(&[("a", "1"), ("c", "3")]);
        let p = plan(&Tree::new(), &l, &r);
        assert_eq!(
            p.deletions_on(Side::Local) + p.deletions_on(Side::Remote),
            0
        );
        assert_eq!(p.actions.len(), 2);
    }

    #[test]
    fn paths_out_of_scope_on_one_side_are_never_deleted() {
        let a = tree(&[("env", "1")]);
        let l = tree(&[("env", "2")]);
        let r = Tree::new();
        let probes: BTreeMap<String, Probe> = [(
            "env".to_owned(),
            Probe {
                exists: true,
                ignored: true,
            },
        )]
        .into();
        let none = BTreeMap::new();
        let p = reconcile(
            &a,
            &BTreeSet::new(),
            View {
                tree: &l,
                probes: &none,
            },
            View {
                tree: &r,
                probes: &probes,
            },
        );
        assert!(p.actions.is_empty());
        assert_eq!(p.agreed, vec![("env".into(), None)]);
    }
}
