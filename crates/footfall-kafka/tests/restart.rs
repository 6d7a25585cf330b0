//! Data survives a broker restart.
//!
//! Stops and starts the broker through `FOOTFALL_KAFKA_SCRIPT`
//! (deploy/kafka/local-kafka.sh), so it must not run while other tests use the
//! broker: it is a test binary of its own, and `deploy/test.sh` runs it on its
//! own after the main `cargo test`, with `FOOTFALL_KAFKA_SCRIPT` set only for
//! that run. Without that variable it says so and returns.

mod common;

use std::process::Command;
use std::time::Duration;

use footfall_kafka::{ensure_topics, EnsureMode, TopicSpec};
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use common::{broker, consume_sequenced, produce_sequenced, unique_topic, DropTopics};

const SCRIPT_VAR: &str = "FOOTFALL_KAFKA_SCRIPT";

fn script(script: &str, command: &str) -> std::process::ExitStatus {
    Command::new("bash")
        .args([script, command])
        .status()
        .unwrap_or_else(|err| panic!("running {script} {command}: {err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_committed_offsets_survive_a_restart() {
    let Ok(script_path) = std::env::var(SCRIPT_VAR) else {
        footfall_testkit::note(&format!(
            "{SCRIPT_VAR} not set: broker restart test not run (deploy/test.sh runs it)"
        ));
        return;
    };
    let Some(config) = broker() else { return };
    let topic = unique_topic("restart");
    let _cleanup = DropTopics::new(&config, &[&topic]);
    ensure_topics(&config, &[TopicSpec::new(&topic, 3)], EnsureMode::Create)
        .await
        .unwrap();

    let (config2, topic2) = (config.clone(), topic.clone());
    tokio::task::spawn_blocking(move || {
        let (config, topic) = (config2, topic2);
        let per_partition = produce_sequenced(&config, &topic, 3, 3_000);
        let committed_group = unique_topic("restart-committed");
        let consumer = consume_sequenced(
            &config,
            &topic,
            &committed_group,
            &per_partition,
            Duration::ZERO,
        );
        drop(consumer);

        assert!(script(&script_path, "stop").success(), "stop failed");
        assert_eq!(
            script(&script_path, "status").code(),
            Some(3),
            "still running after stop"
        );
        assert!(script(&script_path, "start").success(), "start failed");
        common::wait_until_reachable(&config, Duration::from_secs(60));

        // Every message is still there, in order, for a new group...
        let fresh_group = unique_topic("restart-fresh");
        let consumer = consume_sequenced(
            &config,
            &topic,
            &fresh_group,
            &per_partition,
            Duration::ZERO,
        );
        drop(consumer);

        // ...and the offsets committed before the restart are still committed.
        let probe: rdkafka::consumer::BaseConsumer = config
            .consumer_config(&committed_group)
            .unwrap()
            .create()
            .unwrap();
        let mut partitions = TopicPartitionList::new();
        for partition in 0..3 {
            partitions.add_partition(&topic, partition);
        }
        let committed = probe
            .committed_offsets(partitions, Duration::from_secs(30))
            .unwrap()
            .to_topic_map();
        for partition in 0..3 {
            assert_eq!(
                committed[&(topic.clone(), partition)],
                Offset::Offset(per_partition[partition as usize] as i64),
                "partition {partition}"
            );
        }
    })
    .await
    .unwrap();
}
