//! The replica's contract: which files are published, and that after a crash
//! at any step (before, between or after the upload and the local rename) and
//! a re-run, the object store holds exactly the tables of one uninterrupted run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use footfall_event::VisitEvent;
use footfall_testkit::{assert_same_files, snapshot_all};
use object_store::memory::InMemory;

use super::*;
use crate::run::testkit::FakeTopic;
use crate::run::{Checkpoint, RunOptions};
use crate::{testdata, AggregateError, Warehouse, META_OBJECT};

#[test]
fn tables_and_erasure_records_are_published() {
    let p = |s: &str| published_path(Path::new(s));
    for published in [
        "events/date=2026-12-01/part-0-0.parquet",
        "traffic_daily/date=2026-12-01/day.parquet",
        "_erasure/ledger.jsonl",
        "_erasure/tombstones/date=2026-12-01.ids",
    ] {
        assert_eq!(p(published).as_deref(), Some(published));
    }
    for hidden in [
        ".footfall.json",
        ".locks/partition-0.lock",
        ".ids/date=2026-12-01.idx",
        ".days/date=2026-12-01.state",
        "_other/x.ids",
        "_erasure/tombstones/.date=2026-12-01.ids.tmp",
        "events/date=2026-12-01/.part-0-0.parquet.tmp",
        "/abs/events/x.parquet",
    ] {
        assert_eq!(p(hidden), None, "{hidden}");
    }
}

#[test]
fn urls_of_stores_are_told_from_paths() {
    assert!(is_store_url("s3://bucket/prefix"));
    assert!(is_store_url("file:///tmp/x"));
    assert!(!is_store_url("/var/lib/footfall/warehouse"));
    assert!(!is_store_url("warehouse"));
    assert!(!is_store_url("./a://b"));
}

#[test]
fn credentials_in_the_url_are_refused_without_repeating_them() {
    let e = Replica::open("s3://key:secret@bucket/prefix").unwrap_err();
    assert!(e.to_string().contains("environment"), "{e}");
    assert!(!e.to_string().contains("secret"), "{e}");
}

pub(in crate::warehouse) fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2015, 5, d).unwrap()
}

/// A replica in memory.
pub(in crate::warehouse) fn in_memory() -> Arc<Replica> {
    in_store("memory:///wh", Arc::new(InMemory::new()))
}

/// A replica of `url` on `store`, under the prefix `wh`.
pub(in crate::warehouse) fn in_store(url: &str, store: Arc<InMemory>) -> Arc<Replica> {
    Arc::new(Replica::new(url, store, StorePath::from("wh")).unwrap())
}

pub(in crate::warehouse) fn opts(replica: Option<&Arc<Replica>>) -> RunOptions {
    let mut o = RunOptions::new("visits", "g", "unused");
    o.replica = replica.cloned();
    o
}

/// Every object of a replica but its metadata, by relative path.
pub(in crate::warehouse) fn objects(r: &Replica) -> BTreeMap<String, Vec<u8>> {
    let list = r.list().unwrap();
    list.into_iter()
        .filter(|(k, _)| k != META_OBJECT)
        .map(|(k, _)| (k.clone(), r.get(&k).unwrap()))
        .collect()
}

/// Asserts that the replica's metadata is the directory's.
pub(in crate::warehouse) fn assert_meta_published(r: &Replica, dir: &Path, what: &str) {
    let local = std::fs::read(dir.join(crate::META_FILE)).unwrap();
    assert_eq!(r.get(META_OBJECT).unwrap(), local, "{what}: metadata");
}

/// The files of a warehouse directory that are published (its metadata
/// aside, published under another name).
pub(in crate::warehouse) fn tables(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot_all(dir)
        .into_iter()
        .filter(|(k, _)| published_path(Path::new(k)).is_some())
        .collect()
}

/// Two batches: three days, then late events and re-sent duplicates.
pub(in crate::warehouse) fn batches() -> [Vec<VisitEvent>; 2] {
    let first = testdata::events(1, day(15), 3, 8);
    let mut second = testdata::events(2, day(15), 1, 5);
    second.extend(first.iter().step_by(7).cloned());
    [first, second]
}

/// Runs both batches into `dir` (2 then 3 partitions); a run that fails at
/// an injected checkpoint is run again without the fault.
pub(in crate::warehouse) fn run_both(dir: &Path, o: &RunOptions) -> u64 {
    let mut topic = FakeTopic::default();
    let mut crashed = 0;
    for (batch, partitions) in batches().iter().zip([2, 3]) {
        topic.produce(batch, partitions);
        match topic.run(dir, o) {
            Ok(_) => {}
            Err(AggregateError::Injected(_)) => {
                crashed += 1;
                topic.run(dir, &opts(o.replica.as_ref())).unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    crashed
}

#[test]
fn a_replica_holds_the_tables_of_one_run_after_a_crash_at_any_step() {
    let reference = tempfile::tempdir().unwrap();
    run_both(reference.path(), &opts(None));
    let want = tables(reference.path());
    assert!(want.len() > 20, "{} files", want.len());

    // Every checkpoint of a run with a replica, in order.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let replica = in_memory();
    let mut logged = opts(Some(&replica));
    logged.fault = Some(Arc::new(move |cp: &Checkpoint| {
        log.lock().unwrap().push(cp.clone());
        false
    }));
    let dir = tempfile::tempdir().unwrap();
    run_both(dir.path(), &logged);
    assert_same_files(&want, &tables(dir.path()), "staging, no crash");
    assert_same_files(&want, &objects(&replica), "replica, no crash");
    assert_meta_published(&replica, dir.path(), "no crash");

    let seen = seen.lock().unwrap().clone();
    let published = seen
        .iter()
        .filter(|c| matches!(c, Checkpoint::Published(_)))
        .count();
    assert!(published >= want.len(), "every file written is published");
    // Uploaded but not renamed, and every other 7th step.
    let crash_points: Vec<usize> = (0..seen.len())
        .filter(|&i| matches!(seen[i], Checkpoint::Published(_)) && i % 3 == 0 || i % 7 == 0)
        .collect();
    let at_published = crash_points
        .iter()
        .filter(|&&i| matches!(seen[i], Checkpoint::Published(_)))
        .count();
    assert!(
        at_published >= 5,
        "{at_published} crashes between upload and rename"
    );
    for crash_at in crash_points {
        let dir = tempfile::tempdir().unwrap();
        let replica = in_memory();
        let mut crashing = opts(Some(&replica));
        let counter = Arc::new(AtomicUsize::new(0));
        crashing.fault = Some(Arc::new(move |_: &Checkpoint| {
            counter.fetch_add(1, Ordering::SeqCst) == crash_at
        }));
        let crashed = run_both(dir.path(), &crashing);
        assert_eq!(crashed, 1, "crash at {crash_at}: {:?}", seen[crash_at]);
        let what = format!("crash at {crash_at} ({:?})", seen[crash_at]);
        assert_same_files(&want, &tables(dir.path()), &format!("staging, {what}"));
        assert_same_files(&want, &objects(&replica), &format!("replica, {what}"));
        assert_meta_published(&replica, dir.path(), &what);
    }
}

#[test]
fn retention_and_erasure_reach_the_replica() {
    let replica = in_memory();
    let dir = tempfile::tempdir().unwrap();
    run_both(dir.path(), &opts(Some(&replica)));
    let visitor = testdata::events(1, day(15), 3, 8)[0].visitor_id.clone();
    let ids = |_: NaiveDate, _: &str| Some(visitor.clone());
    let r = crate::erase::erase_with(dir.path(), day(15), day(17), &ids, &opts(Some(&replica)))
        .unwrap();
    assert!(r.rows_removed > 0, "{r:?}");
    let published = objects(&replica);
    assert!(published.contains_key("_erasure/tombstones/date=2015-05-15.ids"));
    assert!(published.contains_key("_erasure/ledger.jsonl"));
    assert_same_files(&tables(dir.path()), &published, "after erasure");

    let wh = Warehouse::open(dir.path(), Some(Arc::clone(&replica))).unwrap();
    let dropped = wh
        .apply_retention(1, day(17), None, std::time::Duration::ZERO)
        .unwrap();
    assert_eq!(dropped, vec![day(15), day(16)]);
    let left = objects(&replica);
    assert!(!left.keys().any(|k| k.starts_with("events/date=2015-05-15")));
    assert!(left
        .keys()
        .any(|k| k.starts_with("traffic_daily/date=2015-05-15")));
    assert!(!left
        .keys()
        .any(|k| k.starts_with("_erasure/tombstones/date=2015-05-15")));
    assert_meta_published(&replica, dir.path(), "after retention");
    assert_same_files(&tables(dir.path()), &left, "after retention");
}

#[test]
fn a_warehouse_is_bound_to_its_replica() {
    let (a, b) = (in_memory(), in_memory());
    let dir = tempfile::tempdir().unwrap();
    run_both(dir.path(), &opts(Some(&a)));
    // The recorded replica is used when none is given.
    let wh = Warehouse::open(dir.path(), None).unwrap();
    assert_eq!(wh.replica().map(|r| r.url()), Some("memory:///wh"));
    // Another URL is refused.
    let other = Arc::new(
        Replica::new(
            "memory:///other",
            Arc::new(InMemory::new()),
            StorePath::from("o"),
        )
        .unwrap(),
    );
    let e = Warehouse::open(dir.path(), Some(other)).unwrap_err();
    assert!(e.to_string().contains("published to memory:///wh"), "{e}");
    // Another, new staging directory is not published where objects are.
    let second = tempfile::tempdir().unwrap();
    let mut topic = FakeTopic::default();
    topic.produce(&batches()[0], 2);
    let e = topic.run(second.path(), &opts(Some(&a))).unwrap_err();
    assert!(e.to_string().contains("--restore"), "{e}");
    // Objects that are not a published warehouse are not written over.
    let foreign = in_memory();
    foreign.put("data/x.csv", b"x").unwrap();
    let third = tempfile::tempdir().unwrap();
    let e = topic.run(third.path(), &opts(Some(&foreign))).unwrap_err();
    assert!(e.to_string().contains("already holds objects"), "{e}");
    // A local warehouse is not published after the fact.
    let local = tempfile::tempdir().unwrap();
    run_both(local.path(), &opts(None));
    let e = Warehouse::open(local.path(), Some(b)).unwrap_err();
    assert!(e.to_string().contains("a local warehouse"), "{e}");
}
