//! `footfall aggregate` as cron runs it, against the real broker: SIGKILL at
//! several points then a re-run gives the same warehouse as an uninterrupted
//! run; a run that finds the warehouse locked, or whose group's other members
//! hold the partitions, exits 75 at once; a warehouse and its group are bound
//! together (another group, or another warehouse on the group: 78, until
//! `--rebind`); a dead-letter topic as input exits 78; an unreachable broker 69.
//! Needs FOOTFALL_KAFKA_BROKERS (deploy/test.sh sets it and requires it),
//! except the tests that need no broker (unreachable broker, a `.dlq` name).

mod common;
use common::{aggregate, ff};
use footfall_aggregate::Warehouse;
use footfall_testkit::{brokers, send_waiting, snapshot};

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use footfall_event::{Reject, RejectKind, VisitEvent, SCHEMA_VERSION};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

/// Runs `c`, expecting success and no error logged (rdkafka's complaint on
/// dropping a consumer the run closed itself included).
fn ok(c: &mut Command) {
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{c:?}: {err}");
    assert!(
        !err.contains(" ERROR "),
        "{c:?} succeeded, but logged: {err}"
    );
}

/// Ingest the built-in sample logs (the demo's) into a fresh topic.
fn topic_with_events(b: &str, tmp: &Path) -> String {
    let topic = format!(
        "aggproc.{}.{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    ok(ff().args([
        "topics",
        "--brokers",
        b,
        "--topic",
        &topic,
        "--dlq-topic",
        &format!("{topic}.dlq"),
    ]));
    let key = tmp.join("keyring");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (f, fmt) in [
        ("tests/data/elastic-apache-logs/apache_logs.gz", "combined"),
        ("tests/data/secrepo-selflogs/2021_all.log.gz", "combined"),
        (
            "tests/data/formats/thedash-nginx-json-2013/access.log.gz",
            "nginx-json",
        ),
    ] {
        ok(ff()
            .args([
                "ingest",
                "--brokers",
                b,
                "--topic",
                &topic,
                "--dlq-topic",
                &format!("{topic}.dlq"),
                "--format",
                fmt,
                "--once",
                "--http-listen",
                "off",
            ])
            .arg("--state-dir")
            .arg(tmp.join(format!("state-{fmt}")))
            .arg("--keyring")
            .arg(&key)
            .arg(repo.join(f)));
    }
    topic
}

#[test]
fn sigkill_at_several_points_then_rerun_equals_uninterrupted() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let topic = topic_with_events(&b, tmp.path());

    let reference = tmp.path().join("reference");
    let started = Instant::now();
    ok(&mut aggregate(
        &b,
        &topic,
        &format!("{topic}.ref"),
        &reference,
    ));
    let full = started.elapsed();
    let want = snapshot(&reference);
    assert!(
        want.len() > 100,
        "the reference run wrote {} files",
        want.len()
    );

    let wh = tmp.path().join("killed");
    let group = format!("{topic}.killed");
    // Kill points spread over a run (joining, consuming, writing,
    // summarising) as fractions of the uninterrupted run's time, so that a
    // fast or a loaded machine kills at the same stages. Each killed run
    // committed nothing, so the next one starts from the beginning again.
    let mut killed = 0;
    for fraction in [0.05, 0.2, 0.35, 0.5, 0.65] {
        let mut child = aggregate(&b, &topic, &group, &wh)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(fraction));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
            child.wait().unwrap();
        } else {
            let o = child.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "a run that was not killed failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    eprintln!("killed {killed} of 5 runs; an uninterrupted run took {full:?}");
    assert!(
        killed >= 2,
        "only {killed} runs were killed before they finished (an uninterrupted run took {full:?})"
    );
    ok(&mut aggregate(&b, &topic, &group, &wh));
    let got = snapshot(&wh);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "same files"
    );
    for (k, v) in &want {
        assert!(
            got[k] == *v,
            "{} differs from the uninterrupted run",
            k.display()
        );
    }
}

#[test]
fn a_locked_warehouse_exits_75_at_once() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let wh = tmp.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let lock = wh.join(".footfall.lock");
    std::fs::write(&lock, "").unwrap();
    // Hold the lock the way a running aggregate does (flock), from another process.
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let o = aggregate(&b, "no.such.topic", "g", &wh).output().unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(
        o.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it must not wait for the lock"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("lock"));
}

fn unique(prefix: &str) -> String {
    format!(
        "aggproc.{prefix}.{}.{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    )
}

fn client(b: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b);
    c
}

/// A new topic of `partitions` partitions holding `messages` (key, value).
fn topic_holding(b: &str, prefix: &str, partitions: i32, messages: &[(String, Vec<u8>)]) -> String {
    let topic = unique(prefix);
    let admin: AdminClient<DefaultClientContext> = client(b).create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let created = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(
                &topic,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .unwrap();
    for r in created {
        r.unwrap();
    }
    let producer: BaseProducer = client(b).create().unwrap();
    for (key, value) in messages {
        send_waiting(&producer, BaseRecord::to(&topic).key(key).payload(value));
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    topic
}

/// A few visit events as ingest sends them: JSON, keyed by visitor.
fn visit_messages(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let e = VisitEvent {
                v: SCHEMA_VERSION,
                event_id: format!("{i:032x}"),
                ts: chrono::DateTime::parse_from_rfc3339("2015-05-17T10:00:00+02:00").unwrap()
                    + chrono::Duration::seconds(i as i64 * 7),
                site: "example.org".into(),
                visitor_id: format!("visitor{}", i % 5),
                method: Some("GET".into()),
                path: "/".into(),
                route: "/".into(),
                status: 200,
                referrer_medium: "direct".into(),
                device: "desktop".into(),
                kind: "page".into(),
                is_pageview: true,
                source: "test".into(),
                ..Default::default()
            };
            (e.visitor_id.clone(), serde_json::to_vec(&e).unwrap())
        })
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `c`, expecting exit `code` and every one of `says` on stderr.
fn exits(c: &mut Command, code: i32, says: &[&str]) -> Output {
    let o = c.output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{c:?}: {err}");
    for s in says {
        assert!(err.contains(s), "{c:?}: no {s:?} in: {err}");
    }
    o
}

#[test]
fn a_warehouse_and_its_group_are_bound_together() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let topic = topic_holding(&b, "bind", 2, &visit_messages(20));
    let (wh1, wh2) = (tmp.path().join("wh1"), tmp.path().join("wh2"));
    let (g1, g2) = (unique("g1"), unique("g2"));
    // An exclusive run that joins its group is a static member of it: a run
    // of another warehouse would wait until that one's session has expired
    // (45 s by default).
    let aggregate = |b: &str, t: &str, g: &str, wh: &Path| {
        let mut c = aggregate(b, t, g, wh);
        c.args(["-X", "session.timeout.ms=6000"]);
        c
    };
    exits(
        &mut aggregate(&b, &topic, &g1, &wh1),
        0,
        &["read 20 events"],
    );
    // A second warehouse on the same group: the group's offsets carry wh1's mark.
    exits(
        &mut aggregate(&b, &topic, &g1, &wh2),
        78,
        &["another warehouse", "hint", "--rebind"],
    );
    // Another group on a bound warehouse.
    exits(
        &mut aggregate(&b, &topic, &g2, &wh1),
        78,
        &[&format!("bound to consumer group {g1}"), "--rebind"],
    );
    // Re-binding on purpose: wh2 takes g1 over as it is (nothing left to read);
    // from then on wh1 is the other warehouse.
    exits(
        aggregate(&b, &topic, &g1, &wh2).arg("--rebind"),
        0,
        &["read 0 events"],
    );
    exits(
        &mut aggregate(&b, &topic, &g1, &wh1),
        78,
        &["another warehouse"],
    );
    exits(&mut aggregate(&b, &topic, &g1, &wh2), 0, &["read 0 events"]);
}

#[test]
fn a_run_assigned_no_partitions_exits_75() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let topic = topic_holding(&b, "unassigned", 1, &visit_messages(10));
    let group = unique("g");
    let wh = tmp.path().join("wh");
    // A member that sorts before aggregate's (the range assignor gives it the one partition).
    let holder = footfall_testkit::GroupMember::join(&b, &topic, &group, "0-holder");
    let started = Instant::now();
    exits(
        &mut aggregate(&b, &topic, &group, &wh),
        75,
        &[
            "assigned this run no partition",
            "other members hold",
            "kafka-consumer-groups",
        ],
    );
    println!("exit 75 after {:?}", started.elapsed());
    assert!(Warehouse::new(&wh).event_files().unwrap().is_empty());
    // Once the other member has left, the next run reads everything.
    drop(holder);
    exits(
        &mut aggregate(&b, &topic, &group, &wh),
        0,
        &["read 10 events"],
    );
}

#[test]
fn an_unreachable_broker_exits_69() {
    // A port with nothing listening.
    let port = footfall_testkit::free_port();
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    exits(
        &mut aggregate(
            &format!("127.0.0.1:{port}"),
            "footfall.visits",
            "g",
            &tmp.path().join("wh"),
        ),
        69,
        &["no broker is reachable", "is Kafka reachable"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_dead_letter_topic_exits_78() {
    // By its name, before any broker is asked.
    let tmp = tempfile::tempdir().unwrap();
    exits(
        &mut aggregate(
            "127.0.0.1:1",
            "footfall.visits.dlq",
            "g",
            &tmp.path().join("wh"),
        ),
        78,
        &["dead-letter topic", "footfall tail --dlq"],
    );
    // By what it holds: dead letters as ingest writes them.
    let Some(b) = brokers() else { return };
    let reject = Reject {
        v: SCHEMA_VERSION,
        event_id: format!("{:032x}", 1),
        source: "/var/log/access.log".into(),
        offset: 0,
        kind: RejectKind::Malformed,
        reason: "not a log line".into(),
        line: "garbage".into(),
        truncated: false,
    };
    let topic = topic_holding(
        &b,
        "rejects",
        1,
        &[(
            "/var/log/access.log".into(),
            serde_json::to_vec(&reject).unwrap(),
        )],
    );
    let wh = tmp.path().join("wh2");
    exits(
        &mut aggregate(&b, &topic, &unique("g"), &wh),
        78,
        &["holds a dead letter", "footfall tail --dlq"],
    );
    assert!(Warehouse::new(&wh).event_files().unwrap().is_empty());
}

/// A message that is not a visit event (another producer's, damaged) is
/// skipped and counted; the run does its work and commits, but exits 65
/// saying how many, so that cron tells someone. The next run is clean.
#[test]
fn messages_that_are_not_visit_events_are_counted_and_exit_65() {
    let Some(b) = brokers() else { return };
    let mut messages = visit_messages(3);
    messages.push(("x".into(), b"not a visit event {".to_vec()));
    let topic = topic_holding(&b, "foreign", 1, &messages);
    let (tmp, group) = (tempfile::tempdir().unwrap(), unique("g"));
    let wh = tmp.path().join("wh");
    let o = exits(
        aggregate(&b, &topic, &group, &wh).arg("--json"),
        65,
        &["1 message(s) of topic", "are not visit events", "offset=3"],
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["invalid"], 1, "{report}");
    assert_eq!(report["events_written"], 3, "{report}");
    let o = exits(aggregate(&b, &topic, &group, &wh).arg("--json"), 0, &[]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&report["events_read"], &report["invalid"]),
        (&0.into(), &0.into())
    );
}

/// The cron line can be `footfall aggregate --config FILE`: the topic comes
/// from `[kafka.topics]`, the warehouse, group and summary settings from
/// `[aggregate]`, and a flag beats its key. Without a warehouse anywhere the
/// run exits 78 with a hint, before any broker is asked.
#[test]
fn the_config_file_holds_the_cron_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("footfall.toml");
    std::fs::write(&config, "[kafka]\nbrokers = \"127.0.0.1:1\"\n").unwrap();
    exits(
        ff().arg("aggregate").arg("--config").arg(&config),
        78,
        &["no warehouse directory", "[aggregate]"],
    );
    std::fs::write(&config, "[aggregate]\nretention_days = 0\n").unwrap();
    exits(
        ff().arg("aggregate").arg("--config").arg(&config),
        78,
        &["aggregate.retention_days"],
    );

    let Some(b) = brokers() else { return };
    let topic = topic_holding(&b, "aggconfig", 2, &visit_messages(40));
    let (wh, group) = (tmp.path().join("wh"), unique("g"));
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{b}\"\n[kafka.topics.visits]\nname = \"{topic}\"\n\
             [aggregate]\nwarehouse = {wh:?}\ngroup = \"{group}\"\nmin_visitors = 1\n\
             visit_timeout_minutes = 10\n"
        ),
    )
    .unwrap();
    let run = ff()
        .args(["aggregate", "--json", "--config"])
        .arg(&config)
        .env_remove("FOOTFALL_KAFKA_BROKERS")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["events_written"], 40, "{report}");
    let meta = std::fs::read_to_string(wh.join(footfall_aggregate::META_FILE)).unwrap();
    assert!(meta.contains(&group), "bound to the config's group: {meta}");

    // The same events through flags alone give the same warehouse.
    let reference = tmp.path().join("reference");
    ok(aggregate(&b, &topic, &unique("g"), &reference).args([
        "--min-visitors",
        "1",
        "--visit-timeout-minutes",
        "10",
    ]));
    assert_eq!(snapshot(&wh), snapshot(&reference));
    // A flag beats the file: another group on the bound warehouse is refused.
    exits(
        ff().args(["aggregate", "--group", "another"])
            .arg("--config")
            .arg(&config),
        78,
        &["another"],
    );
}

#[test]
fn an_interrupted_run_says_nothing_was_committed_and_the_next_counts_everything_once() {
    use std::io::{BufRead, BufReader};
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let n = 200_000;
    let topic = topic_holding(&b, "interrupted", 3, &visit_messages(n));
    let group = unique("g");
    let wh = tmp.path().join("wh");
    let mut child = aggregate(&b, &topic, &group, &wh)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    // Reading 200,000 messages and writing them takes seconds after the
    // assignment; the signal lands long before the commit.
    while !seen.contains("partitions assigned") {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "ended early: {seen}");
        seen.push_str(&line);
    }
    // SAFETY: sends a signal to the child, which is still running (its stderr is open).
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(
        rest.contains("footfall aggregate: interrupted before committing: nothing was committed"),
        "{rest}"
    );
    exits(
        &mut aggregate(&b, &topic, &group, &wh),
        0,
        &[
            &format!("read {n} events (0 duplicates dropped"),
            &format!("wrote {n} events"),
        ],
    );
}

#[test]
fn recompute_rewrites_a_date_byte_for_byte_and_refuses_a_date_without_events() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let topic = topic_holding(&b, "recompute", 2, &visit_messages(50));
    let wh = tmp.path().join("wh");
    exits(
        &mut aggregate(&b, &topic, &unique("g"), &wh),
        0,
        &["read 50 events"],
    );
    let before = snapshot(&wh);
    let recompute = |date: &str| {
        let mut c = ff();
        c.args(["aggregate", "--recompute", date])
            .arg("--warehouse")
            .arg(&wh);
        c
    };
    exits(&mut recompute("2015-05-17"), 0, &["1 dates touched"]);
    assert_eq!(snapshot(&wh), before, "the same summaries, byte for byte");
    exits(
        &mut recompute("2015-05-18"),
        78,
        &["holds no events of 2015-05-18", "nothing to recompute"],
    );
    assert_eq!(snapshot(&wh), before, "nothing changed");
}
