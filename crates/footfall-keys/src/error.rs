//! Keyring errors, with a low-cardinality [`ErrorKind`] for exit codes.

use std::path::PathBuf;

/// What went wrong, for callers choosing an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No keyring where one was required.
    Missing,
    /// A keyring (or export) file exists but is not a valid one.
    Invalid,
    /// A keyring already exists where a new one was to be made.
    Exists,
    /// Reading or writing the keyring's files failed.
    Io,
}

/// A keyring operation failed. Messages name files, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// No keyring in this directory ([`ErrorKind::Missing`]).
    #[error("no keyring in {0} (create one with `footfall keys init`, or import one with `footfall keys import FILE`)")]
    Missing(PathBuf),
    /// A keyring or export file that cannot be read as one ([`ErrorKind::Invalid`]).
    #[error("{path} is not a valid footfall keyring: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never a secret).
        reason: String,
    },
    /// A keyring already exists in this directory ([`ErrorKind::Exists`]).
    #[error("a keyring already exists in {0}")]
    Exists(PathBuf),
    /// A file operation failed ([`ErrorKind::Io`]).
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, as a verb phrase the path completes ("read", "fsync", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl KeyringError {
    /// The kind, for exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            KeyringError::Missing(_) => ErrorKind::Missing,
            KeyringError::Invalid { .. } => ErrorKind::Invalid,
            KeyringError::Exists(_) => ErrorKind::Exists,
            KeyringError::Io { .. } => ErrorKind::Io,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> KeyringError {
        let path = path.to_path_buf();
        move |source| KeyringError::Io { op, path, source }
    }
}
