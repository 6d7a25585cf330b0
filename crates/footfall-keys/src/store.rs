//! The keyring's files on disk.
//!
//! * `DIR/keyring.toml`: the installation secret and the ratchet position
//!   (see [`KeyringFile`]). Mode 0600, replaced whole by write-to-temporary,
//!   fsync, rename, fsync of the directory: a crash leaves the old or the new
//!   file, never a mix.
//! * `DIR/keyring.lock`: an advisory lock held while the keyring is created or
//!   changed, so that processes starting at the same moment end with the
//!   same keys (the first creates, the others read what it wrote).
//!
//! `DIR` is made 0700 and every file 0600, whatever the umask. Temporary files
//! left by a crash are removed under the lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::epoch::Epoch;
use crate::error::KeyringError;

/// The keyring's file name in its directory.
pub const KEYRING_FILE: &str = "keyring.toml";
/// The lock file's name in the keyring directory.
pub const LOCK_FILE: &str = "keyring.lock";
const TEMP_PREFIX: &str = ".keyring.toml.tmp";
const HEADER: &str = "# footfall keyring: SECRET. Do not copy it by hand: `footfall keys export` makes a\n\
# copy for a new host. Anyone holding it can recompute the pseudonyms of every day from `from` on.\n";

/// The on-disk form of a keyring, and of an export.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyringFile {
    /// Format version (1).
    pub format: u32,
    /// The installation secret (64 hex digits): keys event ids; never rotates.
    pub installation: String,
    /// The oldest day whose key can be derived.
    pub from: NaiveDate,
    /// The ratchet's chain value on `from` (64 hex digits).
    pub chain: String,
    /// How long one visitor id lasts: `day`, `week` or `month`.
    #[serde(default)]
    pub epoch: Epoch,
    /// The newest day ingest has pseudonymised with this keyring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_day: Option<NaiveDate>,
}

impl KeyringFile {
    /// Parse and check the text of a keyring or export file.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KeyringError> {
        let f: KeyringFile = toml::from_str(text).map_err(|e| KeyringError::Invalid {
            path: path.to_path_buf(),
            reason: e.message().to_string(),
        })?;
        if f.format != 1 {
            return Err(invalid(
                path,
                format!(
                    "format {} is not supported (this footfall reads 1)",
                    f.format
                ),
            ));
        }
        f.installation_bytes()
            .ok_or_else(|| invalid(path, "installation is not 64 hex digits".into()))?;
        f.chain_bytes()
            .ok_or_else(|| invalid(path, "chain is not 64 hex digits".into()))?;
        Ok(f)
    }

    /// The installation secret.
    pub fn installation_bytes(&self) -> Option<[u8; 32]> {
        unhex32(&self.installation)
    }

    /// The chain value.
    pub fn chain_bytes(&self) -> Option<[u8; 32]> {
        unhex32(&self.chain)
    }

    /// The file's text, header included.
    pub fn to_text(&self) -> String {
        format!(
            "{HEADER}{}",
            toml::to_string(self).expect("a keyring file serialises")
        )
    }
}

fn invalid(path: &Path, reason: String) -> KeyringError {
    KeyringError::Invalid {
        path: path.to_path_buf(),
        reason,
    }
}

/// 32 bytes as 64 lower-case hex digits.
pub fn hex32(b: &[u8; 32]) -> String {
    footfall_parse::privacy::hex(b)
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    footfall_parse::privacy::unhex(s)
}

/// The keyring directory, created 0700 (an existing one is set to 0700).
pub fn ensure_private_dir(dir: &Path) -> Result<(), KeyringError> {
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(KeyringError::io("create keyring directory", dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    set_mode(dir, 0o700)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), KeyringError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(KeyringError::io("set permissions of", path))
}

fn sync_dir(dir: &Path) -> Result<(), KeyringError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(KeyringError::io("fsync", dir))
}

/// An exclusive lock on the keyring directory, held until dropped.
pub struct DirLock {
    _file: File,
}

/// Take the keyring's lock (waits for another process to finish with it),
/// then sweep temporary files a crash left behind.
pub fn lock(dir: &Path) -> Result<DirLock, KeyringError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(KeyringError::io("open", &path))?;
    set_mode(&path, 0o600)?;
    fs4::FileExt::lock(&file).map_err(KeyringError::io("lock", &path))?;
    sweep_temporaries(dir)?;
    Ok(DirLock { _file: file })
}

fn sweep_temporaries(dir: &Path) -> Result<(), KeyringError> {
    let entries = fs::read_dir(dir).map_err(KeyringError::io("list", dir))?;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let p = e.path();
            fs::remove_file(&p).map_err(KeyringError::io("remove", &p))?;
        }
    }
    Ok(())
}

/// Read `DIR/keyring.toml`; `None` when there is none.
pub fn read(dir: &Path) -> Result<Option<KeyringFile>, KeyringError> {
    let path = dir.join(KEYRING_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => KeyringFile::parse(&text, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KeyringError::io("read", &path)(e)),
    }
}

/// Replace `DIR/keyring.toml` atomically and durably (call under [`lock`]).
pub fn write(dir: &Path, file: &KeyringFile) -> Result<(), KeyringError> {
    let tmp = dir.join(format!("{TEMP_PREFIX}.{}", std::process::id()));
    write_private(&tmp, file.to_text().as_bytes(), false)?;
    let dest = dir.join(KEYRING_FILE);
    fs::rename(&tmp, &dest).map_err(KeyringError::io("rename to", &dest))?;
    sync_dir(dir)
}

/// Write a new file, mode 0600 whatever the umask, and fsync it. With
/// `create_new`, an existing file is an error.
pub fn write_private(path: &Path, bytes: &[u8], create_new: bool) -> Result<(), KeyringError> {
    let mut opts = OpenOptions::new();
    opts.write(true).mode(0o600);
    if create_new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    let mut f = opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => KeyringError::Exists(path.to_path_buf()),
        _ => KeyringError::io("create", path)(e),
    })?;
    set_mode(path, 0o600)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(KeyringError::io("write", path))
}

/// Every path under `dir`, for tests and `footfall keys`.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let b: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        assert_eq!(unhex32(&hex32(&b)), Some(b));
        assert_eq!(unhex32("zz"), None);
        assert_eq!(unhex32(&"g".repeat(64)), None);
    }

    #[test]
    fn unknown_fields_and_versions_are_refused() {
        let ok = KeyringFile {
            format: 1,
            installation: "a".repeat(64),
            from: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            chain: "b".repeat(64),
            epoch: Epoch::Week,
            newest_day: None,
        };
        let p = Path::new("k");
        assert_eq!(KeyringFile::parse(&ok.to_text(), p).unwrap(), ok);
        assert!(KeyringFile::parse(&format!("{}extra = 1\n", ok.to_text()), p).is_err());
        let v2 = ok.to_text().replace("format = 1", "format = 2");
        assert!(KeyringFile::parse(&v2, p).is_err());
        let short = ok.to_text().replace(&"b".repeat(64), "bb");
        let e = KeyringFile::parse(&short, p).unwrap_err().to_string();
        assert!(
            !e.contains(&"a".repeat(64)),
            "errors never print the secret: {e}"
        );
    }
}
