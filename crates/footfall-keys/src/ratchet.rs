//! The one-way daily ratchet: pure key derivation, no I/O.
//!
//! ```text
//!   chain(d + 1) = BLAKE3-derive-key("footfall ratchet v1 step",    chain(d))
//!   day_key(d)   = BLAKE3-derive-key("footfall ratchet v1 day key", chain(d))
//! ```
//!
//! A [`Ratchet`] holds one position: a day `from` and `chain(from)`. From it
//! every later day's key follows, and no earlier one: going back would invert
//! BLAKE3. Advancing overwrites the position, so once every copy of a
//! position before day `d + 1` is gone, `day_key(d)` cannot be recomputed by
//! anyone. Hosts that start from the same position compute the same key for
//! every later day without talking to each other.

use chrono::NaiveDate;

const STEP: &str = "footfall ratchet v1 step";
const DAY_KEY: &str = "footfall ratchet v1 day key";
const EVENT_ID_KEY: &str = "footfall installation v1 event id key";
const FINGERPRINT: &str = "footfall installation v1 fingerprint";

/// The first day of a new keyring: every day a log can carry is on or after it.
pub fn genesis() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// A position of the ratchet: the oldest day whose key can still be derived.
#[derive(Clone, PartialEq, Eq)]
pub struct Ratchet {
    from: NaiveDate,
    chain: [u8; 32],
}

impl Ratchet {
    /// A position from its parts (a new keyring's chain is 32 random bytes).
    pub fn new(from: NaiveDate, chain: [u8; 32]) -> Self {
        Ratchet { from, chain }
    }

    /// The oldest day whose key this position can derive.
    pub fn from(&self) -> NaiveDate {
        self.from
    }

    /// The chain value at [`from`](Self::from): the secret to store.
    pub fn chain(&self) -> &[u8; 32] {
        &self.chain
    }

    /// The chain value of `date`, or `None` before [`from`](Self::from).
    pub fn chain_at(&self, date: NaiveDate) -> Option<[u8; 32]> {
        let steps = (date - self.from).num_days();
        if steps < 0 {
            return None;
        }
        let mut c = self.chain;
        for _ in 0..steps {
            c = step(&c);
        }
        Some(c)
    }

    /// The visitor-id key of `date`, or `None` when it is before this position.
    pub fn day_key(&self, date: NaiveDate) -> Option<[u8; 32]> {
        self.chain_at(date).map(|c| day_key_of(&c))
    }

    /// Move the position forward to `date`; earlier days become underivable
    /// from this value. Moving backwards is impossible and does nothing:
    /// returns whether the position moved.
    pub fn advance_to(&mut self, date: NaiveDate) -> bool {
        match self.chain_at(date) {
            Some(c) if date > self.from => {
                self.chain = c;
                self.from = date;
                true
            }
            _ => false,
        }
    }
}

impl std::fmt::Debug for Ratchet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ratchet")
            .field("from", &self.from)
            .field("chain", &"***")
            .finish()
    }
}

/// One step forward.
pub fn step(chain: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(STEP, chain)
}

/// The day key of a chain value.
pub fn day_key_of(chain: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(DAY_KEY, chain)
}

/// The event-id key of an installation secret.
pub fn event_id_key(installation: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(EVENT_ID_KEY, installation)
}

/// A short public fingerprint of an installation secret (16 hex digits):
/// hosts that print the same fingerprint share the installation.
pub fn fingerprint(installation: &[u8; 32]) -> String {
    let d = blake3::derive_key(FINGERPRINT, installation);
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn positions_on_one_chain_agree_on_later_days() {
        let a = Ratchet::new(day(2024, 1, 1), [7; 32]);
        let mut b = a.clone();
        assert!(b.advance_to(day(2024, 2, 10)));
        for d in [day(2024, 2, 10), day(2024, 3, 1), day(2030, 1, 1)] {
            assert_eq!(a.day_key(d), b.day_key(d), "{d}");
        }
        assert!(a.day_key(day(2024, 2, 9)).is_some());
        assert_eq!(
            b.day_key(day(2024, 2, 9)),
            None,
            "the advanced position cannot go back"
        );
        assert!(!b.advance_to(day(2024, 1, 5)), "never backwards");
        assert_eq!(b.from(), day(2024, 2, 10));
    }

    #[test]
    fn keys_differ_by_day_and_secret() {
        let a = Ratchet::new(day(2024, 1, 1), [7; 32]);
        let other = Ratchet::new(day(2024, 1, 1), [8; 32]);
        let d = day(2024, 1, 3);
        assert_ne!(a.day_key(d), a.day_key(d.succ_opt().unwrap()));
        assert_ne!(a.day_key(d), other.day_key(d));
        // The stored chain value is not the day key of its own day.
        assert_ne!(Some(*a.chain()), a.day_key(a.from()));
        assert!(!format!("{a:?}").contains("7, 7"));
    }

    #[test]
    fn derivation_is_pinned() {
        // Hosts on different versions must agree: the construction is fixed.
        let r = Ratchet::new(day(2024, 1, 1), [0; 32]);
        let want = blake3::derive_key(DAY_KEY, &blake3::derive_key(STEP, &[0; 32]));
        assert_eq!(r.day_key(day(2024, 1, 2)), Some(want));
        assert_eq!(fingerprint(&[0; 32]).len(), 16);
    }
}
