//! The crate's error type.

use std::fmt;

use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};

/// What went wrong, coarsely: stable, low-cardinality, and usable as a metric
/// label through [`ErrorKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is invalid: rejected by footfall's checks or by librdkafka,
    /// or a referenced file (such as `sasl_password_file`) cannot be read.
    Config,
    /// librdkafka could not create a client for another reason.
    Client,
    /// No broker answered within the timeout (all brokers down, transport failure).
    Unreachable,
    /// A metadata request was answered with an error.
    Metadata,
    /// An admin request (create topics, describe configs) failed.
    Admin,
    /// Existing topics do not match their [`TopicSpec`](crate::TopicSpec)s.
    TopicMismatch,
    /// A message could not be produced.
    Produce,
    /// A message could not be consumed.
    Consume,
    /// Offsets could not be committed or stored.
    Commit,
    /// The in-process [`EmbeddedKafka`](crate::EmbeddedKafka) failed.
    Embedded,
    /// Anything librdkafka reports that fits none of the above.
    Other,
}

impl ErrorKind {
    /// A short snake_case name, fixed across releases.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Client => "client",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Metadata => "metadata",
            ErrorKind::Admin => "admin",
            ErrorKind::TopicMismatch => "topic_mismatch",
            ErrorKind::Produce => "produce",
            ErrorKind::Consume => "consume",
            ErrorKind::Commit => "commit",
            ErrorKind::Embedded => "embedded",
            ErrorKind::Other => "other",
        }
    }

    /// The kind that best describes an error returned by rdkafka.
    pub fn of(error: &RdKafkaError) -> ErrorKind {
        match error {
            RdKafkaError::ClientConfig(..) | RdKafkaError::Nul(_) => ErrorKind::Config,
            RdKafkaError::ClientCreation(_) => ErrorKind::Client,
            RdKafkaError::AdminOp(_) | RdKafkaError::AdminOpCreation(_) => ErrorKind::Admin,
            RdKafkaError::MetadataFetch(code) | RdKafkaError::OffsetFetch(code) => {
                if is_unreachable(*code) {
                    ErrorKind::Unreachable
                } else {
                    ErrorKind::Metadata
                }
            }
            RdKafkaError::MessageProduction(_) | RdKafkaError::Flush(_) => ErrorKind::Produce,
            RdKafkaError::MessageConsumption(_)
            | RdKafkaError::MessageConsumptionFatal(_)
            | RdKafkaError::PartitionEOF(_)
            | RdKafkaError::Subscription(_)
            | RdKafkaError::Rebalance(_)
            | RdKafkaError::Seek(_)
            | RdKafkaError::PauseResume(_) => ErrorKind::Consume,
            RdKafkaError::ConsumerCommit(_)
            | RdKafkaError::StoreOffset(_)
            | RdKafkaError::SetPartitionOffset(_) => ErrorKind::Commit,
            RdKafkaError::MockCluster(_) => ErrorKind::Embedded,
            _ => ErrorKind::Other,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_unreachable(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::BrokerNotAvailable
    )
}

/// An error from footfall's Kafka plumbing.
///
/// `Display` gives the context (what was being done, naming topics or brokers,
/// never secrets) followed by librdkafka's own description when there is one,
/// so a single `{}` in a log line carries the whole story. The underlying rdkafka
/// error stays available through [`KafkaError::rdkafka`].
#[derive(thiserror::Error)]
#[error("{context}{}", cause_suffix(.cause.as_ref()))]
pub struct KafkaError {
    kind: ErrorKind,
    context: String,
    cause: Option<RdKafkaError>,
}

/// Like `Display`: a configuration error's value never shows, even in `{:?}`.
impl fmt::Debug for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaError")
            .field("kind", &self.kind)
            .field("context", &self.context)
            .field("cause", &cause_suffix(self.cause.as_ref()))
            .finish()
    }
}

impl KafkaError {
    /// An error without an underlying rdkafka error.
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        KafkaError {
            kind,
            context: context.into(),
            cause: None,
        }
    }

    /// Wraps an rdkafka error, classifying it with [`ErrorKind::of`].
    pub fn from_rdkafka(context: impl Into<String>, cause: RdKafkaError) -> Self {
        KafkaError {
            kind: ErrorKind::of(&cause),
            context: context.into(),
            cause: Some(cause),
        }
    }

    /// Wraps an rdkafka error under an explicit kind.
    pub fn with_kind(kind: ErrorKind, context: impl Into<String>, cause: RdKafkaError) -> Self {
        KafkaError {
            kind,
            context: context.into(),
            cause: Some(cause),
        }
    }

    /// The coarse category, for metrics and retry decisions.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The underlying rdkafka error, if any.
    pub fn rdkafka(&self) -> Option<&RdKafkaError> {
        self.cause.as_ref()
    }

    /// librdkafka's error code, if the underlying error carries one.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        self.cause
            .as_ref()
            .and_then(RdKafkaError::rdkafka_error_code)
    }
}

/// librdkafka's description of the cause. A configuration error names the
/// property and librdkafka's reason, never the value (which may be a secret:
/// rdkafka's own `Display` prints it).
fn cause_suffix(cause: Option<&RdKafkaError>) -> String {
    match cause {
        Some(RdKafkaError::ClientConfig(_, desc, key, _value)) if desc.contains(key.as_str()) => {
            format!(": {desc}")
        }
        Some(RdKafkaError::ClientConfig(_, desc, key, _value)) => format!(": {key}: {desc}"),
        Some(cause) => format!(": {cause}"),
        None => String::new(),
    }
}

impl From<RdKafkaError> for KafkaError {
    fn from(cause: RdKafkaError) -> Self {
        let kind = ErrorKind::of(&cause);
        KafkaError {
            kind,
            context: format!("kafka {}", kind.as_str().replace('_', " ")),
            cause: Some(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_classify_rdkafka_errors() {
        let down = RdKafkaError::MetadataFetch(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(ErrorKind::of(&down), ErrorKind::Unreachable);
        let unknown = RdKafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert_eq!(ErrorKind::of(&unknown), ErrorKind::Metadata);
        let produce = RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);
        assert_eq!(ErrorKind::of(&produce), ErrorKind::Produce);
        let commit = RdKafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress);
        assert_eq!(ErrorKind::of(&commit), ErrorKind::Commit);
    }

    #[test]
    fn display_carries_context_and_cause() {
        let err = KafkaError::from_rdkafka(
            "fetching metadata from 127.0.0.1:1",
            RdKafkaError::MetadataFetch(RDKafkaErrorCode::AllBrokersDown),
        );
        let text = err.to_string();
        assert!(
            text.starts_with("fetching metadata from 127.0.0.1:1: "),
            "{text}"
        );
        assert!(
            text.len() > "fetching metadata from 127.0.0.1:1: ".len(),
            "{text}"
        );
        assert_eq!(err.kind().as_str(), "unreachable");
        assert_eq!(err.code(), Some(RDKafkaErrorCode::AllBrokersDown));
    }

    #[test]
    fn config_errors_name_the_key_never_the_value() {
        let err = KafkaError::with_kind(
            ErrorKind::Config,
            "kafka.options",
            RdKafkaError::ClientConfig(
                rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN,
                "No such configuration property: \"sasl.passwrod\"".into(),
                "sasl.passwrod".into(),
                "S3CRET".into(),
            ),
        );
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(
                text.contains("sasl.passwrod") && !text.contains("S3CRET"),
                "{text}"
            );
        }
    }

    #[test]
    fn labels_are_distinct_snake_case() {
        let kinds = [
            ErrorKind::Config,
            ErrorKind::Client,
            ErrorKind::Unreachable,
            ErrorKind::Metadata,
            ErrorKind::Admin,
            ErrorKind::TopicMismatch,
            ErrorKind::Produce,
            ErrorKind::Consume,
            ErrorKind::Commit,
            ErrorKind::Embedded,
            ErrorKind::Other,
        ];
        let mut labels: Vec<_> = kinds.iter().map(|k| k.as_str()).collect();
        assert!(labels
            .iter()
            .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), kinds.len());
    }
}
