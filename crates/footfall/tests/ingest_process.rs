//! `footfall ingest` as a process: stdin runs, SIGTERM, SIGKILL, an
//! unreachable broker, bad configuration.
//!
//! The broker comes from `FOOTFALL_KAFKA_BROKERS` (`deploy/kafka/local-kafka.sh
//! start` runs one). Without it the broker tests say so and return, unless
//! `FOOTFALL_REQUIRE_KAFKA=1` ([`footfall_testkit::brokers`]). Tests that need
//! no broker always run. Every broker test uses topics of its own and deletes
//! them afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use footfall_event::{Reject, VisitEvent};
use footfall_testkit::{brokers, BROKERS_VAR};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};

const BIN: &str = env!("CARGO_BIN_EXE_footfall");
const APACHE_LOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/elastic-apache-logs/apache_logs.gz"
);
const WAIT: Duration = Duration::from_secs(120);

/// Two fresh topics (events, dead letters) on the broker; deleted on drop.
struct Topics {
    brokers: String,
    events: String,
    dlq: String,
    admin: AdminClient<DefaultClientContext>,
    runtime: tokio::runtime::Runtime,
}

impl Topics {
    fn create(brokers: &str, label: &str) -> Topics {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let base = format!(
            "footfall-test.ingest.{label}.{}.{nanos}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let (events, dlq) = (base.clone(), format!("{base}.dlq"));
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let specs = [
            NewTopic::new(&events, 3, TopicReplication::Fixed(1)),
            NewTopic::new(&dlq, 1, TopicReplication::Fixed(1)),
        ];
        for r in runtime
            .block_on(admin.create_topics(&specs, &options))
            .expect("creating topics")
        {
            r.unwrap_or_else(|(name, code)| panic!("creating {name}: {code}"));
        }
        Topics {
            brokers: brokers.to_string(),
            events,
            dlq,
            admin,
            runtime,
        }
    }

    /// Every message on `topic` (payloads), read until `want` arrived and a
    /// moment passed without more, or `WAIT` elapsed.
    fn consume(&self, topic: &str, want: usize) -> Vec<Vec<u8>> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("footfall-test-{nanos}"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let start = Instant::now();
        let mut out = Vec::new();
        let mut quiet_since = Instant::now();
        while start.elapsed() < WAIT {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    out.push(m.payload().unwrap_or_default().to_vec());
                    quiet_since = Instant::now();
                }
                Some(Err(e)) => panic!("consuming {topic}: {e}"),
                None => {
                    let settle = if out.len() >= want {
                        Duration::from_secs(1)
                    } else {
                        Duration::from_secs(20)
                    };
                    if quiet_since.elapsed() > settle
                        && (out.len() >= want || start.elapsed() > Duration::from_secs(30))
                    {
                        break;
                    }
                }
            }
        }
        out
    }
}

impl Drop for Topics {
    fn drop(&mut self) {
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        if let Err(e) = self.runtime.block_on(
            self.admin
                .delete_topics(&[&self.events, &self.dlq], &options),
        ) {
            eprintln!("deleting test topics: {e}");
        }
    }
}

/// A sample access log: the Elastic Apache sample when present, else generated lines.
fn sample_log(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    if Path::new(APACHE_LOG).exists() {
        let mut all = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(APACHE_LOG).unwrap())
            .read_to_end(&mut all)
            .unwrap();
        for l in all.split_inclusive(|&b| b == b'\n').take(lines) {
            out.extend_from_slice(l);
        }
    } else {
        for i in 0..lines {
            out.extend_from_slice(
                format!("203.0.113.{} - - [17/May/2015:10:05:{:02} +0000] \"GET /p/{i} HTTP/1.1\" 200 {i} \"-\" \"Mozilla/5.0 Firefox/130.0\"\n", i % 250, i % 60)
                    .as_bytes(),
            );
        }
    }
    out
}

/// The test's keyring directory (made by the first command that uses it).
fn key_file(dir: &Path) -> PathBuf {
    dir.join("keyring")
}

/// `footfall parse` of `input` (a path, or `-` with `stdin`): events and rejects.
fn parse(
    input: &str,
    stdin: Option<&[u8]>,
    key: &Path,
    dir: &Path,
) -> (Vec<VisitEvent>, Vec<Reject>) {
    let rejects = dir.join(format!(
        "rejects-{}.jsonl",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut child = Command::new(BIN)
        .args(["parse", "--format", "combined", "--keyring"])
        .arg(key)
        .arg("--rejects")
        .arg(&rejects)
        .arg(input)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "footfall parse failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let rejects = std::fs::read(&rejects)
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    (events, rejects)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn ingest(
    topics: Option<&Topics>,
    brokers: &str,
    state: &Path,
    key: &Path,
    extra: &[&str],
) -> Command {
    let mut c = Command::new(BIN);
    c.arg("ingest")
        .args([
            "--brokers",
            brokers,
            "--format",
            "combined",
            "--http-listen",
            "off",
            "--keyring",
        ])
        .arg(key)
        .arg("--state-dir")
        .arg(state);
    if let Some(t) = topics {
        c.args(["--topic", &t.events, "--dlq-topic", &t.dlq]);
    }
    c.args(extra)
        .env_remove("RUST_LOG")
        .env_remove("FOOTFALL_CONFIG")
        .env_remove("FOOTFALL_KEYRING");
    c
}

/// A config of frequent checkpoints and a small in-flight window (so that a
/// signal lands mid-file), written in `dir`.
fn frequent_checkpoints(dir: &Path) -> PathBuf {
    let config = dir.join("footfall.toml");
    std::fs::write(
        &config,
        "[ingest]\ncheckpoint_interval = \"50ms\"\nmax_in_flight = 200\n",
    )
    .unwrap();
    config
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

fn checkpoint_offset(state: &Path) -> Option<u64> {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("checkpoints.json")).ok()?).ok()?;
    assert_eq!(doc["version"], 2);
    doc["files"][0]["offset"].as_u64()
}

fn wait_checkpoint(state: &Path, at_least: u64) -> u64 {
    let start = Instant::now();
    loop {
        if let Some(o) = checkpoint_offset(state) {
            if o >= at_least {
                return o;
            }
        }
        assert!(
            start.elapsed() < WAIT,
            "no checkpoint at or past {at_least}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn event_ids(payloads: &[Vec<u8>]) -> BTreeMap<String, VisitEvent> {
    payloads
        .iter()
        .map(|p| serde_json::from_slice::<VisitEvent>(p).unwrap())
        .map(|e| (e.event_id.clone(), e))
        .collect()
}

// ---------------------------------------------------------------------------

#[test]
fn stdin_run_exits_when_done_and_matches_footfall_parse() {
    let Some(brokers) = brokers() else { return };
    let topics = Topics::create(&brokers, "stdin");
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let mut input = sample_log(3000);
    input.extend_from_slice(
        b"not an access log line\n\n127.0.0.1 - - [bad time] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"",
    );
    let (want_events, want_rejects) = parse("-", Some(&input), &key, dir.path());

    let started = Instant::now();
    let mut child = ingest(
        Some(&topics),
        &brokers,
        &dir.path().join("state"),
        &key,
        &["-"],
    )
    .stdin(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap(); // dropping it closes stdin
    let status = wait_exit(&mut child, WAIT).expect("footfall ingest exits once stdin ends");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    println!(
        "stdin: {} lines ingested and acknowledged in {:?}",
        want_events.len() + want_rejects.len(),
        started.elapsed()
    );

    let got = event_ids(&topics.consume(&topics.events, want_events.len()));
    assert_eq!(got.len(), want_events.len());
    for want in &want_events {
        assert_eq!(
            got.get(&want.event_id),
            Some(want),
            "ingest and parse give the same event"
        );
    }
    let dlq: BTreeSet<String> = topics
        .consume(&topics.dlq, want_rejects.len())
        .iter()
        .map(|p| serde_json::from_slice::<Reject>(p).unwrap().event_id)
        .collect();
    assert_eq!(
        dlq,
        want_rejects.iter().map(|r| r.event_id.clone()).collect()
    );
    assert!(
        !stderr.contains("203.0.113.") && !stderr.contains("not an access log line"),
        "no lines or addresses in logs: {stderr}"
    );
}

/// Interrupted by SIGTERM (or SIGKILL) while reading a file, then run again
/// to the end: every line arrives, duplicates keep their event id.
fn interrupted(sig: &str) {
    let Some(brokers) = brokers() else { return };
    let topics = Topics::create(&brokers, &sig.to_ascii_lowercase());
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let state = dir.path().join("state");
    let log = dir.path().join("access.log");
    let content = sample_log(10_000);
    std::fs::write(&log, &content).unwrap();
    let log_arg = log.to_str().unwrap();
    let (want_events, _) = parse(log_arg, None, &key, dir.path());

    let config = frequent_checkpoints(dir.path());
    let config_arg = config.to_str().unwrap();
    let mut child = ingest(
        Some(&topics),
        &brokers,
        &state,
        &key,
        &["--config", config_arg, log_arg],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_checkpoint(&state, 1);
    let signalled = Instant::now();
    signal(&child, sig);
    let status = wait_exit(&mut child, Duration::from_secs(30)).expect("exits after the signal");
    let stopped_in = signalled.elapsed();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let at = checkpoint_offset(&state).unwrap();
    if sig == "TERM" {
        assert!(status.success(), "SIGTERM exits 0: {status}: {stderr}");
        assert!(
            stopped_in < Duration::from_secs(12),
            "within the shutdown deadline: {stopped_in:?}"
        );
        assert!(stderr.contains("shutdown requested"), "{stderr}");
    } else {
        assert!(!status.success());
    }
    assert!(at <= content.len() as u64);

    // Run again, reading the file once from the checkpoint to its end.
    let status = ingest(Some(&topics), &brokers, &state, &key, &["--once", log_arg])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(checkpoint_offset(&state), Some(content.len() as u64));

    let payloads = topics.consume(&topics.events, want_events.len());
    let got = event_ids(&payloads);
    let want: BTreeSet<&String> = want_events.iter().map(|e| &e.event_id).collect();
    assert_eq!(
        got.keys().collect::<BTreeSet<_>>(),
        want,
        "every line exactly once after deduplication by event_id"
    );
    println!(
        "SIG{sig}: stopped after {stopped_in:?} at offset {at} of {}; {} messages for {} events ({} duplicates)",
        content.len(),
        payloads.len(),
        want.len(),
        payloads.len() - want.len()
    );
}

#[test]
fn sigterm_flushes_checkpoints_and_exits_zero() {
    interrupted("TERM");
}

#[test]
fn sigkill_loses_nothing() {
    interrupted("KILL");
}

/// Ingest with an unreachable broker (`127.0.0.1:1`) and `extra_ingest`
/// lines in `[ingest]`; `input` is `-` (then 50 lines are written to stdin,
/// which stays open) or a file to follow. Returns the child and the port of
/// its `/health`.
fn spawn_unreachable(dir: &Path, input: &str, extra_ingest: &str) -> (Child, u16) {
    let port = footfall_testkit::free_port();
    (spawn_unreachable_on(dir, input, extra_ingest, port), port)
}

/// [`spawn_unreachable`] with `/health` on `port`.
fn spawn_unreachable_on(dir: &Path, input: &str, extra_ingest: &str, port: u16) -> Child {
    let key = key_file(dir);
    let config = dir.join("footfall.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"127.0.0.1:1\"\n[ingest]\nunhealthy_after = \"1s\"\nreminder_interval = \"1s\"\nprobe_interval = \"200ms\"\nshutdown_timeout = \"2s\"\n{extra_ingest}[http]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("ingest")
        .arg("--config")
        .arg(&config)
        .args(["--format", "combined", "--keyring"])
        .arg(&key)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg(input)
        .env_remove("RUST_LOG")
        .env_remove(BROKERS_VAR)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if input == "-" {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&sample_log(50)).unwrap();
        // Kept open: standard input has not ended. Leaked with the child.
        std::mem::forget(stdin);
    }
    child
}

/// A port already in use ends ingest at once (before Kafka is asked anything),
/// with exit 69 naming the address: not after a SIGTERM, as when the port was
/// bound only once Kafka had answered.
#[test]
fn an_http_port_in_use_ends_ingest_at_once_with_exit_69() {
    let dir = tempfile::tempdir().unwrap();
    let port = footfall_testkit::free_port();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut child = spawn_unreachable_on(dir.path(), "-", "", port);
    let status = wait_exit(&mut child, Duration::from_secs(20)).expect("ingest ends by itself");
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(69), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

/// [`spawn_unreachable`], then wait until `/health` turns red.
fn unreachable_broker(dir: &Path, input: &str, extra_ingest: &str) -> (Child, u16) {
    let (child, port) = spawn_unreachable(dir, input, extra_ingest);
    let start = Instant::now();
    let mut health = String::new();
    while start.elapsed() < Duration::from_secs(30) {
        health = http_get(port, "/health");
        if health.starts_with("HTTP/1.1 503") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    let metrics = http_get(port, "/metrics");
    assert!(metrics.contains("footfall_ingest_kafka_up 0"), "{metrics}");
    (child, port)
}

fn stderr_of(child: &mut Child) -> String {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

/// Standard input cannot be read again: interrupted with lines not
/// delivered, ingest fails with 130 and says how many.
fn stdin_interrupted_with_lines_not_delivered(sig: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = unreachable_broker(dir.path(), "-", "");
    // The signal comes once all 50 lines are read (reading may start after
    // `/health` turns 503).
    let read_all = || {
        http_get(port, "/metrics")
            .lines()
            .any(|l| l.starts_with("footfall_ingest_lines_read_total") && l.ends_with(" 50"))
    };
    let start = Instant::now();
    while !read_all() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(read_all(), "{}", http_get(port, "/metrics"));
    signal(&child, sig);
    let status =
        wait_exit(&mut child, Duration::from_secs(15)).expect("exits within the shutdown deadline");
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(130), "{status}: {stderr}");
    assert_eq!(
        stderr.matches("Kafka is unreachable").count(),
        1,
        "one clear error: {stderr}"
    );
    assert!(
        stderr.contains(
            "interrupted: 50 of the 50 lines read from standard input were not delivered to Kafka"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("read again from the checkpoints"),
        "{stderr}"
    );
}

#[test]
fn stdin_interrupted_by_sigterm_with_lines_not_delivered_exits_130() {
    stdin_interrupted_with_lines_not_delivered("TERM");
}

#[test]
fn stdin_interrupted_by_sigint_with_lines_not_delivered_exits_130() {
    stdin_interrupted_with_lines_not_delivered("INT");
}

/// A run that ends by itself gives up once Kafka has been unreachable for
/// `unreachable_timeout`: exit 69, with what was not delivered.
#[test]
fn stdin_with_a_broker_unreachable_past_the_timeout_exits_69() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    // Well after the lines are read (the start waits 5 s for Kafka's answer).
    let (mut child, _) = spawn_unreachable(dir.path(), "-", "unreachable_timeout = \"8s\"\n");
    let status = wait_exit(&mut child, Duration::from_secs(30)).expect("gives up by itself");
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(69), "{status}: {stderr}");
    assert!(
        stderr.contains("giving up with 50 lines read and not delivered"),
        "{stderr}"
    );
    assert!(stderr.contains("unreachable_timeout"), "hint: {stderr}");
    println!("gave up after {:?}", started.elapsed());
}

/// The service that follows files is unchanged: it waits for Kafka past
/// `unreachable_timeout`, and SIGTERM still ends it with 0 (its lines are
/// read again from the checkpoints).
#[test]
fn the_file_service_waits_for_an_unreachable_broker_without_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, sample_log(50)).unwrap();
    let (mut child, port) = unreachable_broker(
        dir.path(),
        log.to_str().unwrap(),
        "unreachable_timeout = \"1s\"\n",
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "still running");
    assert!(http_get(port, "/health").starts_with("HTTP/1.1 503"));
    signal(&child, "TERM");
    let status =
        wait_exit(&mut child, Duration::from_secs(15)).expect("exits within the shutdown deadline");
    let stderr = stderr_of(&mut child);
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("resumes by itself"), "{stderr}");
    assert!(
        stderr.contains("will be read again from the checkpoints"),
        "{stderr}"
    );
}

fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn bad_configuration_exits_78_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("footfall.toml");
    std::fs::write(&config, "[ingest]\nmax_in_flight = 0\n").unwrap();
    let out = Command::new(BIN)
        .arg("ingest")
        .arg("--config")
        .arg(&config)
        .arg("-")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("ingest.max_in_flight"));
    let out = Command::new(BIN)
        .args(["ingest", "--http-listen", "off"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "nothing to read: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `-X` and `--brokers` go through the Kafka surface every command shares:
/// one validation, secrets refused naming only the key; the old flag name
/// of the dead-letter topic is gone.
#[test]
fn kafka_options_are_those_of_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let state = dir.path().join("state");
    for (extra, code, want) in [
        (
            &["-X", "no.such.property=1", "-"][..],
            78,
            "no.such.property",
        ),
        (
            &["-X", "sasl.password=hunter2-secret", "-"][..],
            78,
            "-X sasl.password",
        ),
        (&["-X", "bootstrap.servers=x:1", "-"][..], 2, "--brokers"),
        (
            &["--dead-letter-topic", "x", "-"][..],
            2,
            "--dead-letter-topic",
        ),
    ] {
        let (status, stderr) = run_ingest(ingest(None, "127.0.0.1:1", &state, &key, extra));
        assert_eq!(status.code(), Some(code), "{extra:?}: {stderr}");
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

/// A one-shot run (stdin, `--once`) opens no metrics listener unless asked,
/// so a backfill next to a running service does not fight it for the port.
#[test]
fn a_one_shot_run_opens_no_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    // Hold the default port (or find it held already): a listener would fail.
    let _held = std::net::TcpListener::bind("127.0.0.1:9464");
    let config = dir.path().join("footfall.toml");
    std::fs::write(&config, "[ingest]\nunreachable_timeout = \"1s\"\n").unwrap();
    let mut c = Command::new(BIN);
    c.args(["ingest", "--brokers", "127.0.0.1:1", "--format", "combined"])
        .arg("--config")
        .arg(&config)
        .arg("--keyring")
        .arg(key_file(dir.path()))
        .arg("-")
        .env_remove("RUST_LOG")
        .env_remove("FOOTFALL_KEYRING")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&sample_log(10))
        .unwrap();
    let status = wait_exit(&mut child, WAIT).expect("gives up after unreachable_timeout");
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("unreachable_timeout"), "{stderr}");
    // The address, not the port alone: log timestamps can hold "9464".
    assert!(
        !stderr.contains("127.0.0.1:9464"),
        "no listener was opened: {stderr}"
    );
}

// ---------------------------------------------------------------------------
// Operator paths: missing inputs and topics, rotation while stopped, source
// identity, checkpoints per topic.

/// `footfall ingest` run to its end; its exit status and stderr.
fn run_ingest(mut c: Command) -> (ExitStatus, String) {
    let out = c.stdin(Stdio::null()).output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn once_with_a_missing_file_or_an_empty_glob_exits_66() {
    // No broker needed: inputs are checked before Kafka is contacted.
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let state = dir.path().join("state");
    let missing = dir.path().join("missing.log");
    let glob = dir.path().join("*.log");
    for input in [missing.to_str().unwrap(), glob.to_str().unwrap()] {
        let started = Instant::now();
        let (status, stderr) = run_ingest(ingest(
            None,
            "127.0.0.1:1",
            &state,
            &key,
            &["--once", input],
        ));
        assert_eq!(status.code(), Some(66), "{input}: {stderr}");
        assert!(stderr.contains(input), "names the input: {stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    let (_, stderr) = run_ingest(ingest(
        None,
        "127.0.0.1:1",
        &state,
        &key,
        &["--once", glob.to_str().unwrap()],
    ));
    assert!(stderr.contains("matches no file"), "{stderr}");
}

#[test]
fn a_missing_topic_exits_78_naming_footfall_topics() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let log = dir.path().join("access.log");
    std::fs::write(&log, sample_log(20)).unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!(
        "footfall-test.ingest.missing.{}.{nanos}",
        std::process::id()
    );
    let dlq = format!("{topic}.dlq");
    // Standard input, a file read once, and the service following a file.
    for (input, once) in [
        ("-", false),
        (log.to_str().unwrap(), true),
        (log.to_str().unwrap(), false),
    ] {
        let mut c = ingest(None, &brokers, &dir.path().join("state"), &key, &[]);
        c.args(["--topic", &topic, "--dlq-topic", &dlq]);
        if once {
            c.arg("--once");
        }
        c.arg(input).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = c.stdin(Stdio::piped()).spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&sample_log(20))
            .unwrap();
        let status = wait_exit(&mut child, Duration::from_secs(30)).expect("exits at start");
        let stderr = stderr_of(&mut child);
        assert_eq!(status.code(), Some(78), "{input} (once: {once}): {stderr}");
        assert!(stderr.contains("does not exist"), "{stderr}");
        assert!(stderr.contains("footfall topics"), "hint: {stderr}");
        assert!(!stderr.contains("Kafka is unreachable"), "{stderr}");
    }
}

/// How a file is rotated while ingest is stopped.
#[derive(Debug, Clone, Copy)]
enum Rotation {
    /// `access.log` → `access.log.1`.
    Rename,
    /// `access.log` → `access.log-20250101` → `access.log-20250101.gz`.
    DatedGzip,
}

fn gzip_file(from: &Path, to: &Path) {
    let data = std::fs::read(from).unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(to).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(from).unwrap();
}

fn append(path: &Path, data: &[u8]) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(data)
        .unwrap();
}

/// The input names only the live file. Ingest reads part of it and is
/// stopped by `sig`; more lines are appended; the file is rotated; a new
/// `access.log` gets lines. The restart (`--once access.log`) delivers every
/// line of both files, each exactly once by `event_id`, with the ids
/// `footfall parse` gives the rotated and the new file.
fn rotation_while_stopped(sig: &str, rotation: Rotation) {
    let Some(brokers) = brokers() else { return };
    let label = format!("rot-{sig}-{rotation:?}").to_ascii_lowercase();
    let topics = Topics::create(&brokers, &label);
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let state = dir.path().join("state");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("access.log");
    let sample = sample_log(9_000);
    let lines: Vec<&[u8]> = sample.split_inclusive(|&b| b == b'\n').collect();
    let (first, appended, new) = (&lines[..6_000], &lines[6_000..8_000], &lines[8_000..]);
    std::fs::write(&log, first.concat()).unwrap();

    let config = frequent_checkpoints(dir.path());
    let log_arg = log.to_str().unwrap();
    let mut child = ingest(
        Some(&topics),
        &brokers,
        &state,
        &key,
        &["--config", config.to_str().unwrap(), log_arg],
    )
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let at = wait_checkpoint(&state, 1);
    signal(&child, sig);
    wait_exit(&mut child, Duration::from_secs(30)).expect("exits after the signal");

    append(&log, &appended.concat());
    let rotated = match rotation {
        Rotation::Rename => {
            let to = logs.join("access.log.1");
            std::fs::rename(&log, &to).unwrap();
            to
        }
        Rotation::DatedGzip => {
            let dated = logs.join("access.log-20250101");
            std::fs::rename(&log, &dated).unwrap();
            let to = logs.join("access.log-20250101.gz");
            gzip_file(&dated, &to);
            to
        }
    };
    std::fs::write(&log, new.concat()).unwrap();

    let (status, stderr) = run_ingest(ingest(
        Some(&topics),
        &brokers,
        &state,
        &key,
        &["--once", log_arg],
    ));
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("rotated while ingest was stopped"),
        "{stderr}"
    );
    assert!(!stderr.contains("unaccounted"), "{stderr}");

    let (old_events, _) = parse(rotated.to_str().unwrap(), None, &key, dir.path());
    let (new_events, _) = parse(log_arg, None, &key, dir.path());
    let want: BTreeSet<&String> = old_events
        .iter()
        .chain(&new_events)
        .map(|e| &e.event_id)
        .collect();
    assert_eq!(want.len(), old_events.len() + new_events.len());
    let payloads = topics.consume(&topics.events, want.len());
    let got = event_ids(&payloads);
    assert_eq!(
        got.keys().collect::<BTreeSet<_>>(),
        want,
        "every line of both files exactly once by event_id"
    );
    println!(
        "SIG{sig}, {rotation:?}: stopped at offset {at}; {} lines; {} messages ({} duplicates)",
        want.len(),
        payloads.len(),
        payloads.len() - want.len()
    );
}

#[test]
fn rename_while_stopped_by_sigterm_loses_nothing() {
    rotation_while_stopped("TERM", Rotation::Rename);
}

#[test]
fn rename_while_stopped_by_sigkill_loses_nothing() {
    rotation_while_stopped("KILL", Rotation::Rename);
}

#[test]
fn dated_rename_and_gzip_while_stopped_by_sigterm_loses_nothing() {
    rotation_while_stopped("TERM", Rotation::DatedGzip);
}

#[test]
fn dated_rename_and_gzip_while_stopped_by_sigkill_loses_nothing() {
    rotation_while_stopped("KILL", Rotation::DatedGzip);
}

/// Files with the same content (so the same first lines) are distinct
/// sources: every line of each gets an id of its own, the one `footfall
/// parse` gives it.
#[test]
fn files_sharing_their_first_lines_are_distinct_sources() {
    let Some(brokers) = brokers() else { return };
    let topics = Topics::create(&brokers, "identity");
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let content = sample_log(300);
    let mut changed = content.clone();
    changed.extend_from_slice(&sample_log(10)); // same first lines, then different
    std::fs::create_dir(dir.path().join("other")).unwrap();
    let files = [
        dir.path().join("a.log"),
        dir.path().join("b.log"),
        dir.path().join("other").join("a.log"),
        dir.path().join("c.log"),
    ];
    for (i, f) in files.iter().enumerate() {
        std::fs::write(f, if i < 3 { &content } else { &changed }).unwrap();
    }
    let args: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    let mut all = vec!["--once"];
    all.extend(&args);
    let (status, stderr) = run_ingest(ingest(
        Some(&topics),
        &brokers,
        &dir.path().join("state"),
        &key,
        &all,
    ));
    assert!(status.success(), "{status}: {stderr}");

    let mut want = BTreeSet::new();
    let mut total = 0;
    for f in &args {
        let (events, _) = parse(f, None, &key, dir.path());
        total += events.len();
        want.extend(events.into_iter().map(|e| e.event_id));
    }
    assert_eq!(
        want.len(),
        total,
        "no two lines of different files share an id"
    );
    let got = event_ids(&topics.consume(&topics.events, total));
    assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), want);
}

/// The same file sent to a second topic is read from its beginning; back on
/// the first topic, ingest continues where that one was left. A version 1
/// checkpoint file (without topics) is taken as the configured topic's.
#[test]
fn checkpoints_are_kept_per_topic() {
    let Some(brokers) = brokers() else { return };
    let (a, b) = (
        Topics::create(&brokers, "topic-a"),
        Topics::create(&brokers, "topic-b"),
    );
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let state = dir.path().join("state");
    let log = dir.path().join("access.log");
    let sample = sample_log(600);
    let lines: Vec<&[u8]> = sample.split_inclusive(|&b| b == b'\n').collect();
    std::fs::write(&log, lines[..400].concat()).unwrap();
    let log_arg = log.to_str().unwrap();
    let once = |t: &Topics| {
        let (status, stderr) = run_ingest(ingest(
            Some(t),
            &brokers,
            &state,
            &key,
            &["--once", log_arg],
        ));
        assert!(status.success(), "{status}: {stderr}");
        stderr
    };
    once(&a);
    let (first, _) = parse(log_arg, None, &key, dir.path());
    // Every event id, and the number of messages.
    let ids = |t: &Topics, n: usize| -> (BTreeSet<String>, usize) {
        let payloads = t.consume(&t.events, n);
        (event_ids(&payloads).into_keys().collect(), payloads.len())
    };
    let first_ids: BTreeSet<String> = first.iter().map(|e| e.event_id.clone()).collect();
    let stderr = once(&b);
    assert!(stderr.contains("footfall ingest: 400 lines"), "{stderr}");
    assert_eq!(
        ids(&b, first.len()),
        (first_ids, first.len()),
        "a new topic reads the file from the start"
    );
    let stderr = once(&a);
    assert!(
        stderr.contains("footfall ingest: 0 lines"),
        "nothing new for topic a: {stderr}"
    );

    // Downgrade the document to version 1: no topics, no source keys.
    let path = state.join("checkpoints.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let files = doc["files"].as_array_mut().unwrap();
    assert_eq!(files.len(), 2, "one checkpoint per topic: {doc}");
    files.retain(|f| f["topic"] == a.events.as_str());
    for f in files.iter_mut() {
        let f = f.as_object_mut().unwrap();
        f.remove("topic");
        f.remove("source_key");
    }
    doc["version"] = 1.into();
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    append(&log, &lines[400..].concat());
    once(&a);
    let (all, _) = parse(log_arg, None, &key, dir.path());
    let all_ids: BTreeSet<String> = all.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(
        ids(&a, all.len()),
        (all_ids, all.len()),
        "after the migration, topic a gets the appended lines, each once"
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["files"][0]["topic"], a.events.as_str());
}

/// A wrong `--format` is caught on a source's first lines: ingest stops with
/// 65, naming the top reject reason and what `auto` detects, instead of
/// sending every line to the dead-letter topic.
#[test]
fn a_format_that_does_not_fit_stops_ingest_with_65() {
    let Some(brokers) = brokers() else { return };
    let topics = Topics::create(&brokers, "format");
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    // Common-format lines (no referrer, no user agent) under --format combined.
    let common: Vec<u8> = sample_log(200)
        .split_inclusive(|&b| b == b'\n')
        .flat_map(|l| {
            let s = String::from_utf8_lossy(l);
            let head = s.split("\" \"").next().unwrap();
            let (cut, _referrer) = head.rsplit_once(" \"").unwrap();
            format!("{cut}\n").into_bytes()
        })
        .collect();
    let log = dir.path().join("access.log");
    std::fs::write(&log, common).unwrap();
    let (status, stderr) = run_ingest(ingest(
        Some(&topics),
        &brokers,
        &dir.path().join("state"),
        &key,
        &["--once", log.to_str().unwrap()],
    ));
    assert_eq!(status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains("auto detects common") && stderr.contains("hint:"),
        "{stderr}"
    );
}

/// A narrower format than the lines allow (`common` on a combined log) is
/// read, but ingest says once which format reads the fields it ignores.
#[test]
fn a_narrower_format_warns_once() {
    let Some(brokers) = brokers() else { return };
    let topics = Topics::create(&brokers, "narrow");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, sample_log(100)).unwrap();
    let mut c = Command::new(BIN);
    c.args([
        "ingest",
        "--brokers",
        &brokers,
        "--format",
        "common",
        "--http-listen",
        "off",
        "--once",
    ])
    .args(["--topic", &topics.events, "--dlq-topic", &topics.dlq])
    .arg("--keyring")
    .arg(key_file(dir.path()))
    .arg("--state-dir")
    .arg(dir.path().join("state"))
    .arg(&log)
    .env_remove("RUST_LOG")
    .env_remove("FOOTFALL_CONFIG")
    .env_remove("FOOTFALL_KEYRING");
    let (status, stderr) = run_ingest(c);
    assert!(status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("format combined reads them").count(),
        1,
        "{stderr}"
    );
}
