//! Tests against a real Kafka broker (see `common` for how it is found).

mod common;

use std::process::Command;
use std::time::Duration;

use footfall_kafka::{ensure_topics, EnsureMode, ErrorKind, KafkaConfig, Setting, TopicSpec};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::topic_partition_list::Offset;

use common::{
    broker, consume_sequenced, create_topic, produce_sequenced, unique_topic, DropTopics,
};

const MESSAGES: usize = 100_000;
const PARTITIONS: i32 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_messages_round_trip_through_a_consumer_group() {
    let Some(config) = broker() else { return };
    let topic = unique_topic("roundtrip");
    let _cleanup = DropTopics::new(&config, &[&topic]);
    let report = ensure_topics(
        &config,
        &[TopicSpec::new(&topic, PARTITIONS)],
        EnsureMode::Create,
    )
    .await
    .unwrap();
    assert_eq!(report.created, std::slice::from_ref(&topic));

    let (config2, topic2) = (config.clone(), topic.clone());
    tokio::task::spawn_blocking(move || {
        let config = config2;
        let topic = topic2;
        let started = std::time::Instant::now();
        let per_partition = produce_sequenced(&config, &topic, PARTITIONS, MESSAGES);
        let produced_in = started.elapsed();
        assert_eq!(per_partition.iter().sum::<u64>(), MESSAGES as u64);

        let group = unique_topic("group");
        let started = std::time::Instant::now();
        let consumer =
            consume_sequenced(&config, &topic, &group, &per_partition, Duration::from_secs(2));
        let consumed_in = started.elapsed();
        println!(
            "{MESSAGES} messages: produced in {produced_in:.2?}, consumed and committed in {consumed_in:.2?}"
        );

        // Committed offsets equal the high watermarks, and the watermarks add up
        // to exactly what was produced. (Converted to a map at once: a live
        // TopicPartitionList from librdkafka pins partition state and would
        // make dropping the consumer wait for it.)
        let committed = consumer
            .committed(Duration::from_secs(10))
            .unwrap()
            .to_topic_map();
        let mut total = 0;
        for partition in 0..PARTITIONS {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                .unwrap();
            total += high - low;
            let offset = committed
                .get(&(topic.clone(), partition))
                .unwrap_or_else(|| panic!("no committed offset for partition {partition}"));
            assert_eq!(*offset, Offset::Offset(high), "partition {partition}");
            assert_eq!(high as u64, per_partition[partition as usize]);
        }
        assert_eq!(total, MESSAGES as i64);
        consumer.unsubscribe();
        drop(consumer);

        // A new member of the same group starts from the committed offsets:
        // once it has its assignment, it receives nothing.
        let again: BaseConsumer = config.consumer_config(&group).unwrap().create().unwrap();
        again.subscribe(&[topic.as_str()]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while again.assignment().unwrap().count() == 0 {
            assert!(std::time::Instant::now() < deadline, "no assignment within 60 s");
            assert!(again.poll(Duration::from_millis(100)).is_none(), "re-delivered a message");
        }
        assert_eq!(again.assignment().unwrap().count(), PARTITIONS as usize);
        let quiet_until = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < quiet_until {
            assert!(again.poll(Duration::from_millis(100)).is_none(), "re-delivered a message");
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn kcat_lists_created_topics() {
    let Some(config) = broker() else { return };
    if Command::new("kcat").arg("-V").output().is_err() {
        assert!(
            !footfall_testkit::required(),
            "kcat is not installed (deploy/test.sh installs it)"
        );
        footfall_testkit::note("kcat not installed: kcat test not run");
        return;
    }
    let topic = unique_topic("kcat");
    let _cleanup = DropTopics::new(&config, &[&topic]);
    ensure_topics(&config, &[TopicSpec::new(&topic, 3)], EnsureMode::Create)
        .await
        .unwrap();
    let output = Command::new("kcat")
        .args(["-b", &config.brokers, "-L", "-m", "10"])
        .output()
        .unwrap();
    assert!(output.status.success(), "kcat -L failed: {output:?}");
    let listing = String::from_utf8(output.stdout).unwrap();
    let expected = format!("topic \"{topic}\" with 3 partitions");
    assert!(
        listing.contains(&expected),
        "{expected:?} not in:\n{listing}"
    );
}

#[tokio::test]
async fn ensure_topics_creates_then_is_a_noop() {
    let Some(config) = broker() else { return };
    let visits = TopicSpec::new(unique_topic("visits"), 6);
    let dlq = TopicSpec {
        name: unique_topic("dlq"),
        ..TopicSpec::dead_letter()
    };
    let _cleanup = DropTopics::new(&config, &[&visits.name, &dlq.name]);
    let specs = [visits.clone(), dlq.clone()];

    let first = ensure_topics(&config, &specs, EnsureMode::Create)
        .await
        .unwrap();
    assert_eq!(first.created, [visits.name.clone(), dlq.name.clone()]);
    assert!(
        first.matching.is_empty() && first.mismatches.is_empty(),
        "{first}"
    );
    assert!(first.is_ok());

    let second = ensure_topics(&config, &specs, EnsureMode::Create)
        .await
        .unwrap();
    assert!(second.created.is_empty(), "{second}");
    assert_eq!(second.matching, [visits.name.clone(), dlq.name.clone()]);
    assert!(second.mismatches.is_empty(), "{second}");

    // The created layout is what the broker reports.
    let producer: BaseProducer = config.producer_config().unwrap().create().unwrap();
    let metadata = producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let partitions = |name: &str| {
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .map(|t| t.partitions().len())
    };
    assert_eq!(partitions(&visits.name), Some(6));
    assert_eq!(partitions(&dlq.name), Some(1));
}

#[tokio::test]
async fn ensure_topics_reports_wrong_partitions_and_retention() {
    let Some(config) = broker() else { return };
    let name = unique_topic("mismatch");
    let _cleanup = DropTopics::new(&config, &[&name]);
    create_topic(&config, &name, 2, &[("retention.ms", "86400000")]).await;

    let spec = TopicSpec::new(&name, 6); // expects 6 partitions, 7 days
    let report = ensure_topics(&config, &[spec], EnsureMode::Create)
        .await
        .unwrap();
    assert!(report.created.is_empty(), "{report}");
    assert!(report.matching.is_empty(), "{report}");
    assert!(!report.is_ok());
    let found: Vec<(String, Setting, String, String)> = report
        .mismatches
        .iter()
        .map(|m| {
            (
                m.topic.clone(),
                m.setting,
                m.expected.clone(),
                m.actual.clone(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (name.clone(), Setting::Partitions, "6".into(), "2".into()),
            (
                name.clone(),
                Setting::RetentionMs,
                "604800000".into(),
                "86400000".into()
            ),
        ]
    );
    let err = report.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TopicMismatch);
    assert!(
        err.to_string().contains("partitions is 2, expected 6"),
        "{err}"
    );
}

#[tokio::test]
async fn check_only_reports_missing_without_creating() {
    let Some(config) = broker() else { return };
    let spec = TopicSpec::new(unique_topic("absent"), 1);
    let _cleanup = DropTopics::new(&config, &[&spec.name]);
    let report = ensure_topics(&config, std::slice::from_ref(&spec), EnsureMode::CheckOnly)
        .await
        .unwrap();
    assert_eq!(report.missing, std::slice::from_ref(&spec.name));
    assert!(report.created.is_empty());
    // Still absent: the check did not create it (not even by auto-creation).
    let again = ensure_topics(&config, std::slice::from_ref(&spec), EnsureMode::CheckOnly)
        .await
        .unwrap();
    assert_eq!(again.missing, std::slice::from_ref(&spec.name));
}

#[tokio::test]
async fn unreachable_brokers_fail_with_a_typed_error() {
    // Port 1 on loopback: nothing listens there. Needs no broker.
    let config = KafkaConfig::for_brokers("127.0.0.1:1");
    let err = ensure_topics(&config, &[TopicSpec::visits()], EnsureMode::CheckOnly)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}
