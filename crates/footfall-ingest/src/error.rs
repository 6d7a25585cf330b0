//! The crate's error types.

use std::fmt;
use std::path::PathBuf;

/// What went wrong, coarsely: stable, low-cardinality, usable as a metric
/// label or an exit-code selector through [`ErrorKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration file or flags are invalid.
    Config,
    /// The parse configuration of a source is invalid.
    Parse,
    /// The state directory or a checkpoint could not be read or written.
    State,
    /// Another process holds the state directory.
    Locked,
    /// A source could not be opened or read (a listener could not bind).
    Source,
    /// A source that reads its files once names a file that does not exist,
    /// or a pattern that matches none.
    NoInput,
    /// An events or dead-letter topic does not exist (or may not be used).
    Topic,
    /// Kafka stayed unreachable longer than a one-shot run waits for it.
    Unreachable,
    /// A source's first lines say its format is wrong (90 % or more rejected).
    Format,
    /// The HTTP listener could not bind.
    Http,
    /// The Kafka client could not be created or failed fatally.
    Kafka,
    /// A task of the service failed unexpectedly.
    Internal,
}

impl ErrorKind {
    /// A short snake_case name, fixed across releases.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Parse => "parse",
            ErrorKind::State => "state",
            ErrorKind::Locked => "locked",
            ErrorKind::Source => "source",
            ErrorKind::NoInput => "no_input",
            ErrorKind::Topic => "topic",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Format => "format",
            ErrorKind::Http => "http",
            ErrorKind::Kafka => "kafka",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The configuration is invalid. `Display` names the offending field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown / mistyped fields.
    #[error("config file {path}: {message}")]
    Syntax {
        /// The config file.
        path: String,
        /// The TOML parser's message: line, column and what it expected.
        message: String,
    },
    /// A field has an invalid value.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as the config file spells it (`aggregate.group`, `tail.timeout`).
        field: String,
        /// What is wrong with its value.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error that stops the ingest service.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A source's parse configuration does not compile.
    #[error("source {source_name:?}: {error}")]
    Parse {
        /// The source's name.
        source_name: String,
        /// What does not compile.
        #[source]
        error: footfall_parse::ConfigError,
    },
    /// State directory or checkpoint I/O.
    #[error("state {path}: {message}")]
    State {
        /// The state directory, or the file in it.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The state directory is locked by another process.
    #[error("state directory {0} is in use by another footfall ingest process")]
    Locked(PathBuf),
    /// A source could not be opened (file, stdin, listener).
    #[error("source {source_name:?}: {message}")]
    Source {
        /// The source's name.
        source_name: String,
        /// What could not be opened, and why.
        message: String,
    },
    /// Files to read once are missing.
    #[error("source {source_name:?}: {message}")]
    NoInput {
        /// The source's name.
        source_name: String,
        /// Which paths or patterns matched nothing.
        message: String,
    },
    /// A topic the run produces to cannot be used.
    #[error("{0}")]
    Topic(String),
    /// Kafka stayed unreachable for `waited` in a run that ends by itself.
    #[error("Kafka at {brokers} unreachable or not acknowledging for {}s; giving up with {undelivered} lines read and not delivered", waited.as_secs())]
    Unreachable {
        /// The configured brokers.
        brokers: String,
        /// How long the run waited.
        waited: std::time::Duration,
        /// Lines read and not delivered (their files' checkpoints stay before them).
        undelivered: u64,
    },
    /// The configured format evidently does not fit a stream's first lines
    /// (the rule `footfall parse` applies): the source stops rather than
    /// turn every line into a dead letter.
    #[error("source {source_name:?}: {stream}: --format {format} does not fit: {detail}")]
    Format {
        /// The source's name.
        source_name: String,
        /// The stream (file path, `-`, peer) whose lines were checked.
        stream: String,
        /// The configured format.
        format: String,
        /// How the lines do not fit.
        detail: String,
        /// What `auto` detects on the lines, if anything.
        detected: Option<&'static str>,
    },
    /// The HTTP listener (metrics, health) could not bind.
    #[error("http listener {addr}: {error}")]
    Http {
        /// The address it was to listen on.
        addr: String,
        /// Why it could not.
        #[source]
        error: std::io::Error,
    },
    /// The Kafka client could not be created or failed fatally.
    #[error("kafka: {0}")]
    Kafka(String),
    /// A task panicked or ended unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl IngestError {
    /// The coarse kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            IngestError::Config(_) => ErrorKind::Config,
            IngestError::Parse { .. } => ErrorKind::Parse,
            IngestError::State { .. } => ErrorKind::State,
            IngestError::Locked(_) => ErrorKind::Locked,
            IngestError::Source { .. } => ErrorKind::Source,
            IngestError::NoInput { .. } => ErrorKind::NoInput,
            IngestError::Topic(_) => ErrorKind::Topic,
            IngestError::Unreachable { .. } => ErrorKind::Unreachable,
            IngestError::Format { .. } => ErrorKind::Format,
            IngestError::Http { .. } => ErrorKind::Http,
            IngestError::Kafka(_) => ErrorKind::Kafka,
            IngestError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn state(path: impl Into<PathBuf>, message: impl fmt::Display) -> Self {
        IngestError::State {
            path: path.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn source(name: impl Into<String>, message: impl fmt::Display) -> Self {
        IngestError::Source {
            source_name: name.into(),
            message: message.to_string(),
        }
    }
}
