//! A session's caches as the create flow resolved them: which store they go to (project and
//! scope), and each cache's paths and environment in the sandbox. Kept in the store with the
//! session, so every agent start gets the same environment and every save the same paths;
//! keys are computed again at each save (the lockfile may have changed).

use std::collections::BTreeMap;

use super::kinds::{self, Item, Keys};
use super::probe::Facts;
use crate::session::CacheScope;

/// What a session caches and where.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// The project's key (16 hex digits).
    pub project_key: String,
    /// The project as a person reads it.
    pub project: String,
    /// The scope.
    pub scope: CacheScope,
    /// The store's key (`p-…` or `s-…`).
    pub store_key: String,
    /// The base branch (custom directories are keyed by it).
    pub branch: String,
    /// The workspace inside the sandbox.
    pub workspace: String,
    /// Each cache.
    pub items: Vec<Item>,
}

impl Plan {
    /// The environment every agent start gets (the items' variables, first one wins).
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for i in &self.items {
            for (k, v) in &i.env {
                env.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        env
    }

    /// The custom directories as the user gave them, in order: the probe's arguments.
    pub fn probe_dirs(&self) -> Vec<String> {
        self.items
            .iter()
            .filter_map(|i| match &i.cache {
                crate::session::BuildCache::Dir(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every path of every item (what a running build may be writing).
    pub fn all_paths(&self) -> Vec<String> {
        self.items.iter().flat_map(|i| i.paths.clone()).collect()
    }

    /// The keys of every item given a probe's facts: `(item, keys or why not)`.
    pub fn keys<'a>(&'a self, f: &Facts) -> Vec<(&'a Item, Result<Keys, String>)> {
        let mut dir_index = 0;
        self.items
            .iter()
            .map(|i| {
                let dir = i.paths.first().map(String::as_str).unwrap_or("");
                let k = kinds::keys(&i.cache, f, &self.branch, dir_index, dir);
                if matches!(i.cache, crate::session::BuildCache::Dir(_)) {
                    dir_index += 1;
                }
                (i, k)
            })
            .collect()
    }
}
