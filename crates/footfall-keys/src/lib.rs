//! footfall's keyring: every secret behind footfall's pseudonyms.
//!
//! * [`ratchet`]: the one-way daily ratchet (pure derivation): the key of a
//!   day follows from any earlier position, never from a later one.
//! * [`Keyring`] (`keyring.rs`): the installation secret (event ids, never
//!   rotates) and the ratchet position (visitor ids, rotated daily, destroyed
//!   after a horizon), served as a [`footfall_parse::KeyProvider`].
//! * [`Epoch`] (`epoch.rs`): how long one visitor id lasts (day, week, month).
//! * [`KeysConfig`] (`config.rs`): the `[keys]` table of the config file.
//! * `store.rs`: the files on disk (0600 in a 0700 directory, atomic
//!   replacement, a lock for concurrent first use).
//!
//! `docs/privacy.md` describes the key lifecycle for operators.

#![warn(missing_docs)]

mod config;
mod epoch;
mod error;
mod keyring;
pub mod ratchet;
mod store;

pub use config::{KeysConfig, MAX_HORIZON_DAYS};
pub use epoch::Epoch;
pub use error::{ErrorKind, KeyringError};
pub use keyring::{Keyring, Status, DEFAULT_HORIZON_DAYS, DEFAULT_KEYRING_DIR};
pub use store::{KEYRING_FILE, LOCK_FILE};
