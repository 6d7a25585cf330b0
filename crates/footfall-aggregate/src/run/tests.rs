//! The run's unit tests: a topic in memory ([`super::testkit::FakeTopic`])
//! drives [`super::complete`] as a run does; crash injection at sampled
//! checkpoints checks that a re-run gives the same files, byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use footfall_event::VisitEvent;
use footfall_testkit::{assert_same_files, snapshot_all};

use super::consume::{decode, Part};
use super::testkit::FakeTopic;
use super::*;
use crate::schema::{Cols, KafkaEvent};
use crate::sessions::SummaryOptions;
use crate::summaries::Table;
use crate::testdata;
use crate::warehouse::{concat, read_parquet, SummarySettings, LAYOUT_VERSION};

#[test]
fn cut_is_water_filled_in_partition_order() {
    assert_eq!(
        plan_cut(&[(0, 10), (1, 10), (2, 10)], 12),
        vec![(0, 4), (1, 4), (2, 4)]
    );
    assert_eq!(
        plan_cut(&[(2, 100), (0, 1), (1, 100)], 10),
        vec![(0, 1), (1, 5), (2, 4)]
    );
    assert_eq!(plan_cut(&[(0, 3), (1, 3)], 100), vec![(0, 3), (1, 3)]);
    assert_eq!(plan_cut(&[(0, 5), (1, 5)], 0), vec![(0, 0), (1, 0)]);
    assert_eq!(
        plan_cut(&[(0, 5), (1, 5), (2, 5)], 4),
        vec![(0, 2), (1, 1), (2, 1)]
    );
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2015, 5, d).unwrap()
}

/// Two batches: three days, then late events for the first day plus duplicates.
fn batches() -> (Vec<VisitEvent>, Vec<VisitEvent>) {
    let first = testdata::events(1, day(15), 3, 8);
    let mut second = testdata::events(2, day(15), 1, 5);
    second.extend(first.iter().step_by(7).cloned()); // re-sent: duplicates
    (first, second)
}

fn opts() -> RunOptions {
    RunOptions::new("visits", "g", "unused")
}

#[test]
fn where_the_batch_is_spilled_changes_no_byte() {
    let (first, second) = batches();
    let mut snapshots = Vec::new();
    for every in [0, 1, 5, 64] {
        let dir = tempfile::tempdir().unwrap();
        let mut topic = FakeTopic {
            spill_every: every,
            ..FakeTopic::default()
        };
        topic.produce(&first, 3);
        topic.run(dir.path(), &opts()).unwrap();
        topic.produce(&second, 3);
        let r = topic.run(dir.path(), &opts()).unwrap();
        assert!(r.duplicates_dropped > 0);
        assert!(
            !dir.path().join(".spill").join("p0").exists(),
            "the spill goes with the run"
        );
        snapshots.push(snapshot_all(dir.path()));
    }
    for s in &snapshots[1..] {
        assert_same_files(&snapshots[0], s, "spilled at other places");
    }
}

/// Dates (and weeks and months) side by side change no byte, nor any count.
#[test]
fn how_many_threads_write_changes_no_byte() {
    let (first, second) = batches();
    let mut runs = Vec::new();
    for (threads, large) in [
        (1, u64::MAX),
        (2, u64::MAX),
        (3, u64::MAX),
        (8, u64::MAX),
        (2, 50),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts();
        o.threads = std::num::NonZeroUsize::new(threads).unwrap();
        // Dates of 50 events or more one at a time, the rest side by side.
        o.large_date_events = large;
        let mut topic = FakeTopic::default();
        topic.produce(&first, 3);
        let r1 = topic.run(dir.path(), &o).unwrap();
        topic.produce(&second, 3);
        let mut r2 = topic.run(dir.path(), &o).unwrap();
        assert!(r2.duplicates_dropped > 0 && r1.dates_touched.len() > 2);
        r2.seconds = 0.0;
        runs.push((snapshot_all(dir.path()), r2));
    }
    for (files, report) in &runs[1..] {
        assert_same_files(&runs[0].0, files, "another number of threads");
        assert_eq!(&runs[0].1, report);
    }
}

#[test]
fn crash_at_sampled_checkpoints_then_rerun_gives_identical_files() {
    crash_then_rerun(3, 3);
}

/// The partitions go from 3 to 4 between the batches: the second batch's
/// re-sent duplicates and its visitors of the first days land in other
/// partitions than before.
#[test]
fn crash_after_a_partition_increase_then_rerun_gives_identical_files() {
    crash_then_rerun(3, 4);
}

/// Two runs (the batches over `p1`, then `p2` partitions), with a crash at
/// sampled checkpoints of either followed by a re-run, give the files of
/// the two runs without a crash, byte for byte.
fn crash_then_rerun(p1: i32, p2: i32) {
    let (first, second) = batches();
    let reference = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut o = opts();
    let log = Arc::clone(&seen);
    o.fault = Some(Arc::new(move |cp: &Checkpoint| {
        log.lock().unwrap().push(cp.clone());
        false
    }));
    let mut topic = FakeTopic::default();
    topic.produce(&first, p1);
    let r1 = topic.run(reference.path(), &o).unwrap();
    topic.produce(&second, p2);
    let r2 = topic.run(reference.path(), &o).unwrap();
    assert_eq!(r1.events_written, first.len() as u64);
    assert_eq!(
        r2.duplicates_dropped,
        first.iter().step_by(7).count() as u64
    );
    assert!(
        r2.dates_touched.contains(&day(15)),
        "late events recompute their date"
    );
    let want = snapshot_all(reference.path());
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() > 100, "{} checkpoints", seen.len());
    // Every checkpoint that is not a file write, every 3rd events file
    // checkpoint and every 20th summary file checkpoint.
    let crash_points: Vec<usize> = (0..seen.len())
        .filter(|&i| match &seen[i] {
            Checkpoint::TempWritten(p) | Checkpoint::Persisted(p)
                if p.to_string_lossy().contains("/events/") =>
            {
                i % 3 == 0
            }
            Checkpoint::TempWritten(_) | Checkpoint::Persisted(_) => i % 20 == 0,
            _ => true,
        })
        .collect();
    assert!(crash_points.len() > 20, "{}", crash_points.len());
    for kind in ["TempWritten", "Persisted", "BeforeCommit", "Committed"] {
        assert!(
            crash_points
                .iter()
                .any(|&i| format!("{:?}", seen[i]).starts_with(kind)),
            "no crash at a {kind} checkpoint"
        );
    }

    let mut stale_removed = 0;
    for crash_at in crash_points {
        let dir = tempfile::tempdir().unwrap();
        let counter = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&counter);
        let mut crashing = opts();
        crashing.fault = Some(Arc::new(move |_: &Checkpoint| {
            c.fetch_add(1, Ordering::SeqCst) == crash_at
        }));
        let mut topic = FakeTopic::default();
        for (batch, partitions) in [(&first, p1), (&second, p2)] {
            topic.produce(batch, partitions);
            match topic.run(dir.path(), &crashing) {
                Ok(_) => {}
                Err(AggregateError::Injected(_)) => {
                    stale_removed += topic.run(dir.path(), &opts()).unwrap().files_removed;
                }
                Err(e) => panic!("{e}"),
            }
        }
        let got = snapshot_all(dir.path());
        assert_same_files(&want, &got, &format!("crash at {crash_at}"));
        seen::tests::assert_id_indexes_exact(dir.path(), &format!("crash at {crash_at}"));
        let wh = Warehouse::new(dir.path());
        for date in [day(15), day(16), day(17)] {
            let records = crate::periods::record_keys(&wh, date);
            assert!(records.is_some(), "crash at {crash_at}: records of {date}");
        }
    }
    assert!(
        stale_removed > 0,
        "re-runs removed the files of crashed runs"
    );
}

#[test]
fn second_run_without_new_data_changes_nothing() {
    let (first, _) = batches();
    let dir = tempfile::tempdir().unwrap();
    let mut topic = FakeTopic::default();
    topic.produce(&first, 2);
    topic.run(dir.path(), &opts()).unwrap();
    let before = snapshot_all(dir.path());
    let r = topic.run(dir.path(), &opts()).unwrap();
    assert_eq!((r.events_read, r.files_written, r.files_removed), (0, 0, 0));
    assert!(r.dates_touched.is_empty());
    assert_eq!(snapshot_all(dir.path()), before);
}

#[test]
fn runs_record_their_summary_settings_for_erasures() {
    let (first, second) = batches();
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::new(dir.path());
    let mut topic = FakeTopic::default();
    topic.produce(&first, 2);
    let mut o = opts();
    o.summary.min_visitors = 5;
    o.summary.visit_timeout = std::time::Duration::from_secs(45 * 60);
    topic.run(dir.path(), &o).unwrap();
    let recorded = wh.read_meta().unwrap().unwrap().summary.unwrap();
    assert_eq!((recorded.visit_timeout_s, recorded.min_visitors), (2700, 5));
    assert_eq!(recorded.clone().apply(SummaryOptions::default()), o.summary);
    // A dry run records nothing; a run with other settings records its own.
    let mut dry = opts();
    dry.dry_run = true;
    topic.produce(&second, 2);
    topic.run(dir.path(), &dry).unwrap();
    assert_eq!(
        wh.read_meta().unwrap().unwrap().summary,
        Some(recorded.clone())
    );
    topic.run(dir.path(), &opts()).unwrap();
    let now = wh.read_meta().unwrap().unwrap().summary;
    assert_eq!(now, Some(SummarySettings::of(&SummaryOptions::default())));
}

#[test]
fn cut_runs_give_the_same_summaries_as_one_run() {
    let (first, second) = batches();
    let one = tempfile::tempdir().unwrap();
    let mut topic = FakeTopic::default();
    topic.produce(&first, 3);
    topic.produce(&second, 3);
    topic.run(one.path(), &opts()).unwrap();

    let many = tempfile::tempdir().unwrap();
    let mut topic = FakeTopic::default();
    topic.produce(&first, 3);
    topic.produce(&second, 3);
    let mut cut = opts();
    cut.max_events = Some(97);
    let mut runs = 0;
    loop {
        let r = topic.run(many.path(), &cut).unwrap();
        runs += 1;
        assert!(r.events_read <= 97);
        if r.events_read == 0 {
            break;
        }
    }
    let total = first.len() + second.len();
    assert_eq!(runs, total.div_ceil(97) + 1);
    let (a, b) = (snapshot_all(one.path()), snapshot_all(many.path()));
    let summaries = |s: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        s.iter()
            .filter(|(k, _)| !k.starts_with("events/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(summaries(&a), summaries(&b));
    assert!(
        b.keys().filter(|k| k.starts_with("events/")).count()
            > a.keys().filter(|k| k.starts_with("events/")).count()
    );
}

#[test]
fn dry_run_writes_and_commits_nothing() {
    let (first, _) = batches();
    let dir = tempfile::tempdir().unwrap();
    let wh_dir = dir.path().join("wh");
    let mut topic = FakeTopic::default();
    topic.produce(&first, 2);
    let mut dry = opts();
    dry.dry_run = true;
    // The fake harness creates the directory; a real dry run does not.
    let r = topic.run(&wh_dir, &dry).unwrap();
    assert_eq!(r.events_written, first.len() as u64);
    assert!(r.summary_rows["traffic_daily"] > 0);
    assert!(topic.committed.is_empty());
    assert!(snapshot_all(&wh_dir).is_empty());
}

fn now_has(s: &BTreeMap<String, Vec<u8>>, prefix: &str) -> bool {
    s.keys().any(|k| k.starts_with(prefix))
}

#[test]
fn late_events_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut topic = FakeTopic::default();
    topic.produce(&testdata::events(5, day(15), 3, 10), 2);
    topic.run(dir.path(), &opts()).unwrap();
    let before = snapshot_all(dir.path());
    let traffic15 = |s: &BTreeMap<String, Vec<u8>>| -> Vec<Vec<u8>> {
        s.iter()
            .filter(|(k, _)| k.starts_with("traffic_daily/date=2015-05-15/"))
            .map(|(_, v)| v.clone())
            .collect()
    };
    // Late events for the 15th, in the middle of the day.
    let mut late = testdata::events(6, day(15), 1, 4);
    late.retain(|e| e.ts.format("%H").to_string().as_str() < "20");
    topic.produce(&late, 2);
    let r = topic.run(dir.path(), &opts()).unwrap();
    assert!(r.dates_touched.contains(&day(15)));
    let after = snapshot_all(dir.path());
    assert_ne!(traffic15(&before), traffic15(&after));
    // The 17th is not touched at all.
    for (k, v) in &before {
        if k.contains("date=2015-05-17") {
            assert_eq!(&after[k], v, "{k}");
        }
    }
    // Retention keeps 3 days of events (the 16th to the 18th, where the last
    // visits of the 17th end), and all summaries.
    assert!(now_has(&after, "events/date=2015-05-18"));
    let mut keep3 = opts();
    keep3.retention_days = Some(3);
    keep3.today = Some(day(18));
    let r = topic.run(dir.path(), &keep3).unwrap();
    assert_eq!(r.retention_dropped, vec![day(15)]);
    let now = snapshot_all(dir.path());
    assert!(!now.keys().any(|k| k.starts_with("events/date=2015-05-15")));
    assert!(now.keys().any(|k| k.starts_with("events/date=2015-05-16")));
    assert_eq!(traffic15(&now), traffic15(&after));
    let wh = Warehouse::new(dir.path());
    assert!(
        wh.read_id_index(day(15)).unwrap().is_none(),
        "its id index went too"
    );
    assert!(wh.read_id_index(day(16)).unwrap().is_some());
    let state = |d| wh.day_state_paths(day(d)).iter().any(|p| p.exists());
    assert_eq!(
        [15, 16, 17].map(state),
        [false, false, true],
        "day states: the dropped date's, and the horizon's (it holds the 15th's last visit timeout), went"
    );
    // Events for a dropped date are refused and do not touch its summaries.
    topic.produce(&testdata::events(7, day(15), 1, 3), 2);
    let r = topic.run(dir.path(), &opts()).unwrap();
    assert!(r.expired > 0);
    assert_eq!(r.events_written, 0);
    assert_eq!(traffic15(&snapshot_all(dir.path())), traffic15(&after));
}

/// The summary files of a snapshot.
fn summary_files(s: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    s.iter()
        .filter(|(k, _)| !k.starts_with("events/") && !k.starts_with("_erasure"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Every event of the warehouse's events table.
fn stored_events(dir: &std::path::Path) -> Vec<KafkaEvent> {
    let mut out = Vec::new();
    for f in Warehouse::new(dir).event_files().unwrap() {
        for b in read_parquet(&f.path, None).unwrap() {
            out.extend(crate::schema::batch_to_events(&b).unwrap());
        }
    }
    out
}

/// The rows of one summary table of one date.
fn table_of(dir: &std::path::Path, table: Table, date: NaiveDate) -> RecordBatch {
    let path = Warehouse::new(dir).summary_path(table, date);
    let batches = read_parquet(&path, None).unwrap();
    concat(&batches[0].schema(), &batches).unwrap()
}

fn strs(b: &RecordBatch, col: &str) -> Vec<String> {
    let a = Cols::new(b).str(col).unwrap();
    a.iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect()
}

fn i64s(b: &RecordBatch, col: &str) -> Vec<i64> {
    Cols::new(b).i64(col).unwrap().values().to_vec()
}

#[test]
fn an_event_resent_into_another_partition_is_counted_once() {
    let events = testdata::events(51, day(15), 2, 10);
    let once = tempfile::tempdir().unwrap();
    let mut reference = FakeTopic::default();
    reference.produce(&events, 2);
    reference.run(once.path(), &opts()).unwrap();

    // After a partition increase, re-sent events land in partitions 2 and 3:
    // in the same batch as the originals, and in a later one.
    let dir = tempfile::tempdir().unwrap();
    let mut topic = FakeTopic::default();
    topic.produce(&events, 2);
    let resent: Vec<VisitEvent> = events.iter().step_by(5).cloned().collect();
    topic.produce_to(2, &resent);
    let r = topic.run(dir.path(), &opts()).unwrap();
    assert_eq!(r.duplicates_dropped, resent.len() as u64);
    assert_eq!(r.events_written, events.len() as u64);
    topic.produce_to(3, &resent);
    let r = topic.run(dir.path(), &opts()).unwrap();
    assert_eq!(
        (r.duplicates_dropped, r.events_written, r.files_written),
        (resent.len() as u64, 0, 0)
    );
    // Each event once, from the partition it was first read from: the
    // warehouse is the one of each event sent once.
    let stored = stored_events(dir.path());
    assert_eq!(stored.len(), events.len());
    assert!(stored.iter().all(|e| e.partition < 2));
    assert_eq!(snapshot_all(dir.path()), snapshot_all(once.path()));
}

#[test]
fn a_visitor_split_across_partitions_is_one_visitor() {
    let events = testdata::events(52, day(15), 2, 12);
    let whole = tempfile::tempdir().unwrap();
    let mut one = FakeTopic::default();
    one.produce(&events, 1);
    one.run(whole.path(), &opts()).unwrap();

    // Every visitor's events spread over three partitions.
    let split = tempfile::tempdir().unwrap();
    let mut three = FakeTopic::default();
    for (i, e) in events.iter().enumerate() {
        three.produce_to(i as i32 % 3, std::slice::from_ref(e));
    }
    three.run(split.path(), &opts()).unwrap();
    let (a, b) = (snapshot_all(whole.path()), snapshot_all(split.path()));
    assert!(summary_files(&a).len() > 20);
    assert_eq!(summary_files(&a), summary_files(&b));

    // And the visitor counts are the events' distinct visitors.
    for d in [day(15), day(16)] {
        let t = table_of(split.path(), Table::TrafficDaily, d);
        // Human and bot rows of a site add up to its distinct visitors.
        let mut got: BTreeMap<String, i64> = BTreeMap::new();
        for (site, n) in strs(&t, "site").into_iter().zip(i64s(&t, "visitors")) {
            *got.entry(site.to_string()).or_default() += n;
        }
        let mut want = BTreeMap::new();
        for site in got.keys() {
            let visitors: BTreeSet<&str> = events
                .iter()
                .filter(|e| e.local_date() == d && &e.site == site && e.is_visitor_request())
                .map(|e| e.visitor_id.as_str())
                .collect();
            want.insert(site.clone(), visitors.len() as i64);
        }
        assert_eq!(got, want, "{d}");
    }
}

#[test]
fn rare_values_are_hidden_per_day_across_partitions() {
    use crate::summaries::tests::ev;
    let search = |visitor: String, terms: &str, campaign: Option<&str>| {
        let mut e = ev(&visitor, "2015-05-17T10:00:00", "/search", 200, true);
        e.site_search = Some(terms.into());
        if let Some(c) = campaign {
            e.utm_source = Some("news".into());
            e.utm_campaign = Some(c.into());
        }
        e
    };
    // 7 visitors search "shoes" (3 of them from the spring campaign), 2
    // search "hats" (1 from a campaign of their own).
    let mut events: Vec<VisitEvent> = (0..7)
        .map(|i| search(format!("S{i}"), "shoes", (i < 3).then_some("spring")))
        .collect();
    events.push(search("H0".into(), "hats", Some("solo")));
    events.push(search("H1".into(), "hats", None));
    // Spread over three partitions: no partition has 3 visitors of a term.
    let mut topic = FakeTopic::default();
    for (i, e) in events.iter().enumerate() {
        topic.produce_to(i as i32 % 3, std::slice::from_ref(e));
    }
    let dir = tempfile::tempdir().unwrap();
    topic.run(dir.path(), &opts()).unwrap();
    let d = NaiveDate::from_ymd_opt(2015, 5, 17).unwrap();

    let terms = table_of(dir.path(), Table::SearchTermsDaily, d);
    assert_eq!(strs(&terms, "terms"), vec![crate::OTHER, "shoes"]);
    assert_eq!(i64s(&terms, "searches"), vec![2, 7]);
    assert_eq!(i64s(&terms, "visitors"), vec![2, 7]);
    let campaigns = table_of(dir.path(), Table::CampaignsDaily, d);
    assert_eq!(strs(&campaigns, "utm_source"), vec!["news", "news"]);
    assert_eq!(
        strs(&campaigns, "utm_campaign"),
        vec![crate::OTHER, "spring"]
    );
    assert_eq!(i64s(&campaigns, "visits"), vec![1, 3]);
    // The tables still add up to the events table.
    let traffic = table_of(dir.path(), Table::TrafficDaily, d);
    let stored = stored_events(dir.path());
    assert_eq!(i64s(&traffic, "requests"), vec![stored.len() as i64]);
    assert_eq!(i64s(&traffic, "visitors"), vec![9]);
    assert_eq!(i64s(&traffic, "visits"), vec![9]);
    let searched = stored
        .iter()
        .filter(|e| e.event.site_search.is_some())
        .count() as i64;
    assert_eq!(i64s(&terms, "searches").iter().sum::<i64>(), searched);
    let with_campaign = stored
        .iter()
        .filter(|e| e.event.utm_campaign.is_some())
        .count() as i64;
    assert_eq!(
        i64s(&campaigns, "visits").iter().sum::<i64>(),
        with_campaign
    );
}

#[test]
fn shared_runs_count_only_committed_files() {
    let events = testdata::events(53, day(15), 2, 12);
    let resent: Vec<VisitEvent> = events
        .iter()
        .filter(|e| testdata::partition_of(&e.visitor_id, 2) == 0)
        .take(5)
        .cloned()
        .collect();
    let produce = |topic: &mut FakeTopic| {
        topic.produce(&events, 2);
        topic.produce_to(1, &resent);
    };
    let single = tempfile::tempdir().unwrap();
    let mut reference = FakeTopic::default();
    produce(&mut reference);
    reference.run(single.path(), &opts()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut topic = FakeTopic::default();
    produce(&mut topic);
    let mut shared = opts();
    shared.lock = LockMode::Shared;
    let (p0, p1) = (BTreeSet::from([0]), BTreeSet::from([1]));
    // The owner of partition 0 writes its files, then dies before committing.
    let mut crashing = shared.clone();
    crashing.fault = Some(Arc::new(|cp: &Checkpoint| *cp == Checkpoint::BeforeCommit));
    let err = topic
        .run_owning(dir.path(), &crashing, Some(&p0))
        .unwrap_err();
    assert!(matches!(err, AggregateError::Injected(_)), "{err}");
    assert!(topic.committed.is_empty());
    // The owner of partition 1 ignores them: it keeps its copies of the
    // re-sent events and summarises partition 1's events only.
    let r = topic.run_owning(dir.path(), &shared, Some(&p1)).unwrap();
    assert_eq!(r.duplicates_dropped, 0);
    let requests: i64 = r
        .dates_touched
        .iter()
        .map(|&d| i64s(&table_of(dir.path(), Table::TrafficDaily, d), "requests"))
        .flat_map(|v| v.into_iter())
        .sum();
    assert_eq!(requests, topic.logs[&1].len() as i64);
    // Partition 0's owner again: its uncommitted files go, its copies of
    // what partition 1 committed are dropped, and the summaries are those
    // of one exclusive run.
    let r = topic.run_owning(dir.path(), &shared, Some(&p0)).unwrap();
    assert_eq!(r.duplicates_dropped, resent.len() as u64);
    assert!(r.files_removed > 0);
    let stored = stored_events(dir.path());
    let ids: BTreeSet<&str> = stored.iter().map(|e| e.event.event_id.as_str()).collect();
    assert_eq!((stored.len(), ids.len()), (events.len(), events.len()));
    assert_eq!(
        summary_files(&snapshot_all(dir.path())),
        summary_files(&snapshot_all(single.path()))
    );
}

#[test]
fn warehouse_and_group_are_bound_together() {
    let mut topic = FakeTopic::default();
    topic.produce(&testdata::events(54, day(15), 1, 5), 2);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    topic.run(a.path(), &opts()).unwrap();
    let meta = Warehouse::new(a.path()).read_meta().unwrap().unwrap();
    assert_eq!(meta.group.as_deref(), Some("g"));
    let id = meta.id.clone().unwrap();
    assert_eq!(topic.marks.len(), 2);
    assert!(topic
        .marks
        .values()
        .all(|m| *m == format!("{COMMIT_MARK}{id}")));
    let binding = |r: Result<RunReport, AggregateError>, says: &str| {
        let err = r.unwrap_err();
        assert!(matches!(err, AggregateError::Binding(_)), "{err}");
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(err.to_string().contains(says), "{err}");
    };
    // Another group on the warehouse.
    let mut h = opts();
    h.group = "h".into();
    binding(topic.clone().run(a.path(), &h), "bound to consumer group g");
    // Another warehouse on the group: its offsets carry the first one's mark.
    binding(topic.clone().run(b.path(), &opts()), "another warehouse");
    assert!(Warehouse::new(b.path()).read_meta().unwrap().is_none());
    // A new warehouse on a group that read the topic before marks existed.
    let mut unmarked = topic.clone();
    unmarked.marks.clear();
    binding(unmarked.clone().run(b.path(), &opts()), "is new");
    // A warehouse made before binding existed binds on its next run.
    let old = Warehouse::new(a.path());
    old.write_meta(&WarehouseMeta {
        id: None,
        group: None,
        ..meta.clone()
    })
    .unwrap();
    unmarked.produce(&testdata::events(55, day(16), 1, 3), 2);
    unmarked.run(a.path(), &opts()).unwrap();
    let rebound = old.read_meta().unwrap().unwrap();
    assert_eq!(rebound.group.as_deref(), Some("g"));
    assert!(rebound.id.is_some_and(|i| i != id));
    // Re-binding on purpose: the second warehouse takes the group as it is
    // and marks its commits; the first one is then refused.
    let mut rebind = opts();
    rebind.rebind = true;
    let r = unmarked.run(b.path(), &rebind).unwrap();
    assert_eq!(
        r.events_read, 0,
        "the group's offsets are taken as they are"
    );
    unmarked.produce(&testdata::events(56, day(17), 1, 3), 2);
    unmarked.run(b.path(), &opts()).unwrap();
    binding(unmarked.clone().run(a.path(), &opts()), "another warehouse");
    h.rebind = true;
    topic.run(a.path(), &h).unwrap();
    assert_eq!(
        old.read_meta().unwrap().unwrap().group.as_deref(),
        Some("h")
    );
}

#[test]
fn a_layout_1_warehouse_is_upgraded_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut topic = FakeTopic::default();
    topic.produce(&testdata::events(57, day(15), 3, 8), 2);
    topic.run(dir.path(), &opts()).unwrap();
    let want = snapshot_all(dir.path());
    // Layout 1: one summary file per date and partition, and a date whose
    // events retention has already dropped.
    let wh = Warehouse::new(dir.path());
    let dates: BTreeSet<NaiveDate> = wh.event_files().unwrap().iter().map(|f| f.date).collect();
    for &d in &dates {
        for (_, path) in wh.summary_files(d) {
            std::fs::copy(&path, path.with_file_name("part-1.parquet")).unwrap();
            std::fs::rename(&path, path.with_file_name("part-0.parquet")).unwrap();
        }
    }
    let gone = dir.path().join("traffic_daily/date=2015-05-01");
    std::fs::create_dir_all(&gone).unwrap();
    std::fs::write(gone.join("part-0.parquet"), b"old").unwrap();
    let mut meta = wh.read_meta().unwrap().unwrap();
    meta.format = 1;
    wh.write_meta(&meta).unwrap();
    assert!(wh.v1_summary_files().unwrap().len() > 40);

    let r = topic.run(dir.path(), &opts()).unwrap();
    assert_eq!(r.events_read, 0);
    let mut expect = want;
    expect.insert(
        "traffic_daily/date=2015-05-01/part-0.parquet".into(),
        b"old".to_vec(),
    );
    assert_eq!(snapshot_all(dir.path()), expect);
    assert_eq!(wh.read_meta().unwrap().unwrap().format, LAYOUT_VERSION);
}

#[test]
fn retention_counts_back_from_today_not_from_the_newest_date() {
    let today = chrono::Utc::now().date_naive();
    let back = |n: i64| today - chrono::Duration::days(n);
    let mut topic = FakeTopic::default();
    // Old days, yesterday, today, and one line from a clock a year ahead.
    for (seed, d) in [(61, back(10)), (62, back(3)), (63, back(1)), (64, today)] {
        topic.produce(&testdata::events(seed, d, 1, 3), 2);
    }
    let mut future = testdata::events(65, today, 1, 1);
    future.truncate(1);
    future[0].ts += chrono::Duration::days(365);
    future[0].event_id.push_str("-future");
    topic.produce(&future, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut keep2 = opts();
    keep2.retention_days = Some(2);
    let r = topic.run(dir.path(), &keep2).unwrap();
    assert!(r.retention_dropped.contains(&back(10)));
    assert!(r.retention_dropped.contains(&back(3)));
    let left: BTreeSet<NaiveDate> = Warehouse::new(dir.path())
        .event_files()
        .unwrap()
        .iter()
        .map(|f| f.date)
        .collect();
    assert!(left.iter().all(|&d| d >= back(1)), "{left:?}");
    for d in [back(1), today, future[0].local_date()] {
        assert!(left.contains(&d), "{d} kept: {left:?}");
    }
    let meta = Warehouse::new(dir.path()).read_meta().unwrap().unwrap();
    assert_eq!(meta.retained_from, Some(back(1)));
    // Events of a dropped date are refused from then on.
    topic.produce(&testdata::events(66, back(3), 1, 1), 2);
    let r = topic.run(dir.path(), &keep2).unwrap();
    assert!(r.expired > 0 && r.events_written == 0, "{r}");
}

#[test]
fn a_dead_letter_topic_is_refused() {
    let mut named = opts();
    named.topic = "footfall.visits.dlq".into();
    let err = check_options(&named).unwrap_err();
    assert!(
        matches!(err, AggregateError::DeadLetterTopic { .. }),
        "{err}"
    );
    assert_eq!(err.kind(), crate::ErrorKind::Config);
    // By content: a message that is a dead letter stops the run.
    let reject = crate::testdata::reject("garbage");
    let mut part = Part {
        c: Consumed::default(),
        done: false,
        _lock: None,
    };
    let payload = serde_json::to_vec(&reject).unwrap();
    let err = decode(&opts(), &mut part, 7, Some(&payload)).unwrap_err();
    assert!(
        err.to_string().contains("offset 7 holds a dead letter"),
        "{err}"
    );
    assert_eq!(err.kind(), crate::ErrorKind::Config);
    // Anything else that is not an event is skipped as invalid.
    decode(&opts(), &mut part, 8, Some(b"not a visit event")).unwrap();
    assert_eq!((part.c.invalid, part.c.spill.len()), (1, 0));
}
