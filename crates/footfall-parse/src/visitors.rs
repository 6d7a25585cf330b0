//! Visitor pseudonyms of the current day, stored inline in one hash table.
//!
//! A day of a busy site has tens of thousands of visitors, and a log line's
//! visitor is often not one of the last few hundred: its cache entry is cold.
//! [`VisitorTable`] keeps each short key and its event JSON in the table's
//! own bucket, so a lookup reads one run of adjacent cache lines instead of
//! following pointers to a key, a value and the value's text. Keys that do
//! not fit, and values that would need JSON escapes, are not taken: the
//! caller keeps those in its general [`Memo`](crate::memo::Memo).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use footfall_event::segment;

use crate::memo::KeyHasher;

/// Longest key kept.
pub(crate) const KEY_CAP: usize = 63;
/// Room for `,"visitor_id":"<16 hex>","client_net":"<network>"`: a network
/// of up to 65 characters (a host name cut to its domain, or any address).
const JSON_CAP: usize = 118;
/// `,"visitor_id":"`: where the id starts in the JSON.
const ID_AT: usize = 15;
/// `","client_net":"`: from the id's end to the network.
const NET_GAP: usize = 16;

#[derive(Clone, PartialEq, Eq)]
struct Key {
    len: u8,
    /// The key, then zeros: equal keys are equal arrays.
    bytes: [u8; KEY_CAP],
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write(&self.bytes[..usize::from(self.len)]);
    }
}

/// One visitor: its event JSON ([`segment::visitor`]), which holds the id
/// and the network as they are (neither needs an escape).
pub(crate) struct Visitor {
    json_len: u8,
    id_len: u8,
    has_net: bool,
    json: [u8; JSON_CAP],
}

impl Visitor {
    /// `None` when the JSON would not be the id and the network verbatim,
    /// or would not fit.
    fn new(id: &str, client_net: Option<&str>) -> Option<Visitor> {
        let clean = |s: &str| {
            s.bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        };
        if !clean(id) || !client_net.is_none_or(clean) {
            return None;
        }
        let mut out = Vec::with_capacity(JSON_CAP);
        segment::visitor(&mut out, id, client_net);
        if out.len() > JSON_CAP {
            return None;
        }
        let mut json = [0u8; JSON_CAP];
        json[..out.len()].copy_from_slice(&out);
        Some(Visitor {
            json_len: out.len() as u8,
            id_len: id.len() as u8,
            has_net: client_net.is_some(),
            json,
        })
    }

    /// `,"visitor_id":...` and, when there is one, `,"client_net":...`.
    pub(crate) fn json(&self) -> &[u8] {
        &self.json[..usize::from(self.json_len)]
    }

    pub(crate) fn id(&self) -> &str {
        ascii(&self.json[ID_AT..ID_AT + usize::from(self.id_len)])
    }

    pub(crate) fn client_net(&self) -> Option<&str> {
        let from = ID_AT + usize::from(self.id_len) + NET_GAP;
        let to = usize::from(self.json_len) - 1;
        self.has_net.then(|| ascii(&self.json[from..to]))
    }
}

/// A slice of a [`Visitor`]'s JSON as text. Validating it again on every
/// line (twice per event) was a measurable share of the per-line cost.
#[inline]
fn ascii(b: &[u8]) -> &str {
    debug_assert!(b.is_ascii());
    // SAFETY: `Visitor::new` admits only printable ASCII ids and networks,
    // and the JSON around them is ASCII too, so every byte of `json` is
    // ASCII and any sub-slice is valid UTF-8.
    unsafe { std::str::from_utf8_unchecked(b) }
}

/// Visitors by short key, at most `max_entries` (then emptied, like a memo).
pub(crate) struct VisitorTable {
    map: HashMap<Key, Visitor, KeyHasher>,
    max_entries: usize,
}

impl VisitorTable {
    pub(crate) fn new(max_entries: usize) -> Self {
        VisitorTable {
            map: HashMap::with_hasher(KeyHasher::random()),
            max_entries,
        }
    }

    /// The visitor for `key`, derived with `derive` (id, network) the first
    /// time. `None`, having derived nothing, when the key is over
    /// [`KEY_CAP`]; `None` also when the derived value cannot be kept inline
    /// (its id or network needs escaping in JSON).
    pub(crate) fn get_or_insert(
        &mut self,
        key: &[u8],
        derive: impl FnOnce() -> (String, Option<String>),
    ) -> Option<&Visitor> {
        if key.len() > KEY_CAP {
            return None;
        }
        let mut k = Key {
            len: key.len() as u8,
            bytes: [0; KEY_CAP],
        };
        k.bytes[..key.len()].copy_from_slice(key);
        if self.map.len() >= self.max_entries && !self.map.contains_key(&k) {
            self.map.clear();
        }
        match self.map.entry(k) {
            Entry::Occupied(e) => Some(e.into_mut()),
            Entry::Vacant(e) => {
                let (id, net) = derive();
                Some(e.insert(Visitor::new(&id, net.as_deref())?))
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_id_and_network_and_their_json() {
        let mut t = VisitorTable::new(4);
        let v = t
            .get_or_insert(b"k1", || {
                ("0123456789abcdef".into(), Some("192.0.2.0/24".into()))
            })
            .expect("fits");
        assert_eq!(v.id(), "0123456789abcdef");
        assert_eq!(v.client_net(), Some("192.0.2.0/24"));
        assert_eq!(
            v.json(),
            br#","visitor_id":"0123456789abcdef","client_net":"192.0.2.0/24""#
        );
        let v = t
            .get_or_insert(b"k1", || unreachable!("cached"))
            .expect("hit");
        assert_eq!(v.id(), "0123456789abcdef");
        let v = t
            .get_or_insert(b"k2", || ("fedcba9876543210".into(), None))
            .expect("fits");
        assert_eq!((v.id(), v.client_net()), ("fedcba9876543210", None));
        assert_eq!(v.json(), br#","visitor_id":"fedcba9876543210""#);
    }

    #[test]
    fn refuses_what_does_not_fit_inline() {
        let mut t = VisitorTable::new(4);
        let long = [b'x'; KEY_CAP + 1];
        assert!(t
            .get_or_insert(&long, || unreachable!("not derived"))
            .is_none());
        assert!(t
            .get_or_insert(&long[..KEY_CAP], || ("ab".into(), None))
            .is_some());
        let quoted = Some("*.a\"b.example".to_string());
        assert!(t.get_or_insert(b"q", || ("ab".into(), quoted)).is_none());
        assert!(
            t.get_or_insert(b"q", || ("ab".into(), None)).is_some(),
            "nothing was stored"
        );
        let widest = "x".repeat(65);
        assert!(t
            .get_or_insert(b"w", || ("0123456789abcdef".into(), Some(widest)))
            .is_some());
    }

    #[test]
    fn keys_differing_only_in_padding_do_not_collide() {
        let mut t = VisitorTable::new(8);
        t.get_or_insert(b"a", || ("1".into(), None));
        let v = t
            .get_or_insert(b"a\0", || ("2".into(), None))
            .expect("fits");
        assert_eq!(v.id(), "2");
        assert_eq!(
            t.get_or_insert(b"a", || unreachable!()).expect("hit").id(),
            "1"
        );
    }

    #[test]
    fn empties_itself_at_the_bound() {
        let mut t = VisitorTable::new(2);
        for k in [b"a", b"b", b"c"] {
            t.get_or_insert(k, || ("1".into(), None));
        }
        assert!(t.map.len() <= 2);
    }
}
