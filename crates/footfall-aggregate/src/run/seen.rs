//! The `event_id`s a date already holds, for de-duplication: taken from the
//! date's id index (`warehouse/ids.rs`) and the counting files it does not
//! cover, so that a run reads only the ids written since the index was.
//!
//! Contract: [`SeenIds::load`] gives the ids of exactly the date's counting
//! files, whatever state the index is in: an index that covers a file that
//! no longer counts or has changed is not used (every counting file is read,
//! as with no index). [`SeenIds::insert`] adds the run's new ids;
//! [`SeenIds::save`], called once the run's files of the date are in place,
//! writes the index of every file read or written, before the run commits.
//! An index that a crash leaves covering the run's uncommitted files is not
//! used by the re-run, which removes those files first.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::NaiveDate;

use crate::error::AggregateError;
use crate::hash::{id_key, FxHashSet};
use crate::parallel;
use crate::schema::Cols;
use crate::warehouse::{identities, read_parquet_each, Covered, Warehouse};

/// The keys ([`id_key`]) of a date's `event_id`s.
#[derive(Default)]
pub(super) struct SeenIds {
    /// The index's keys, ascending.
    indexed: Vec<u128>,
    /// Keys of the files the index did not cover, and the run's new ones.
    added: FxHashSet<u128>,
    /// Every file whose ids are in `indexed` or `added`.
    covered: BTreeSet<Covered>,
}

impl SeenIds {
    /// The ids of a date's counting `files`: the index's, if it covers
    /// nothing else, and those of the files it does not cover (only their
    /// `event_id` column is read; decoded on a thread of its own `ahead`
    /// batches ahead, if > 0).
    pub(super) fn load(
        wh: &Warehouse,
        date: NaiveDate,
        files: &[PathBuf],
        ahead: usize,
    ) -> Result<SeenIds, AggregateError> {
        let current = identities(files)?;
        let mut seen = SeenIds::default();
        if let Some(index) = wh.read_id_index(date)? {
            if index.files.iter().all(|f| current.contains_key(f)) {
                seen.indexed = index.keys;
                seen.covered = index.files;
            } else {
                tracing::debug!(%date, "id index covers a file that changed or no longer counts: rebuilt");
            }
        }
        let unread: Vec<(Covered, PathBuf)> = current
            .into_iter()
            .filter(|(c, _)| !seen.covered.contains(c))
            .collect();
        let batches = read_parquet_each(unread.iter().map(|(_, p)| (p, None)), Some(&["event_id"]));
        let indexed = &seen.indexed;
        seen.added = parallel::ahead(batches, ahead, |batches| {
            let mut added = FxHashSet::default();
            for b in batches {
                for id in Cols::new(&b?).str("event_id")?.iter().flatten() {
                    let key = id_key(id);
                    if indexed.binary_search(&key).is_err() {
                        added.insert(key);
                    }
                }
            }
            Ok::<_, AggregateError>(added)
        })?;
        seen.covered.extend(unread.into_iter().map(|(c, _)| c));
        Ok(seen)
    }

    /// How many distinct ids the date holds.
    pub(super) fn len(&self) -> u64 {
        (self.indexed.len() + self.added.len()) as u64
    }

    /// Whether `id` is new (and now seen).
    pub(super) fn insert(&mut self, id: &str) -> bool {
        let key = id_key(id);
        self.indexed.binary_search(&key).is_err() && self.added.insert(key)
    }

    /// Notes that `path`, a file this run wrote, holds only ids inserted here.
    pub(super) fn cover(&mut self, path: &std::path::Path) -> Result<(), AggregateError> {
        self.covered.insert(Covered::of(path)?);
        Ok(())
    }

    /// Writes the date's index: every id seen, of every file covered.
    pub(super) fn save(self, wh: &Warehouse, date: NaiveDate) -> Result<(), AggregateError> {
        let mut added: Vec<u128> = self.added.into_iter().collect();
        added.sort_unstable();
        wh.write_id_index(date, &self.covered, (&self.indexed, &added))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use chrono::NaiveDate;
    use footfall_event::VisitEvent;

    use super::super::testkit::FakeTopic;
    use super::super::RunOptions;
    use crate::hash::id_key;
    use crate::schema::Cols;
    use crate::testdata;
    use crate::warehouse::{read_parquet, Covered, Warehouse};

    /// Asserts that every date of the warehouse has an id index that covers
    /// exactly its events files as they are, with exactly their ids.
    pub(crate) fn assert_id_indexes_exact(dir: &Path, context: &str) {
        let wh = Warehouse::new(dir);
        let mut dates: Vec<NaiveDate> = wh.event_files().unwrap().iter().map(|f| f.date).collect();
        dates.dedup();
        for date in dates {
            let files: Vec<_> = wh
                .event_files()
                .unwrap()
                .into_iter()
                .filter(|f| f.date == date)
                .collect();
            let mut keys: Vec<u128> = Vec::new();
            for f in &files {
                for b in read_parquet(&f.path, None).unwrap() {
                    let ids = Cols::new(&b).str("event_id").unwrap().clone();
                    keys.extend(ids.iter().flatten().map(id_key));
                }
            }
            keys.sort_unstable();
            keys.dedup();
            let index = wh
                .read_id_index(date)
                .unwrap()
                .unwrap_or_else(|| panic!("{context}: no id index of {date}"));
            let covered = files.iter().map(|f| Covered::of(&f.path).unwrap());
            assert_eq!(index.files, covered.collect(), "{context}: files of {date}");
            assert!(index.keys == keys, "{context}: ids of {date}");
        }
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2015, 5, 15).unwrap()
    }

    fn opts() -> RunOptions {
        RunOptions::new("visits", "g", "unused")
    }

    /// Two runs of one date; the re-sent events of the first for a third.
    fn two_runs(dir: &Path) -> (FakeTopic, Vec<VisitEvent>) {
        let mut topic = FakeTopic::default();
        let first = testdata::events(61, day(), 1, 6);
        topic.produce(&first, 2);
        topic.run(dir, &opts()).unwrap();
        topic.produce(&testdata::events(62, day(), 1, 4), 2);
        topic.run(dir, &opts()).unwrap();
        assert_id_indexes_exact(dir, "after two runs");
        let resent = first.iter().step_by(3).cloned().collect();
        (topic, resent)
    }

    #[test]
    fn a_run_takes_the_ids_of_the_files_an_index_covers_from_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let (mut topic, resent) = two_runs(dir.path());
        // Indexes that cover every file as it is but hold no id: a run that
        // trusts them keeps the re-sent events, which shows that it did not
        // read the covered files.
        let wh = Warehouse::new(dir.path());
        let mut dates: Vec<NaiveDate> = wh.event_files().unwrap().iter().map(|f| f.date).collect();
        dates.dedup();
        assert!(dates.len() > 1, "local dates on both sides of midnight");
        for date in dates {
            let files = wh.read_id_index(date).unwrap().unwrap().files;
            wh.write_id_index(date, &files, (&[], &[])).unwrap();
        }
        topic.produce_to(0, &resent);
        let r = topic.run(dir.path(), &opts()).unwrap();
        assert_eq!(
            (r.duplicates_dropped, r.events_written),
            (0, resent.len() as u64)
        );
    }

    #[test]
    fn an_index_of_a_file_changed_since_or_gone_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let (topic, resent) = two_runs(dir.path());
        let wh = Warehouse::new(dir.path());
        let first = wh.event_files().unwrap().remove(0).path;
        type Change<'a> = &'a dyn Fn(&BTreeSet<Covered>);
        let cases: [(&str, Change); 2] = [
            ("rewritten", &|_| {
                // The same bytes, written again: a new modification time.
                std::thread::sleep(std::time::Duration::from_millis(20));
                let bytes = std::fs::read(&first).unwrap();
                std::fs::write(&first, bytes).unwrap();
            }),
            ("covered but gone", &|files| {
                let mut more = files.clone();
                more.insert(Covered {
                    name: "part-9-0.parquet".into(),
                    size: 1,
                    mtime_ns: 1,
                });
                wh.write_id_index(day(), &more, (&[], &[])).unwrap();
            }),
        ];
        for (what, change) in cases {
            let mut topic = topic.clone();
            // An index of every file as it is, holding no id, then the change.
            let files = wh.read_id_index(day()).unwrap().unwrap().files;
            wh.write_id_index(day(), &files, (&[], &[])).unwrap();
            change(&files);
            topic.produce_to(0, &resent);
            let r = topic.run(dir.path(), &opts()).unwrap();
            assert_eq!(r.duplicates_dropped, resent.len() as u64, "{what}");
            assert_eq!(r.events_written, 0, "{what}");
            assert_id_indexes_exact(dir.path(), what);
        }
    }

    #[test]
    fn a_dry_run_leaves_the_index_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let (mut topic, resent) = two_runs(dir.path());
        let path = Warehouse::new(dir.path()).id_index_path(day());
        let before = std::fs::read(&path).unwrap();
        topic.produce(&testdata::events(63, day(), 1, 3), 2);
        topic.produce_to(1, &resent);
        let mut dry = opts();
        dry.dry_run = true;
        let r = topic.run(dir.path(), &dry).unwrap();
        assert_eq!(r.duplicates_dropped, resent.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
