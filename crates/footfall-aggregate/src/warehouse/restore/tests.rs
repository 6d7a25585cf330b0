//! A restored staging directory holds what the lost one published, and runs
//! and erasures go on from it as they would have from the lost one.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use footfall_testkit::assert_same_files;
use object_store::memory::InMemory;

use super::super::meta::meta_bytes;
use super::super::replica::tests::{
    assert_meta_published, batches, day, in_memory, in_store, objects, opts, run_both, tables,
};
use super::*;
use crate::run::testkit::FakeTopic;
use crate::run::RunOptions;
use crate::{ERASURE_DIR, LEDGER_FILE, META_FILE};

/// The first batch, run, then one visitor of the 15th erased.
fn first_run_and_erasure(dir: &Path, topic: &mut FakeTopic, o: &RunOptions) -> String {
    let [first, _] = batches();
    topic.produce(&first, 2);
    topic.run(dir, o).unwrap();
    let visitor = first[0].visitor_id.clone();
    let ids = |_: NaiveDate, _: &str| Some(visitor.clone());
    let r = crate::erase::erase_with(dir, day(15), day(17), &ids, o).unwrap();
    assert!(r.rows_removed > 0, "{r:?}");
    visitor
}

/// Published files without the ledger, whose lines carry each erasure's time.
fn without_ledger(mut files: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    files.remove(&format!("{ERASURE_DIR}/{LEDGER_FILE}"));
    files
}

fn restore(dir: &Path, replica: &Arc<Replica>) -> Result<Restored, AggregateError> {
    Warehouse::restore(dir, Arc::clone(replica), &mut |_, _| {})
}

#[test]
fn a_lost_staging_directory_is_restored_and_runs_go_on_from_it() {
    // The reference: a staging directory that is never lost.
    let (kept, kept_replica) = (tempfile::tempdir().unwrap(), in_memory());
    let mut kept_topic = FakeTopic::default();
    first_run_and_erasure(kept.path(), &mut kept_topic, &opts(Some(&kept_replica)));

    let replica = in_memory();
    let mut topic = FakeTopic::default();
    let lost = tempfile::tempdir().unwrap();
    let visitor = first_run_and_erasure(lost.path(), &mut topic, &opts(Some(&replica)));
    let published = tables(lost.path());
    let meta = std::fs::read(lost.path().join(META_FILE)).unwrap();
    drop(lost);

    // A run on a new directory is refused, whatever the group has committed.
    let staging = tempfile::tempdir().unwrap();
    for rebind in [false, true] {
        let mut o = opts(Some(&replica));
        o.rebind = rebind;
        let e = topic.clone().run(staging.path(), &o).unwrap_err();
        assert!(e.to_string().contains("--restore"), "{e}");
    }
    assert!(!staging.path().join(META_FILE).exists());
    // A cache left in the directory (of whatever it held before) goes.
    let stale = staging.path().join(".days/date=2015-05-15.state");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, b"not this warehouse's").unwrap();
    let mut told = Vec::new();
    let r = Warehouse::restore(staging.path(), Arc::clone(&replica), &mut |done, total| {
        told.push((done, total))
    })
    .unwrap();
    assert_eq!(r.files as usize, published.len(), "{r:?}");
    let bytes: usize = published.values().map(Vec::len).sum();
    assert_eq!(r.bytes as usize, bytes);
    assert!(r.skipped.is_empty(), "{r:?}");
    assert_eq!(told.last(), Some(&(r.bytes, r.bytes)));
    assert_same_files(&published, &tables(staging.path()), "restored");
    let restored = Warehouse::new(staging.path()).read_meta().unwrap().unwrap();
    let lost: WarehouseMeta = serde_json::from_slice(&meta).unwrap();
    assert!(restored.staging.is_some() && restored.staging != lost.staging);
    let restored = WarehouseMeta {
        staging: lost.staging.clone(),
        ..restored
    };
    assert_eq!(restored, lost, "the metadata but for the staging id");
    assert_meta_published(&replica, staging.path(), "restored");
    assert!(!stale.exists());

    // The next batch, run into both: the same tables, here and published.
    let [_, second] = batches();
    for (t, dir, rep) in [
        (&mut kept_topic, kept.path(), &kept_replica),
        (&mut topic, staging.path(), &replica),
    ] {
        t.produce(&second, 3);
        t.run(dir, &opts(Some(rep))).unwrap();
    }
    let want = without_ledger(tables(kept.path()));
    assert_same_files(&want, &without_ledger(tables(staging.path())), "run on");
    assert_same_files(&want, &without_ledger(objects(&replica)), "published");
    assert_meta_published(&replica, staging.path(), "run on");
    crate::run::assert_id_indexes_exact(staging.path(), "run on");

    // The group read again from the start (its offsets reset): the events
    // files are written again as one batch's, each event once, the erased
    // visitor's stay erased, and the summaries are the same.
    topic.committed.clear();
    let r = topic.run(staging.path(), &opts(Some(&replica))).unwrap();
    assert!(r.erased > 0, "{r:?}");
    assert_eq!(
        r.events_written + r.erased + r.duplicates_dropped,
        r.events_read
    );
    let summaries = |files: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        files
            .into_iter()
            .filter(|(k, _)| !k.starts_with("events/"))
            .collect()
    };
    let replayed = summaries(without_ledger(tables(staging.path())));
    assert_same_files(&summaries(want), &replayed, "replay");
    for f in Warehouse::new(staging.path()).event_files().unwrap() {
        for b in crate::read_parquet(&f.path, None).unwrap() {
            let events = crate::batch_to_events(&b).unwrap();
            assert!(events.iter().all(|k| k.event.visitor_id != visitor));
        }
    }
}

#[test]
fn the_staging_directory_a_restore_supersedes_is_refused() {
    let replica = in_memory();
    let mut topic = FakeTopic::default();
    let old = tempfile::tempdir().unwrap();
    first_run_and_erasure(old.path(), &mut topic, &opts(Some(&replica)));
    let new = tempfile::tempdir().unwrap();
    restore(new.path(), &replica).unwrap();

    // The old directory came back: every writer is refused before it
    // changes anything, here or on the store.
    let (published, old_files) = (objects(&replica), tables(old.path()));
    let [_, second] = batches();
    topic.produce(&second, 3);
    let o = opts(Some(&replica));
    let e = topic.clone().run(old.path(), &o).unwrap_err();
    assert!(e.to_string().contains("was superseded"), "{e}");
    assert_eq!(e.kind(), crate::ErrorKind::Config);
    let ids = |_: NaiveDate, _: &str| Some("0123456789abcdef".to_string());
    let e = crate::erase::erase_with(old.path(), day(15), day(17), &ids, &o).unwrap_err();
    assert!(e.to_string().contains("was superseded"), "{e}");
    assert_same_files(&published, &objects(&replica), "the store, after refusals");
    assert_same_files(&old_files, &tables(old.path()), "the old directory");

    // The restored directory goes on.
    let r = topic.run(new.path(), &o).unwrap();
    assert!(r.events_written > 0, "{r:?}");
    assert_same_files(&tables(new.path()), &objects(&replica), "run on");
}

#[test]
fn a_restore_is_refused_where_it_would_mix_two_warehouses() {
    let store = Arc::new(InMemory::new());
    let replica = in_store("memory:///wh", Arc::clone(&store));
    let dir = tempfile::tempdir().unwrap();
    run_both(dir.path(), &opts(Some(&replica)));

    let e = restore(dir.path(), &replica).unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");

    let new = tempfile::tempdir().unwrap();
    let copy = in_store("memory:///copy", store);
    let e = restore(new.path(), &copy).unwrap_err();
    assert!(e.to_string().contains("published to memory:///wh"), "{e}");

    let never = new.path().join("never");
    let e = restore(&never, &in_memory()).unwrap_err();
    assert!(e.to_string().contains("holds no _footfall.json"), "{e}");
    assert!(!never.exists(), "a refused restore makes no directory");

    // What a warehouse does not publish is left where it is.
    replica.put("README", b"x").unwrap();
    let r = restore(new.path(), &replica).unwrap();
    assert_eq!(r.skipped, vec!["README".to_string()]);
    assert!(!new.path().join("README").exists());
}

#[test]
fn a_run_publishes_the_records_and_metadata_its_replica_lacks() {
    let replica = in_memory();
    let dir = tempfile::tempdir().unwrap();
    let mut topic = FakeTopic::default();
    first_run_and_erasure(dir.path(), &mut topic, &opts(Some(&replica)));
    // As a build that published only the tables left it.
    for (rel, _) in replica.list().unwrap() {
        if rel == META_OBJECT || rel.starts_with(ERASURE_DIR) {
            replica.delete(&rel).unwrap();
        }
    }
    assert!(!objects(&replica).keys().any(|k| k.starts_with(ERASURE_DIR)));
    // ... and its metadata, which had no staging id.
    let wh = Warehouse::new(dir.path());
    let meta = wh.read_meta().unwrap().unwrap();
    wh.write_meta_bytes(&meta_bytes(&WarehouseMeta {
        staging: None,
        ..meta
    }))
    .unwrap();
    let r = topic.run(dir.path(), &opts(Some(&replica))).unwrap();
    assert!(wh.read_meta().unwrap().unwrap().staging.is_some());
    assert_eq!(r.events_written, 0, "{r:?}");
    assert!(objects(&replica).keys().any(|k| k.starts_with(ERASURE_DIR)));
    assert_same_files(&tables(dir.path()), &objects(&replica), "published again");
    assert_meta_published(&replica, dir.path(), "published again");
}
