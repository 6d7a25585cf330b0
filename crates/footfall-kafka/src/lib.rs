//! Kafka plumbing shared by footfall's services.
//!
//! - [`KafkaConfig`]: the `[kafka]` table of footfall's TOML config: brokers,
//!   TLS/SASL settings and raw librdkafka `options`, with builders for producer
//!   ([`KafkaConfig::producer_config`]: idempotent, `acks=all`, zstd),
//!   consumer ([`KafkaConfig::consumer_config`]: explicit commits) and admin
//!   clients, and [`KafkaConfig::set_property`] for `-X key=value` command-line
//!   properties. Passwords are [`Secret`]s, and `Display`/`Debug` never show them.
//! - [`TopicSpec`] and [`ensure_topics`]: the expected layout of the visits
//!   topic ([`VISITS_TOPIC`], 6 partitions, 7 days) and the dead-letter topic
//!   ([`DEAD_LETTER_TOPIC`], 1 partition, 14 days); missing topics are created,
//!   existing ones are checked and every difference comes back as a
//!   [`Mismatch`] in the [`TopicReport`].
//! - [`EmbeddedKafka`]: an in-process cluster for `footfall demo` and tests
//!   (bounded per-partition log: read its docs before relying on it).
//! - [`KafkaError`]: every fallible call returns it; [`ErrorKind::as_str`] is a
//!   stable metric label.
//!
//! ```no_run
//! use footfall_kafka::{ensure_topics, EnsureMode, KafkaConfig};
//!
//! # async fn run() -> Result<(), footfall_kafka::KafkaError> {
//! let config: KafkaConfig = KafkaConfig::for_brokers("127.0.0.1:9092");
//! tracing::info!(kafka = %config, "connecting"); // secrets print as ***
//! let report = ensure_topics(&config, &config.topics.specs(), EnsureMode::Create).await?;
//! for mismatch in &report.mismatches {
//!     eprintln!("{mismatch}"); // e.g. "topic footfall.visits: partitions is 2, expected 6"
//! }
//! let producer: rdkafka::producer::FutureProducer = config
//!     .producer_config()?
//!     .create()
//!     .map_err(|e| footfall_kafka::KafkaError::from_rdkafka("creating producer", e))?;
//! # drop(producer);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod config;
mod embedded;
mod error;
mod secret;
mod topics;

pub use crate::config::{
    is_sensitive_key, Compression, KafkaConfig, OptionValue, SaslMechanism, SecurityProtocol,
    DEFAULT_BROKERS, DEFAULT_CLIENT_ID, DEFAULT_LINGER_MS,
};
pub use crate::embedded::EmbeddedKafka;
pub use crate::error::{ErrorKind, KafkaError};
pub use crate::secret::Secret;
pub use crate::topics::{
    dead_letter_topic_of, ensure_topics, CleanupPolicy, EnsureMode, Mismatch, ObservedTopic,
    Setting, TopicOverrides, TopicReport, TopicSpec, TopicsConfig, DEAD_LETTER_TOPIC, VISITS_TOPIC,
};
