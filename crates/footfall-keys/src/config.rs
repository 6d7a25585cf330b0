//! `[keys]`: where the keyring lives and how long day keys are kept.

use std::path::PathBuf;

use serde::Deserialize;

use crate::epoch::Epoch;
use crate::keyring::{DEFAULT_HORIZON_DAYS, DEFAULT_KEYRING_DIR};

/// The longest horizon accepted (about ten years).
pub const MAX_HORIZON_DAYS: u32 = 3660;

/// The `[keys]` table of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// The keyring directory (default `.state/keyring`; `--keyring` and
    /// `FOOTFALL_KEYRING` override it).
    pub dir: Option<PathBuf>,
    /// Day keys are destroyed once the newest day pseudonymised is more than
    /// this many days after them (default 30).
    pub horizon_days: u32,
    /// How long one visitor id lasts (`day`, `week`, `month`) in a new
    /// keyring (default `day`); an existing keyring with another epoch is an
    /// error, since changing it would change every visitor id.
    pub epoch: Option<Epoch>,
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig {
            dir: None,
            horizon_days: DEFAULT_HORIZON_DAYS,
            epoch: None,
        }
    }
}

impl KeysConfig {
    /// Check the values: `Err` names the key and what is wrong.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=MAX_HORIZON_DAYS).contains(&self.horizon_days) {
            return Err((
                "keys.horizon_days",
                format!(
                    "must be between 1 and {MAX_HORIZON_DAYS}, not {}",
                    self.horizon_days
                ),
            ));
        }
        Ok(())
    }

    /// The keyring directory: `over` (a flag or the environment) first, then
    /// the file's `dir`, then the default.
    pub fn dir_or(&self, over: Option<PathBuf>) -> PathBuf {
        over.or_else(|| self.dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING_DIR))
    }
}
