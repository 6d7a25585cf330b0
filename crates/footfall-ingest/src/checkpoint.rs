//! Checkpoints: how far each file has been read and acknowledged, on disk.
//!
//! One JSON document, `checkpoints.json`, in the state directory:
//!
//! ```json
//! {"version": 2, "written_at": "2025-01-01T00:00:00Z", "files": [
//!   {"topic": "footfall.visits", "source": "www", "path": "/var/log/nginx/access.log",
//!    "fingerprint": "<32 hex>", "head_len": 1024, "dev": 2049, "ino": 1234, "gzip": false,
//!    "offset": 123456, "size": 200000, "complete": false, "last_seen": 1735689600,
//!    "source_key": "<32 hex>"}
//! ]}
//! ```
//!
//! A checkpoint belongs to an events **topic** and a source: how far a file
//! has been delivered *to that topic*. A run reads the checkpoints of the
//! topic it produces to; those of other topics are kept as they are, so the
//! same file sent to a new topic is read from its beginning, and a later run
//! for the first topic still continues where that one was left.
//!
//! It is replaced atomically: written to a temporary file in the same
//! directory, fsynced, renamed over the old one, and the directory fsynced, so
//! a crash leaves either the old or the new document, never a mix. Version 1
//! (before checkpoints named their topic) is read as the checkpoints of the
//! topic configured now, and written back as version 2; any other version is
//! refused rather than guessed at. The directory is locked (`LOCK`, an
//! advisory file lock) so two processes never share checkpoints.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fs4::FileExt;
use fs4::TryLockError;
use serde::{Deserialize, Serialize};

use crate::error::IngestError;
use crate::track::{FileIdentity, Fingerprint};

/// The checkpoint format version this build writes.
pub const VERSION: u32 = 2;
/// The older version this build reads (and migrates): no `topic`, no `source_key`.
pub const VERSION_1: u32 = 1;
/// File name of the checkpoint document.
pub const FILE_NAME: &str = "checkpoints.json";
const LOCK_NAME: &str = "LOCK";

/// One file's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheckpoint {
    /// Events topic the offset was delivered to (empty only in version 1).
    #[serde(default)]
    pub topic: String,
    /// Configured source the file belongs to.
    pub source: String,
    /// Path the file was last seen at.
    pub path: PathBuf,
    /// Hex of the xxh3-128 hash of the file's first `head_len` bytes.
    pub fingerprint: String,
    /// Bytes covered by `fingerprint` (at most 1024).
    pub head_len: u32,
    /// Device number of the file system the file was on.
    pub dev: u64,
    /// Inode number of the file (with `dev`, how a renamed file is recognised).
    pub ino: u64,
    /// The file is gzip-compressed (`offset` is into the uncompressed stream).
    #[serde(default)]
    pub gzip: bool,
    /// Offset of the first line not yet acknowledged by Kafka (uncompressed
    /// offset for gzip files).
    pub offset: u64,
    /// Size of the file when last read.
    #[serde(default)]
    pub size: u64,
    /// The file was read to its end and will not grow.
    #[serde(default)]
    pub complete: bool,
    /// Seconds since the Unix epoch when a scan last matched the file.
    #[serde(default)]
    pub last_seen: u64,
    /// Hex of the source key of the file's `event_id`s, kept when the file
    /// is found again under another name (absent in version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
}

impl FileCheckpoint {
    /// The identity that finds the file again (by fingerprint, device and
    /// inode); `None` when the stored fingerprint is not valid hex.
    pub fn identity(&self) -> Option<FileIdentity> {
        Some(FileIdentity {
            fingerprint: parse_hex(&self.fingerprint)?,
            head_len: self.head_len,
            dev: self.dev,
            ino: self.ino,
            path: self.path.clone(),
            gzip: self.gzip,
        })
    }

    /// `last_seen` as a time.
    pub fn last_seen_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.last_seen)
    }

    /// The source key, when recorded and valid.
    pub fn source_key(&self) -> Option<[u8; 16]> {
        self.source_key.as_deref().and_then(parse_hex)
    }
}

/// The whole document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointFile {
    /// Format version: [`VERSION`], or [`VERSION_1`] when read from an older build.
    pub version: u32,
    /// RFC 3339 time of writing (informational).
    #[serde(default)]
    pub written_at: String,
    /// Every file's checkpoint, of every topic.
    pub files: Vec<FileCheckpoint>,
}

/// A fingerprint as 32 lower-case hex digits.
pub fn to_hex(fp: &Fingerprint) -> String {
    footfall_parse::privacy::hex(fp)
}

/// The inverse of [`to_hex`].
pub fn parse_hex(s: &str) -> Option<Fingerprint> {
    footfall_parse::privacy::unhex(s)
}

/// Whole seconds since the Unix epoch (0 for a time before it), as
/// `last_seen` stores them.
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The state directory: locked for the lifetime of this value.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Create (if needed) and lock `dir`.
    pub fn open(dir: &Path) -> Result<StateDir, IngestError> {
        fs::create_dir_all(dir)
            .map_err(|e| IngestError::state(dir, format!("cannot create: {e}")))?;
        let lock_path = dir.join(LOCK_NAME);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| IngestError::state(&lock_path, format!("cannot open: {e}")))?;
        match FileExt::try_lock(&lock) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(IngestError::Locked(dir.to_path_buf())),
            Err(TryLockError::Error(e)) => {
                return Err(IngestError::state(&lock_path, format!("cannot lock: {e}")))
            }
        }
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Read the checkpoints; `None` when there are none yet (first run).
    /// Version 1 entries are given the topic `topic`.
    pub fn load(&self, topic: &str) -> Result<Option<CheckpointFile>, IngestError> {
        load(&self.dir, topic)
    }

    /// Replace the checkpoints atomically.
    pub fn save(&self, files: Vec<FileCheckpoint>) -> Result<(), IngestError> {
        save(&self.dir, files)
    }
}

/// Read `dir/checkpoints.json`; `Ok(None)` if it does not exist. A version 1
/// document is migrated: its entries get the topic `topic` (the one
/// configured now, which is the one they were written for unless the topic
/// changed with the upgrade).
pub fn load(dir: &Path, topic: &str) -> Result<Option<CheckpointFile>, IngestError> {
    let path = dir.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IngestError::state(&path, format!("cannot read: {e}"))),
    };
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let version: VersionOnly = serde_json::from_slice(&bytes)
        .map_err(|e| IngestError::state(&path, format!("not a checkpoint file: {e}")))?;
    if version.version != VERSION && version.version != VERSION_1 {
        return Err(IngestError::state(
            &path,
            format!(
                "checkpoint format version {} is not supported by this build (it reads versions \
                 {VERSION_1} and {VERSION}); move the file away to start over",
                version.version
            ),
        ));
    }
    let mut file: CheckpointFile = serde_json::from_slice(&bytes)
        .map_err(|e| IngestError::state(&path, format!("invalid checkpoint file: {e}")))?;
    if file.version == VERSION_1 {
        tracing::info!(path = %path.display(), topic, files = file.files.len(), "checkpoints of format version 1 (without topics) are taken as those of topic {topic:?}; they are written back as version {VERSION}");
        for f in &mut file.files {
            f.topic = topic.to_string();
            f.source_key = None;
        }
        file.version = VERSION;
    } else if let Some(f) = file.files.iter().find(|f| f.topic.is_empty()) {
        return Err(IngestError::state(
            &path,
            format!(
                "invalid checkpoint file: the entry of {} has no topic",
                f.path.display()
            ),
        ));
    }
    Ok(Some(file))
}

/// Write `dir/checkpoints.json` atomically: temp file, fsync, rename, fsync of the directory.
pub fn save(dir: &Path, files: Vec<FileCheckpoint>) -> Result<(), IngestError> {
    let doc = CheckpointFile {
        version: VERSION,
        written_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        files,
    };
    let mut bytes = serde_json::to_vec_pretty(&doc).map_err(|e| IngestError::state(dir, e))?;
    bytes.push(b'\n');
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| IngestError::state(&path, format!("cannot write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u64) -> FileCheckpoint {
        FileCheckpoint {
            topic: "visits".into(),
            source: "www".into(),
            path: "/var/log/nginx/access.log".into(),
            fingerprint: to_hex(&[0xab; 16]),
            head_len: 1024,
            dev: 1,
            ino: 2,
            gzip: false,
            offset,
            size: offset + 10,
            complete: false,
            last_seen: 1_700_000_000,
            source_key: Some(to_hex(&[0xcd; 16])),
        }
    }

    #[test]
    fn round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), "visits").unwrap(), None);
        save(dir.path(), vec![entry(100)]).unwrap();
        let doc = load(dir.path(), "visits").unwrap().unwrap();
        assert_eq!(doc.version, VERSION);
        assert_eq!(doc.files, vec![entry(100)]);
        save(dir.path(), vec![entry(200), entry(300)]).unwrap();
        let doc = load(dir.path(), "visits").unwrap().unwrap();
        assert_eq!(doc.files, vec![entry(200), entry(300)]);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE_NAME)]);
        assert_eq!(doc.files[0].identity().unwrap().fingerprint, [0xab; 16]);
    }

    #[test]
    fn a_stale_temporary_file_does_not_affect_loading() {
        // A crash between writing the temp file and renaming it leaves the old document in force.
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), vec![entry(100)]).unwrap();
        fs::write(
            dir.path().join(format!(".{FILE_NAME}.tmp")),
            b"{\"version\":1,\"files\":[{\"sou",
        )
        .unwrap();
        assert_eq!(
            load(dir.path(), "visits").unwrap().unwrap().files,
            vec![entry(100)]
        );
        save(dir.path(), vec![entry(150)]).unwrap();
        assert_eq!(
            load(dir.path(), "visits").unwrap().unwrap().files,
            vec![entry(150)]
        );
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE_NAME),
            br#"{"version": 3, "files": [], "new_field": 1}"#,
        )
        .unwrap();
        let err = load(dir.path(), "visits").unwrap_err();
        assert!(
            err.to_string().contains("version 3 is not supported"),
            "{err}"
        );
        fs::write(dir.path().join(FILE_NAME), b"{\"files\": [").unwrap();
        let err = load(dir.path(), "visits").unwrap_err();
        assert!(err.to_string().contains("not a checkpoint file"), "{err}");
    }

    #[test]
    fn version_1_is_migrated_to_the_configured_topic() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE_NAME),
            br#"{"version": 1, "written_at": "2025-01-01T00:00:00Z", "files": [
                {"source": "www", "path": "/var/log/nginx/access.log",
                 "fingerprint": "abababababababababababababababab", "head_len": 1024,
                 "dev": 1, "ino": 2, "gzip": false, "offset": 100, "size": 110,
                 "complete": false, "last_seen": 1700000000}]}"#,
        )
        .unwrap();
        let doc = load(dir.path(), "visits").unwrap().unwrap();
        assert_eq!(doc.version, VERSION);
        let want = FileCheckpoint {
            source_key: None,
            ..entry(100)
        };
        assert_eq!(doc.files, vec![want]);
        // Written back as version 2.
        save(dir.path(), doc.files).unwrap();
        let text = fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.contains("\"version\": 2"), "{text}");
        assert!(text.contains("\"topic\": \"visits\""), "{text}");
    }

    #[test]
    fn version_2_entries_need_a_topic() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = entry(1);
        e.topic.clear();
        save(dir.path(), vec![e]).unwrap();
        let err = load(dir.path(), "visits").unwrap_err();
        assert!(err.to_string().contains("has no topic"), "{err}");
    }

    #[test]
    fn state_dir_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDir::open(dir.path()).unwrap();
        let err = StateDir::open(dir.path()).unwrap_err();
        assert!(matches!(err, IngestError::Locked(_)), "{err}");
        first.save(vec![entry(1)]).unwrap();
        drop(first);
        let second = StateDir::open(dir.path()).unwrap();
        assert_eq!(
            second.load("visits").unwrap().unwrap().files,
            vec![entry(1)]
        );
    }

    #[test]
    fn hex_round_trip() {
        let fp: Fingerprint = *b"0123456789abcdef";
        assert_eq!(parse_hex(&to_hex(&fp)), Some(fp));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(&"g".repeat(32)), None);
    }
}
