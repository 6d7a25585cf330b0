//! [`Keyring`]: the keys of one installation, loaded from (and kept in) a
//! keyring directory, and served to the parse pipeline as a
//! [`KeyProvider`].
//!
//! Contract:
//!
//! * **Made on first use.** [`Keyring::open_or_create`] creates a missing
//!   keyring from the OS random source: a 32-byte installation secret and a
//!   32-byte chain value at [`genesis`] (1970-01-01), so that logs of any
//!   age can be pseudonymised until the ratchet first moves.
//! * **Event ids** are keyed by the installation secret, which never changes:
//!   a line re-read on any day, by any host holding the same keyring, gets the
//!   same `event_id`.
//! * **Visitor ids** are keyed by the day key of the event's calendar day,
//!   from the ratchet ([`crate::ratchet`]). A day before the ratchet's
//!   position has no key: [`KeyProvider::day_key`] answers `None` and the line
//!   is rejected as `key_destroyed`.
//! * **Destruction.** [`Keyring::advance_to`] moves the ratchet forward and
//!   rewrites the file; the previous position is gone from the directory.
//!   [`Keyring::advance_for_horizon`] moves it to `horizon` days before the
//!   newest day pseudonymised (never later than tomorrow by the clock), which
//!   is what ingest does as it goes. In memory, derived keys of destroyed days
//!   are dropped at the same moment.
//! * **Several hosts.** [`Keyring::export`] writes the installation secret
//!   and the current position to a file; [`Keyring::import`] starts another
//!   keyring from it. Both then compute the same keys for every later day
//!   without further contact, whichever of them advances first.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{Days, NaiveDate};
use footfall_parse::KeyProvider;

use crate::epoch::Epoch;
use crate::error::KeyringError;
use crate::ratchet::{self, genesis, Ratchet};
use crate::store::{self, KeyringFile};

/// The default keyring directory, relative to the working directory (beside
/// ingest's default state directory, `.state/ingest`).
pub const DEFAULT_KEYRING_DIR: &str = ".state/keyring";
/// Days a day key is kept after the newest day pseudonymised, by default.
pub const DEFAULT_HORIZON_DAYS: u32 = 30;

/// The keys of one installation. Cheap to share (`Arc`); thread-safe.
pub struct Keyring {
    dir: PathBuf,
    epoch: Epoch,
    installation: [u8; 32],
    event_id_key: [u8; 32],
    state: Mutex<State>,
}

struct State {
    ratchet: Ratchet,
    /// Newest day recorded in the file.
    newest_day: Option<NaiveDate>,
    /// Newest day asked for since the file was last written.
    newest_asked: Option<NaiveDate>,
    /// The last chain value computed, to step on from (never before the ratchet).
    cursor: Option<(NaiveDate, [u8; 32])>,
    /// Day keys recently served, so that a stream that moves back and forth
    /// between days does not walk the chain each time.
    recent: std::collections::BTreeMap<NaiveDate, [u8; 32]>,
}

/// Day keys kept in [`State::recent`].
const RECENT_DAYS: usize = 64;

/// What [`Keyring::status`] tells: nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// The keyring directory.
    pub dir: PathBuf,
    /// A public fingerprint of the installation secret: equal on hosts that share it.
    pub fingerprint: String,
    /// How long one visitor id lasts.
    pub epoch: Epoch,
    /// The oldest day whose key is held; every earlier day's key is destroyed.
    pub held_from: NaiveDate,
    /// The newest day ingest has pseudonymised with this keyring.
    pub newest_day: Option<NaiveDate>,
    /// The keyring's files.
    pub files: Vec<PathBuf>,
}

impl Keyring {
    /// Open the keyring in `dir`, creating it when there is none (with the
    /// day epoch). The flag says whether it was created (callers say so).
    pub fn open_or_create(dir: impl Into<PathBuf>) -> Result<(Keyring, bool), KeyringError> {
        Self::open_or_create_with(dir, None)
    }

    /// [`open_or_create`](Self::open_or_create) with the epoch of a new
    /// keyring (`None`: day). An existing keyring keeps its own epoch:
    /// changing it would change every visitor id, so asking for another one
    /// is an error.
    pub fn open_or_create_with(
        dir: impl Into<PathBuf>,
        epoch: Option<Epoch>,
    ) -> Result<(Keyring, bool), KeyringError> {
        let dir = dir.into();
        store::ensure_private_dir(&dir)?;
        let _lock = store::lock(&dir)?;
        if let Some(f) = store::read(&dir)? {
            if epoch.is_some_and(|e| e != f.epoch) {
                return Err(KeyringError::Invalid {
                    path: dir.join(store::KEYRING_FILE),
                    reason: format!(
                        "its epoch is {}, not {}: changing the epoch would change every visitor id (make a new keyring for it)",
                        f.epoch,
                        epoch.unwrap_or_default()
                    ),
                });
            }
            return Ok((Self::from_file(dir, f), false));
        }
        let f = KeyringFile {
            format: 1,
            installation: store::hex32(&random32()?),
            from: genesis(),
            chain: store::hex32(&random32()?),
            epoch: epoch.unwrap_or_default(),
            newest_day: None,
        };
        store::write(&dir, &f)?;
        Ok((Self::from_file(dir, f), true))
    }

    /// Open an existing keyring; a missing one is an error.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Keyring, KeyringError> {
        let dir = dir.into();
        if !dir.join(store::KEYRING_FILE).exists() {
            return Err(KeyringError::Missing(dir));
        }
        let _lock = store::lock(&dir)?;
        let f = store::read(&dir)?.ok_or_else(|| KeyringError::Missing(dir.clone()))?;
        Ok(Self::from_file(dir, f))
    }

    /// Start a keyring in `dir` from an export file. A keyring already there
    /// is an error (so an import never replaces keys silently).
    pub fn import(dir: impl Into<PathBuf>, export: &Path) -> Result<Keyring, KeyringError> {
        let dir = dir.into();
        let text = std::fs::read_to_string(export).map_err(KeyringError::io("read", export))?;
        let mut f = KeyringFile::parse(&text, export)?;
        f.newest_day = None;
        store::ensure_private_dir(&dir)?;
        let _lock = store::lock(&dir)?;
        if store::read(&dir)?.is_some() {
            return Err(KeyringError::Exists(dir));
        }
        store::write(&dir, &f)?;
        Ok(Self::from_file(dir, f))
    }

    /// A keyring held in memory only, from a 32-byte seed (tests, benchmarks).
    pub fn in_memory(seed: &[u8; 32]) -> Keyring {
        let f = KeyringFile {
            format: 1,
            installation: store::hex32(&blake3::derive_key(
                "footfall in-memory installation",
                seed,
            )),
            from: genesis(),
            chain: store::hex32(&blake3::derive_key("footfall in-memory chain", seed)),
            epoch: Epoch::Day,
            newest_day: None,
        };
        Self::from_file(PathBuf::new(), f)
    }

    fn from_file(dir: PathBuf, f: KeyringFile) -> Keyring {
        let installation = f.installation_bytes().expect("checked when parsed");
        let ratchet = Ratchet::new(f.from, f.chain_bytes().expect("checked when parsed"));
        Keyring {
            dir,
            epoch: f.epoch,
            installation,
            event_id_key: ratchet::event_id_key(&installation),
            state: Mutex::new(State {
                ratchet,
                newest_day: f.newest_day,
                newest_asked: None,
                cursor: None,
                recent: Default::default(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keyring directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long one visitor id lasts.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The oldest day whose key is held.
    pub fn held_from(&self) -> NaiveDate {
        self.state().ratchet.from()
    }

    /// Whether the visitor-id key of `date` is still held.
    pub fn holds(&self, date: NaiveDate) -> bool {
        self.epoch.start(date) >= self.held_from()
    }

    /// What is held, without a secret.
    pub fn status(&self) -> Status {
        let s = self.state();
        Status {
            dir: self.dir.clone(),
            fingerprint: ratchet::fingerprint(&self.installation),
            epoch: self.epoch,
            held_from: s.ratchet.from(),
            newest_day: s.newest_day.max(s.newest_asked),
            files: store::files(&self.dir),
        }
    }

    /// Move the ratchet so that `date` is the oldest day held, destroying the
    /// keys of every earlier day (in the file and in memory). Returns whether
    /// it moved (it never moves back).
    pub fn advance_to(&self, date: NaiveDate) -> Result<bool, KeyringError> {
        let _lock = self.lock_file()?;
        let mut s = self.state();
        // Another process may have moved the file's ratchet further.
        if let Some(f) = self.reread()? {
            let theirs = Ratchet::new(f.from, f.chain_bytes().expect("checked when parsed"));
            if theirs.from() > s.ratchet.from() {
                s.ratchet = theirs;
            }
            s.newest_day = s.newest_day.max(f.newest_day);
        }
        let moved = s.ratchet.advance_to(date);
        let held_from = s.ratchet.from();
        if s.cursor.is_some_and(|(d, _)| d < held_from) {
            s.cursor = None;
        }
        s.recent.retain(|d, _| *d >= held_from);
        s.newest_day = s.newest_day.max(s.newest_asked);
        self.persist(&s)?;
        Ok(moved)
    }

    /// Advance to `horizon_days` before the newest day pseudonymised, capped
    /// at tomorrow by `today` (a line dated in the far future destroys
    /// nothing). Returns the new oldest day held when the ratchet moved.
    pub fn advance_for_horizon(
        &self,
        horizon_days: u32,
        today: NaiveDate,
    ) -> Result<Option<NaiveDate>, KeyringError> {
        let (reference, from, unrecorded) = {
            let s = self.state();
            let newest = s.newest_day.max(s.newest_asked);
            (newest, s.ratchet.from(), s.newest_asked > s.newest_day)
        };
        let Some(reference) = reference.map(|d| d.min(today + Days::new(1))) else {
            return Ok(None);
        };
        // Whole epochs: the key of an epoch goes once all of it is past the horizon.
        let target = reference
            .checked_sub_days(Days::new(u64::from(horizon_days)))
            .map_or(from, |d| self.epoch.start(d));
        if target <= from && !unrecorded {
            return Ok(None);
        }
        Ok(self.advance_to(target.max(from))?.then_some(target))
    }

    /// Write the installation secret and the current position to a new file
    /// (mode 0600; an existing file is an error).
    pub fn export(&self, path: &Path) -> Result<(), KeyringError> {
        let f = self.file(&self.state(), None);
        store::write_private(path, f.to_text().as_bytes(), true)
    }

    /// What the keyring file holds for state `s`.
    fn file(&self, s: &State, newest_day: Option<NaiveDate>) -> KeyringFile {
        KeyringFile {
            format: 1,
            installation: store::hex32(&self.installation),
            from: s.ratchet.from(),
            chain: store::hex32(s.ratchet.chain()),
            epoch: self.epoch,
            newest_day,
        }
    }

    fn lock_file(&self) -> Result<Option<store::DirLock>, KeyringError> {
        if self.dir.as_os_str().is_empty() {
            return Ok(None);
        }
        store::lock(&self.dir).map(Some)
    }

    fn reread(&self) -> Result<Option<KeyringFile>, KeyringError> {
        if self.dir.as_os_str().is_empty() {
            return Ok(None);
        }
        store::read(&self.dir)
    }

    fn persist(&self, s: &State) -> Result<(), KeyringError> {
        if self.dir.as_os_str().is_empty() {
            return Ok(());
        }
        store::write(&self.dir, &self.file(s, s.newest_day))
    }
}

impl KeyProvider for Keyring {
    fn id_key(&self) -> [u8; 32] {
        self.event_id_key
    }

    fn day_key(&self, date: NaiveDate) -> Option<[u8; 32]> {
        let asked = date;
        let date = self.epoch.start(date);
        let mut s = self.state();
        if date < s.ratchet.from() {
            return None;
        }
        if s.newest_asked.is_none_or(|n| asked > n) {
            s.newest_asked = Some(asked);
        }
        if let Some(k) = s.recent.get(&date) {
            return Some(*k);
        }
        // Step on from the last chain value computed when it is not after `date`.
        let chain = match s.cursor {
            Some((d, c)) if d <= date => Ratchet::new(d, c).chain_at(date),
            _ => s.ratchet.chain_at(date),
        }?;
        s.cursor = Some((date, chain));
        let key = ratchet::day_key_of(&chain);
        if s.recent.len() >= RECENT_DAYS {
            s.recent.pop_first();
        }
        s.recent.insert(date, key);
        Some(key)
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("dir", &self.dir)
            .field("held_from", &self.held_from())
            .finish_non_exhaustive()
    }
}

fn random32() -> Result<[u8; 32], KeyringError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| KeyringError::Io {
        op: "read the OS random source for",
        path: PathBuf::from("a new keyring"),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_once_then_reopened_with_the_same_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state/keyring");
        let (a, created) = Keyring::open_or_create(&dir).unwrap();
        assert!(created);
        let (b, created) = Keyring::open_or_create(&dir).unwrap();
        assert!(!created);
        let d = day(2015, 5, 17);
        assert_eq!(a.id_key(), b.id_key());
        assert_eq!(a.day_key(d), b.day_key(d));
        assert_ne!(a.day_key(d), a.day_key(d.succ_opt().unwrap()));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(store::KEYRING_FILE)), 0o600);
    }

    #[test]
    fn concurrent_first_use_ends_with_one_keyring() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Keyring::open_or_create(&dir).unwrap().0.id_key()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn advancing_destroys_old_days_in_memory_and_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let (k, _) = Keyring::open_or_create(tmp.path()).unwrap();
        let old = day(2015, 5, 17);
        let before = k.day_key(old).unwrap();
        let later = k.day_key(day(2015, 7, 1)).unwrap();
        assert!(k.advance_to(day(2015, 5, 18)).unwrap());
        assert_eq!(k.day_key(old), None);
        assert_eq!(
            k.day_key(day(2015, 7, 1)),
            Some(later),
            "later days keep their keys"
        );
        let reopened = Keyring::open(tmp.path()).unwrap();
        assert_eq!(reopened.day_key(old), None);
        assert_eq!(reopened.held_from(), day(2015, 5, 18));
        let text = std::fs::read_to_string(tmp.path().join(store::KEYRING_FILE)).unwrap();
        assert!(!text.contains(&store::hex32(&before)));
        assert!(!k.advance_to(day(2015, 1, 1)).unwrap(), "never backwards");
    }

    #[test]
    fn horizon_follows_the_newest_day_but_not_past_tomorrow() {
        let tmp = tempfile::tempdir().unwrap();
        let (k, _) = Keyring::open_or_create(tmp.path()).unwrap();
        let today = day(2026, 12, 4);
        k.day_key(day(2015, 5, 20));
        assert_eq!(
            k.advance_for_horizon(30, today).unwrap(),
            Some(day(2015, 4, 20))
        );
        assert!(k.day_key(day(2015, 4, 20)).is_some() && k.day_key(day(2015, 4, 19)).is_none());
        // A far-future line moves the reference only to tomorrow.
        k.day_key(day(9999, 1, 1));
        assert_eq!(
            k.advance_for_horizon(30, today).unwrap(),
            Some(day(2026, 11, 5))
        );
        assert!(k.day_key(today).is_some());
        assert_eq!(
            k.advance_for_horizon(30, today).unwrap(),
            None,
            "nothing new: nothing to do"
        );
    }

    #[test]
    fn an_export_starts_an_agreeing_host() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, _) = Keyring::open_or_create(tmp.path().join("a")).unwrap();
        a.advance_to(day(2024, 1, 1)).unwrap();
        let export = tmp.path().join("export.toml");
        a.export(&export).unwrap();
        assert_eq!(mode(&export), 0o600);
        assert!(a.export(&export).is_err(), "an export never overwrites");
        let b = Keyring::import(tmp.path().join("b"), &export).unwrap();
        assert_eq!(a.status().fingerprint, b.status().fingerprint);
        b.advance_to(day(2024, 2, 1)).unwrap();
        for d in [day(2024, 2, 1), day(2024, 6, 30)] {
            assert_eq!(a.day_key(d), b.day_key(d));
        }
        assert_eq!(a.id_key(), b.id_key());
        assert!(
            Keyring::import(tmp.path().join("b"), &export).is_err(),
            "never replaces a keyring"
        );
    }

    #[test]
    fn a_week_epoch_keeps_one_key_all_week_and_destroys_whole_weeks() {
        let tmp = tempfile::tempdir().unwrap();
        let (k, _) = Keyring::open_or_create_with(tmp.path(), Some(Epoch::Week)).unwrap();
        // 2026-11-30 is a Monday.
        let week: Vec<_> = (0..7)
            .map(|i| k.day_key(day(2026, 11, 30) + Days::new(i)).unwrap())
            .collect();
        assert!(week.windows(2).all(|w| w[0] == w[1]), "one key all week");
        assert_ne!(
            k.day_key(day(2026, 12, 7)),
            Some(week[0]),
            "a new week, a new key"
        );
        // The horizon falls mid-week: that whole week stays.
        k.day_key(day(2026, 12, 31));
        assert_eq!(
            k.advance_for_horizon(30, day(2027, 1, 1)).unwrap(),
            Some(day(2026, 11, 30))
        );
        assert_eq!(k.day_key(day(2026, 12, 3)), Some(week[0]));
        assert!(k.day_key(day(2026, 11, 29)).is_none());
        let e = Keyring::open_or_create_with(tmp.path(), Some(Epoch::Day)).unwrap_err();
        assert!(e.to_string().contains("epoch is week"), "{e}");
        assert!(
            Keyring::open_or_create(tmp.path()).is_ok(),
            "unasked, the keyring's own epoch holds"
        );
    }

    #[test]
    fn missing_keyring_is_an_error_not_a_new_one() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Keyring::open(tmp.path().join("none")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Missing);
        assert!(!tmp.path().join("none").exists());
    }
}
