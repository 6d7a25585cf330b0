//! End-to-end: files and syslog in, Kafka out, consumed back and compared
//! with what the parser itself produces.
//!
//! Every scenario runs twice: against the in-process mock cluster
//! (`footfall_kafka::EmbeddedKafka`, always), and against a real broker at
//! `FOOTFALL_KAFKA_BROKERS` (skipped with a message when unset, a failure
//! when `FOOTFALL_REQUIRE_KAFKA=1`).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use footfall_event::{Reject, VisitEvent};
use footfall_ingest::{FileOptions, IngestConfig, SourceConfig, SourceKind, SyslogProtocol};
use footfall_kafka::{EmbeddedKafka, KafkaConfig};
use footfall_parse::{
    FormatState, KeyProvider, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use tokio_util::sync::CancellationToken;

use common::wait_for;

/// The Apache-2.0 elastic log shipped in the repository.
const APACHE_LOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/elastic-apache-logs/apache_logs.gz"
);

/// The wider real-log corpus beside the checkout (`../shared/data`), with each file's format.
const CORPUS: &[(&str, &str)] = &[
    ("zanbil-kaggle-head10k/access_10000.log.gz", "combined"),
    ("secrepo-selflogs/access-2018-12-15.log.gz", "combined"),
    ("secrepo-selflogs/2021_all.log.gz", "combined"),
    ("secrepo-selflogs/access.log.2022-12-22.gz", "combined"),
    ("wordpress-nginx-2025-hackathon/access.log.gz", "combined"),
    ("nasa-http-aug95-first20k/nasa.log.gz", "common"),
    ("monitorware-twiki-2004/access_log", "common"),
    ("thedash-nginx-json-2013/access.log.gz", "nginx-json"),
];

/// The corpus reaches back to 1995, further than the default window of
/// twenty years before the clock (`parse.max_past_days`).
const CORPUS_PAST_DAYS: u32 = 100 * 366;

fn keys() -> Arc<dyn KeyProvider> {
    Arc::new(SecretKeys::from_secret(b"ingest integration test secret").unwrap())
}

fn tables() -> Tables {
    static T: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    T.get_or_init(Tables::embedded).clone()
}

/// A Kafka to test against, with fresh topic names.
struct Target {
    kafka: KafkaConfig,
    _embedded: Option<EmbeddedKafka>,
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("footfall-test-{prefix}-{}-{nanos}", std::process::id())
}

async fn embedded(test: &str) -> Target {
    let kafka = EmbeddedKafka::start(1).unwrap();
    let mut cfg = kafka.kafka_config();
    let (events, dlq) = (unique(test), unique(&format!("{test}-dlq")));
    kafka.create_topic(&events, 3).unwrap();
    kafka.create_topic(&dlq, 1).unwrap();
    cfg.topics.visits.name = Some(events);
    cfg.topics.dead_letter.name = Some(dlq);
    Target {
        kafka: cfg,
        _embedded: Some(kafka),
    }
}

/// The real broker, or `None` (after saying so) when none is configured.
async fn broker(test: &str) -> Option<Target> {
    let brokers = footfall_testkit::brokers()?;
    let mut cfg = KafkaConfig::for_brokers(brokers);
    cfg.topics.visits.name = Some(unique(test));
    cfg.topics.visits.partitions = Some(3);
    cfg.topics.dead_letter.name = Some(unique(&format!("{test}-dlq")));
    let report = footfall_kafka::ensure_topics(
        &cfg,
        &cfg.topics.specs(),
        footfall_kafka::EnsureMode::Create,
    )
    .await
    .unwrap_or_else(|e| panic!("broker at {} not usable: {e}", cfg.brokers));
    assert!(report.is_ok(), "{report}");
    Some(Target {
        kafka: cfg,
        _embedded: None,
    })
}

/// Delete a broker test's topics.
async fn delete_topics(kafka: &KafkaConfig) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        kafka.admin_config().unwrap().create().unwrap();
    let names = [kafka.topics.visits().name, kafka.topics.dead_letter().name];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Err(e) = admin.delete_topics(&names, &AdminOptions::new()).await {
        eprintln!("deleting test topics: {e}");
    }
}

fn base_config(t: &Target, state: &Path) -> IngestConfig {
    let mut cfg = IngestConfig::new(t.kafka.clone()).unwrap();
    cfg.state_dir = state.to_path_buf();
    cfg.http_listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.checkpoint_interval = Duration::from_millis(200);
    cfg
}

fn file_source(name: &str, paths: Vec<String>, follow: bool, format: &str) -> SourceConfig {
    let opts = FileOptions {
        paths,
        follow,
        poll_interval: Duration::from_millis(50),
        scan_interval: Duration::from_millis(100),
        rotate_wait: Duration::from_millis(500),
        ..FileOptions::default()
    };
    SourceConfig {
        name: name.into(),
        kind: SourceKind::Files(opts),
        parse: ParseConfig {
            format: format.into(),
            max_past_days: CORPUS_PAST_DAYS,
            ..Default::default()
        },
    }
}

/// One consumed message.
#[derive(Debug, Clone)]
struct Consumed {
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: BTreeMap<String, String>,
}

/// Read `topic` from the beginning until `want` messages arrived (then a
/// little longer, to catch extras) or `deadline` passed.
fn consume(kafka: &KafkaConfig, topic: &str, want: usize, deadline: Duration) -> Vec<Consumed> {
    let consumer: BaseConsumer = kafka
        .consumer_config(&unique("group"))
        .unwrap()
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let start = Instant::now();
    let mut settled: Option<Instant> = None;
    while start.elapsed() < deadline {
        if let Some(t) = settled {
            if t.elapsed() > Duration::from_millis(500) {
                break;
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Consumed {
                    key: m.key().unwrap_or_default().to_vec(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
                if out.len() >= want && settled.is_none() {
                    settled = Some(Instant::now());
                }
            }
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            None => {
                if want == 0 && settled.is_none() && start.elapsed() > Duration::from_secs(3) {
                    break;
                }
            }
        }
    }
    out
}

/// What the parser makes of `content` read as the file `name`.
fn expected(name: &str, content: &[u8], format: &str) -> (Vec<VisitEvent>, Vec<Reject>) {
    let cfg = ParseConfig {
        format: format.into(),
        max_past_days: CORPUS_PAST_DAYS,
        ..Default::default()
    };
    let p = Pipeline::new(&cfg, &tables(), keys()).unwrap();
    // The site's host, inferred from the first lines as `footfall parse`
    // does (its first 256 KiB): ingest decides on the same host before it
    // parses its first batch.
    let head: Vec<&[u8]> = content[..content.len().min(256 << 10)]
        .split(|&b| b == b'\n')
        .collect();
    let p = Arc::new(match p.infer_site_host(&head) {
        Some(found) => p.with_site_host(&found.host),
        None => p,
    });
    let mut w = p.worker();
    let first = content.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let src = SourceRef::from_first_line(name, first.strip_suffix(b"\r").unwrap_or(first));
    let mut state = FormatState::default();
    let (mut evs, mut rejs) = (Vec::new(), Vec::new());
    let mut offset = 0u64;
    let mut rest = content;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        match w.process(&src, &mut state, offset, line) {
            Outcome::Event(e) => evs.push(*e),
            Outcome::Reject(r) => rejs.push(*r),
        }
        offset += (rest.len() - next.len()) as u64;
        rest = next;
    }
    (evs, rejs)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------

/// A real log, read once: the consumed events are exactly the parser's outcomes.
async fn real_log_round_trip(t: Target) {
    real_log_round_trip_of(t, Path::new(APACHE_LOG), "combined").await;
}

/// One real log through ingest and back: exactly the parser's outcomes.
async fn real_log_round_trip_of(t: Target, source: &Path, format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(source.file_name().unwrap());
    fs::copy(source, &path).unwrap();
    let content = footfall_testkit::read_log(&path);
    let name = path.to_string_lossy().into_owned();
    let (want_events, want_rejects) = expected(&name, &content, format);
    let lines = want_events.len() + want_rejects.len();
    assert!(
        want_events.len() > 1000,
        "{}: the sample has thousands of lines",
        source.display()
    );

    let mut cfg = base_config(&t, &dir.path().join("state"));
    cfg.sources
        .push(file_source("apache", vec![name.clone()], false, format));
    let report = footfall_ingest::run(cfg, tables(), keys(), CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(report.counters.lines_read_total as usize, lines);
    assert_eq!(report.counters.events_produced as usize, want_events.len());
    assert_eq!(report.counters.rejects_total as usize, want_rejects.len());
    assert_eq!(
        report.counters.dead_letters_produced as usize,
        want_rejects.len()
    );
    assert_eq!(report.unacknowledged, 0);

    let events_topic = t.kafka.topics.visits().name;
    let got = consume(
        &t.kafka,
        &events_topic,
        want_events.len(),
        Duration::from_secs(120),
    );
    assert_eq!(got.len(), want_events.len(), "every event exactly once");
    let mut by_id: HashMap<String, VisitEvent> = HashMap::new();
    for m in &got {
        let ev: VisitEvent = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(m.key, ev.visitor_id.as_bytes(), "key is the visitor id");
        assert_eq!(
            m.headers.get("footfall-schema"),
            Some(&footfall_event::SCHEMA_VERSION.to_string())
        );
        assert_eq!(m.headers.get("footfall-source"), Some(&name));
        by_id.insert(ev.event_id.clone(), ev);
    }
    assert_eq!(by_id.len(), want_events.len(), "event ids are distinct");
    for want in &want_events {
        let Some(got) = by_id.get(&want.event_id) else {
            panic!("event {} (offset {}) missing", want.event_id, want.offset)
        };
        assert_eq!(got, want, "same fields");
    }
    let dlq = consume(
        &t.kafka,
        &t.kafka.topics.dead_letter().name,
        want_rejects.len(),
        Duration::from_secs(30),
    );
    let got_rejects: BTreeSet<String> = dlq
        .iter()
        .map(|m| {
            serde_json::from_slice::<Reject>(&m.payload)
                .unwrap()
                .event_id
        })
        .collect();
    let want_reject_ids: BTreeSet<String> =
        want_rejects.iter().map(|r| r.event_id.clone()).collect();
    assert_eq!(got_rejects, want_reject_ids);
    println!(
        "real log: {lines} lines, {} events, {} rejects, all consumed back",
        want_events.len(),
        want_rejects.len()
    );
}

/// Every real log of the corpus, each into its own topics on the real broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_round_trip_broker() {
    let Some(dir) = footfall_testkit::shared_data() else {
        println!("shared/data not present: the corpus round trip was not run");
        return;
    };
    for (rel, format) in CORPUS {
        let Some(t) = broker("corpus").await else {
            return;
        };
        let kafka = t.kafka.clone();
        real_log_round_trip_of(t, &dir.join(rel), format).await;
        delete_topics(&kafka).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_log_round_trip_embedded() {
    real_log_round_trip(embedded("roundtrip").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_log_round_trip_broker() {
    if let Some(t) = broker("roundtrip").await {
        let kafka = t.kafka.clone();
        real_log_round_trip(t).await;
        delete_topics(&kafka).await;
    }
}

// ---------------------------------------------------------------------------

fn good(i: usize) -> String {
    format!("203.0.113.{} - - [10/Oct/2024:13:55:{:02} +0000] \"GET /page/{i} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0\"\n", i % 250, i % 60, 100 + i)
}

/// Rejects go to the dead-letter topic; counters, metrics and topics agree;
/// the checkpoint reaches the end of the file.
async fn rejects_and_metrics(t: Target) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut content = String::new();
    for i in 0..40 {
        content.push_str(&good(i));
        match i % 10 {
            3 => content.push_str("this is not an access log line\n"),
            6 => content.push('\n'),
            9 => content.push_str("198.51.100.7 - - [99/Foo/2024:99:99:99 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n"),
            _ => {}
        }
    }
    fs::write(&log, &content).unwrap();
    let name = log.to_string_lossy().into_owned();
    let (want_events, want_rejects) = expected(&name, content.as_bytes(), "combined");
    let mut want_kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &want_rejects {
        *want_kinds.entry(r.kind.as_str()).or_default() += 1;
    }
    assert!(want_kinds.len() >= 2, "{want_kinds:?}");
    let lines = (want_events.len() + want_rejects.len()) as u64;

    let state = dir.path().join("state");
    let mut cfg = base_config(&t, &state);
    cfg.sources
        .push(file_source("www", vec![name.clone()], true, "combined"));
    let shutdown = CancellationToken::new();
    let handle = footfall_ingest::start(cfg, tables(), keys(), shutdown.clone(), None)
        .await
        .unwrap();
    let addr = handle.http_addr().unwrap();
    wait_for(
        &handle,
        "all lines acknowledged",
        Duration::from_secs(60),
        |s| s.lines_read_total == lines && s.queue_depth == 0,
    )
    .await;

    let (code, text) = footfall_ingest::http::get(addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        metric(&text, "footfall_ingest_lines_read_total{source=\"www\"}"),
        lines
    );
    assert_eq!(
        metric(&text, "footfall_ingest_events_produced_total"),
        want_events.len() as u64
    );
    for (kind, n) in &want_kinds {
        assert_eq!(
            metric(
                &text,
                &format!("footfall_ingest_rejects_total{{kind=\"{kind}\"}}")
            ),
            *n,
            "{kind}"
        );
    }
    let rejects_total: u64 = footfall_event::RejectKind::ALL
        .iter()
        .map(|k| {
            metric(
                &text,
                &format!("footfall_ingest_rejects_total{{kind=\"{}\"}}", k.as_str()),
            )
        })
        .sum();
    assert_eq!(
        metric(&text, "footfall_ingest_events_produced_total") + rejects_total,
        lines,
        "lines read = events + rejects"
    );
    assert_eq!(metric(&text, "footfall_ingest_queue_depth"), 0);
    assert_eq!(
        metric(&text, "footfall_ingest_bytes_behind{source=\"www\"}"),
        0
    );
    assert_eq!(metric(&text, "footfall_ingest_delivery_errors_total"), 0);
    let (code, body) = footfall_ingest::http::get(addr, "/health").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "ok\n"));

    let dlq = consume(
        &t.kafka,
        &t.kafka.topics.dead_letter().name,
        want_rejects.len(),
        Duration::from_secs(30),
    );
    assert_eq!(dlq.len(), want_rejects.len());
    let mut got_kinds: BTreeMap<String, u64> = BTreeMap::new();
    for m in &dlq {
        let r: Reject = serde_json::from_slice(&m.payload).unwrap();
        assert!(!r.reason.is_empty(), "a reject carries its reason");
        assert_eq!(m.key, name.as_bytes(), "dead letters are keyed by source");
        *got_kinds.entry(r.kind.as_str().to_string()).or_default() += 1;
        let want = want_rejects
            .iter()
            .find(|w| w.event_id == r.event_id)
            .expect("known reject");
        assert_eq!(&r, want);
    }
    assert_eq!(
        got_kinds,
        want_kinds
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    );
    let events = consume(
        &t.kafka,
        &t.kafka.topics.visits().name,
        want_events.len(),
        Duration::from_secs(30),
    );
    assert_eq!(events.len(), want_events.len());

    shutdown.cancel();
    let report = handle.wait().await.unwrap();
    assert!(report.shutdown_requested);
    assert_eq!(report.unacknowledged, 0);
    let doc: serde_json::Value =
        serde_json::from_slice(&fs::read(state.join("checkpoints.json")).unwrap()).unwrap();
    assert_eq!(doc["version"], 2);
    assert_eq!(
        doc["files"][0]["offset"],
        content.len() as u64,
        "checkpoint at the end of the file"
    );
    assert_eq!(doc["files"][0]["source"], "www");
    assert_eq!(
        doc["files"][0]["topic"].as_str(),
        Some(t.kafka.topics.visits().name.as_str()),
        "checkpoints name the topic they were delivered to"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_and_metrics_embedded() {
    rejects_and_metrics(embedded("rejects").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_and_metrics_broker() {
    if let Some(t) = broker("rejects").await {
        let kafka = t.kafka.clone();
        rejects_and_metrics(t).await;
        delete_topics(&kafka).await;
    }
}

// ---------------------------------------------------------------------------

fn path_of(ev: &VisitEvent) -> usize {
    ev.path.trim_start_matches("/page/").parse().unwrap()
}

/// Lines written across a rename rotation and a copytruncate rotation, and
/// across a restart, all arrive; duplicates carry the same event id.
async fn rotation_while_running(t: Target) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let state = dir.path().join("state");
    let pattern = dir
        .path()
        .join("access.log*")
        .to_string_lossy()
        .into_owned();
    let mut written = 0usize;
    let mut write = |n: usize, path: &Path| {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for _ in 0..n {
            f.write_all(good(written).as_bytes()).unwrap();
            written += 1;
        }
    };
    write(30, &log);

    let mut cfg = base_config(&t, &state);
    cfg.sources
        .push(file_source("www", vec![pattern.clone()], true, "combined"));
    let shutdown = CancellationToken::new();
    let handle = footfall_ingest::start(cfg.clone(), tables(), keys(), shutdown.clone(), None)
        .await
        .unwrap();
    wait_for(&handle, "first lines", Duration::from_secs(60), |s| {
        s.events_produced == 30
    })
    .await;

    // Rename rotation; the writer keeps appending to the old file for a moment.
    let rotated = dir.path().join("access.log.1");
    fs::rename(&log, &rotated).unwrap();
    write(10, &rotated);
    write(10, &log);
    wait_for(&handle, "rename rotation", Duration::from_secs(60), |s| {
        s.events_produced == 50
    })
    .await;

    // copytruncate: lines appended, copied and truncated before the follower looks.
    write(15, &log);
    let copy = dir.path().join("access.log.2");
    fs::copy(&log, &copy).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    write(10, &log);
    wait_for(&handle, "copytruncate", Duration::from_secs(60), |s| {
        s.events_produced >= 75 && s.queue_depth == 0
    })
    .await;
    shutdown.cancel();
    let first = handle.wait().await.unwrap();
    assert_eq!(first.unacknowledged, 0);

    // While stopped: more lines. After a restart they are read from the checkpoint.
    write(20, &log);
    let shutdown = CancellationToken::new();
    let handle = footfall_ingest::start(cfg, tables(), keys(), shutdown.clone(), None)
        .await
        .unwrap();
    wait_for(&handle, "after restart", Duration::from_secs(60), |s| {
        s.events_produced >= 20 && s.queue_depth == 0
    })
    .await;
    // Give scans a moment to (wrongly) pick anything up again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.cancel();
    let second = handle.wait().await.unwrap();

    let produced = (first.counters.events_produced + second.counters.events_produced) as usize;
    let got = consume(
        &t.kafka,
        &t.kafka.topics.visits().name,
        produced,
        Duration::from_secs(60),
    );
    assert_eq!(got.len(), produced);
    let events: Vec<VisitEvent> = got
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    let lines: BTreeSet<usize> = events.iter().map(path_of).collect();
    assert_eq!(lines, (0..written).collect::<BTreeSet<_>>(), "no line lost");
    let mut ids_per_line: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for ev in &events {
        ids_per_line
            .entry(path_of(ev))
            .or_default()
            .insert(ev.event_id.clone());
    }
    assert!(
        ids_per_line.values().all(|ids| ids.len() == 1),
        "a line read twice keeps its event id"
    );
    println!(
        "rotation: {written} lines written, {produced} events produced, {} duplicates",
        produced - written
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_while_running_embedded() {
    rotation_while_running(embedded("rotation").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_while_running_broker() {
    if let Some(t) = broker("rotation").await {
        let kafka = t.kafka.clone();
        rotation_while_running(t).await;
        delete_topics(&kafka).await;
    }
}

// ---------------------------------------------------------------------------

/// nginx-style syslog over UDP and TCP (octet counting and newline framing).
async fn syslog_sources(t: Target) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(&t, &dir.path().join("state"));
    for (name, protocol) in [
        ("edge-udp", SyslogProtocol::Udp),
        ("edge-tcp", SyslogProtocol::Tcp),
    ] {
        cfg.sources.push(SourceConfig {
            name: name.into(),
            kind: SourceKind::Syslog {
                protocol,
                listen: "127.0.0.1:0".parse().unwrap(),
                max_connections: 8,
            },
            parse: ParseConfig {
                format: "combined".into(),
                ..Default::default()
            },
        });
    }
    let shutdown = CancellationToken::new();
    let handle = footfall_ingest::start(cfg, tables(), keys(), shutdown.clone(), None)
        .await
        .unwrap();
    let addrs: HashMap<String, std::net::SocketAddr> =
        handle.syslog_addrs().iter().cloned().collect();

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..20 {
        let msg = format!("<190>Oct 10 13:55:36 web-1 nginx: {}", good(i).trim_end());
        udp.send_to(msg.as_bytes(), addrs["edge-udp"]).unwrap();
    }
    let mut tcp = std::net::TcpStream::connect(addrs["edge-tcp"]).unwrap();
    for i in 20..40 {
        let msg = format!(
            "<190>1 2024-10-10T13:55:36Z web-1 nginx - - - {}",
            good(i).trim_end()
        );
        if i % 2 == 0 {
            tcp.write_all(format!("{} {msg}", msg.len()).as_bytes())
                .unwrap();
        } else {
            tcp.write_all(format!("{msg}\n").as_bytes()).unwrap();
        }
    }
    drop(tcp);
    wait_for(&handle, "syslog events", Duration::from_secs(60), |s| {
        s.events_produced == 40 && s.queue_depth == 0
    })
    .await;
    let snap = handle.snapshot();
    assert_eq!(snap.rejects_total, 0, "{snap:?}");
    assert_eq!(snap.lines_read.get("edge-udp"), Some(&20));
    assert_eq!(snap.lines_read.get("edge-tcp"), Some(&20));
    shutdown.cancel();
    handle.wait().await.unwrap();
    let got = consume(
        &t.kafka,
        &t.kafka.topics.visits().name,
        40,
        Duration::from_secs(30),
    );
    let events: Vec<VisitEvent> = got
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert_eq!(
        events.iter().map(path_of).collect::<BTreeSet<_>>(),
        (0..40).collect()
    );
    assert!(events.iter().all(|e| e.source.starts_with("syslog:")));
    assert_eq!(
        events
            .iter()
            .map(|e| e.event_id.clone())
            .collect::<BTreeSet<_>>()
            .len(),
        40
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_sources_embedded() {
    syslog_sources(embedded("syslog").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_sources_broker() {
    if let Some(t) = broker("syslog").await {
        let kafka = t.kafka.clone();
        syslog_sources(t).await;
        delete_topics(&kafka).await;
    }
}
