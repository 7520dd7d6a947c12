//! The host's copy of every loaded code version, bounded and least-recently-used.
//!
//! Workers are processes that can die. To rebuild a respawned worker the host must still hold the
//! source of every version it promised to serve, and replay them in the order they were loaded
//! (a later load of a version replaces an earlier one, so order decides what the worker ends up
//! with). This cache is that memory. It is bounded by `code_version_cache_size`: loading past the
//! bound evicts the least recently used version (used = loaded or executed), after which the host
//! refuses executions of it with `VersionNotFound` instead of sending them to a worker.
//!
//! Every insert is stamped with a load sequence number, increasing across the cache's life. The
//! dispatcher uses it to replay in load order and to tell a version's current load from an older
//! one (so the outcome of a stale load never removes a newer copy).

use lru::LruCache;
use roma_core::CodeObject;
use std::num::NonZeroUsize;
use std::sync::Arc;

/// One cached version: its source and the sequence number of the load that put it here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedVersion {
    /// Load sequence number; higher is later.
    pub seq: u64,
    /// The code as it was loaded.
    pub code: Arc<CodeObject>,
}

/// A bounded LRU map from version string to the code last loaded under it.
#[derive(Debug)]
pub struct VersionCache {
    lru: LruCache<String, CachedVersion>,
    next_seq: u64,
}

impl VersionCache {
    /// Capacity used when the configured size is 0 (matches [`roma_core::EngineLimits`]' engine-side
    /// default, so host and worker caches evict at the same size).
    pub const DEFAULT_CAPACITY: usize = 64;

    /// An empty cache holding at most `capacity` versions (0 means [`Self::DEFAULT_CAPACITY`]).
    pub fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity)
            .unwrap_or(NonZeroUsize::new(Self::DEFAULT_CAPACITY).unwrap_or(NonZeroUsize::MIN));
        VersionCache {
            lru: LruCache::new(cap),
            next_seq: 1,
        }
    }

    /// How many versions fit.
    pub fn capacity(&self) -> usize {
        self.lru.cap().get()
    }

    /// How many versions are held.
    pub fn len(&self) -> usize {
        self.lru.len()
    }

    /// Whether no version is held.
    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }

    /// Records a load of `code` (replacing the same version, if held) and marks it most
    /// recently used. Returns the load's sequence number and the version evicted to make room,
    /// if any (a replaced copy of the same version is not reported as evicted).
    pub fn insert(&mut self, code: Arc<CodeObject>) -> (u64, Option<CachedVersion>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let version = code.version_string.clone();
        // `push` also hands back the old value of a replaced key; that is no eviction.
        let replacing = self.lru.contains(&version);
        let popped = self.lru.push(version, CachedVersion { seq, code });
        let evicted = if replacing {
            None
        } else {
            popped.map(|(_, old)| old)
        };
        (seq, evicted)
    }

    /// The code of `version`, marking it most recently used.
    pub fn get(&mut self, version: &str) -> Option<Arc<CodeObject>> {
        self.lru.get(version).map(|v| Arc::clone(&v.code))
    }

    /// Marks `version` most recently used; false when it is not held.
    pub fn touch(&mut self, version: &str) -> bool {
        self.lru.get(version).is_some()
    }

    /// The entry for `version`, without changing recency.
    pub fn peek(&self, version: &str) -> Option<&CachedVersion> {
        self.lru.peek(version)
    }

    /// Removes `version` if its entry is still the one loaded with `seq`; true when removed.
    pub fn remove_if_seq(&mut self, version: &str, seq: u64) -> bool {
        if self.lru.peek(version).is_some_and(|v| v.seq == seq) {
            self.lru.pop(version);
            true
        } else {
            false
        }
    }

    /// Every held version, oldest load first: the order to replay into a fresh worker.
    pub fn in_load_order(&self) -> Vec<CachedVersion> {
        self.loaded_before(u64::MAX)
    }

    /// The held versions whose load sequence number is below `seq`, oldest load first.
    pub fn loaded_before(&self, seq: u64) -> Vec<CachedVersion> {
        let mut out: Vec<CachedVersion> = self
            .lru
            .iter()
            .filter(|(_, v)| v.seq < seq)
            .map(|(_, v)| v.clone())
            .collect();
        out.sort_by_key(|v| v.seq);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(version: &str, js: &str) -> Arc<CodeObject> {
        Arc::new(CodeObject {
            version_string: version.into(),
            js: js.into(),
            ..Default::default()
        })
    }

    #[test]
    fn zero_capacity_means_default() {
        assert_eq!(
            VersionCache::new(0).capacity(),
            VersionCache::DEFAULT_CAPACITY
        );
        assert_eq!(VersionCache::new(3).capacity(), 3);
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut c = VersionCache::new(2);
        assert_eq!(c.insert(code("v1", "a")).1, None);
        assert_eq!(c.insert(code("v2", "b")).1, None);
        assert!(c.touch("v1"));
        let (_, evicted) = c.insert(code("v3", "c"));
        assert_eq!(
            evicted.map(|e| e.code.version_string.clone()),
            Some("v2".into())
        );
        assert!(c.peek("v2").is_none());
        assert!(c.get("v1").is_some());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn replacing_a_version_is_not_an_eviction_and_moves_it_last() {
        let mut c = VersionCache::new(2);
        c.insert(code("v1", "a"));
        c.insert(code("v2", "b"));
        let (seq, evicted) = c.insert(code("v1", "a2"));
        assert_eq!(evicted, None);
        let order: Vec<_> = c
            .in_load_order()
            .iter()
            .map(|v| (v.code.version_string.clone(), v.code.js.clone()))
            .collect();
        assert_eq!(
            order,
            vec![("v2".into(), "b".into()), ("v1".into(), "a2".into())]
        );
        assert_eq!(c.peek("v1").map(|v| v.seq), Some(seq));
    }

    #[test]
    fn remove_only_the_matching_load() {
        let mut c = VersionCache::new(4);
        let (old, _) = c.insert(code("v1", "a"));
        let (new, _) = c.insert(code("v1", "b"));
        assert!(!c.remove_if_seq("v1", old));
        assert!(c.peek("v1").is_some());
        assert!(c.remove_if_seq("v1", new));
        assert!(c.is_empty());
        assert!(!c.remove_if_seq("v1", new));
    }

    #[test]
    fn loaded_before_filters_by_sequence() {
        let mut c = VersionCache::new(4);
        let (s1, _) = c.insert(code("a", "1"));
        let (s2, _) = c.insert(code("b", "1"));
        c.insert(code("c", "1"));
        let names: Vec<_> = c.loaded_before(s2).into_iter().map(|v| v.seq).collect();
        assert_eq!(names, vec![s1]);
    }

    proptest! {
        /// Against a model: the cache holds exactly the `cap` most recently used versions, in
        /// load order, each with its latest code.
        #[test]
        fn matches_a_model(cap in 1usize..5, ops in proptest::collection::vec((0u8..6, any::<bool>()), 0..60)) {
            let mut c = VersionCache::new(cap);
            // model: versions by recency (last = most recent), with (seq, js)
            let mut model: Vec<(String, u64, String)> = Vec::new();
            for (i, (v, is_load)) in ops.into_iter().enumerate() {
                let name = format!("v{v}");
                if is_load {
                    let js = format!("js{i}");
                    let (seq, evicted) = c.insert(code(&name, &js));
                    model.retain(|(n, _, _)| *n != name);
                    model.push((name.clone(), seq, js));
                    let expect_evicted = if model.len() > cap { Some(model.remove(0).0) } else { None };
                    prop_assert_eq!(evicted.map(|e| e.code.version_string.clone()), expect_evicted);
                } else {
                    let hit = c.touch(&name);
                    let pos = model.iter().position(|(n, _, _)| *n == name);
                    prop_assert_eq!(hit, pos.is_some());
                    if let Some(p) = pos {
                        let e = model.remove(p);
                        model.push(e);
                    }
                }
                prop_assert!(c.len() <= cap);
                let mut by_seq = model.clone();
                by_seq.sort_by_key(|(_, s, _)| *s);
                let got: Vec<_> = c.in_load_order().into_iter()
                    .map(|v| (v.code.version_string.clone(), v.seq, v.code.js.clone())).collect();
                prop_assert_eq!(got, by_seq);
            }
        }
    }
}
