//! Tag keys stored as fields because they were seen, up to a limit.
//!
//! Nested tags are most of what the search engine pays per span: each is a
//! hidden Lucene document. Stored as fields they cost about a third less
//! engine CPU and a quarter less disk (docs/indices.md), but every distinct
//! key becomes a field of the index, and an index takes at most
//! `index.mapping.total_fields.limit` of them. A fixed list of keys keeps
//! that count known and misses every key not on it; `all` takes every key
//! and refuses spans once a sender's keys pass the engine's limit. Learning
//! takes the first keys seen, as many as the limit here allows, and keeps
//! the rest nested, so that the common keys of a deployment become fields
//! and no number of distinct keys can make the engine refuse a span.
//!
//! A key is a field from the first span that carries it, so where a
//! deployment's keys stay within the limit, its documents look as `all`
//! writes them. Which tags are fields can still depend on what this
//! process saw before (the limit reached, another instance's keys), so the
//! same span can be written in two placements. A span document's id must
//! not depend on that (a redelivered span has to find the document it was
//! stored as), so the id's hash covers the document as the configured
//! placement writes it, and the learned placement is what is sent.
//!
//! Each bulk request reads the set once, as a snapshot; a key missing from
//! it takes the lock, is learned for everyone at once, and is remembered by
//! the request, so the lock is taken once per key learned, not per tag.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use spanway_schemas::id_hashing::IdHashing;

/// Longest key learned as a field; longer keys stay nested.
pub const MAX_LEARNED_KEY_BYTES: usize = 100;

/// The keys learned so far, shared by every batch the process writes.
#[derive(Debug)]
pub struct LearnedKeys {
    limit: usize,
    dot_replacement: Box<str>,
    state: Mutex<Arc<KeySet>>,
}

/// One version of the learned keys: read without a lock, replaced whole
/// when keys are added.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashSet<Box<str>, IdHashing>,
    /// Set once the engine refused a field for the index's field limit:
    /// nothing more is learned.
    closed: bool,
}

impl KeySet {
    /// Whether `key` has been learned.
    pub fn contains(&self, key: &str) -> bool {
        !self.keys.is_empty() && self.keys.contains(key)
    }

    /// How many keys have been learned.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key has been learned.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl LearnedKeys {
    /// Learns at most `limit` keys. Keys containing `dot_replacement` are
    /// never learned: as fields they would share a name with the key whose
    /// dots it replaces, and one of the two values would be lost.
    pub fn new(limit: usize, dot_replacement: &str) -> Self {
        LearnedKeys {
            limit,
            dot_replacement: dot_replacement.into(),
            state: Mutex::new(Arc::default()),
        }
    }

    /// The keys as they stand, for one request's documents.
    pub fn learning(&self) -> Learning<'_> {
        let keys = self.snapshot();
        let full = keys.closed || keys.len() >= self.limit;
        Learning {
            shared: self,
            keys: RefCell::new(keys),
            added: RefCell::new(Vec::new()),
            full: Cell::new(full),
        }
    }

    /// The keys as they stand.
    pub fn snapshot(&self) -> Arc<KeySet> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<KeySet>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Learns `key` unless the limit is reached or learning is closed;
    /// whether it is learned (also when another request learned it first).
    fn learn(&self, key: &str) -> Learned {
        let mut state = self.lock();
        if state.contains(key) {
            return Learned::Yes;
        }
        if state.closed || state.len() >= self.limit {
            return Learned::Full(state.clone());
        }
        let mut next = KeySet::clone(&state);
        next.keys.insert(key.into());
        *state = Arc::new(next);
        Learned::Yes
    }

    /// Learns the keys of `field_names` (names of `tag` or `process.tag`
    /// fields an index already has, dots replaced), in their order, as far
    /// as the limit allows, skipping those `configured` says are fields
    /// anyway and any this process would not learn. Returns how many were
    /// added.
    ///
    /// Read from the span indices at start, they make a restarted or added
    /// instance place a key as the instances before it did, rather than
    /// as the first keys it happens to see: past the limit, each instance
    /// would otherwise choose its own set. Adopting a mapped key adds no
    /// field to an index that has it.
    pub fn adopt<'f>(
        &self,
        field_names: impl IntoIterator<Item = &'f str>,
        configured: impl Fn(&str) -> bool,
    ) -> usize {
        let mut state = self.lock();
        if state.closed {
            return 0;
        }
        let mut next = KeySet::clone(&state);
        let mut added = 0;
        for name in field_names {
            if next.len() >= self.limit {
                break;
            }
            let key = name.replace(&*self.dot_replacement, ".");
            // A name with a dot of its own is no name a key was written as.
            if name.contains('.') || configured(&key) || !self.learnable(&key) {
                continue;
            }
            if next.keys.insert(key.into()) {
                added += 1;
            }
        }
        *state = Arc::new(next);
        added
    }

    /// After the engine refused a document for its index's field limit:
    /// forgets `keys` (that document's learned keys, which may never have
    /// become fields) and learns nothing more.
    pub fn close_without<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        let mut state = self.lock();
        let mut next = KeySet::clone(&state);
        for key in keys {
            next.keys.remove(key);
        }
        next.closed = true;
        *state = Arc::new(next);
    }

    /// Whether `key` is one the engine takes as a field name whatever the
    /// index holds: not empty, not long, no characters that need care
    /// (`_` may not start it, as metadata fields do).
    fn learnable(&self, key: &str) -> bool {
        !key.is_empty()
            && key.len() <= MAX_LEARNED_KEY_BYTES
            && !key.starts_with('_')
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':'))
            && !key.contains(&*self.dot_replacement)
    }
}

enum Learned {
    Yes,
    /// No room, and the keys as they stand (with other requests' keys).
    Full(Arc<KeySet>),
}

/// The learned keys one request's documents are built with.
#[derive(Debug)]
pub struct Learning<'k> {
    shared: &'k LearnedKeys,
    keys: RefCell<Arc<KeySet>>,
    /// Keys learned since the snapshot, by this request or another.
    added: RefCell<Vec<Box<str>>>,
    /// No more keys can be learned.
    full: Cell<bool>,
}

impl Learning<'_> {
    /// Whether a tag with `key` is a field: learned before, or learned now.
    pub fn check(&self, key: &str) -> bool {
        if self.keys.borrow().contains(key) {
            return true;
        }
        let mut added = self.added.borrow_mut();
        if added.iter().any(|k| &**k == key) {
            return true;
        }
        if self.full.get() || !self.shared.learnable(key) {
            return false;
        }
        match self.shared.learn(key) {
            Learned::Yes => {
                added.push(key.into());
                true
            }
            Learned::Full(keys) => {
                // Every key learned so far, this request's too: checked from now on
                // without the lock.
                let learned = keys.contains(key);
                *self.keys.borrow_mut() = keys;
                added.clear();
                self.full.set(true);
                learned
            }
        }
    }

    /// Whether `key` is a field in this request's documents, without
    /// learning it.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.borrow().contains(key) || self.added.borrow().iter().any(|k| &**k == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learn(keys: &LearnedKeys, seen: &[&str]) {
        let learning = keys.learning();
        for key in seen {
            learning.check(key);
        }
    }

    #[test]
    fn a_key_is_a_field_from_the_span_that_first_carries_it() {
        let keys = LearnedKeys::new(10, "@");
        let learning = keys.learning();
        assert!(!learning.contains("http.route"));
        assert!(learning.check("http.route"), "learned on sight");
        assert!(learning.contains("http.route"));
        assert!(keys.snapshot().contains("http.route"), "for every request");
        let other = keys.learning();
        assert!(other.contains("http.route"));
        assert!(!other.contains("db.name"));
        assert_eq!(keys.snapshot().len(), 1);
    }

    #[test]
    fn concurrent_requests_share_what_either_learns() {
        let keys = LearnedKeys::new(2, "@");
        let one = keys.learning();
        let two = keys.learning();
        assert!(one.check("a"));
        assert!(two.check("a"), "learned by the other request");
        assert!(two.check("b"));
        assert!(!one.check("c"), "the limit counts both requests' keys");
        assert!(one.check("b"));
        assert_eq!(keys.snapshot().len(), 2);
    }

    #[test]
    fn learning_stops_at_the_limit() {
        let keys = LearnedKeys::new(3, "@");
        learn(&keys, &["a", "b"]);
        learn(&keys, &["c", "d", "e"]);
        let set = keys.snapshot();
        assert_eq!(set.len(), 3);
        assert!(set.contains("a") && set.contains("b") && set.contains("c"));
        assert!(!set.contains("d"));
        let learning = keys.learning();
        assert!(!learning.check("f"), "no room left");
        assert!(learning.check("a"), "what was learned stays");
    }

    #[test]
    fn keys_an_index_has_as_fields_are_adopted_up_to_the_limit() {
        let keys = LearnedKeys::new(3, "@");
        let fields = [
            "http@route", // configured: a field anyway
            "attr@0",
            "a.b",   // an object's path, no key's field name
            "_meta", // never learned
            "host@name",
            "attr@0", // span and process fields of the same key
            "late",
            "later", // past the limit
        ];
        let configured = |key: &str| key == "http.route";
        assert_eq!(keys.adopt(fields, configured), 3);
        let set = keys.snapshot();
        for key in ["attr.0", "host.name", "late"] {
            assert!(set.contains(key), "{key} adopted");
        }
        for key in ["http.route", "a.b", "_meta", "later"] {
            assert!(!set.contains(key), "{key} not adopted");
        }
        assert!(!keys.learning().check("new"), "adopted keys fill the limit");

        let closed = LearnedKeys::new(3, "@");
        closed.close_without([]);
        assert_eq!(
            closed.adopt(["attr@0"], |_| false),
            0,
            "closed learns nothing"
        );
    }

    #[test]
    fn keys_the_engine_could_refuse_or_merge_are_never_learned() {
        let keys = LearnedKeys::new(100, "@");
        let long = "k".repeat(MAX_LEARNED_KEY_BYTES + 1);
        let fit = "k".repeat(MAX_LEARNED_KEY_BYTES);
        learn(
            &keys,
            &[
                "",
                "_id",
                "a b",
                "é",
                "a@b",
                "tab\t",
                &long,
                &fit,
                "ok.key-1/x:y",
            ],
        );
        let set = keys.snapshot();
        assert_eq!(set.len(), 2, "{set:?}");
        assert!(set.contains(&fit) && set.contains("ok.key-1/x:y"));
    }

    #[test]
    fn a_field_limit_refusal_forgets_the_keys_and_closes_learning() {
        let keys = LearnedKeys::new(10, "@");
        learn(&keys, &["a", "b", "c"]);
        keys.close_without(["b", "c", "never-learned"]);
        let set = keys.snapshot();
        assert!(set.contains("a"));
        assert!(!set.contains("b") && !set.contains("c"));
        let learning = keys.learning();
        assert!(!learning.check("d"), "closed");
        assert!(!learning.check("b"), "forgotten keys are not learned again");
        assert!(learning.check("a"), "what stays learned is still used");
    }

    #[test]
    fn a_zero_limit_learns_nothing() {
        let keys = LearnedKeys::new(0, "@");
        assert!(!keys.learning().check("a"));
        assert!(keys.snapshot().is_empty());
    }
}
