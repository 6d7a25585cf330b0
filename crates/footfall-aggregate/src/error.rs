//! Errors of an aggregate run.

use std::path::PathBuf;

use rdkafka::error::KafkaError;

use crate::run::Checkpoint;

/// What went wrong, small and stable: usable as a metric label and for exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The warehouse (or one of its partitions or dates) is locked by another run.
    /// The binary maps this to exit code 75 (`EX_TEMPFAIL`): try again later.
    Locked,
    /// The consumer group assigned the run no partitions (or, exclusive, not
    /// all of them): other members hold them; or a member joined the group
    /// of a run that had assigned itself every partition, and the broker
    /// refused its commit. Also exit code 75.
    Unassigned,
    /// Invalid options, a warehouse that belongs to another topic or group, or
    /// a dead-letter topic as input.
    Config,
    /// Reading or writing the warehouse failed.
    Io,
    /// A Parquet or Arrow encode/decode error.
    Parquet,
    /// A file in the warehouse is not what the layout says it should be.
    Warehouse,
    /// A message carries an event schema version this build does not know.
    Schema,
    /// A Kafka client error (consume, watermark, commit), or the broker lost during a run.
    Kafka,
    /// The broker did not answer in time (no assignment, no progress).
    Timeout,
    /// A failure injected at a checkpoint ([`crate::RunOptions::fault`]).
    Injected,
    /// The object store the warehouse is published to refused or did not answer.
    Store,
}

impl ErrorKind {
    /// Every kind, in declaration order (for metrics that list each label).
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Locked,
        ErrorKind::Unassigned,
        ErrorKind::Config,
        ErrorKind::Io,
        ErrorKind::Parquet,
        ErrorKind::Warehouse,
        ErrorKind::Schema,
        ErrorKind::Kafka,
        ErrorKind::Timeout,
        ErrorKind::Injected,
        ErrorKind::Store,
    ];

    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Locked => "locked",
            ErrorKind::Unassigned => "unassigned",
            ErrorKind::Config => "config",
            ErrorKind::Io => "io",
            ErrorKind::Parquet => "parquet",
            ErrorKind::Warehouse => "warehouse",
            ErrorKind::Schema => "schema",
            ErrorKind::Kafka => "kafka",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Injected => "injected",
            ErrorKind::Store => "store",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of an aggregate run or of a warehouse operation.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// Another run holds the lock.
    #[error("warehouse {path} is locked by another run ({what}); try again when it has finished")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it: another run, another member's partition or date.
        what: String,
    },
    /// Invalid options or a mismatched warehouse.
    #[error("{0}")]
    Config(String),
    /// The warehouse and the consumer group do not belong together: another
    /// group, another warehouse on the group, or a new warehouse on a group
    /// that has already read the topic. `rebind` overrides it.
    #[error("{0}")]
    Binding(String),
    /// The input topic carries dead letters, not visit events.
    #[error("topic {topic} is a dead-letter topic ({why}); aggregate reads the visits topic")]
    DeadLetterTopic {
        /// The input topic.
        topic: String,
        /// How it was recognised: its name, or a dead letter at an offset.
        why: String,
    },
    /// Other members of the group hold the partitions this run needs.
    #[error("group {group} assigned this run {what} of topic {topic}; other members hold {held}")]
    Unassigned {
        /// The input topic.
        topic: String,
        /// The consumer group.
        group: String,
        /// What the run was assigned ("no partition", "partitions [..], not all").
        what: String,
        /// The partitions other members hold.
        held: String,
    },
    /// A consumer joined the group while a run that had assigned itself every
    /// partition (an exclusive run of an empty group) read its batch: the
    /// broker refused the run's commit, and nothing of the batch counts.
    #[error("a consumer joined group {group} while this run read; the broker refused its commit ({source}), so nothing of its batch counts")]
    Joined {
        /// The consumer group.
        group: String,
        /// The broker's refusal.
        source: KafkaError,
    },
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("create", "rename", "fsync", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The object store the warehouse is published to failed; the local
    /// change it preceded was not made.
    #[error("object store: {op} {object}: {source}")]
    Store {
        /// What was being done ("upload", "delete", "list", "read").
        op: &'static str,
        /// The object's URL.
        object: String,
        /// The object store's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Parquet encode/decode failed.
    #[error("parquet {path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The Parquet library's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Arrow array construction or compute failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A warehouse file has an unexpected name or content.
    #[error("warehouse file {path}: {reason}")]
    Warehouse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A message carries a newer event schema version.
    #[error(
        "partition {partition} offset {offset}: event schema version {version} is newer than this build supports ({supported}); upgrade footfall"
    )]
    UnsupportedSchema {
        /// The message's partition.
        partition: i32,
        /// The message's offset.
        offset: i64,
        /// The event's schema version.
        version: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// The Kafka client failed.
    #[error("kafka {op}: {source}")]
    Kafka {
        /// The request that failed ("subscribe", "commit", ...).
        op: &'static str,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// The broker did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// No broker could be reached at the start, or the brokers or the group
    /// membership were lost during the run.
    #[error("Kafka is unavailable: {0}; nothing was committed")]
    Lost(String),
    /// A failure injected at a checkpoint.
    #[error("failure injected at {0:?}")]
    Injected(Checkpoint),
}

impl AggregateError {
    /// The small, stable classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AggregateError::Locked { .. } => ErrorKind::Locked,
            AggregateError::Config(_)
            | AggregateError::Binding(_)
            | AggregateError::DeadLetterTopic { .. } => ErrorKind::Config,
            AggregateError::Unassigned { .. } | AggregateError::Joined { .. } => {
                ErrorKind::Unassigned
            }
            AggregateError::Io { .. } => ErrorKind::Io,
            AggregateError::Parquet { .. } | AggregateError::Arrow(_) => ErrorKind::Parquet,
            AggregateError::Warehouse { .. } => ErrorKind::Warehouse,
            AggregateError::UnsupportedSchema { .. } => ErrorKind::Schema,
            AggregateError::Kafka { .. } | AggregateError::Lost(_) => ErrorKind::Kafka,
            AggregateError::Timeout(_) => ErrorKind::Timeout,
            AggregateError::Injected(_) => ErrorKind::Injected,
            AggregateError::Store { .. } => ErrorKind::Store,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> AggregateError {
        let path = path.into();
        move |source| AggregateError::Io { op, path, source }
    }

    pub(crate) fn parquet(
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> AggregateError {
        let path = path.into();
        move |source| AggregateError::Parquet { path, source }
    }

    pub(crate) fn kafka(op: &'static str) -> impl FnOnce(KafkaError) -> AggregateError {
        move |source| AggregateError::Kafka { op, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_labels() {
        let mut labels: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn locked_error_names_the_path() {
        let e = AggregateError::Locked {
            path: "/wh/.footfall.lock".into(),
            what: "exclusive".into(),
        };
        assert_eq!(e.kind(), ErrorKind::Locked);
        assert!(e.to_string().contains("/wh/.footfall.lock"));
    }
}
