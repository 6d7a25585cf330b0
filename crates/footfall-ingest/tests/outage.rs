//! Kafka going away and coming back: reading stops, `/health` turns 503, one
//! error and reminders are logged, and everything resumes by itself without
//! losing a line. Uses librdkafka's mock cluster, whose broker can be taken
//! down and up again.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use footfall_event::VisitEvent;
use footfall_ingest::{FileOptions, IngestConfig, SourceConfig, SourceKind};
use footfall_kafka::{KafkaConfig, OptionValue};
use footfall_parse::{ParseConfig, SecretKeys, Tables};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn line(i: usize) -> String {
    format!("198.51.100.{} - - [10/Oct/2024:13:55:{:02} +0000] \"GET /page/{i} HTTP/1.1\" 200 {} \"-\" \"curl/8.5.0\"\n", 1 + i % 200, i % 60, i)
}

async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_outage_pauses_reading_and_recovers() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .with(footfall_ingest::parse_log_filter("info,librdkafka=off").unwrap())
        .init();

    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("visits", 1, 1).unwrap();
    mock.create_topic("visits.dlq", 1, 1).unwrap();
    let mut kafka = KafkaConfig::for_brokers(mock.bootstrap_servers());
    kafka.topics.visits.name = Some("visits".into());
    kafka.topics.dead_letter.name = Some("visits.dlq".into());
    // Messages time out while the broker is down: exercises failed deliveries and resends.
    kafka.options.insert(
        "message.timeout.ms".into(),
        OptionValue::for_key("message.timeout.ms", "2000"),
    );

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut written = 0usize;
    let mut write = |n: usize| {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        for _ in 0..n {
            f.write_all(line(written).as_bytes()).unwrap();
            written += 1;
        }
        written
    };
    write(50);

    let max_in_flight = 100;
    let mut cfg = IngestConfig::new(kafka.clone()).unwrap();
    cfg.state_dir = dir.path().join("state");
    cfg.http_listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.max_in_flight = max_in_flight;
    cfg.read_chunk_bytes = 4096;
    cfg.unhealthy_after = Duration::from_secs(2);
    cfg.reminder_interval = Duration::from_secs(2);
    cfg.probe_interval = Duration::from_millis(500);
    let opts = FileOptions {
        paths: vec![log.to_string_lossy().into_owned()],
        poll_interval: Duration::from_millis(50),
        scan_interval: Duration::from_millis(200),
        ..FileOptions::default()
    };
    cfg.sources.push(SourceConfig {
        name: "www".into(),
        kind: SourceKind::Files(opts),
        parse: ParseConfig {
            format: "combined".into(),
            ..Default::default()
        },
    });
    let keys = Arc::new(SecretKeys::from_secret(b"outage test secret value").unwrap());
    let shutdown = CancellationToken::new();
    let handle = footfall_ingest::start(cfg, Tables::embedded(), keys, shutdown.clone(), None)
        .await
        .unwrap();
    let addr = handle.http_addr().unwrap();
    wait_until("first lines", Duration::from_secs(30), || {
        handle.snapshot().events_produced == 50
    })
    .await;
    assert_eq!(
        footfall_ingest::http::get(addr, "/health").await.unwrap().0,
        200
    );

    // The broker goes away; lines keep coming.
    mock.broker_down(1).unwrap();
    let total = write(3000);
    let mut health = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        health = footfall_ingest::http::get(addr, "/health").await.unwrap().0;
        if health == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(health, 503, "/health reports the outage");
    // Reading has stopped, with a bounded backlog.
    let before = handle.snapshot();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = handle.snapshot();
    assert_eq!(
        before.lines_read_total, after.lines_read_total,
        "reading stopped"
    );
    assert!(
        after.lines_read_total < total as u64,
        "not everything was read: {after:?}"
    );
    let per_batch = 4096 / line(0).len() + 1;
    assert!(
        after.queue_depth as usize <= max_in_flight + 8 * per_batch,
        "backlog bounded: {after:?}"
    );
    let (_, metrics) = footfall_ingest::http::get(addr, "/metrics").await.unwrap();
    assert!(
        metrics.lines().any(|l| l == "footfall_ingest_kafka_up 0"),
        "{metrics}"
    );

    // The outage lasts until the periodic reminder has been logged at least once.
    wait_until("a reminder", Duration::from_secs(30), || {
        String::from_utf8_lossy(&logs.0.lock().unwrap()).contains("Kafka still unreachable")
    })
    .await;

    // Back again: everything arrives by itself.
    mock.broker_up(1).unwrap();
    wait_until("recovery", Duration::from_secs(90), || {
        let s = handle.snapshot();
        s.events_produced == total as u64 && s.queue_depth == 0
    })
    .await;
    wait_until("health back", Duration::from_secs(30), || {
        handle.kafka_healthy()
    })
    .await;
    assert_eq!(
        footfall_ingest::http::get(addr, "/health").await.unwrap().0,
        200
    );
    wait_until("recovery logged", Duration::from_secs(10), || {
        String::from_utf8_lossy(&logs.0.lock().unwrap()).contains("Kafka reachable again")
    })
    .await;
    let s = handle.snapshot();
    assert!(
        s.delivery_errors > 0,
        "messages timed out during the outage and were sent again: {s:?}"
    );
    shutdown.cancel();
    let report = handle.wait().await.unwrap();
    assert_eq!(report.unacknowledged, 0);

    // Nothing lost: every line is on the topic (resends may duplicate, with the same id).
    let consumer: BaseConsumer = kafka
        .consumer_config("outage-check")
        .unwrap()
        .create()
        .unwrap();
    consumer.subscribe(&["visits"]).unwrap();
    let mut ids = BTreeSet::new();
    let mut pages = BTreeSet::new();
    let start = Instant::now();
    while pages.len() < total && start.elapsed() < Duration::from_secs(60) {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let ev: VisitEvent = serde_json::from_slice(m.payload().unwrap()).unwrap();
            ids.insert(ev.event_id);
            pages.insert(ev.path);
        }
    }
    assert_eq!(pages.len(), total, "every line arrived");
    assert_eq!(ids.len(), total, "one event id per line");

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let errors = text
        .lines()
        .filter(|l| l.contains("Kafka is unreachable or not acknowledging"))
        .count();
    assert_eq!(errors, 1, "one clear error:\n{text}");
    assert!(
        text.contains("Kafka still unreachable"),
        "a reminder:\n{text}"
    );
    assert!(
        text.contains("Kafka reachable again"),
        "recovery logged:\n{text}"
    );
    assert!(
        !text.contains("198.51.100."),
        "no client address in logs:\n{text}"
    );
    let failure_lines = text
        .lines()
        .filter(|l| l.contains("delivery failed") || l.contains("deliveries failed"))
        .count();
    assert!(
        failure_lines <= 5,
        "failed deliveries are summarised, not logged one by one ({failure_lines} lines):\n{text}"
    );
    println!(
        "outage: {total} lines, backlog while down {} lines (max_in_flight {max_in_flight}), {} delivery errors, all delivered",
        after.queue_depth, s.delivery_errors
    );
}
