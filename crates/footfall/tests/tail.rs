//! `footfall tail` against a real Kafka broker.
//!
//! The broker comes from `FOOTFALL_KAFKA_BROKERS` (`deploy/kafka/local-kafka.sh
//! start` runs one; `local-kafka.sh env` prints the variable). Without it the
//! broker tests say so and return, unless `FOOTFALL_REQUIRE_KAFKA=1`, in which
//! case they fail. Every test uses topics of its own and deletes them after.
//! The tests that need no broker (exit codes for bad arguments and for an
//! unreachable broker) always run.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{SecondsFormat, Utc};
use footfall_event::{Reject, RejectKind, VisitEvent, SCHEMA_VERSION};
use footfall_testkit::{brokers, BROKERS_VAR};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const BIN: &str = env!("CARGO_BIN_EXE_footfall");
/// Upper bound for anything the tests wait for.
const WAIT: Duration = Duration::from_secs(90);

// ------------------------------------------------------------------ broker helpers

/// Topics, a producer and an admin client on the broker under test; the
/// topics are deleted on drop.
struct Kafka {
    brokers: String,
    runtime: tokio::runtime::Runtime,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    topics: Vec<String>,
}

fn client_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

impl Kafka {
    fn connect() -> Option<Kafka> {
        let brokers = brokers()?;
        let producer: FutureProducer = client_config(&brokers)
            .set("linger.ms", "0")
            .create()
            .expect("creating the test producer");
        if let Err(e) = producer
            .client()
            .fetch_metadata(None, Duration::from_secs(30))
        {
            panic!("Kafka at {brokers} is not reachable ({e}); start it with deploy/kafka/local-kafka.sh start");
        }
        let admin = client_config(&brokers)
            .create()
            .expect("creating the admin client");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Some(Kafka {
            brokers,
            runtime,
            producer,
            admin,
            topics: Vec::new(),
        })
    }

    /// A new topic with a name no other test or run uses.
    fn topic(&mut self, label: &str, partitions: i32) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "footfall-test.tail.{label}.{}.{nanos}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.create(name, partitions)
    }

    /// A new topic of this name (deleted on drop).
    fn create(&mut self, name: String, partitions: i32) -> String {
        let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = self
            .runtime
            .block_on(self.admin.create_topics([&topic], &options))
            .expect("creating a topic");
        for r in results {
            r.unwrap_or_else(|(name, code)| panic!("creating {name}: {code}"));
        }
        self.topics.push(name.clone());
        name
    }

    /// Produces messages and waits until each is acknowledged.
    fn produce(&self, topic: &str, messages: &[Msg]) {
        self.runtime.block_on(async {
            for m in messages {
                let mut headers = OwnedHeaders::new();
                for (k, v) in &m.headers {
                    headers = headers.insert(Header {
                        key: k,
                        value: Some(v.as_bytes()),
                    });
                }
                let mut record = FutureRecord::to(topic)
                    .key(&m.key)
                    .payload(&m.payload)
                    .headers(headers);
                if let Some(ts) = m.timestamp_ms {
                    record = record.timestamp(ts);
                }
                if let Err((e, _)) = self.producer.send(record, Duration::from_secs(30)).await {
                    panic!("producing to {topic}: {e}");
                }
            }
        });
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        if self.topics.is_empty() {
            return;
        }
        let names: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        if let Err(e) = self
            .runtime
            .block_on(self.admin.delete_topics(&names, &options))
        {
            eprintln!("deleting test topics: {e}");
        }
    }
}

/// A message to produce.
struct Msg {
    key: String,
    payload: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    timestamp_ms: Option<i64>,
}

impl Msg {
    fn visit(ev: &VisitEvent) -> Msg {
        Msg {
            key: ev.visitor_id.clone(),
            payload: serde_json::to_vec(ev).unwrap(),
            headers: vec![
                ("footfall-schema", SCHEMA_VERSION.to_string()),
                ("footfall-source", ev.source.clone()),
            ],
            timestamp_ms: None,
        }
    }

    fn raw(payload: &[u8]) -> Msg {
        Msg {
            key: "raw".into(),
            payload: payload.to_vec(),
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    fn at(mut self, ts_ms: i64) -> Msg {
        self.timestamp_ms = Some(ts_ms);
        self
    }
}

fn visit(n: u32, status: u16, is_bot: bool) -> VisitEvent {
    VisitEvent {
        v: SCHEMA_VERSION,
        event_id: format!("{n:032x}"),
        ts: Utc::now().fixed_offset(),
        site: "example.org".into(),
        visitor_id: format!("{:016x}", u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        client_net: Some("203.0.113.0/24".into()),
        method: Some("GET".into()),
        path: format!("/articles/{n}"),
        route: "/articles/:id".into(),
        protocol: Some("HTTP/1.1".into()),
        status,
        bytes: Some(512),
        referrer_medium: "direct".into(),
        browser: Some(if is_bot { "Googlebot" } else { "Firefox" }.into()),
        device: if is_bot { "bot" } else { "desktop" }.into(),
        is_bot,
        bot_name: is_bot.then(|| "Googlebot".into()),
        kind: "page".into(),
        is_pageview: status < 300,
        source: "tail-test.log".into(),
        offset: u64::from(n) * 100,
        ..Default::default()
    }
}

fn dead_letter(n: u32, kind: RejectKind) -> Reject {
    Reject {
        v: 1,
        event_id: format!("{n:032x}"),
        source: "tail-test.log".into(),
        offset: u64::from(n) * 100,
        kind,
        reason: format!("test reject {n}"),
        line: format!("203.0.113.0 - - [17/May/2025:10:05:03 +0000] \"GET /{n} HTTP/1.1\" x -"),
        truncated: false,
    }
}

// ------------------------------------------------------------------ process helpers

/// A running `footfall tail` with its output read line by line.
struct Tail {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    stderr_seen: Vec<String>,
}

fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Tail {
    fn start(args: &[&str]) -> Tail {
        let mut child = Command::new(BIN)
            .arg("tail")
            .args(args)
            .env_remove(BROKERS_VAR)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting footfall tail");
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        Tail {
            child,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
        }
    }

    /// Waits for the line announcing that the partitions are assigned.
    fn wait_ready(&mut self, topic: &str) {
        let want = format!("footfall tail: tailing {topic} from ");
        let deadline = Instant::now() + WAIT;
        loop {
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let ready = line.starts_with(&want);
                    self.stderr_seen.push(line);
                    if ready {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "tail not ready within {WAIT:?}; stderr: {:?}",
                    self.stderr_seen
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "tail ended before it was ready; stderr: {:?}",
                        self.stderr_seen
                    )
                }
            }
        }
    }

    fn next_line(&mut self) -> String {
        self.stdout
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no output line ({e}); stderr: {:?}", self.stderr_seen))
    }

    /// Reads stdout to its end, then waits for the exit; returns the exit
    /// status, the remaining stdout lines and all of stderr.
    fn finish(mut self) -> (ExitStatus, Vec<String>, Vec<String>) {
        let deadline = Instant::now() + WAIT;
        let mut out = Vec::new();
        loop {
            match self
                .stdout
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => out.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "tail still running after {WAIT:?}; stdout so far: {out:?}; stderr: {:?}",
                        self.stderr_seen
                    )
                }
            }
        }
        let status = wait_until(&mut self.child, deadline);
        loop {
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.stderr_seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("stderr still open after exit"),
            }
        }
        (status, out, std::mem::take(&mut self.stderr_seen))
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits for `child` to exit (its output pipes already at their end), killing it at `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> ExitStatus {
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("{:?} did not exit in time", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command to completion within [`WAIT`]; returns status, stdout, stderr.
fn run(cmd: &mut Command) -> (ExitStatus, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning");
    let read_all = |r: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(r).read_to_string(&mut s);
            let _ = tx.send(s);
        });
        rx
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + WAIT;
    let out = out.recv_timeout(WAIT).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("{cmd:?} did not finish within {WAIT:?}")
    });
    let status = wait_until(&mut child, deadline);
    let err = err
        .recv_timeout(WAIT)
        .expect("stderr of a finished process");
    (status, out, err)
}

fn tail_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("tail").args(args).env_remove(BROKERS_VAR);
    c
}

fn parse_visit(line: &str) -> VisitEvent {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a visit event ({e}): {line}"))
}

fn summary(stderr: &[String]) -> &str {
    stderr
        .iter()
        .rev()
        .find(|l| l.starts_with("footfall tail: ") && l.contains(" seen, "))
        .map_or("", String::as_str)
}

// ------------------------------------------------------------------ tests

#[test]
fn follows_new_events_only_and_filters_by_status() {
    let Some(mut kafka) = Kafka::connect() else {
        return;
    };
    let topic = kafka.topic("follow", 3);

    // Produced before tail starts: 5xx among them, and none may appear.
    let before = [
        visit(1, 500, false),
        visit(2, 503, false),
        visit(3, 200, false),
    ];
    kafka.produce(&topic, &before.iter().map(Msg::visit).collect::<Vec<_>>());

    let mut tail = Tail::start(&[
        "--brokers",
        &kafka.brokers,
        "--topic",
        &topic,
        "--status",
        "5xx",
        "--limit",
        "2",
        "--timeout",
        "30s",
    ]);
    tail.wait_ready(&topic);
    let tail_pid = tail.child.id();

    let after = [
        visit(10, 200, false),
        visit(11, 502, false),
        visit(12, 404, false),
        visit(13, 301, true),
        visit(14, 500, false),
    ];
    let after_msgs: Vec<Msg> = after.iter().map(Msg::visit).collect();
    kafka.produce(&topic, &after_msgs);

    let (status, out, err) = tail.finish();
    assert!(status.success(), "exit {status}; stderr: {err:?}");
    assert_eq!(
        out.len(),
        2,
        "exactly the two 5xx events produced after the start: {out:?}"
    );
    let mut got: Vec<VisitEvent> = out.iter().map(|l| parse_visit(l)).collect();
    got.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    assert_eq!(got, vec![after[1].clone(), after[4].clone()]);
    // Passed through exactly as received.
    for line in &out {
        assert!(
            after_msgs.iter().any(|m| m.payload == line.as_bytes()),
            "output line differs from every produced payload: {line}"
        );
    }
    assert!(summary(&err).contains("2 matched"), "summary: {err:?}");
    assert!(
        !err.iter().any(|l| l.contains("warning")),
        "no warnings expected: {err:?}"
    );

    // kcat reads the same topic: every message is a valid visit event.
    let (status, stdout, stderr) = run(Command::new("kcat").args([
        "-b",
        &kafka.brokers,
        "-C",
        "-t",
        &topic,
        "-e",
        "-o",
        "beginning",
        "-q",
        "-f",
        "%s\\n",
    ]));
    assert!(status.success(), "kcat: {status}: {stderr}");
    let mut all: Vec<VisitEvent> = stdout.lines().map(parse_visit).collect();
    all.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    let mut produced: Vec<VisitEvent> = before.iter().chain(after.iter()).cloned().collect();
    produced.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    assert_eq!(all, produced);

    // Tail's throwaway group never committed anything.
    let group = format!("footfall-tail-{tail_pid}");
    let probe: BaseConsumer = client_config(&kafka.brokers)
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_range(&topic, 0, 2);
    let committed = probe
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("reading committed offsets");
    for el in committed.elements() {
        assert_eq!(
            el.offset(),
            Offset::Invalid,
            "group {group} committed partition {}",
            el.partition()
        );
    }
}

#[test]
fn from_the_beginning_skips_bots_and_warns_about_malformed_messages() {
    let Some(mut kafka) = Kafka::connect() else {
        return;
    };
    let topic = kafka.topic("beginning", 1);
    let (bot, a, b, later) = (
        visit(1, 200, true),
        visit(2, 200, false),
        visit(3, 404, false),
        visit(4, 200, false),
    );
    let newer = SCHEMA_VERSION + 1;
    let mut future = Msg::raw(format!(r#"{{"v":{newer},"shape":"new"}}"#).as_bytes());
    future.headers.push(("footfall-schema", newer.to_string()));
    kafka.produce(
        &topic,
        &[
            Msg::visit(&bot),
            Msg::raw(b"this is not JSON"),
            Msg::visit(&a),
            future,
            Msg::visit(&b),
            Msg::visit(&later),
        ],
    );

    let tail = Tail::start(&[
        "--brokers",
        &kafka.brokers,
        "--topic",
        &topic,
        "--from-beginning",
        "--no-bots",
        "--limit",
        "2",
        "--json",
        "-X",
        "fetch.wait.max.ms=100",
    ]);
    let (status, out, err) = tail.finish();
    assert!(status.success(), "exit {status}; stderr: {err:?}");
    assert_eq!(
        out.iter().map(|l| parse_visit(l)).collect::<Vec<_>>(),
        vec![a, b],
        "in partition order, bot left out"
    );
    let warnings: Vec<&String> = err.iter().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 2, "{err:?}");
    assert!(
        warnings[0].contains(&format!("{topic}[0]@1: invalid JSON (line 1, column 2)")),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains(&format!("{topic}[0]@3: "))
            && warnings[1].contains(&format!("footfall-schema is {newer}")),
        "{warnings:?}"
    );
    assert!(
        summary(&err).starts_with("footfall tail: 5 seen, 2 matched, 2 malformed in "),
        "{err:?}"
    );
}

#[test]
fn since_starts_at_message_timestamps() {
    let Some(mut kafka) = Kafka::connect() else {
        return;
    };
    let topic = kafka.topic("since", 2);
    let now = Utc::now().timestamp_millis();
    let hour = 3_600_000;
    let events: Vec<VisitEvent> = (1..=4).map(|n| visit(n, 200, false)).collect();
    let ages = [3 * hour, 2 * hour, hour / 2, 60_000];
    kafka.produce(
        &topic,
        &events
            .iter()
            .zip(ages)
            .map(|(e, age)| Msg::visit(e).at(now - age))
            .collect::<Vec<_>>(),
    );

    let ids = |out: &[String]| {
        let mut ids: Vec<String> = out.iter().map(|l| parse_visit(l).event_id).collect();
        ids.sort();
        ids
    };
    let tail = Tail::start(&[
        "--brokers",
        &kafka.brokers,
        "--topic",
        &topic,
        "--since",
        "1h",
        "--limit",
        "2",
    ]);
    let (status, out, err) = tail.finish();
    assert!(status.success(), "exit {status}; stderr: {err:?}");
    assert_eq!(
        ids(&out),
        vec![events[2].event_id.clone(), events[3].event_id.clone()],
        "{err:?}"
    );

    let since = chrono::DateTime::from_timestamp_millis(now - 150 * 60_000)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut tail = Tail::start(&[
        "--brokers",
        &kafka.brokers,
        "--topic",
        &topic,
        "--since",
        &since,
        "--limit",
        "3",
    ]);
    tail.wait_ready(&topic);
    assert!(
        tail.stderr_seen
            .last()
            .unwrap()
            .contains(&format!("from {since} (2 partitions)")),
        "{:?}",
        tail.stderr_seen
    );
    let (status, out, err) = tail.finish();
    assert!(status.success(), "exit {status}; stderr: {err:?}");
    assert_eq!(
        ids(&out),
        events[1..]
            .iter()
            .map(|e| e.event_id.clone())
            .collect::<Vec<_>>()
    );
}

#[test]
fn dlq_shows_dead_letters_of_the_chosen_kinds() {
    let Some(mut kafka) = Kafka::connect() else {
        return;
    };
    let topic = kafka.topic("dlq", 1);
    let rejects = [
        dead_letter(1, RejectKind::Malformed),
        dead_letter(2, RejectKind::BadStatus),
        dead_letter(3, RejectKind::BadStatus),
    ];
    let msgs: Vec<Msg> = rejects
        .iter()
        .map(|r| Msg {
            key: r.source.clone(),
            ..Msg::raw(&serde_json::to_vec(r).unwrap())
        })
        .collect();
    kafka.produce(&topic, &msgs);

    let tail = Tail::start(&[
        "--brokers",
        &kafka.brokers,
        "--dlq",
        "--dlq-topic",
        &topic,
        "--from-beginning",
        "--kind",
        "bad_status",
        "--limit",
        "2",
    ]);
    let (status, out, err) = tail.finish();
    assert!(status.success(), "exit {status}; stderr: {err:?}");
    let got: Vec<Reject> = out
        .iter()
        .map(|l| serde_json::from_str(l).expect("a dead letter"))
        .collect();
    assert_eq!(got, rejects[1..].to_vec());
    assert_eq!(out[0].as_bytes(), msgs[1].payload.as_slice());
}

/// `--config`: the brokers and the visits topic come from `[kafka]`, the
/// dead-letter topic follows it (`<topic>.dlq`), the timeout is `[tail]`'s.
#[test]
fn the_config_file_names_brokers_topics_and_timeout() {
    let Some(mut kafka) = Kafka::connect() else {
        return;
    };
    let visits = kafka.topic("config", 1);
    let dlq = kafka.create(format!("{visits}.dlq"), 1);
    let reject = dead_letter(7, RejectKind::TooLong);
    kafka.produce(&dlq, &[Msg::raw(&serde_json::to_vec(&reject).unwrap())]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("footfall.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{}\"\n[kafka.topics.visits]\nname = \"{visits}\"\n[tail]\ntimeout = \"30s\"\n",
            kafka.brokers
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let tail = Tail::start(&[
        "--config",
        config,
        "--dlq",
        "--from-beginning",
        "--limit",
        "1",
    ]);
    let (status, out, err) = tail.finish();
    assert!(status.success(), "exit {status}; stderr: {err:?}");
    assert_eq!(out.len(), 1, "{out:?}");
    let got: Reject = serde_json::from_str(&out[0]).unwrap();
    assert_eq!(got, reject);
    assert!(
        err.iter()
            .any(|l| l.starts_with(&format!("footfall tail: tailing {dlq} from the beginning"))),
        "{err:?}"
    );
}

#[cfg(unix)]
#[test]
fn interrupt_exits_zero_with_a_summary() {
    let Some(mut kafka) = Kafka::connect() else {
        return;
    };
    let topic = kafka.topic("interrupt", 1);
    let mut tail = Tail::start(&["--brokers", &kafka.brokers, "--topic", &topic]);
    tail.wait_ready(&topic);
    let ev = visit(7, 200, false);
    kafka.produce(&topic, &[Msg::visit(&ev)]);
    assert_eq!(parse_visit(&tail.next_line()), ev);

    let (status, _, err) = run(Command::new("kill").args(["-INT", &tail.child.id().to_string()]));
    assert!(status.success(), "kill: {err}");
    let (status, rest, err) = tail.finish();
    assert_eq!(status.code(), Some(0), "stderr: {err:?}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        summary(&err).starts_with("footfall tail: 1 seen, 1 matched in "),
        "{err:?}"
    );
}

#[test]
fn a_missing_topic_is_missing_input() {
    let Some(kafka) = Kafka::connect() else {
        return;
    };
    let topic = format!("footfall-test.tail.absent.{}", std::process::id());
    let (status, out, err) = run(&mut tail_cmd(&[
        "--brokers",
        &kafka.brokers,
        "--topic",
        &topic,
        "--timeout",
        "30s",
    ]));
    assert_eq!(status.code(), Some(66), "stdout {out:?} stderr {err:?}");
    assert!(
        err.contains(&format!("topic {topic} does not exist")),
        "{err}"
    );
}

#[test]
fn an_unreachable_broker_is_unavailable() {
    // Port 1 on the loopback refuses connections: no broker needed.
    let (status, out, err) = run(&mut tail_cmd(&[
        "--brokers",
        "127.0.0.1:1",
        "--topic",
        "t",
        "--timeout",
        "2s",
    ]));
    assert_eq!(status.code(), Some(69), "stdout {out:?} stderr {err:?}");
    assert!(
        err.contains("cannot read metadata from Kafka at 127.0.0.1:1"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
}

#[test]
fn bad_arguments_are_usage_or_config_errors() {
    for (args, code) in [
        (&["--status", "abc"][..], 2),
        (&["--bots", "--no-bots"][..], 2),
        (&["--dlq", "--site", "example.org"][..], 2),
        (&["--since", "2999-01-01T00:00:00Z"][..], 2),
        (
            &["--brokers", "127.0.0.1:1", "-X", "no.such.property=1"][..],
            78,
        ),
        (&["--brokers", " , "][..], 78),
    ] {
        let (status, _, err) = run(&mut tail_cmd(args));
        assert_eq!(status.code(), Some(code), "{args:?}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[tail]\ntimeuot = \"5s\"\n").unwrap();
    let (status, _, err) = run(&mut tail_cmd(&["--config", bad.to_str().unwrap()]));
    assert_eq!(status.code(), Some(78), "{err}");
    assert!(err.contains("unknown field `timeuot`"), "{err}");
}
