//! Integration tests against a real Kafka broker (FOOTFALL_KAFKA_BROKERS).
//!
//! Without the variable the tests print that they did not run and return,
//! unless broker tests are required (`FOOTFALL_REQUIRE_KAFKA=1` or `CI=true`,
//! see [`footfall_testkit::brokers`]), which makes a missing broker a failure.
//! Every test creates its own uniquely named topics and consumer groups.

#[path = "../src/testdata.rs"]
mod testdata;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use footfall_aggregate::{
    batch_to_events, read_parquet, run, AggregateError, Checkpoint, ErrorKind, LockMode,
    NoProgress, Progress, RunOptions, RunReport, Stage, Table, Warehouse,
};
use footfall_event::VisitEvent;
use footfall_testkit::columns::{i64s, strs};
use footfall_testkit::{assert_same_files, send_waiting, snapshot_all, GroupMember};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

/// A broker connection for one test; deletes the test's topics when dropped.
struct Kafka {
    brokers: String,
    topics: Mutex<Vec<String>>,
    rt: tokio::runtime::Runtime,
}

impl Kafka {
    fn new() -> Option<Kafka> {
        let brokers = footfall_testkit::brokers()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Some(Kafka {
            brokers,
            topics: Mutex::new(Vec::new()),
            rt,
        })
    }

    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c
    }

    fn unique(prefix: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("footfall-agg-test-{prefix}-{}-{nanos}", std::process::id())
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.client().create().unwrap()
    }

    fn topic(&self, prefix: &str, partitions: i32) -> String {
        let name = Self::unique(prefix);
        let admin = self.admin();
        let res = self
            .rt
            .block_on(admin.create_topics(
                &[NewTopic::new(&name, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            ))
            .unwrap();
        for r in res {
            r.unwrap();
        }
        self.topics.lock().unwrap().push(name.clone());
        name
    }

    fn producer(&self) -> BaseProducer {
        let mut c = self.client();
        c.set("enable.idempotence", "true").set("linger.ms", "5");
        c.create().unwrap()
    }

    /// Produces events as the ingest side does: JSON value, key = visitor_id.
    fn produce(&self, topic: &str, events: &[VisitEvent]) {
        let p = self.producer();
        for e in events {
            let value = serde_json::to_vec(e).unwrap();
            send_waiting(
                &p,
                BaseRecord::to(topic)
                    .key(e.visitor_id.as_bytes())
                    .payload(&value),
            );
        }
        p.flush(Duration::from_secs(30)).unwrap();
    }

    /// Produces events to one partition, whatever their key (as a re-send
    /// lands after the key → partition mapping changed).
    fn produce_to(&self, topic: &str, partition: i32, events: &[VisitEvent]) {
        let p = self.producer();
        for e in events {
            let value = serde_json::to_vec(e).unwrap();
            let record = BaseRecord::to(topic)
                .partition(partition)
                .key(e.visitor_id.as_bytes())
                .payload(&value);
            p.send(record).map_err(|(e, _)| e).unwrap();
        }
        p.flush(Duration::from_secs(30)).unwrap();
    }

    /// Grows a topic to `total` partitions and waits until the metadata shows them.
    fn add_partitions(&self, topic: &str, total: usize) {
        let admin = self.admin();
        let res = self
            .rt
            .block_on(admin.create_partitions(
                &[NewPartitions::new(topic, total)],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            ))
            .unwrap();
        for r in res {
            r.unwrap();
        }
        let probe = self.producer();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let md = probe
                .client()
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .unwrap();
            if md
                .topics()
                .first()
                .is_some_and(|t| t.partitions().len() == total)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{topic} did not grow to {total} partitions"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn produce_raw(&self, topic: &str, key: &str, value: &[u8]) {
        let p = self.producer();
        p.send(BaseRecord::to(topic).key(key).payload(value))
            .map_err(|(e, _)| e)
            .unwrap();
        p.flush(Duration::from_secs(30)).unwrap();
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        let topics = std::mem::take(&mut *self.topics.lock().unwrap());
        if topics.is_empty() {
            return;
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let admin = self.admin();
        let _ = self
            .rt
            .block_on(admin.delete_topics(&names, &AdminOptions::new()));
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2015, 5, d).unwrap()
}

fn options(topic: &str, group: &str, wh: &Path) -> RunOptions {
    let mut o = RunOptions::new(topic, group, wh);
    o.assignment_timeout = Duration::from_secs(60);
    o.stall_timeout = Duration::from_secs(60);
    o
}

fn only_summaries(s: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    s.iter()
        .filter(|(k, _)| !k.starts_with("events/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn read_table(wh: &Path, table: Table) -> Vec<(NaiveDate, RecordBatch)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(wh.join(table.name())) else {
        return out;
    };
    for d in rd {
        let d = d.unwrap();
        let date =
            NaiveDate::parse_from_str(&d.file_name().to_string_lossy()[5..], "%Y-%m-%d").unwrap();
        for f in std::fs::read_dir(d.path()).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "parquet") {
                for b in read_parquet(&f, None).unwrap() {
                    out.push((date, b));
                }
            }
        }
    }
    out
}

/// All events in the warehouse, checking each file sits in its events' date and partition.
fn warehouse_events(wh: &Path) -> Vec<footfall_aggregate::KafkaEvent> {
    let mut out = Vec::new();
    for f in Warehouse::new(wh).event_files().unwrap() {
        for b in read_parquet(&f.path, None).unwrap() {
            for e in batch_to_events(&b).unwrap() {
                assert_eq!(e.event.local_date(), f.date, "{}", f.path.display());
                assert_eq!(e.partition, f.partition, "{}", f.path.display());
                assert!(e.offset >= f.start_offset);
                out.push(e);
            }
        }
    }
    out
}

/// Requests, page views and visitors of `traffic_daily` reconcile with the events.
fn assert_reconciles(wh: &Path, expected: &[VisitEvent]) {
    type Counts = (i64, i64, i64, BTreeSet<String>);
    let mut want: BTreeMap<(NaiveDate, String), Counts> = BTreeMap::new();
    for e in expected {
        let w = want.entry((e.local_date(), e.site.clone())).or_default();
        w.0 += 1;
        w.1 += e.is_pageview as i64;
        w.2 += (400..500).contains(&e.status) as i64;
        if e.is_visitor_request() {
            w.3.insert(e.visitor_id.clone());
        }
    }
    let mut got: BTreeMap<(NaiveDate, String), (i64, i64, i64, i64)> = BTreeMap::new();
    for (date, b) in read_table(wh, Table::TrafficDaily) {
        let (site, req, pv, s4, vis) = (
            strs(&b, "site"),
            i64s(&b, "requests"),
            i64s(&b, "page_views"),
            i64s(&b, "status_4xx"),
            i64s(&b, "visitors"),
        );
        for i in 0..b.num_rows() {
            let site = site[i].clone().expect("traffic_daily.site is never null");
            let g = got.entry((date, site)).or_default();
            g.0 += req[i];
            g.1 += pv[i];
            g.2 += s4[i];
            g.3 += vis[i];
        }
    }
    let want: BTreeMap<_, _> = want
        .into_iter()
        .map(|(k, w)| (k, (w.0, w.1, w.2, w.3.len() as i64)))
        .collect();
    assert_eq!(got, want);
}

fn pytest(wh: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/test_warehouse.py");
    let out = std::process::Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&script)
        .env("FOOTFALL_WAREHOUSE", wh)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pytest failed on {}", wh.display());
    assert!(
        !stdout.contains("skipped") || stdout.contains("passed"),
        "pytest ran no test"
    );
}

#[test]
fn end_to_end_reconciles_reads_in_duckdb_and_is_idempotent() {
    let Some(kafka) = Kafka::new() else { return };
    let topic = kafka.topic("e2e", 3);
    let events = testdata::events(11, day(15), 3, 20);
    let resent: Vec<VisitEvent> = events.iter().step_by(9).cloned().collect();
    kafka.produce(&topic, &events);
    kafka.produce(&topic, &resent);
    kafka.produce_raw(&topic, "x", b"not a visit event");

    let dir = tempfile::tempdir().unwrap();
    let group = Kafka::unique("g");
    let opts = options(&topic, &group, dir.path());
    let report = run(&kafka.client(), &opts, &mut NoProgress).unwrap();
    println!("{report}");
    let total = (events.len() + resent.len() + 1) as u64;
    assert_eq!(report.events_read, total);
    assert_eq!(report.invalid, 1);
    assert_eq!(report.duplicates_dropped, resent.len() as u64);
    assert_eq!(report.events_written, events.len() as u64);
    assert_eq!(
        report.dates_touched,
        vec![day(15), day(16), day(17), day(18)]
    );
    assert_eq!(report.partitions.len(), 3);
    for p in &report.partitions {
        assert_eq!(p.end_offset, p.high_watermark);
        assert_eq!(p.committed, Some(p.high_watermark));
    }

    let stored = warehouse_events(dir.path());
    assert_eq!(stored.len(), events.len());
    let ids: BTreeSet<_> = stored.iter().map(|e| e.event.event_id.clone()).collect();
    assert_eq!(
        ids.len(),
        events.len(),
        "no duplicate event_id in the events table"
    );
    assert_reconciles(dir.path(), &events);
    for t in Table::ALL {
        assert!(!read_table(dir.path(), t).is_empty(), "{t} has rows");
    }
    pytest(dir.path());

    // Nothing new: nothing changes, byte for byte.
    let before = snapshot_all(dir.path());
    let again = run(&kafka.client(), &opts, &mut NoProgress).unwrap();
    assert_eq!(
        (again.events_read, again.files_written, again.files_removed),
        (0, 0, 0)
    );
    assert_eq!(snapshot_all(dir.path()), before);
}

/// Blocks the run at its first stage until released.
struct Gate {
    entered: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
}

impl Progress for Gate {
    fn stage(&mut self, stage: Stage) {
        if stage == Stage::Joining {
            self.entered.send(()).unwrap();
            self.release.recv().unwrap();
        }
    }
}

#[test]
fn a_second_run_fails_at_once_while_one_holds_the_lock() {
    let Some(kafka) = Kafka::new() else { return };
    let topic = kafka.topic("lock", 1);
    kafka.produce(&topic, &testdata::events(3, day(15), 1, 3));
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&topic, &Kafka::unique("g"), dir.path());
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let first = {
        let (client, opts) = (kafka.client(), opts.clone());
        std::thread::spawn(move || {
            let mut gate = Gate {
                entered: entered_tx,
                release: release_rx,
            };
            run(&client, &opts, &mut gate)
        })
    };
    entered_rx.recv().unwrap();
    let t = Instant::now();
    let err = run(&kafka.client(), &opts, &mut NoProgress).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "fails at once, took {:?}",
        t.elapsed()
    );
    assert!(err.to_string().contains(".footfall.lock"), "{err}");
    release_tx.send(()).unwrap();
    let report = first.join().unwrap().unwrap();
    assert!(report.events_written > 0);
}

/// A run started right after one in this process that ended in an error.
/// The warehouse lock of the one before can outlive it for a moment: a test
/// beside it that spawns a process (`pytest`) gives the child a copy of every
/// open descriptor until it execs, and an `flock` lock goes with the last
/// copy. A lock that stays held for 5 s is a failure.
fn run_right_after(client: &ClientConfig, opts: &RunOptions) -> footfall_aggregate::RunReport {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        match run(client, opts, &mut NoProgress) {
            Err(AggregateError::Locked { .. }) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(50))
            }
            r => return r.unwrap(),
        }
    }
}

#[test]
fn crash_at_sampled_checkpoints_then_rerun_gives_identical_files() {
    let Some(kafka) = Kafka::new() else { return };
    let topic = kafka.topic("crash", 2);
    let events = testdata::events(21, day(15), 2, 8);
    kafka.produce(&topic, &events);

    let reference = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut opts = options(&topic, &Kafka::unique("g"), reference.path());
    let log = Arc::clone(&seen);
    opts.fault = Some(Arc::new(move |cp: &Checkpoint| {
        log.lock().unwrap().push(cp.clone());
        false
    }));
    run(&kafka.client(), &opts, &mut NoProgress).unwrap();
    let want = snapshot_all(reference.path());
    let seen = seen.lock().unwrap().clone();
    let n = seen.len();
    assert!(n > 10, "{n} checkpoints");
    let first_summary = seen
        .iter()
        .position(
            |c| matches!(c, Checkpoint::Persisted(p) if !p.to_string_lossy().contains("/events/")),
        )
        .unwrap();
    let mut rng = testdata::Rng::new(7);
    let mut points: BTreeSet<usize> = [0, 1, 2, first_summary, n / 2, n - 2, n - 1]
        .into_iter()
        .collect();
    while points.len() < 10 {
        points.insert(rng.below(n as u64) as usize);
    }
    for crash_at in points {
        let dir = tempfile::tempdir().unwrap();
        let mut crashing = options(&topic, &Kafka::unique("g"), dir.path());
        let counter = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&counter);
        crashing.fault = Some(Arc::new(move |_: &Checkpoint| {
            c.fetch_add(1, Ordering::SeqCst) == crash_at
        }));
        let err = run(&kafka.client(), &crashing, &mut NoProgress).unwrap_err();
        assert!(matches!(err, AggregateError::Injected(_)), "{err}");
        crashing.fault = None;
        let r = run_right_after(&kafka.client(), &crashing);
        if crash_at == n - 1 {
            assert_eq!(
                r.events_read, 0,
                "offsets were committed before the crash after commit"
            );
        }
        let got = snapshot_all(dir.path());
        assert_same_files(
            &want,
            &got,
            &format!("crash at {crash_at} ({:?})", seen[crash_at]),
        );
    }
}

#[test]
fn late_events_update_their_date_and_retention_drops_old_events_only() {
    let Some(kafka) = Kafka::new() else { return };
    let topic = kafka.topic("late", 2);
    let events = testdata::events(31, day(15), 3, 10);
    kafka.produce(&topic, &events);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&topic, &Kafka::unique("g"), dir.path());
    run(&kafka.client(), &opts, &mut NoProgress).unwrap();
    let requests_15 = |wh: &Path| -> i64 {
        read_table(wh, Table::TrafficDaily)
            .iter()
            .filter(|(d, _)| *d == day(15))
            .map(|(_, b)| i64s(b, "requests").iter().sum::<i64>())
            .sum()
    };
    let before = requests_15(dir.path());

    let mut late = testdata::events(32, day(15), 1, 4);
    late.retain(|e| e.local_date() == day(15));
    kafka.produce(&topic, &late);
    let r = run(&kafka.client(), &opts, &mut NoProgress).unwrap();
    assert!(r.dates_touched.contains(&day(15)));
    assert_eq!(requests_15(dir.path()), before + late.len() as i64);
    let mut all = events.clone();
    all.extend(late.iter().cloned());
    assert_reconciles(dir.path(), &all);

    // Keep 3 days of events (counted back from the 18th): the 15th goes, its summaries stay.
    let summaries_before = only_summaries(&snapshot_all(dir.path()));
    opts.retention_days = Some(3);
    opts.today = Some(day(18));
    let r = run(&kafka.client(), &opts, &mut NoProgress).unwrap();
    assert_eq!(r.retention_dropped, vec![day(15)]);
    assert!(!dir.path().join("events/date=2015-05-15").exists());
    assert!(dir.path().join("events/date=2015-05-16").is_dir());
    assert_eq!(only_summaries(&snapshot_all(dir.path())), summaries_before);
    assert_eq!(requests_15(dir.path()), before + late.len() as i64);
}

#[test]
fn dry_run_cut_and_two_instances_in_one_group() {
    let Some(kafka) = Kafka::new() else { return };
    let topic = kafka.topic("split", 4);
    let events = testdata::events(41, day(15), 2, 15);
    kafka.produce(&topic, &events);
    let total = events.len() as u64;
    let root = tempfile::tempdir().unwrap();
    let group = Kafka::unique("g");

    // Dry run: reads everything, creates nothing, commits nothing.
    let wh = root.path().join("wh");
    let mut dry = options(&topic, &group, &wh);
    dry.dry_run = true;
    let r = run(&kafka.client(), &dry, &mut NoProgress).unwrap();
    assert_eq!(r.events_read, total);
    assert_eq!(r.events_written, total);
    assert!(r.summary_rows["traffic_daily"] > 0);
    assert!(!wh.exists(), "a dry run writes nothing");

    // A cut: exactly 50 messages, split as planned.
    let mut cut = options(&topic, &group, &wh);
    cut.max_events = Some(50);
    let r = run(&kafka.client(), &cut, &mut NoProgress).unwrap();
    assert_eq!(r.events_read, 50, "the dry run committed nothing");
    let avail: Vec<(i32, u64)> = r
        .partitions
        .iter()
        .map(|p| (p.partition, (p.high_watermark - p.start_offset) as u64))
        .collect();
    let plan = footfall_aggregate::plan_cut(&avail, 50);
    for (p, (_, n)) in r.partitions.iter().zip(plan) {
        assert_eq!(p.messages, n, "partition {}", p.partition);
    }

    // Two instances of the group share the rest of the work.
    let mut shared = options(&topic, &group, &wh);
    shared.lock = LockMode::Shared;
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (client, opts) = (kafka.client(), shared.clone());
            std::thread::spawn(move || run(&client, &opts, &mut NoProgress))
        })
        .collect();
    let reports: Vec<RunReport> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert_eq!(
        reports.iter().map(|r| r.events_read).sum::<u64>(),
        total - 50
    );
    // Each left the group as it ended (it closes its consumer itself).
    assert_eq!(group_members(&kafka, &group), 0);

    // The result equals one run over everything.
    let single = root.path().join("single");
    run(
        &kafka.client(),
        &options(&topic, &Kafka::unique("g"), &single),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(
        only_summaries(&snapshot_all(&wh)),
        only_summaries(&snapshot_all(&single))
    );
    assert_reconciles(&wh, &events);
}

#[test]
fn unknown_topic_is_a_config_error() {
    let Some(kafka) = Kafka::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&Kafka::unique("missing"), &Kafka::unique("g"), dir.path());
    let err = run(&kafka.client(), &opts, &mut NoProgress).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

#[test]
fn a_partition_increase_with_resent_events_counts_each_event_once() {
    let Some(kafka) = Kafka::new() else { return };
    let topic = kafka.topic("grow", 2);
    let events = testdata::events(71, day(15), 2, 15);
    // Every other event before the increase, the rest after it: the key →
    // partition mapping changes in between, so visitors' days are split
    // across partitions.
    let (before, after): (Vec<VisitEvent>, Vec<VisitEvent>) = {
        let (a, b): (Vec<_>, Vec<_>) = events
            .iter()
            .cloned()
            .enumerate()
            .partition(|(i, _)| i % 2 == 0);
        (
            a.into_iter().map(|x| x.1).collect(),
            b.into_iter().map(|x| x.1).collect(),
        )
    };
    kafka.produce(&topic, &before);
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&topic, &Kafka::unique("g"), dir.path());
    let r = run(&kafka.client(), &opts, &mut NoProgress).unwrap();
    assert_eq!(r.events_written, before.len() as u64);

    kafka.add_partitions(&topic, 4);
    kafka.produce(&topic, &after);
    // Re-sent after a crash of ingest: the same event JSON into partition 0
    // and into a new partition.
    let resent: Vec<VisitEvent> = before.iter().step_by(6).cloned().collect();
    kafka.produce_to(&topic, 0, &resent);
    kafka.produce_to(&topic, 3, &resent);
    let r = run(&kafka.client(), &opts, &mut NoProgress).unwrap();
    println!("{r}");
    assert_eq!(r.partitions.len(), 4);
    assert_eq!(r.duplicates_dropped, 2 * resent.len() as u64);
    assert_eq!(r.events_written, after.len() as u64);
    let stored = warehouse_events(dir.path());
    let ids: BTreeSet<_> = stored.iter().map(|e| e.event.event_id.clone()).collect();
    assert_eq!((stored.len(), ids.len()), (events.len(), events.len()));
    assert_reconciles(dir.path(), &events);

    // The summaries are those of the events sent once to a topic that always had 4 partitions.
    let fresh = kafka.topic("grown", 4);
    kafka.produce(&fresh, &events);
    let single = tempfile::tempdir().unwrap();
    run(
        &kafka.client(),
        &options(&fresh, &Kafka::unique("g"), single.path()),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(
        only_summaries(&snapshot_all(dir.path())),
        only_summaries(&snapshot_all(single.path()))
    );
}

/// The members of `group`, as the broker describes it.
fn group_members(kafka: &Kafka, group: &str) -> usize {
    let consumer: BaseConsumer = kafka.client().create().unwrap();
    let list = consumer
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .unwrap();
    list.groups().iter().map(|g| g.members().len()).sum()
}

#[test]
fn an_exclusive_run_does_not_join_the_group_and_a_member_that_joins_makes_its_commit_fail() {
    let Some(kafka) = Kafka::new() else { return };
    let topic = kafka.topic("assign", 3);
    let events = testdata::events(51, day(15), 2, 10);
    kafka.produce(&topic, &events);
    let root = tempfile::tempdir().unwrap();
    let reference = root.path().join("reference");
    let r = run(
        &kafka.client(),
        &options(&topic, &Kafka::unique("g"), &reference),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(r.events_read, events.len() as u64);

    // While the exclusive run reads, the group has no member: it assigned itself
    // every partition. A consumer joins before the commit: the broker refuses it.
    let group = Kafka::unique("g");
    let wh = root.path().join("wh");
    let mut opts = options(&topic, &group, &wh);
    let members_while_reading = Arc::new(Mutex::new(None));
    let joined = Arc::new(Mutex::new(None));
    let (seen, held, k) = (
        Arc::clone(&members_while_reading),
        Arc::clone(&joined),
        Kafka::new().unwrap(),
    );
    let t = topic.clone();
    let g = group.clone();
    opts.fault = Some(Arc::new(move |cp: &Checkpoint| {
        match cp {
            Checkpoint::Consumed => *seen.lock().unwrap() = Some(group_members(&k, &g)),
            Checkpoint::BeforeCommit => {
                *held.lock().unwrap() = Some(GroupMember::join(&k.brokers, &t, &g, "member"))
            }
            _ => {}
        }
        false
    }));
    let err = run(&kafka.client(), &opts, &mut NoProgress).unwrap_err();
    assert_eq!(*members_while_reading.lock().unwrap(), Some(0));
    assert_eq!(err.kind(), ErrorKind::Unassigned, "{err}");
    assert!(err.to_string().contains("a consumer joined group"), "{err}");
    println!("the commit after a member joined: {err}");
    let member = joined.lock().unwrap().take().unwrap();
    // With the member still there, an exclusive run joins and is not given every partition.
    opts.fault = None;
    let err = run(&kafka.client(), &opts, &mut NoProgress).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unassigned, "{err}");
    drop(member);

    // Nothing was committed: the next run reads everything again and builds the
    // reference warehouse.
    let r = run(&kafka.client(), &opts, &mut NoProgress).unwrap();
    assert_eq!(r.events_read, events.len() as u64);
    assert_eq!(snapshot_all(&wh), snapshot_all(&reference));
}

#[test]
fn shared_runs_with_disjoint_dates_of_one_week_leave_the_week_as_one_run_does() {
    let Some(kafka) = Kafka::new() else { return };
    let topic = kafka.topic("week", 2);
    // Partition 0 holds only the 18th, partition 1 only the 19th (one ISO
    // week, 2015-05-18..24): two shared runs holding one partition each write
    // disjoint dates and the same traffic_weekly and traffic_monthly files.
    let only = |seed: u64, d: u32| {
        let mut e = testdata::events(seed, day(d), 1, 12);
        e.retain(|e| e.local_date() == day(d));
        e
    };
    let root = tempfile::tempdir().unwrap();
    let wh = root.path().join("wh");
    let group = Kafka::unique("g");
    let mut shared = options(&topic, &group, &wh);
    shared.lock = LockMode::Shared;
    let mut all = Vec::new();
    let mut both_busy = 0;
    // Rounds until the two runs have shared the work twice (the group may
    // give one run both partitions when the other joins late).
    let mut round = 0u64;
    while both_busy < 2 && round < 12 {
        round += 1;
        let (a, b) = (only(60 + round, 18), only(70 + round, 19));
        kafka.produce_to(&topic, 0, &a);
        kafka.produce_to(&topic, 1, &b);
        all.extend(a);
        all.extend(b);
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (client, opts) = (kafka.client(), shared.clone());
                std::thread::spawn(move || run(&client, &opts, &mut NoProgress))
            })
            .collect();
        let mut busy = 0;
        for h in handles {
            match h.join().unwrap() {
                Ok(r) => busy += usize::from(r.events_read > 0),
                // A run the group gave nothing this time: the other read it all.
                Err(e) if e.kind() == ErrorKind::Unassigned => {}
                Err(e) => panic!("{e}"),
            }
        }
        both_busy += usize::from(busy == 2);
    }
    println!("rounds in which both runs read a date: {both_busy} of {round}");
    assert!(both_busy > 0, "the runs never shared the work");
    let single = root.path().join("single");
    run(
        &kafka.client(),
        &options(&topic, &Kafka::unique("g"), &single),
        &mut NoProgress,
    )
    .unwrap();
    let (got, want) = (
        only_summaries(&snapshot_all(&wh)),
        only_summaries(&snapshot_all(&single)),
    );
    assert!(
        got.keys().any(|k| k.starts_with("traffic_weekly/")),
        "{:?}",
        got.keys()
    );
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, v) in &want {
        assert!(got[k] == *v, "{k} differs from one run's");
    }
    assert_reconciles(&wh, &all);
}

#[test]
fn an_exclusive_run_beside_a_consumer_protocol_member_waits_for_every_partition_then_exits_unassigned(
) {
    // KIP-848 (`group.protocol=consumer`): the run must not read its batch
    // beside a member of the group.
    let Some(kafka) = Kafka::new() else { return };
    let topic = kafka.topic("kip848", 2);
    let events = testdata::events(81, day(15), 1, 10);
    kafka.produce(&topic, &events);
    let group = Kafka::unique("g");
    let protocol = [("group.protocol", "consumer")];
    let member = GroupMember::join_with(&kafka.brokers, &topic, &group, "member", &protocol);
    let mut client = kafka.client();
    client.set("group.protocol", "consumer");
    let root = tempfile::tempdir().unwrap();
    let wh = root.path().join("wh");
    let mut opts = options(&topic, &group, &wh);
    // Assignments under KIP-848 grow step by step: the run waits this long
    // for the whole topic. Its first partition comes only after the member
    // has given it up, each step on a heartbeat (the broker's
    // `group.consumer.heartbeat.interval.ms`, 5 s by default): up to about
    // 10 s, so a shorter wait can end with none (a timeout, not this test's
    // case).
    opts.assignment_timeout = Duration::from_secs(12);
    let err = run(&client, &opts, &mut NoProgress).unwrap_err();
    println!("beside a consumer-protocol member: {err}");
    // Such a run joins the group (the classic description would not show the
    // member) and is not given every partition.
    assert_eq!(err.kind(), ErrorKind::Unassigned, "{err}");
    assert!(err.to_string().contains("assigned this run"), "{err}");
    drop(member);
    let r = run(&client, &opts, &mut NoProgress).unwrap();
    assert_eq!(r.events_read, events.len() as u64);
    assert_reconciles(&wh, &events);
}
