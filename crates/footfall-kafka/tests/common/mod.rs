//! Shared set-up for tests that need a real Kafka broker.
//!
//! The broker comes from `FOOTFALL_KAFKA_BROKERS` (`deploy/test.sh` starts one
//! with `deploy/kafka/local-kafka.sh` and sets it). Without it the tests say so
//! and return, unless `FOOTFALL_REQUIRE_KAFKA=1`, in which case they fail. When
//! `FOOTFALL_KAFKA_BROKERS` is set, an unreachable broker is always a failure.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use footfall_kafka::KafkaConfig;
use footfall_testkit::send_waiting;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

/// The broker under test ([`footfall_testkit::brokers`]), reachable, or
/// `None` (after saying so) when broker tests are not wanted.
pub fn broker() -> Option<KafkaConfig> {
    let config = KafkaConfig::for_brokers(footfall_testkit::brokers()?);
    wait_until_reachable(&config, Duration::from_secs(30));
    Some(config)
}

/// Panics unless a metadata request succeeds within `within`.
pub fn wait_until_reachable(config: &KafkaConfig, within: Duration) {
    let producer: BaseProducer = config.producer_config().unwrap().create().unwrap();
    if let Err(err) = producer.client().fetch_metadata(None, within) {
        panic!(
            "Kafka at {} is not reachable ({err}); start it with deploy/kafka/local-kafka.sh start",
            config.brokers
        );
    }
}

/// A topic name no other test or run uses.
pub fn unique_topic(label: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "footfall-test.{label}.{}.{nanos}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn admin(config: &KafkaConfig) -> AdminClient<DefaultClientContext> {
    config.admin_config().unwrap().create().unwrap()
}

/// Creates a topic directly through the admin API, bypassing `ensure_topics`.
pub async fn create_topic(
    config: &KafkaConfig,
    name: &str,
    partitions: i32,
    extra: &[(&str, &str)],
) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (key, value) in extra {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin(config)
        .create_topics([&topic], &options)
        .await
        .unwrap();
    for result in results {
        result.unwrap_or_else(|(name, code)| panic!("creating {name}: {code}"));
    }
}

/// Deletes topics when dropped, so test runs do not pile up topics on a
/// long-lived development broker. Best effort: failures are printed.
pub struct DropTopics {
    config: KafkaConfig,
    topics: Vec<String>,
}

impl DropTopics {
    pub fn new(config: &KafkaConfig, topics: &[&str]) -> Self {
        DropTopics {
            config: config.clone(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }
}

impl Drop for DropTopics {
    fn drop(&mut self) {
        let config = self.config.clone();
        let topics = std::mem::take(&mut self.topics);
        // A thread of its own: Drop may run inside a Tokio runtime.
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
                admin(&config).delete_topics(&names, &options).await
            })
        })
        .join();
        if let Ok(Err(err)) = outcome {
            eprintln!("deleting test topics: {err}");
        }
    }
}

/// Produces `count` messages round-robin over `partitions` partitions; the
/// payload of the n-th message sent to partition p is `"{p}:{n}"`. Returns the
/// number of messages per partition. Panics on any delivery failure.
pub fn produce_sequenced(
    config: &KafkaConfig,
    topic: &str,
    partitions: i32,
    count: usize,
) -> Vec<u64> {
    let producer: BaseProducer<DeliveryCounter> = producer_config(config)
        .create_with_context(DeliveryCounter::default())
        .unwrap();
    let mut per_partition = vec![0u64; partitions as usize];
    for i in 0..count {
        let partition = (i % partitions as usize) as i32;
        let seq = per_partition[partition as usize];
        let payload = format!("{partition}:{seq}");
        let key = format!("site-{partition}");
        send_waiting(
            &producer,
            BaseRecord::to(topic)
                .partition(partition)
                .key(&key)
                .payload(&payload),
        );
        per_partition[partition as usize] += 1;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    let context = producer.context();
    assert_eq!(
        context.failed.load(Ordering::Relaxed),
        0,
        "delivery failures"
    );
    assert_eq!(context.delivered.load(Ordering::Relaxed), count as u64);
    per_partition
}

fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = config.producer_config().unwrap();
    // Room for the whole burst; the test waits with flush().
    client.set("queue.buffering.max.messages", "200000");
    client
}

#[derive(Default)]
pub struct DeliveryCounter {
    pub delivered: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

impl rdkafka::ClientContext for DeliveryCounter {}

impl rdkafka::producer::ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err((err, _)) => {
                eprintln!("delivery failed: {err}");
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Consumes from `topic` in consumer group `group` until `expected` messages
/// (as counted per partition by [`produce_sequenced`]) have arrived, checking
/// that each partition's payloads come in order with no gaps or duplicates,
/// then commits and waits `quiet` for anything unexpected. Returns the
/// consumer, still subscribed, so callers can inspect its offsets.
pub fn consume_sequenced(
    config: &KafkaConfig,
    topic: &str,
    group: &str,
    expected: &[u64],
    quiet: Duration,
) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::Message;

    let consumer: BaseConsumer = config.consumer_config(group).unwrap().create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let total: u64 = expected.iter().sum();
    let mut next = vec![0u64; expected.len()];
    let mut received = 0u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while received < total {
        assert!(
            std::time::Instant::now() < deadline,
            "only {received} of {total} messages arrived within 180 s"
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.unwrap_or_else(|err| panic!("consuming {topic}: {err}"));
        let partition = message.partition() as usize;
        let payload = message.payload_view::<str>().unwrap().unwrap();
        assert_eq!(
            payload,
            format!("{partition}:{}", next[partition]),
            "partition {partition} out of order at offset {}",
            message.offset()
        );
        next[partition] += 1;
        received += 1;
    }
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();

    let quiet_until = std::time::Instant::now() + quiet;
    while std::time::Instant::now() < quiet_until {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            panic!(
                "unexpected extra message at {}[{}]@{}",
                topic,
                message.partition(),
                message.offset()
            );
        }
    }
    assert_eq!(next, expected, "per-partition counts");
    consumer
}
