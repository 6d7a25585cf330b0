//! A zero-setup, in-process Kafka for `footfall demo` and for tests.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;

use crate::config::KafkaConfig;
use crate::error::{ErrorKind, KafkaError};
use crate::topics::TopicSpec;

/// An in-process Kafka cluster (librdkafka's mock cluster) listening on
/// loopback ports, usable by any number of rdkafka producers and consumers
/// through [`EmbeddedKafka::bootstrap_servers`].
///
/// It speaks enough of the protocol for footfall: idempotent produce, fetch,
/// metadata, consumer groups with committed offsets. It is **not** a broker:
///
/// - **Bounded log.** Each partition keeps only its newest ~5 MiB or 100,000
///   message batches, whichever limit is hit first; older batches are dropped
///   silently as new ones arrive, whatever the topic's `retention.ms`. A
///   consumer that falls further behind than that loses data without an
///   error. Keep demo volumes small, or consume while producing.
/// - **Memory only.** Everything is gone when the value is dropped.
/// - **No admin API.** CreateTopics and DescribeConfigs are not served, so
///   [`ensure_topics`](crate::ensure_topics) does not work against it; create
///   topics with [`EmbeddedKafka::with_topics`] or
///   [`EmbeddedKafka::create_topic`] instead. Topic configs (retention, cleanup
///   policy) are ignored; only the partition count is honoured.
///
/// The cluster lives on a dedicated thread, so this handle is `Send + Sync`
/// and can be moved into async tasks. Dropping it shuts the cluster down.
///
/// ```
/// use footfall_kafka::{EmbeddedKafka, TopicSpec};
///
/// let kafka = EmbeddedKafka::with_topics(&[TopicSpec::visits(), TopicSpec::dead_letter()])?;
/// let config = kafka.kafka_config(); // a KafkaConfig whose `brokers` point at it
/// assert_eq!(config.brokers, kafka.bootstrap_servers());
/// # Ok::<(), footfall_kafka::KafkaError>(())
/// ```
pub struct EmbeddedKafka {
    bootstrap_servers: String,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        reply: mpsc::Sender<Result<(), KafkaError>>,
    },
}

impl EmbeddedKafka {
    /// Starts a cluster of `brokers` mock brokers (1 is enough for a demo) with no topics.
    pub fn start(brokers: i32) -> Result<Self, KafkaError> {
        if brokers < 1 {
            return Err(KafkaError::new(
                ErrorKind::Config,
                format!("an embedded cluster needs at least one broker, not {brokers}"),
            ));
        }
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, KafkaError>>();
        let (commands_tx, commands_rx) = mpsc::channel::<Command>();
        let thread = std::thread::Builder::new()
            .name("footfall-embedded-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(cluster) => cluster,
                    Err(err) => {
                        let _ = ready_tx.send(Err(KafkaError::from_rdkafka(
                            "starting the embedded Kafka cluster",
                            err,
                        )));
                        return;
                    }
                };
                if ready_tx.send(Ok(cluster.bootstrap_servers())).is_err() {
                    return;
                }
                // Runs until the handle is dropped and the channel closes.
                for command in commands_rx {
                    match command {
                        Command::CreateTopic {
                            name,
                            partitions,
                            reply,
                        } => {
                            let result =
                                cluster.create_topic(&name, partitions, 1).map_err(|err| {
                                    KafkaError::from_rdkafka(
                                        format!("creating topic {name} on the embedded cluster"),
                                        err,
                                    )
                                });
                            let _ = reply.send(result);
                        }
                    }
                }
            })
            .map_err(|err| {
                KafkaError::new(
                    ErrorKind::Embedded,
                    format!("spawning the embedded Kafka thread: {err}"),
                )
            })?;

        let bootstrap_servers = match ready_rx.recv() {
            Ok(result) => result?,
            Err(_) => {
                return Err(KafkaError::new(
                    ErrorKind::Embedded,
                    "the embedded Kafka thread exited during startup",
                ))
            }
        };
        Ok(EmbeddedKafka {
            bootstrap_servers,
            commands: Some(commands_tx),
            thread: Some(thread),
        })
    }

    /// Starts a single-broker cluster and creates each topic with its spec's
    /// partition count.
    pub fn with_topics(specs: &[TopicSpec]) -> Result<Self, KafkaError> {
        let kafka = EmbeddedKafka::start(1)?;
        for spec in specs {
            kafka.create_topic(&spec.name, spec.partitions)?;
        }
        Ok(kafka)
    }

    /// Creates a topic with `partitions` partitions (a no-op for an existing topic).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), KafkaError> {
        if partitions < 1 {
            return Err(KafkaError::new(
                ErrorKind::Config,
                format!("topic {name}: partitions must be at least 1, not {partitions}"),
            ));
        }
        let gone = || KafkaError::new(ErrorKind::Embedded, "the embedded Kafka thread has exited");
        let (reply_tx, reply_rx) = mpsc::channel();
        self.commands
            .as_ref()
            .ok_or_else(gone)?
            .send(Command::CreateTopic {
                name: name.to_owned(),
                partitions,
                reply: reply_tx,
            })
            .map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }

    /// The `host:port,...` list to use as `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// A default [`KafkaConfig`] pointing at this cluster.
    pub fn kafka_config(&self) -> KafkaConfig {
        KafkaConfig::for_brokers(self.bootstrap_servers.clone())
    }
}

impl std::fmt::Debug for EmbeddedKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedKafka")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop, which drops the cluster.
        drop(self.commands.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::Message;

    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handle_is_send_and_sync() {
        assert_send_sync::<EmbeddedKafka>();
    }

    #[test]
    fn topics_get_their_partitions_and_carry_messages() {
        let kafka = EmbeddedKafka::with_topics(&[TopicSpec::visits()]).unwrap();
        assert!(
            kafka.bootstrap_servers().starts_with("127.0.0.1:"),
            "{kafka:?}"
        );
        let config = kafka.kafka_config();

        let producer: ThreadedProducer<DefaultProducerContext> =
            config.producer_config().unwrap().create().unwrap();
        let metadata = producer
            .client()
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        let visits = metadata
            .topics()
            .iter()
            .find(|t| t.name() == "footfall.visits")
            .expect("topic listed");
        assert_eq!(visits.partitions().len(), 6);

        for i in 0..60 {
            let payload = format!("event-{i}");
            producer
                .send(
                    BaseRecord::<(), _>::to("footfall.visits")
                        .partition(i % 6)
                        .payload(&payload),
                )
                .map_err(|(err, _)| err)
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();

        let consumer: BaseConsumer = config
            .consumer_config("embedded-test")
            .unwrap()
            .create()
            .unwrap();
        consumer.subscribe(&["footfall.visits"]).unwrap();
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen < 60 && Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                let message = message.unwrap();
                assert!(message
                    .payload_view::<str>()
                    .unwrap()
                    .unwrap()
                    .starts_with("event-"));
                seen += 1;
            }
        }
        assert_eq!(seen, 60);
    }

    #[test]
    fn rejects_nonsense() {
        assert_eq!(
            EmbeddedKafka::start(0).unwrap_err().kind(),
            ErrorKind::Config
        );
        let kafka = EmbeddedKafka::start(1).unwrap();
        assert_eq!(
            kafka.create_topic("t", 0).unwrap_err().kind(),
            ErrorKind::Config
        );
    }
}
