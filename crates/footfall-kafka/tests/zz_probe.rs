mod common;
use std::time::Duration;
use rdkafka::consumer::{Consumer, CommitMode};
use footfall_kafka::{ensure_topics, EnsureMode, TopicSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe() {
    let Some(config) = common::broker() else { return };
    let variant = std::env::var("PROBE").unwrap();
    let topic = common::unique_topic("probe");
    ensure_topics(&config, &[TopicSpec::new(&topic, 6)], EnsureMode::Create).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let per = common::produce_sequenced(&config, &topic, 6, std::env::var("PROBE_N").map(|n| n.parse().unwrap()).unwrap_or(6000));
        let c = common::consume_sequenced(&config, &topic, &common::unique_topic("g"), &per, Duration::from_millis(500));
        if variant.contains('c') { let _ = c.committed(Duration::from_secs(10)).unwrap(); }
        if variant.contains('w') { let _ = c.fetch_watermarks(&topic, 0, Duration::from_secs(10)).unwrap(); }
        if variant.contains('u') { c.unsubscribe(); }
        if variant.contains('s') { c.commit_consumer_state(CommitMode::Sync).unwrap(); }
        let t = std::time::Instant::now();
        drop(c);
        eprintln!("PROBE {variant}: drop took {:?}", t.elapsed());
    }).await.unwrap();
}
