//! The unit tests of erasure and lookup: what goes, what stays, and a crash
//! at any erasure checkpoint followed by a re-run gives the same files.

use super::*;
use crate::run::testkit::FakeTopic;
use crate::schema::KafkaEvent;
use crate::summaries::Table;
use crate::testdata;
use crate::{ErrorKind, NoProgress};
use footfall_testkit::{assert_same_files, snapshot_all};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// [`erase`] with the default summary options.
fn erase_with_defaults(
    root: &Path,
    from: NaiveDate,
    to: NaiveDate,
    ids: &dyn Fn(NaiveDate, &str) -> Option<String>,
    dry_run: bool,
) -> Result<EraseReport, AggregateError> {
    erase(
        root,
        from,
        to,
        ids,
        &SummaryOptions::default(),
        dry_run,
        &mut NoProgress,
    )
}

/// What an erasure or a lookup told its progress.
#[derive(Default)]
struct Told {
    stages: Vec<Stage>,
    planned: u64,
    consumed: Vec<u64>,
    summarized: Vec<(usize, usize)>,
}

impl Progress for Told {
    fn stage(&mut self, stage: Stage) {
        self.stages.push(stage);
    }
    fn planned(&mut self, files: u64) {
        self.planned = files;
    }
    fn consumed(&mut self, files: u64) {
        self.consumed.push(files);
    }
    fn summarized(&mut self, done: usize, total: usize) {
        self.summarized.push((done, total));
    }
}

#[test]
fn erase_and_lookup_tell_their_progress() {
    let dir = tempfile::tempdir().unwrap();
    let events = input();
    build(dir.path(), &events);
    let visitor = crossing_visitor(&events);
    let files = Warehouse::new(dir.path()).event_files().unwrap();
    let in_range = files.iter().filter(|f| f.date <= day(16)).count() as u64;
    let mut told = Told::default();
    lookup(dir.path(), day(15), day(16), &ids_of(&visitor), &mut told).unwrap();
    assert_eq!(told.planned, in_range);
    assert_eq!(told.consumed.last(), Some(&in_range));
    assert!(told.consumed.windows(2).all(|w| w[0] < w[1]));
    let mut told = Told::default();
    let summary = SummaryOptions::default();
    let r = erase(
        dir.path(),
        day(15),
        day(16),
        &ids_of(&visitor),
        &summary,
        false,
        &mut told,
    )
    .unwrap();
    assert!(r.rows_removed > 0, "{r:?}");
    assert_eq!(
        told.stages,
        [Stage::Consuming, Stage::Writing, Stage::Summarizing]
    );
    assert_eq!(told.consumed.last(), Some(&in_range));
    let dates = r.summaries_recomputed.len();
    assert_eq!(told.summarized, [(dates, dates)]);
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2015, 5, d).unwrap()
}

fn opts() -> RunOptions {
    RunOptions::new("visits", "g", "unused")
}

/// Three days of events, over 2 partitions.
fn input() -> Vec<VisitEvent> {
    testdata::events(9, day(15), 3, 20)
}

/// A visitor whose visit crosses midnight from the 15th into the 16th.
fn crossing_visitor(events: &[VisitEvent]) -> String {
    let mut dates: BTreeMap<&str, BTreeSet<NaiveDate>> = BTreeMap::new();
    for e in events {
        dates
            .entry(&e.visitor_id)
            .or_default()
            .insert(e.local_date());
    }
    let found = dates
        .iter()
        .find(|(_, d)| d.iter().copied().eq([day(15), day(16)]));
    found
        .expect("the test data has a visit crossing midnight")
        .0
        .to_string()
}

fn without(events: &[VisitEvent], visitor: &str) -> Vec<VisitEvent> {
    events
        .iter()
        .filter(|e| e.visitor_id != visitor)
        .cloned()
        .collect()
}

/// A warehouse at `dir` built by one run of `events`; the topic is returned for more runs.
fn build(dir: &Path, events: &[VisitEvent]) -> FakeTopic {
    let mut topic = FakeTopic::default();
    topic.produce(events, 2);
    topic.run(dir, &opts()).unwrap();
    topic
}

/// The person's id is the visitor's on every date and site (ids are unique per visitor in the test data).
fn ids_of(visitor: &str) -> impl Fn(NaiveDate, &str) -> Option<String> + '_ {
    move |_, _| Some(visitor.to_string())
}

fn all_events(dir: &Path) -> Vec<KafkaEvent> {
    let mut out = Vec::new();
    for f in Warehouse::new(dir).event_files().unwrap() {
        for b in read_parquet(&f.path, None).unwrap() {
            out.extend(batch_to_events(&b).unwrap());
        }
    }
    out
}

fn event_ids<'a>(events: impl IntoIterator<Item = &'a VisitEvent>) -> BTreeSet<String> {
    events.into_iter().map(|e| e.event_id.clone()).collect()
}

/// The summary files of a snapshot.
fn summaries(s: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    s.iter()
        .filter(|(k, _)| !k.starts_with("events/") && !k.starts_with(ERASURE_DIR))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A snapshot without the ledger (its lines carry the time of each erasure).
fn without_ledger(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut s = snapshot_all(dir);
    s.remove(&format!("{ERASURE_DIR}/{LEDGER_FILE}"));
    s
}

fn visit_visitors(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in Warehouse::new(dir).event_files().unwrap() {
        let path = Warehouse::new(dir).summary_path(Table::Visits, f.date);
        if path.is_file() {
            for b in read_parquet(&path, Some(&["visitor_id"])).unwrap() {
                out.extend(
                    Cols::new(&b)
                        .str("visitor_id")
                        .unwrap()
                        .iter()
                        .flatten()
                        .map(str::to_string),
                );
            }
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn erase_gives_the_summaries_of_a_warehouse_built_without_the_person() {
    let events = input();
    let visitor = crossing_visitor(&events);
    let theirs = events.iter().filter(|e| e.visitor_id == visitor).count() as u64;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(a.path(), &events);
    build(b.path(), &without(&events, &visitor));
    assert!(visit_visitors(a.path()).contains(&visitor));
    assert_ne!(
        summaries(&snapshot_all(a.path())),
        summaries(&snapshot_all(b.path()))
    );

    let r = erase_with_defaults(a.path(), day(15), day(17), &ids_of(&visitor), false).unwrap();
    assert_eq!(r.rows_removed, theirs);
    assert_eq!(r.days_erased, vec![day(15), day(16), day(17)]);
    assert!(r.days_unlinkable.is_empty());
    assert_eq!(
        r.files_rewritten + r.files_removed,
        2,
        "one file on each of two dates: {r:?}"
    );
    // The dates that lost rows and the day after each.
    assert_eq!(r.summaries_recomputed, vec![day(15), day(16), day(17)]);

    let left = all_events(a.path());
    assert!(left.iter().all(|k| k.event.visitor_id != visitor));
    assert_eq!(left.len() as u64, events.len() as u64 - theirs);
    assert_eq!(
        event_ids(left.iter().map(|k| &k.event)),
        event_ids(&without(&events, &visitor))
    );
    assert!(
        !visit_visitors(a.path()).contains(&visitor),
        "the visits table lost their visits"
    );
    let (sa, sb) = (snapshot_all(a.path()), snapshot_all(b.path()));
    assert_same_files(
        &summaries(&sb),
        &summaries(&sa),
        "the summaries after erasure, against the warehouse built without the person",
    );
    // Tombstones: one file per date with a key, sorted unique ids.
    let wh = Warehouse::new(a.path());
    for d in [day(15), day(16), day(17)] {
        assert_eq!(
            std::fs::read_to_string(wh.tombstone_path(d)).unwrap(),
            format!("{visitor}\n")
        );
    }
    assert!(
        !a.path().join(ERASURE_DIR).join("pending.json").exists(),
        "the journal is gone"
    );
}

#[test]
fn replay_after_erase_does_not_bring_the_events_back() {
    let events = input();
    let visitor = crossing_visitor(&events);
    let theirs = events.iter().filter(|e| e.visitor_id == visitor).count() as u64;
    let dir = tempfile::tempdir().unwrap();
    let mut topic = build(dir.path(), &events);
    let wh = Warehouse::new(dir.path());
    let states = || [15, 16, 17].map(|d| wh.day_state_paths(day(d)).iter().any(|p| p.exists()));
    assert_eq!(states(), [true; 3], "the run kept day states");
    erase_with_defaults(dir.path(), day(15), day(17), &ids_of(&visitor), false).unwrap();
    let erased = snapshot_all(dir.path());
    assert_eq!(
        states(),
        [false; 3],
        "the day states of the erased dates and of the next go with the rows"
    );
    for date in [day(15), day(16)] {
        assert!(
            wh.read_id_index(date).unwrap().is_none(),
            "the id index of an erased date goes with the rows"
        );
        let keys = crate::periods::record_keys(&wh, date).expect("records of the new visits");
        assert!(
            !keys.contains(&crate::hash::id_key(&visitor)),
            "visitor records"
        );
    }

    // The group's offsets are reset: the whole topic is read again.
    topic.committed.clear();
    let r = topic.run(dir.path(), &opts()).unwrap();
    assert_eq!(r.erased, theirs);
    assert_eq!(r.events_written, events.len() as u64 - theirs);
    assert!(r.to_string().contains(&format!("{theirs} erased")), "{r}");
    assert!(all_events(dir.path())
        .iter()
        .all(|k| k.event.visitor_id != visitor));
    assert_eq!(
        snapshot_all(dir.path()),
        erased,
        "the replay rewrote the same files"
    );
    crate::run::assert_id_indexes_exact(dir.path(), "after the replay");

    // Late re-sends of their events are dropped too.
    topic.produce(
        &events
            .iter()
            .filter(|e| e.visitor_id == visitor)
            .cloned()
            .collect::<Vec<_>>(),
        2,
    );
    let r = topic.run(dir.path(), &opts()).unwrap();
    assert_eq!(
        (r.erased, r.events_written, r.files_written),
        (theirs, 0, 0)
    );
    assert_eq!(snapshot_all(dir.path()), erased);
}

#[test]
fn dates_without_a_key_are_unlinkable_and_keep_their_rows() {
    let events = input();
    let visitor = crossing_visitor(&events);
    let on_16 = events
        .iter()
        .filter(|e| e.visitor_id == visitor && e.local_date() == day(16))
        .count();
    assert!(on_16 > 0);
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &events);
    let ids = |d: NaiveDate, _: &str| (d != day(16)).then(|| visitor.clone());
    let r = erase_with_defaults(dir.path(), day(15), day(17), &ids, false).unwrap();
    assert_eq!(r.days_unlinkable, vec![day(16)]);
    assert_eq!(r.days_erased, vec![day(15), day(17)]);
    let left: Vec<_> = all_events(dir.path())
        .into_iter()
        .filter(|k| k.event.visitor_id == visitor)
        .collect();
    assert_eq!(left.len(), on_16);
    assert!(left.iter().all(|k| k.event.local_date() == day(16)));
    assert_eq!(
        r.rows_removed as usize,
        events.iter().filter(|e| e.visitor_id == visitor).count() - on_16
    );
    assert!(!Warehouse::new(dir.path()).tombstone_path(day(16)).exists());
    // lookup reports the same.
    let (found, unlinkable) = lookup(dir.path(), day(15), day(17), &ids, &mut NoProgress).unwrap();
    assert!(found.is_empty());
    assert_eq!(unlinkable, vec![day(16)]);
}

#[test]
fn ledger_line_is_json_without_ids() {
    let events = input();
    let visitor = crossing_visitor(&events);
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &events);
    let ledger = dir.path().join(ERASURE_DIR).join(LEDGER_FILE);
    erase_with_defaults(dir.path(), day(15), day(17), &ids_of(&visitor), true).unwrap();
    assert!(!ledger.exists(), "a dry run writes no ledger line");
    let r = erase_with_defaults(dir.path(), day(15), day(17), &ids_of(&visitor), false).unwrap();
    let text = std::fs::read_to_string(&ledger).unwrap();
    assert_eq!(text.lines().count(), 1);
    let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "at",
            "days_erased",
            "days_unlinkable",
            "files_removed",
            "files_rewritten",
            "from",
            "rows_removed",
            "to"
        ]
    );
    assert_eq!(line["from"], "2015-05-15");
    assert_eq!(line["to"], "2015-05-17");
    assert_eq!(line["rows_removed"], r.rows_removed);
    assert_eq!(
        line["days_erased"],
        serde_json::json!(["2015-05-15", "2015-05-16", "2015-05-17"])
    );
    let at = line["at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with('Z'),
        "{at}"
    );
    let theirs: Vec<&VisitEvent> = events.iter().filter(|e| e.visitor_id == visitor).collect();
    assert!(!text.contains(&visitor));
    for e in theirs {
        assert!(!text.contains(&e.event_id));
        for s in [
            &e.client_net,
            &e.client_ip,
            &e.browser.as_deref().map(str::to_string),
        ]
        .into_iter()
        .flatten()
        {
            assert!(!text.contains(s.as_str()), "{s}");
        }
    }
}

#[test]
fn lookup_returns_exactly_the_persons_events() {
    let events = input();
    let visitor = crossing_visitor(&events);
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &events);
    let before = snapshot_all(dir.path());
    let (found, unlinkable) = lookup(
        dir.path(),
        day(15),
        day(17),
        &ids_of(&visitor),
        &mut NoProgress,
    )
    .unwrap();
    let theirs: Vec<&VisitEvent> = events.iter().filter(|e| e.visitor_id == visitor).collect();
    assert_eq!(event_ids(&found), event_ids(theirs.iter().copied()));
    assert_eq!(found.len(), theirs.len());
    assert!(unlinkable.is_empty());
    assert!(found
        .windows(2)
        .all(|w| (w[0].ts, &w[0].event_id) <= (w[1].ts, &w[1].event_id)));
    // Every field survives the round trip.
    for e in &found {
        assert_eq!(Some(&e), theirs.iter().find(|t| t.event_id == e.event_id));
    }
    // A narrower range: only the 16th.
    let (found, _) = lookup(
        dir.path(),
        day(16),
        day(16),
        &ids_of(&visitor),
        &mut NoProgress,
    )
    .unwrap();
    assert!(!found.is_empty() && found.iter().all(|e| e.local_date() == day(16)));
    assert_eq!(snapshot_all(dir.path()), before, "lookup changes nothing");
}

#[test]
fn erasing_twice_changes_nothing_the_second_time() {
    let events = input();
    let visitor = crossing_visitor(&events);
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &events);
    erase_with_defaults(dir.path(), day(15), day(17), &ids_of(&visitor), false).unwrap();
    let once = without_ledger(dir.path());
    let r = erase_with_defaults(dir.path(), day(15), day(17), &ids_of(&visitor), false).unwrap();
    assert_eq!(
        (r.rows_removed, r.files_rewritten, r.files_removed),
        (0, 0, 0)
    );
    assert!(r.summaries_recomputed.is_empty());
    assert_eq!(r.days_erased, vec![day(15), day(16), day(17)]);
    assert_eq!(without_ledger(dir.path()), once);
    let ledger = std::fs::read_to_string(dir.path().join(ERASURE_DIR).join(LEDGER_FILE)).unwrap();
    assert_eq!(ledger.lines().count(), 2);
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let events = input();
    let visitor = crossing_visitor(&events);
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &events);
    let before = snapshot_all(dir.path());
    let dry = erase_with_defaults(dir.path(), day(15), day(17), &ids_of(&visitor), true).unwrap();
    assert!(dry.dry_run && dry.to_string().starts_with("dry run: "));
    assert_eq!(snapshot_all(dir.path()), before);
    let real = erase_with_defaults(dir.path(), day(15), day(17), &ids_of(&visitor), false).unwrap();
    assert_eq!(
        EraseReport {
            dry_run: true,
            ..real
        },
        dry
    );
}

#[test]
fn crash_at_sampled_erase_checkpoints_then_rerun_converges() {
    let events = input();
    let visitor = crossing_visitor(&events);
    let built = tempfile::tempdir().unwrap();
    build(built.path(), &events);

    let reference = tempfile::tempdir().unwrap();
    copy_dir(built.path(), reference.path());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let mut recording = opts();
    recording.fault = Some(Arc::new(move |cp: &Checkpoint| {
        log.lock().unwrap().push(cp.clone());
        false
    }));
    erase_with(
        reference.path(),
        day(15),
        day(17),
        &ids_of(&visitor),
        &recording,
    )
    .unwrap();
    let want = without_ledger(reference.path());
    let seen = seen.lock().unwrap().clone();
    // Every erasure step and events file, every 7th summary file.
    let crash_points: Vec<usize> = (0..seen.len())
        .filter(|&i| match &seen[i] {
            Checkpoint::TempWritten(p) | Checkpoint::Persisted(p)
                if !p.to_string_lossy().contains("/events/") =>
            {
                i % 7 == 0
            }
            _ => true,
        })
        .collect();
    assert!(
        seen.iter()
            .filter(|c| matches!(c, Checkpoint::Erase(_)))
            .count()
            >= 5,
        "{seen:?}"
    );
    assert!(crash_points.len() > 10, "{}", crash_points.len());

    for crash_at in crash_points {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(built.path(), dir.path());
        let counter = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&counter);
        let mut crashing = opts();
        crashing.fault = Some(Arc::new(move |_: &Checkpoint| {
            c.fetch_add(1, Ordering::SeqCst) == crash_at
        }));
        let err =
            erase_with(dir.path(), day(15), day(17), &ids_of(&visitor), &crashing).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Injected,
            "crash at {crash_at}: {err}"
        );
        erase_with(dir.path(), day(15), day(17), &ids_of(&visitor), &opts()).unwrap();
        let got = without_ledger(dir.path());
        assert_same_files(
            &want,
            &got,
            &format!("crash at {crash_at} ({:?})", seen[crash_at]),
        );
    }
}

#[test]
fn erasure_records_are_not_tables_and_expire_with_retention() {
    let events = input();
    let visitor = crossing_visitor(&events);
    let dir = tempfile::tempdir().unwrap();
    let mut topic = build(dir.path(), &events);
    erase_with_defaults(dir.path(), day(15), day(17), &ids_of(&visitor), false).unwrap();
    let wh = Warehouse::new(dir.path());
    std::fs::write(
        dir.path()
            .join(ERASURE_DIR)
            .join("tombstones/.date=2015-05-16.ids.tmp"),
        "x",
    )
    .unwrap();
    assert_eq!(wh.sweep_temp_files(None).unwrap(), 1);
    assert!(wh
        .event_files()
        .unwrap()
        .iter()
        .all(|f| f.path.starts_with(dir.path().join("events"))));
    // Retention keeps 2 days (the 17th and the 18th): the tombstones of the 15th and 16th go.
    let mut keep2 = opts();
    keep2.retention_days = Some(2);
    keep2.today = Some(day(18));
    let r = topic.run(dir.path(), &keep2).unwrap();
    assert_eq!(r.retention_dropped, vec![day(15), day(16)]);
    let dates: Vec<NaiveDate> = wh
        .tombstone_files()
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(dates, vec![day(17)]);
    assert!(
        dir.path().join(ERASURE_DIR).join(LEDGER_FILE).is_file(),
        "the ledger stays"
    );
}

#[test]
fn refuses_a_locked_warehouse_and_bad_ranges() {
    let events = input();
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &events);
    let none = |_: NaiveDate, _: &str| None;
    let held = Warehouse::new(dir.path())
        .lock(LockMode::Exclusive)
        .unwrap();
    let err = erase_with_defaults(dir.path(), day(15), day(17), &none, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert_eq!(
        lookup(dir.path(), day(15), day(17), &none, &mut NoProgress)
            .unwrap_err()
            .kind(),
        ErrorKind::Locked
    );
    drop(held);
    let err = erase_with_defaults(dir.path(), day(17), day(15), &none, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let missing = dir.path().join("missing");
    assert_eq!(
        lookup(&missing, day(15), day(17), &none, &mut NoProgress)
            .unwrap_err()
            .kind(),
        ErrorKind::Config
    );
    let bad = |_: NaiveDate, _: &str| Some("ab\ncd".to_string());
    let err = erase_with_defaults(dir.path(), day(15), day(17), &bad, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        !dir.path().join(ERASURE_DIR).exists(),
        "nothing was written"
    );
    // No key at all: every date is unlinkable, nothing changes.
    let before = snapshot_all(dir.path());
    let r = erase_with_defaults(dir.path(), day(15), day(17), &none, false).unwrap();
    assert_eq!(r.days_unlinkable, vec![day(15), day(16), day(17)]);
    assert_eq!((r.rows_removed, r.days_erased.len()), (0, 0));
    let after = snapshot_all(dir.path());
    assert_eq!(summaries(&after), summaries(&before));
    assert_eq!(after.len(), before.len() + 1, "only the ledger line");
}
