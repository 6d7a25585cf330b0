//! How `footfall tail` reads Kafka without disturbing anyone: every
//! partition of the topic is assigned explicitly, at start offsets resolved
//! once (so "from the latest offsets" means exactly the messages produced
//! after the assignment), under a throwaway `group.id`
//! (`footfall-tail-<pid>`) that never joins a group and never commits.
//!
//! Errors carry their exit code: 66 for a topic that does not exist, 69 for
//! a broker that does not answer within the timeout, 78 for settings that
//! would make tail join a group or commit.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use footfall_kafka::KafkaConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use crate::exit::{Failure, CONFIG, FAILURE, NO_INPUT, UNAVAILABLE};

/// Keeps librdkafka's own log lines off the screen (tail reports errors itself)
/// and remembers the last warning, which says why a broker cannot be reached.
#[derive(Default)]
pub struct TailContext {
    last_problem: Mutex<Option<String>>,
}

impl TailContext {
    /// The last problem librdkafka reported, once.
    pub fn take_problem(&self) -> Option<String> {
        self.last_problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl ClientContext for TailContext {
    fn log(&self, level: RDKafkaLogLevel, _fac: &str, message: &str) {
        if (level as i32) <= RDKafkaLogLevel::Warning as i32 {
            *self.last_problem.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(message.to_string());
        }
    }

    fn error(&self, _error: KafkaError, reason: &str) {
        *self.last_problem.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
    }
}

impl ConsumerContext for TailContext {}

/// Where to start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The messages produced after the assignment.
    Latest,
    /// The oldest retained message.
    Beginning,
    /// The first message with a timestamp at or after this moment.
    Time(DateTime<Utc>),
}

impl std::fmt::Display for StartAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartAt::Latest => f.write_str("the latest offsets"),
            StartAt::Beginning => f.write_str("the beginning"),
            StartAt::Time(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

/// The Kafka settings of `footfall tail`: the shared ones, less what tail fixes.
pub fn tail_kafka(mut kafka: KafkaConfig) -> anyhow::Result<KafkaConfig> {
    kafka.client_id = "footfall-tail".into();
    // A group id of its own that never joins (partitions are assigned, not
    // subscribed) and never commits: the aggregator's group is left alone.
    for fixed in ["group.id", "enable.auto.commit"] {
        if kafka.options.contains_key(fixed) {
            return Err(Failure::new(
                CONFIG,
                format!("{fixed} is fixed: tail never joins a consumer group nor commits offsets"),
            )
            .into());
        }
    }
    Ok(kafka)
}

/// A consumer that reads one topic from assigned partitions.
pub struct Reader {
    pub consumer: BaseConsumer<TailContext>,
    brokers: String,
    timeout: Duration,
}

impl Reader {
    /// A consumer for `kafka` (nothing is sent yet); `timeout` bounds each
    /// request made while starting.
    pub fn new(kafka: &KafkaConfig, timeout: Duration) -> anyhow::Result<Reader> {
        // A group id of its own, never joined (partitions are assigned) nor committed.
        let group = format!("footfall-tail-{}", std::process::id());
        let mut config = kafka
            .consumer_config(&group)
            .map_err(|e| Failure::new(CONFIG, e.to_string()))?;
        config.set("enable.auto.offset.store", "false");
        let consumer = config
            .create_with_context(TailContext::default())
            .map_err(|e| {
                Failure::new(
                    CONFIG,
                    footfall_kafka::KafkaError::from_rdkafka("cannot create the Kafka consumer", e)
                        .to_string(),
                )
                .with_hint("check the -X options and the [kafka] table")
            })?;
        Ok(Reader {
            consumer,
            brokers: kafka.brokers.clone(),
            timeout,
        })
    }

    /// Assign every partition of `topic` from `start`; the number of partitions.
    pub fn assign(&self, topic: &str, start: StartAt) -> anyhow::Result<usize> {
        let parts = self.partitions(topic)?;
        let assignment = self.start_offsets(topic, &parts, start)?;
        self.consumer.assign(&assignment).map_err(|e| {
            Failure::new(
                FAILURE,
                format!("cannot assign the partitions of {topic}: {e}"),
            )
        })?;
        Ok(parts.len())
    }

    fn unreachable(&self, what: &str, e: &KafkaError) -> anyhow::Error {
        let mut message = format!(
            "cannot {what} from Kafka at {} within {:?}: {e}",
            self.brokers, self.timeout
        );
        if let Some(problem) = self.consumer.context().take_problem() {
            let _ = write!(message, " (last problem: {problem})");
        }
        Failure::new(UNAVAILABLE, message)
            .with_hint("is the broker running? (deploy/kafka/local-kafka.sh status) Check --brokers and -X options")
            .into()
    }

    fn partitions(&self, topic: &str) -> anyhow::Result<Vec<i32>> {
        let md = self
            .consumer
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(|e| self.unreachable("read metadata", &e))?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| {
                Failure::new(UNAVAILABLE, format!("Kafka did not describe topic {topic}"))
            })?;
        if let Some(err) = t.error() {
            let code = RDKafkaErrorCode::from(err);
            if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                return Err(Failure::new(
                    NO_INPUT,
                    format!("topic {topic} does not exist at {}", self.brokers),
                )
                .with_hint("check --topic, or create the topics with `footfall topics`")
                .into());
            }
            return Err(Failure::new(
                UNAVAILABLE,
                format!("cannot describe topic {topic}: {code}"),
            )
            .into());
        }
        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        if ids.is_empty() {
            return Err(Failure::new(NO_INPUT, format!("topic {topic} has no partitions")).into());
        }
        Ok(ids)
    }

    /// Per-partition offsets for a timestamp (milliseconds; -1 asks for the end).
    /// `Offset::End` in the answer means no message is that recent.
    fn offsets_for(
        &self,
        topic: &str,
        parts: &[i32],
        ts: Offset,
    ) -> anyhow::Result<Vec<(i32, Offset)>> {
        let mut tpl = TopicPartitionList::with_capacity(parts.len());
        for &p in parts {
            tpl.add_partition_offset(topic, p, ts)
                .context("building the offset query")?;
        }
        let found = self
            .consumer
            .offsets_for_times(tpl, self.timeout)
            .map_err(|e| self.unreachable("look up offsets", &e))?;
        let mut out = Vec::with_capacity(parts.len());
        for el in found.elements_for_topic(topic) {
            el.error().map_err(|e| {
                self.unreachable(
                    &format!("look up offsets of partition {}", el.partition()),
                    &e,
                )
            })?;
            out.push((el.partition(), el.offset()));
        }
        Ok(out)
    }

    /// Explicit start offsets: resolved now, so that "from the latest offsets" means
    /// exactly the messages produced after this call.
    fn start_offsets(
        &self,
        topic: &str,
        parts: &[i32],
        start: StartAt,
    ) -> anyhow::Result<TopicPartitionList> {
        let resolved: Vec<(i32, Offset)> = match start {
            StartAt::Beginning => parts.iter().map(|&p| (p, Offset::Beginning)).collect(),
            StartAt::Latest => self.offsets_for(topic, parts, Offset::End)?,
            StartAt::Time(t) => self.offsets_since(topic, parts, t)?,
        };
        let mut tpl = TopicPartitionList::with_capacity(resolved.len());
        for (p, o) in resolved {
            tpl.add_partition_offset(topic, p, o)
                .context("building the assignment")?;
        }
        Ok(tpl)
    }

    /// The first offset at or after `t` in each partition; the end of a
    /// partition with no message that recent.
    fn offsets_since(
        &self,
        topic: &str,
        parts: &[i32],
        t: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(i32, Offset)>> {
        let mut found = self.offsets_for(topic, parts, Offset::Offset(t.timestamp_millis()))?;
        let past_end: Vec<i32> = found
            .iter()
            .filter(|(_, o)| !matches!(o, Offset::Offset(_)))
            .map(|(p, _)| *p)
            .collect();
        if !past_end.is_empty() {
            for (p, o) in self.offsets_for(topic, &past_end, Offset::End)? {
                if let Some(slot) = found.iter_mut().find(|(q, _)| *q == p) {
                    slot.1 = o;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::super::args::tests::args;
    use super::*;

    #[test]
    fn settings_that_would_join_a_group_or_commit_are_refused() {
        let resolve = |line: &str| args(line).unwrap().kafka.resolve().and_then(tail_kafka);
        let refused = resolve("-X sasl.password=hunter2").unwrap_err();
        assert_eq!(crate::exit::code_for(&refused), crate::exit::CONFIG);
        let text = format!("{refused:#}");
        assert!(
            text.contains("sasl.password") && !text.contains("hunter2"),
            "a secret on the command line is refused without echoing it: {text}"
        );
        for fixed in ["group.id=footfall-aggregate", "enable.auto.commit=true"] {
            let e = resolve(&format!("-X {fixed}")).unwrap_err();
            assert!(format!("{e}").contains("is fixed"), "{e}");
        }
        let ok = resolve("-X fetch.wait.max.ms=50").unwrap();
        assert_eq!(ok.client_id, "footfall-tail");
    }
}
