//! Which files are one log: a log file and its rotations.
//!
//! A log is written under one name (`access.log`) and rotated, in the same
//! directory, under that name followed by *rotation suffixes*:
//!
//! * at most one compression extension at the end: `.gz`, `.bz2`, `.xz`,
//!   `.zst`;
//! * before it, any number of stamps: `.`, `-` or `_` followed by digits
//!   (`.1`, `-20250101`, `.2025-01-01` is three stamps, `_2025_01_01` too).
//!
//! So `access.log.1`, `access.log-20250101`, `access.log.2.gz` and
//! `access.log.2025-01-01.gz` are rotations of `access.log`, while
//! `access-2025-01-01.log`, `u_ex250101.log` or
//! `E2ABC.2025-01-01-12.02c8f3b1.gz` are logs of their own (their names do not
//! end in a stamp once the extension is off). A name is never stripped to
//! nothing: `.1` stays `.1`.
//!
//! The **lineage** of a file is its directory, made absolute (relative paths
//! are taken from the working directory, `.` and `..` are resolved as written,
//! symlinks are not followed), and its name without rotation suffixes
//! ([`lineage`]). It is part of every file's source key
//! ([`crate::SourceRef::from_first_line`]), so two different logs never share
//! an identity, while a rotated file keeps the identity it had under its live
//! name. This is the one place that knows the naming of rotations: ingest uses
//! [`lineage_name`] to find the rotations of a file that was rotated while it
//! was stopped.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Compression extensions of rotated logs.
const COMPRESSED: &[&[u8]] = &[b".gz", b".bz2", b".xz", b".zst"];

/// A file name without its rotation suffixes: `access.log.2.gz` → `access.log`.
pub fn lineage_name(name: &OsStr) -> &OsStr {
    let mut n = name.as_bytes();
    if let Some(rest) = COMPRESSED
        .iter()
        .find_map(|ext| n.strip_suffix(*ext))
        .filter(|rest| !rest.is_empty())
    {
        n = rest;
    }
    while let Some(rest) = strip_stamp(n) {
        n = rest;
    }
    OsStr::from_bytes(n)
}

/// `n` without its last stamp (`[._-][0-9]+`), unless that leaves nothing.
fn strip_stamp(n: &[u8]) -> Option<&[u8]> {
    let digits = n.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let sep = n.len().checked_sub(digits + 1)?;
    (digits > 0 && sep > 0 && matches!(n[sep], b'.' | b'-' | b'_')).then(|| &n[..sep])
}

/// Whether the file names `a` and `b` are one log (one is a rotation of the
/// other, or both are rotations of the same name).
pub fn same_lineage_name(a: &OsStr, b: &OsStr) -> bool {
    lineage_name(a) == lineage_name(b)
}

/// Whether the files at `a` and `b` are one log: in the same directory, one
/// a rotation of the other (or both of the same name).
pub fn same_lineage(a: &Path, b: &Path) -> bool {
    lineage(a) == lineage(b)
}

/// The lineage of the file at `path`: its absolute directory joined with its
/// name without rotation suffixes.
pub fn lineage(path: &Path) -> PathBuf {
    let abs = absolute(path);
    match abs.file_name() {
        Some(name) => {
            let name = lineage_name(name).to_os_string();
            abs.with_file_name(name)
        }
        None => abs,
    }
}

/// The source key of the file at `path` whose first line (at most 1 KiB,
/// without its terminator) is `first_line`: a hash of its lineage and that line.
pub fn file_key(path: &Path, first_line: &[u8]) -> [u8; 16] {
    let lineage = lineage(path);
    let lineage = lineage.as_os_str().as_bytes();
    let mut seed = Vec::with_capacity(lineage.len() + first_line.len() + 16);
    seed.extend_from_slice(b"footfall-file\0");
    seed.extend_from_slice(lineage);
    seed.push(0);
    seed.extend_from_slice(first_line);
    xxhash_rust::xxh3::xxh3_128(&seed).to_le_bytes()
}

/// `path` made absolute from the working directory, `.` and `..` resolved as
/// written (lexically).
fn absolute(path: &Path) -> PathBuf {
    let joined;
    let path = if path.is_absolute() {
        path
    } else {
        match std::env::current_dir() {
            Ok(cwd) => {
                joined = cwd.join(path);
                &joined
            }
            Err(_) => path,
        }
    };
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> &str {
        lineage_name(OsStr::new(s)).to_str().unwrap()
    }

    #[test]
    fn rotation_suffixes_are_stripped() {
        for rotated in [
            "access.log",
            "access.log.1",
            "access.log.12",
            "access.log-20250101",
            "access.log-2025010112",
            "access.log.2025-01-01",
            "access.log_2025_01_01",
            "access.log.1.gz",
            "access.log.2.gz",
            "access.log-20250101.gz",
            "access.log.2025-01-01.gz",
            "access.log.1.bz2",
            "access.log.1.xz",
            "access.log.1.zst",
        ] {
            assert_eq!(name(rotated), "access.log", "{rotated}");
        }
        assert_eq!(name("access_log-20250101"), "access_log");
    }

    #[test]
    fn other_logs_keep_their_names() {
        for (own, want) in [
            ("access-2025-01-01.log", "access-2025-01-01.log"),
            ("u_ex250101.log", "u_ex250101.log"),
            (
                "E2ABC.2025-01-01-12.02c8f3b1.gz",
                "E2ABC.2025-01-01-12.02c8f3b1",
            ),
            ("access.log.old", "access.log.old"),
            (".1", ".1"),
            ("1", "1"),
            ("12.gz", "12"),
            (".gz", ".gz"),
        ] {
            assert_eq!(name(own), want, "{own}");
        }
        assert_eq!(name("access.log.gz"), "access.log");
        assert!(!same_lineage_name(
            OsStr::new("site-a.log"),
            OsStr::new("site-b.log")
        ));
        assert!(same_lineage_name(
            OsStr::new("access.log.1"),
            OsStr::new("access.log-20250101.gz")
        ));
    }

    #[test]
    fn lineage_is_absolute_and_lexical() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(lineage(Path::new("access.log.1")), cwd.join("access.log"));
        assert_eq!(
            lineage(Path::new(
                "/var/log/nginx/../nginx/./access.log-20250101.gz"
            )),
            Path::new("/var/log/nginx/access.log")
        );
        assert!(!same_lineage(
            Path::new("/logs/host1/access.log"),
            Path::new("/logs/host2/access.log")
        ));
        assert!(same_lineage(
            Path::new("/logs/host1/access.log"),
            Path::new("/logs/host1/access.log.2.gz")
        ));
    }

    #[test]
    fn source_keys_follow_the_lineage() {
        use crate::SourceRef;
        let key = |name: &str, first: &[u8]| SourceRef::from_first_line(name, first).key;
        let live = key("/var/log/nginx/access.log", b"first");
        assert_eq!(key("/var/log/nginx/access.log.1", b"first"), live);
        assert_eq!(key("/var/log/nginx/access.log-20250101.gz", b"first"), live);
        assert_ne!(key("/var/log/nginx/access.log", b"other"), live);
        assert_ne!(key("/var/log/nginx/other.log", b"first"), live);
        assert_ne!(key("/var/log/apache2/access.log", b"first"), live);
        assert_eq!(
            key(SourceRef::STDIN, b"first"),
            xxhash_rust::xxh3::xxh3_128(b"first").to_le_bytes(),
            "standard input: the first line alone, as before"
        );
    }
}
