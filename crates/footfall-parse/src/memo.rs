//! A small bounded memo table for per-worker caches of derived values.
//!
//! Log streams repeat themselves: the same request targets, referrers and
//! (client, user agent) pairs come back thousands of times. [`Memo`] keeps
//! what was derived from a string key so a repeat costs one hash and one
//! comparison. It is bounded by entry count and key bytes; reaching a bound
//! empties it (keeping its allocation), which needs no per-entry bookkeeping
//! on hits and re-learns the working set within a few thousand lines.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Memo of values derived from string keys, bounded by entries and key bytes.
pub(crate) struct Memo<V> {
    index: HashMap<Box<[u8]>, usize, KeyHasher>,
    values: Vec<V>,
    key_bytes: usize,
    max_entries: usize,
    max_key_bytes: usize,
    max_key_len: usize,
    clears: u64,
    generation: u64,
}

impl<V> Memo<V> {
    /// At most `max_entries` keys totalling `max_key_bytes`; keys longer than
    /// `max_key_len` are never stored.
    pub(crate) fn new(max_entries: usize, max_key_bytes: usize, max_key_len: usize) -> Self {
        Memo {
            index: HashMap::with_hasher(KeyHasher::random()),
            values: Vec::new(),
            key_bytes: 0,
            max_entries,
            max_key_bytes,
            max_key_len,
            clears: 0,
            generation: 0,
        }
    }

    /// The slot of the value for `key`, derived with `derive` the first time
    /// it is seen (and every time for keys over the length bound). Read it
    /// with [`get`](Self::get); slots let a caller look up in several memos
    /// before borrowing from them. A slot stays valid until the next lookup
    /// in the same memo.
    pub(crate) fn slot(&mut self, key: &[u8], derive: impl FnOnce() -> V) -> usize {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let value = derive();
        // Drop a scratch value left by an unstored key.
        self.values.truncate(self.index.len());
        if key.len() > self.max_key_len || self.max_entries == 0 {
            // Never stored: a scratch slot past the indexed ones.
            self.values.push(value);
            return self.values.len() - 1;
        }
        if self.index.len() >= self.max_entries || self.key_bytes + key.len() > self.max_key_bytes {
            self.clear();
            self.clears += 1;
        }
        let i = self.values.len();
        self.values.push(value);
        self.index.insert(key.into(), i);
        self.key_bytes += key.len();
        i
    }

    /// The value in a slot returned by [`slot`](Self::slot).
    pub(crate) fn get(&self, slot: usize) -> &V {
        &self.values[slot]
    }

    /// Forget everything (e.g. when the values' key material changes).
    pub(crate) fn clear(&mut self) {
        self.index.clear();
        self.values.clear();
        self.key_bytes = 0;
        self.generation += 1;
    }

    /// A number that changes whenever the memo is emptied: a stored slot
    /// (see [`is_stored`](Self::is_stored)) keeps naming the same key for as
    /// long as the generation stays the same.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether `slot` holds a stored key's value, rather than a scratch value
    /// for a key too long to store (which the next lookup replaces).
    pub(crate) fn is_stored(&self, slot: usize) -> bool {
        slot < self.index.len()
    }

    /// Number of stored keys.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Times a bound was reached and the memo emptied.
    pub(crate) fn clears(&self) -> u64 {
        self.clears
    }
}

/// Hash builder for cache keys: one-shot XXH3 over the whole key with a random
/// per-cache seed (SipHash, the std default, costs several times as much on
/// 100–200 byte keys).
#[derive(Clone)]
pub(crate) struct KeyHasher {
    pub(crate) seed: u64,
}

impl KeyHasher {
    pub(crate) fn random() -> Self {
        KeyHasher {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64),
        }
    }
}

impl BuildHasher for KeyHasher {
    type Hasher = KeyHashState;

    fn build_hasher(&self) -> KeyHashState {
        KeyHashState { state: self.seed }
    }
}

/// Hasher state for [`KeyHasher`]. `str` and `[u8]` keys hash as one `write`
/// of their bytes (plus a length or terminator write); the bytes go through
/// XXH3 seeded with the state, small integer writes are mixed in with a multiply.
pub(crate) struct KeyHashState {
    state: u64,
}

impl Hasher for KeyHashState {
    fn write(&mut self, bytes: &[u8]) {
        self.state = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.state);
    }

    fn write_u8(&mut self, i: u8) {
        self.state = (self.state ^ u64::from(i)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, i: usize) {
        self.state = (self.state ^ i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<V> Memo<V> {
        fn get_or_insert_with(&mut self, key: &[u8], derive: impl FnOnce() -> V) -> &V {
            let i = self.slot(key, derive);
            self.get(i)
        }
    }

    #[test]
    fn derives_once_per_key_and_stays_bounded() {
        let mut m: Memo<String> = Memo::new(3, 1 << 20, 1024);
        let mut calls = 0;
        for k in ["a", "b", "a", "a", "b"] {
            let v = m.get_or_insert_with(k.as_bytes(), || {
                calls += 1;
                k.to_uppercase()
            });
            assert_eq!(v, &k.to_uppercase());
        }
        assert_eq!(calls, 2);
        for k in ["c", "d", "e"] {
            assert_eq!(m.get_or_insert_with(k.as_bytes(), || k.to_string()), k);
        }
        assert!(m.len() <= 3);
        assert_eq!(
            m.get_or_insert_with(b"a", || "again".into()),
            "again",
            "evicted keys are derived again"
        );
    }

    #[test]
    fn stored_slots_name_one_key_per_generation() {
        let mut m: Memo<u8> = Memo::new(2, 1 << 20, 4);
        let g = m.generation();
        let a = m.slot(b"a", || 1);
        let b = m.slot(b"b", || 2);
        assert!(a != b && m.is_stored(a) && m.is_stored(b));
        assert_eq!(m.slot(b"a", || 9), a);
        let long = m.slot(b"too long", || 3);
        assert!(!m.is_stored(long), "over the key length bound");
        assert_eq!(m.generation(), g);
        m.slot(b"c", || 4); // over the entry bound: emptied first
        assert_ne!(m.generation(), g);
    }

    #[test]
    fn oversized_keys_are_derived_every_time() {
        let mut m: Memo<usize> = Memo::new(10, 1 << 20, 64);
        let big = vec![b'x'; 100];
        let mut calls = 0;
        for _ in 0..3 {
            assert_eq!(
                *m.get_or_insert_with(&big, || {
                    calls += 1;
                    7
                }),
                7
            );
        }
        assert_eq!(calls, 3);
        assert_eq!(m.len(), 0);
        assert_eq!(*m.get_or_insert_with(b"k", || 1), 1);
        assert_eq!(*m.get_or_insert_with(b"k", || 2), 1);
    }
}
