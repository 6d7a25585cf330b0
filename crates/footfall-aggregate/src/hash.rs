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
/// writes `event_id`s) or 16 (`visitor_id`s), else 128 bits of its BLAKE3
/// hash (the same in every build, as the id indexes need). Sets
/// of ids of one kind hold these instead of strings (a 16- and a 32-digit id
/// of one number share a key; no set mixes the two).
pub(crate) fn id_key(id: &str) -> u128 {
    // Lower-case hex only: `from_str_radix` also takes upper case and a
    // leading `+`, which would give two ids one key.
    let hex = id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match id.len() {
        32 if hex => return u128::from_str_radix(id, 16).expect("32 hex digits"),
        16 if hex => return u128::from(u64::from_str_radix(id, 16).expect("16 hex digits")),
        _ => {}
    }
    // Stable across builds and releases: keys are kept in id indexes.
    let mut h = blake3::Hasher::new();
    h.update(b"footfall id_key\0").update(id.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&h.finalize().as_bytes()[..16]);
    u128::from_le_bytes(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn h<T: Hash>(v: T) -> u64 {
        FxBuild::default().hash_one(v)
    }

    #[test]
    fn id_keys_are_the_hex_ids_themselves_and_tell_look_alikes_apart() {
        assert_eq!(id_key("00000000000000ff"), 0xff);
        assert_eq!(id_key(&format!("{:032x}", 7u128 << 100)), 7u128 << 100);
        let alike = [
            "000000000000000f",
            "+00000000000000f",
            "000000000000000F",
            "00000000000000000000000000000000f",
            "0000000000000000000000000000000f",
        ];
        let keys: std::collections::BTreeSet<u128> = alike.iter().map(|a| id_key(a)).collect();
        // The 16- and the 32-digit forms of one number share a key; every
        // other look-alike has its own.
        assert_eq!(keys.len(), alike.len() - 1);
        assert_ne!(id_key("+00000000000000f"), id_key("000000000000000f"));
        assert_ne!(id_key("000000000000000F"), id_key("000000000000000f"));
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
