//! A small, fast, deterministic hasher for the in-memory group-by maps.
//!
//! Keys are short strings borrowed from Arrow arrays and tuples of small
//! integer codes; they come from our own files, so the denial-of-service
//! resistance of SipHash is not needed, and a deterministic hash keeps runs
//! reproducible. This is the multiply-rotate scheme used by rustc's FxHasher,
//! with a final rotation so that hashbrown's bucket bits see the well-mixed
//! high bits of the product.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const K: u64 = 0xf135_7aea_2e62_a9c5;

#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = self.hash.wrapping_add(word).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 8 {
            self.add(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")));
            bytes = &bytes[8..];
        }
        if bytes.len() >= 4 {
            let lo = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as u64;
            let hi =
                u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().expect("4 bytes")) as u64;
            self.add(lo | (hi << 32));
        } else if !bytes.is_empty() {
            let a = bytes[0] as u64;
            let b = bytes[bytes.len() / 2] as u64;
            let c = bytes[bytes.len() - 1] as u64;
            self.add(a | (b << 8) | (c << 16));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;
pub(crate) type FxHashMap<K, V> = HashMap<K, V, FxBuild>;
pub(crate) type FxHashSet<K> = HashSet<K, FxBuild>;

/// A 128-bit key of an id: the id itself when it is 32 hex digits (as ingest
/// writes `event_id`s and `visitor_id`s), else a 128-bit hash of it. Sets of
/// ids hold these instead of strings.
pub(crate) fn id_key(id: &str) -> u128 {
    if id.len() == 32 {
        if let Ok(k) = u128::from_str_radix(id, 16) {
            return k;
        }
    }
    use std::hash::Hash;
    let half = |salt: u64| {
        let mut h = std::hash::DefaultHasher::new();
        (salt, id).hash(&mut h);
        h.finish() as u128
    };
    (half(1) << 64) | half(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn h<T: Hash>(v: T) -> u64 {
        FxBuild::default().hash_one(v)
    }

    #[test]
    fn distinguishes_short_strings_and_tuples() {
        let keys = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "abc",
            "abcd",
            "abcde",
            "/index.html",
            "/index.htm",
        ];
        let mut hashes: Vec<u64> = keys.iter().map(h).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), keys.len());
        assert_ne!(h((1u32, 2u32)), h((2u32, 1u32)));
        assert_eq!(h("same"), h("same"));
    }
}
