//! The real broker stopped for 10 s in the middle of a large file and started
//! again: ingest pauses reading, resumes by itself, and loses nothing.
//!
//! Stops and starts the broker through `FOOTFALL_KAFKA_SCRIPT`
//! (deploy/kafka/local-kafka.sh), so it must not run while other tests use the
//! broker: it is a test binary of its own, and `deploy/test.sh` runs it on its
//! own after the main `cargo test`, with `FOOTFALL_KAFKA_SCRIPT` set only for
//! that run. Without that variable it says so and returns. The broker address
//! is `FOOTFALL_KAFKA_BROKERS`, or else what `$FOOTFALL_KAFKA_SCRIPT env` prints.
//!
//! The producer keeps librdkafka's defaults (`message.timeout.ms` 300 s), as in
//! production: a 10 s outage is ridden out by librdkafka's own retries, and
//! any delivery that fails anyway is sent again by the service. Resends may
//! duplicate events (at least once, same `event_id`): allowed, and reported.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use footfall_ingest::{FileOptions, IngestConfig, SourceConfig, SourceKind};
use footfall_kafka::KafkaConfig;
use footfall_parse::{
    FormatState, KeyProvider, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use common::wait_for;

const SCRIPT_VAR: &str = "FOOTFALL_KAFKA_SCRIPT";
/// Lines in the log file: far more than ingest reads while the broker stops
/// plus what fits in flight (`max_in_flight` 50,000 by default).
const LINES: usize = 300_000;
/// Every this many lines one is not an access log line (a reject).
const REJECT_EVERY: usize = 1000;
const OUTAGE: Duration = Duration::from_secs(10);
/// The service reports Kafka unhealthy after this long without progress.
const UNHEALTHY_AFTER: Duration = Duration::from_secs(3);

fn line(i: usize) -> String {
    if i % REJECT_EVERY == REJECT_EVERY - 1 {
        return format!("not an access log line, number {i}\n");
    }
    format!(
        "203.0.{}.{} - - [10/Oct/2024:{:02}:{:02}:{:02} +0000] \"GET /page/{i}?q={} HTTP/1.1\" 200 {} \"https://example.org/from/{}\" \"Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0\"\n",
        (i / 250) % 250,
        1 + i % 250,
        (i / 3600) % 24,
        (i / 60) % 60,
        i % 60,
        i * 7,
        100 + i % 5000,
        i % 977
    )
}

fn keys() -> Arc<dyn KeyProvider> {
    Arc::new(SecretKeys::from_secret(b"broker outage test secret").unwrap())
}

fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("footfall-test-{label}-{}-{nanos}", std::process::id())
}

fn script(path: &str, command: &str) -> std::process::Output {
    Command::new("bash")
        .args([path, command])
        .output()
        .unwrap_or_else(|err| panic!("running {path} {command}: {err}"))
}

/// Runs `script command` off the async threads, echoing its output; panics unless it succeeds.
async fn run_script(path: &str, command: &'static str) {
    let p = path.to_string();
    let out = tokio::task::spawn_blocking(move || script(&p, command))
        .await
        .unwrap();
    eprint!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{path} {command} failed: {}",
        out.status
    );
}

/// The broker address: `FOOTFALL_KAFKA_BROKERS`, or what the script's `env` prints.
fn brokers(script_path: &str) -> String {
    if let Some(b) = footfall_testkit::brokers_from_env() {
        return b;
    }
    let out = script(script_path, "env");
    assert!(out.status.success(), "{script_path} env failed");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("export FOOTFALL_KAFKA_BROKERS="))
        .unwrap_or_else(|| panic!("no FOOTFALL_KAFKA_BROKERS in `{script_path} env`: {text}"))
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string()
}

/// Starts the broker again if the test ends (a failure included) while it is stopped.
struct BrokerBack {
    script: String,
    stopped: bool,
}

impl Drop for BrokerBack {
    fn drop(&mut self) {
        if self.stopped {
            eprintln!("broker_outage: starting the broker again after a failure");
            let out = script(&self.script, "start");
            eprint!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Deletes the test's topics when dropped (best effort), so runs do not pile
/// up topics on the shared broker.
struct DropTopics(KafkaConfig);

impl Drop for DropTopics {
    fn drop(&mut self) {
        use rdkafka::admin::{AdminClient, AdminOptions};
        let kafka = self.0.clone();
        // A thread of its own: Drop may run inside the Tokio runtime.
        let outcome = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let admin: AdminClient<rdkafka::client::DefaultClientContext> =
                    kafka.admin_config().unwrap().create().unwrap();
                let names = [kafka.topics.visits().name, kafka.topics.dead_letter().name];
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                admin
                    .delete_topics(
                        &names,
                        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
                    )
                    .await
            })
        })
        .join();
        if let Ok(Err(err)) = outcome {
            eprintln!("deleting test topics: {err}");
        }
    }
}

/// The event ids and reject ids the parser gives `content` read as the file `name`
/// (what `footfall parse` gives for the same file and key).
fn expected_ids(name: &str, content: &[u8]) -> (HashSet<String>, HashSet<String>) {
    let cfg = ParseConfig {
        format: "combined".into(),
        ..Default::default()
    };
    let p = Arc::new(Pipeline::new(&cfg, &Tables::embedded(), keys()).unwrap());
    let mut w = p.worker();
    let first = content.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let src = SourceRef::from_first_line(name, first);
    let mut state = FormatState::default();
    let (mut events, mut rejects) = (HashSet::new(), HashSet::new());
    let mut offset = 0u64;
    for l in content.split_inclusive(|&b| b == b'\n') {
        match w.process(&src, &mut state, offset, l.strip_suffix(b"\n").unwrap_or(l)) {
            Outcome::Event(e) => assert!(events.insert(e.event_id), "event ids are distinct"),
            Outcome::Reject(r) => assert!(rejects.insert(r.event_id), "reject ids are distinct"),
        }
        offset += l.len() as u64;
    }
    (events, rejects)
}

#[derive(serde::Deserialize)]
struct Id {
    event_id: String,
}

/// Every message of `topic` from the beginning up to its end (the high
/// watermarks read now, after ingest has stopped): its `event_id`s, in order.
fn consume_all(kafka: &KafkaConfig, topic: &str, timeout: Duration) -> Vec<String> {
    let consumer: BaseConsumer = kafka
        .consumer_config(&unique("outage-check"))
        .unwrap()
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .unwrap();
    let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    assert!(!partitions.is_empty(), "{topic} has partitions");
    let mut end = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(30))
            .unwrap();
        assert_eq!(low, 0, "{topic}[{p}] starts at offset 0");
        if high > 0 {
            end.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
    }
    let mut ids = Vec::new();
    if end.is_empty() {
        return ids;
    }
    consumer.assign(&tpl).unwrap();
    let start = Instant::now();
    while !end.is_empty() {
        assert!(
            start.elapsed() < timeout,
            "{topic}: still {end:?} to read after {timeout:?}, {} messages read",
            ids.len()
        );
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap_or_else(|e| panic!("consuming {topic}: {e}"));
        let id: Id = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_else(|e| {
            panic!(
                "{topic}[{}]@{}: not an event: {e}",
                m.partition(),
                m.offset()
            )
        });
        ids.push(id.event_id);
        if end
            .get(&m.partition())
            .is_some_and(|&high| m.offset() + 1 >= high)
        {
            end.remove(&m.partition());
        }
    }
    ids
}

/// One sample taken while the broker is down.
struct Sample {
    at: Duration,
    lines_read: u64,
    events_produced: u64,
    queue_depth: u64,
    health: u16,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stopped_for_10s_mid_stream_loses_nothing() {
    let Ok(script_path) = std::env::var(SCRIPT_VAR) else {
        // Straight to stderr, past the test harness's capture, so the skip is visible.
        let _ = writeln!(
            std::io::stderr().lock(),
            "{SCRIPT_VAR} not set: broker outage test not run (deploy/test.sh runs it)"
        );
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_test_writer()
        .finish()
        .with(footfall_ingest::parse_log_filter("info,librdkafka=warn").unwrap())
        .try_init();
    let test_start = Instant::now();

    // Fresh topics on the real broker.
    let mut kafka = KafkaConfig::for_brokers(brokers(&script_path));
    kafka.topics.visits.name = Some(unique("outage"));
    kafka.topics.visits.partitions = Some(3);
    kafka.topics.dead_letter.name = Some(unique("outage-dlq"));
    let report = footfall_kafka::ensure_topics(
        &kafka,
        &kafka.topics.specs(),
        footfall_kafka::EnsureMode::Create,
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "broker at {} not usable (is it running? {script_path} start): {e}",
            kafka.brokers
        )
    });
    assert!(report.is_ok(), "{report}");
    let _topics = DropTopics(kafka.clone());
    let mut broker = BrokerBack {
        script: script_path.clone(),
        stopped: false,
    };

    // A large log, every line different.
    let dir = tempfile::tempdir().unwrap();
    let log: PathBuf = dir.path().join("access.log");
    let mut content = Vec::with_capacity(LINES * 200);
    for i in 0..LINES {
        content.extend_from_slice(line(i).as_bytes());
    }
    fs::File::create(&log).unwrap().write_all(&content).unwrap();
    let name = log.to_string_lossy().into_owned();
    let (want_events, want_rejects) = {
        let (n, c) = (name.clone(), content.clone());
        tokio::task::spawn_blocking(move || expected_ids(&n, &c))
            .await
            .unwrap()
    };
    assert_eq!(want_events.len() + want_rejects.len(), LINES);
    assert_eq!(want_rejects.len(), LINES / REJECT_EVERY);
    let total = LINES as u64;
    eprintln!(
        "broker_outage: {LINES} lines ({} MB), {} events and {} rejects expected ({:.1}s)",
        content.len() / 1_000_000,
        want_events.len(),
        want_rejects.len(),
        test_start.elapsed().as_secs_f64()
    );

    // Ingest in-process, following the file, with librdkafka's default timeouts.
    let state = dir.path().join("state");
    let mut cfg = IngestConfig::new(kafka.clone()).unwrap();
    cfg.state_dir = state.clone();
    cfg.http_listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.checkpoint_interval = Duration::from_millis(500);
    cfg.unhealthy_after = UNHEALTHY_AFTER;
    cfg.reminder_interval = Duration::from_secs(5);
    cfg.probe_interval = Duration::from_secs(1);
    let max_in_flight = cfg.max_in_flight as u64;
    let opts = FileOptions {
        paths: vec![name.clone()],
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
    let shutdown = CancellationToken::new();
    let ingest_start = Instant::now();
    let handle = footfall_ingest::start(cfg, Tables::embedded(), keys(), shutdown.clone(), None)
        .await
        .unwrap();
    let addr = handle.http_addr().unwrap();

    // Some events acknowledged: stop the broker.
    wait_for(
        &handle,
        "the first acknowledged events",
        Duration::from_secs(120),
        |s| s.events_produced >= 1000,
    )
    .await;
    let at_stop = handle.snapshot();
    broker.stopped = true;
    let stop_start = Instant::now();
    run_script(&script_path, "stop").await;
    let stop_took = stop_start.elapsed();
    assert_eq!(
        script(&script_path, "status").status.code(),
        Some(3),
        "broker still running after stop"
    );
    let down = handle.snapshot();
    eprintln!(
        "broker_outage: broker stopped after {} events acknowledged ({:.1}s into ingest; stop took {:.1}s, {} acknowledged by then)",
        at_stop.events_produced,
        ingest_start.elapsed().as_secs_f64() - stop_took.as_secs_f64(),
        stop_took.as_secs_f64(),
        down.events_produced
    );
    assert!(
        down.events_produced + down.dead_letters_produced < total,
        "the whole file was produced before the broker was down: make LINES larger ({down:?})"
    );

    // Down for 10 s, ingest running: watch it.
    let outage_start = Instant::now();
    let mut samples = Vec::new();
    while outage_start.elapsed() < OUTAGE {
        let s = handle.snapshot();
        let health = footfall_ingest::http::get(addr, "/health")
            .await
            .map(|r| r.0)
            .unwrap_or(0);
        samples.push(Sample {
            at: outage_start.elapsed(),
            lines_read: s.lines_read_total,
            events_produced: s.events_produced,
            queue_depth: s.queue_depth,
            health,
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, metrics_down) = footfall_ingest::http::get(addr, "/metrics").await.unwrap();
    let before_start = handle.snapshot();
    let start_start = Instant::now();
    run_script(&script_path, "start").await;
    broker.stopped = false;
    eprintln!(
        "broker_outage: broker down {:.1}s in all; start took {:.1}s",
        stop_start.elapsed().as_secs_f64(),
        start_start.elapsed().as_secs_f64()
    );

    // While it was down: nothing acknowledged, reading paused with a bounded backlog, /health 503.
    let last = samples.last().unwrap();
    let paused_since = samples
        .iter()
        .rev()
        .take_while(|s| s.lines_read == last.lines_read)
        .last()
        .unwrap()
        .at;
    eprintln!(
        "broker_outage: during the outage lines read {} -> {} (unchanged from {:.1}s of {:.0}s), backlog {} lines, /health {:?}",
        samples[0].lines_read,
        last.lines_read,
        paused_since.as_secs_f64(),
        OUTAGE.as_secs_f64(),
        last.queue_depth,
        samples.iter().map(|s| s.health).collect::<std::collections::BTreeSet<_>>()
    );
    // (Acknowledgements the broker sent just before it exited may still be processed in the first moments.)
    let settled = samples
        .iter()
        .find(|s| s.at >= Duration::from_secs(1))
        .unwrap()
        .events_produced;
    assert!(
        samples.iter().filter(|s| s.at >= Duration::from_secs(1)).all(|s| s.events_produced == settled) && before_start.events_produced == settled,
        "nothing is acknowledged while the broker is down: {} at the stop, {settled} 1 s later, {} at the end",
        down.events_produced,
        before_start.events_produced
    );
    assert!(
        last.lines_read < total,
        "reading paused before the end of the file: {before_start:?}"
    );
    assert!(
        OUTAGE - paused_since >= Duration::from_secs(2),
        "reading paused: lines read still grew {:.1}s into the outage",
        paused_since.as_secs_f64()
    );
    assert!(
        last.queue_depth > 0 && last.queue_depth <= max_in_flight + 20_000,
        "backlog bounded by max_in_flight ({max_in_flight}) and the small queues: {before_start:?}"
    );
    assert!(
        samples.iter().any(|s| s.health == 503),
        "/health reported the outage"
    );
    assert!(
        metrics_down
            .lines()
            .any(|l| l == "footfall_ingest_kafka_up 0"),
        "kafka_up 0 during the outage"
    );

    // Back: everything arrives by itself.
    let recovery_start = Instant::now();
    wait_for(
        &handle,
        "every line acknowledged after the broker came back",
        Duration::from_secs(300),
        |s| s.lines_read_total == total && s.queue_depth == 0,
    )
    .await;
    let recovery = recovery_start.elapsed();
    wait_for(
        &handle,
        "/health healthy again",
        Duration::from_secs(30),
        |_| handle.kafka_healthy(),
    )
    .await;
    assert_eq!(
        footfall_ingest::http::get(addr, "/health").await.unwrap().0,
        200
    );
    shutdown.cancel();
    let report = handle.wait().await.unwrap();
    let ingest_took = ingest_start.elapsed();
    assert_eq!(report.unacknowledged, 0);
    let c = &report.counters;
    assert_eq!(c.lines_read_total, total);
    assert_eq!(
        c.events_produced + c.rejects_total,
        total,
        "events + rejects = lines"
    );
    assert_eq!(c.events_produced as usize, want_events.len());
    assert_eq!(c.rejects_total as usize, want_rejects.len());
    assert_eq!(c.dead_letters_produced as usize, want_rejects.len());
    let doc: serde_json::Value =
        serde_json::from_slice(&fs::read(state.join("checkpoints.json")).unwrap()).unwrap();
    assert_eq!(
        doc["files"][0]["offset"],
        content.len() as u64,
        "checkpoint at the end of the file"
    );
    eprintln!(
        "broker_outage: all acknowledged {:.1}s after the broker was back; ingest ran {:.1}s; {} delivery errors (resent)",
        recovery.as_secs_f64(),
        ingest_took.as_secs_f64(),
        c.delivery_errors
    );

    // On the topics: every line's id, nothing else; duplicates counted.
    let consume_start = Instant::now();
    let (k, visits, dlq) = (
        kafka.clone(),
        kafka.topics.visits().name,
        kafka.topics.dead_letter().name,
    );
    let (got_events, got_rejects) = tokio::task::spawn_blocking(move || {
        (
            consume_all(&k, &visits, Duration::from_secs(300)),
            consume_all(&k, &dlq, Duration::from_secs(60)),
        )
    })
    .await
    .unwrap();
    let check = |what: &str, got: &[String], want: &HashSet<String>| -> usize {
        let distinct: HashSet<&String> = got.iter().collect();
        let missing = want.iter().filter(|id| !distinct.contains(id)).count();
        let unknown: Vec<&&String> = distinct
            .iter()
            .filter(|id| !want.contains(id.as_str()))
            .take(5)
            .collect();
        assert_eq!(
            missing,
            0,
            "{what}: {missing} of {} lines missing ({} messages, {} distinct)",
            want.len(),
            got.len(),
            distinct.len()
        );
        assert!(
            unknown.is_empty(),
            "{what}: ids no line has, e.g. {unknown:?}"
        );
        got.len() - distinct.len()
    };
    let dup_events = check("events topic", &got_events, &want_events);
    let dup_rejects = check("dead-letter topic", &got_rejects, &want_rejects);
    eprintln!(
        "broker_outage: consumed {} events and {} dead letters in {:.1}s: all {LINES} lines present, {dup_events} duplicate events, {dup_rejects} duplicate dead letters; test took {:.1}s",
        got_events.len(),
        got_rejects.len(),
        consume_start.elapsed().as_secs_f64(),
        test_start.elapsed().as_secs_f64()
    );
}
