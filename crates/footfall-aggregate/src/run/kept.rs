//! A date's day state for a run (`summaries/state.rs`, kept beside the
//! warehouse by `warehouse/days.rs`): which of the date's events files it
//! already holds, and which are new to it.
//!
//! Contract: [`load`] gives a state that holds the rows of exactly some of
//! the counting files of the date and of the previous date, and the counting
//! files it does not hold. A kept state that names a file that no longer
//! counts or has changed (stale files of a crashed run, erasure, retention,
//! a restored backup), or that was counted with other rules, is not used:
//! the state is then empty and every file is new to it. [`Loaded::save`]
//! writes it covering every file, once the run's files of the date are in
//! place and before the run commits; a state that a crash leaves covering
//! the run's uncommitted files is not used by the re-run, which rewrites
//! those files first. A crash between the state's two files
//! ([`Checkpoint::RowsWritten`]) leaves the rows file longer than the kept
//! `.state` file names: the re-run reads it that far and appends after it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::NaiveDate;

use super::{Checkpoint, RunOptions};
use crate::error::AggregateError;
use crate::summaries::state::{DayState, KeptRows};
use crate::summaries::SummaryOptions;
use crate::warehouse::{identities, Covered, DayCover, RowsEnd, Warehouse};

/// A date's state as loaded, with the files it does not hold yet.
pub(super) struct Loaded {
    pub state: DayState,
    /// Every counting file of the date and of the previous date: what the
    /// state covers once the new files' rows are in.
    pub cover: DayCover,
    /// Where the rows file the state was read from ends: a save appends to it.
    pub rows_end: Option<RowsEnd>,
    /// The date's counting files whose rows the state does not hold.
    pub new_day: Vec<PathBuf>,
    /// The same of the previous date.
    pub new_prev: Vec<PathBuf>,
}

/// The state of `date` for its counting files `day` and the previous date's
/// `prev` (module docs), with room for `new_rows` more rows.
pub(super) fn load(
    wh: &Warehouse,
    date: NaiveDate,
    (day, prev): (&[PathBuf], &[PathBuf]),
    (opts, new_rows): (&SummaryOptions, usize),
) -> Result<Loaded, AggregateError> {
    let fingerprint = DayState::fingerprint(opts);
    let (day, prev) = (identities(day)?, identities(prev)?);
    let holds =
        |kept: &BTreeSet<Covered>, now: &Identities| kept.iter().all(|c| now.contains_key(c));
    let usable =
        |c: &DayCover| c.fingerprint == fingerprint && holds(&c.day, &day) && holds(&c.prev, &prev);
    let started = std::time::Instant::now();
    let mut rows = KeptRows::with_room(new_rows);
    let kept = wh.read_day_state(
        date,
        |of, r, len| rows.read_segment((of.size, of.end.len), r, len),
        |cover, r, len| usable(cover).then(|| DayState::read_rest(r, len))?,
    )?;
    let kept =
        kept.and_then(|(cover, end, rest)| Some((cover, end, DayState::from_parts(rows, rest)?)));
    tracing::debug!(%date, found = kept.is_some(), room = new_rows, seconds = started.elapsed().as_secs_f64(), "day state read");
    let (state, held, rows_end) = match kept {
        Some((cover, end, state)) => (state, cover, Some(end)),
        None => (DayState::default(), DayCover::default(), None),
    };
    let new = |now: &Identities, held: &BTreeSet<Covered>| -> Vec<PathBuf> {
        now.iter()
            .filter(|(c, _)| !held.contains(c))
            .map(|(_, p)| p.clone())
            .collect()
    };
    Ok(Loaded {
        new_day: new(&day, &held.day),
        new_prev: new(&prev, &held.prev),
        cover: DayCover {
            fingerprint,
            day: day.into_keys().collect(),
            prev: prev.into_keys().collect(),
        },
        state,
        rows_end,
    })
}

/// Files by their identity ([`identities`]).
type Identities = std::collections::BTreeMap<Covered, PathBuf>;

impl Loaded {
    /// Writes the state, covering every file of [`Loaded::cover`], with the
    /// checkpoint [`Checkpoint::RowsWritten`] between its two files.
    pub(super) fn save(
        &self,
        wh: &Warehouse,
        date: NaiveDate,
        opts: &RunOptions,
    ) -> Result<(), AggregateError> {
        let state = &self.state;
        wh.write_day_state(
            date,
            (&self.cover, state.size()),
            (self.rows_end, |w, continues| state.write_rows(w, continues)),
            |rows| opts.check(Checkpoint::RowsWritten(rows.to_path_buf())),
            |w| state.write_rest(w),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use chrono::NaiveDate;
    use footfall_testkit::snapshot_all;

    use super::super::testkit::FakeTopic;
    use super::super::RunOptions;
    use super::*;
    use crate::testdata;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2015, 5, 15).unwrap()
    }

    fn opts() -> RunOptions {
        RunOptions::new("visits", "g", "unused")
    }

    /// Every summary file (the events table and caches left out).
    fn summaries(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut all = snapshot_all(dir);
        all.retain(|k, _| !k.starts_with("events/"));
        all
    }

    /// Every date with events.
    fn dates(dir: &Path) -> Vec<NaiveDate> {
        let mut dates: Vec<NaiveDate> = Warehouse::new(dir)
            .event_files()
            .unwrap()
            .iter()
            .map(|f| f.date)
            .collect();
        dates.dedup();
        dates
    }

    /// The summaries `--recompute` of every date gives (it reads every
    /// events file and no state): the reference.
    fn recomputed(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        for date in dates(dir) {
            crate::run::recompute(dir, date, &opts().summary).unwrap();
        }
        summaries(dir)
    }

    /// Two runs of one date, each cut in three.
    fn two_runs(dir: &Path) -> FakeTopic {
        let mut topic = FakeTopic::default();
        let mut cut = opts();
        cut.max_events = Some(150);
        for seed in [71, 72] {
            topic.produce(&testdata::events(seed, day(), 1, 6), 2);
            while topic.run(dir, &cut).unwrap().events_read > 0 {}
        }
        topic
    }

    /// Replaces every date's state by an empty one that covers the files as
    /// they are.
    fn empty_states(dir: &Path) {
        let wh = Warehouse::new(dir);
        for date in dates(dir) {
            let cover = cover_of(&wh, date);
            let empty = DayState::default();
            write_state(&wh, date, &cover, &empty);
        }
    }

    fn write_state(wh: &Warehouse, date: NaiveDate, cover: &DayCover, s: &DayState) {
        let rows = |w: &mut dyn std::io::Write, _| s.write_rows(w, false);
        let none = |_: &Path| Ok(());
        wh.write_day_state(date, (cover, s.size()), (None, rows), none, |w| {
            s.write_rest(w)
        })
        .unwrap();
    }

    /// What the state of `date` covers, and where its rows file ends.
    fn kept_state(wh: &Warehouse, date: NaiveDate) -> (DayCover, RowsEnd) {
        let skip = |r: &mut dyn std::io::Read| std::io::copy(r, &mut std::io::sink()).ok();
        let kept = wh.read_day_state(date, |_, r, _| skip(r).map(drop), |_, r, _| skip(r));
        let (cover, end, _) = kept.unwrap().expect("a state");
        (cover, end)
    }

    /// What the state of `date` covers.
    fn cover_of(wh: &Warehouse, date: NaiveDate) -> DayCover {
        kept_state(wh, date).0
    }

    /// The rows file of the state of `date`: where its `.state` file says
    /// it ends, and its bytes.
    fn rows_file(wh: &Warehouse, date: NaiveDate) -> (RowsEnd, Vec<u8>) {
        let end = kept_state(wh, date).1;
        (end, std::fs::read(&wh.day_state_paths(date)[0]).unwrap())
    }

    #[test]
    fn a_run_stopped_between_the_two_files_of_a_state_is_gone_on_from_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let mut topic = two_runs(dir.path());
        let wh = Warehouse::new(dir.path());
        let (end, bytes) = rows_file(&wh, day());
        topic.produce(&testdata::events(74, day(), 1, 2), 2);
        let mut crashing = opts();
        crashing.fault = Some(std::sync::Arc::new(|cp: &Checkpoint| {
            matches!(cp, Checkpoint::RowsWritten(_))
        }));
        let err = topic.run(dir.path(), &crashing).unwrap_err();
        assert!(
            matches!(err, AggregateError::Injected(Checkpoint::RowsWritten(_))),
            "{err}"
        );
        let (named, longer) = rows_file(&wh, day());
        assert_eq!(named, end, "the state is the one before the run");
        assert!(
            longer.len() as u64 > end.len,
            "a segment after the end it names"
        );
        while topic.run(dir.path(), &opts()).unwrap().events_read > 0 {}
        let (after, now) = rows_file(&wh, day());
        assert_eq!(
            now.len() as u64,
            after.len,
            "the stopped run's segment cut off"
        );
        assert!(after.len > end.len);
        assert_eq!(
            now[..bytes.len()],
            bytes[..],
            "appended to, not written anew"
        );
        assert_eq!(summaries(dir.path()), recomputed(dir.path()));
    }

    #[test]
    fn runs_leave_the_summaries_that_recompute_gives() {
        let dir = tempfile::tempdir().unwrap();
        two_runs(dir.path());
        assert!(
            dates(dir.path()).len() > 1,
            "dates on both sides of midnight"
        );
        let runs = summaries(dir.path());
        assert_eq!(runs, recomputed(dir.path()));
    }

    #[test]
    fn a_run_takes_the_rows_of_the_files_a_state_covers_from_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut topic = two_runs(dir.path());
        // States that cover every file but hold no row: a run that trusts
        // them counts its new events only, which shows it read no covered file.
        empty_states(dir.path());
        topic.produce(&testdata::events(73, day(), 1, 2), 2);
        topic.run(dir.path(), &opts()).unwrap();
        let runs = summaries(dir.path());
        assert_ne!(runs, recomputed(dir.path()));
    }

    #[test]
    fn a_state_of_a_file_changed_since_or_gone_or_of_other_rules_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let topic = two_runs(dir.path());
        let wh = Warehouse::new(dir.path());
        let first = wh.event_files().unwrap().remove(0);
        type Change<'a> = &'a dyn Fn(&mut RunOptions);
        let cases: [(&str, Change); 3] = [
            ("rewritten", &|_| {
                // The same bytes, written again: a new modification time.
                std::thread::sleep(std::time::Duration::from_millis(20));
                let bytes = std::fs::read(&first.path).unwrap();
                std::fs::write(&first.path, bytes).unwrap();
            }),
            ("covered but gone", &|_| {
                let mut cover = cover_of(&wh, first.date);
                cover.day.insert(Covered {
                    name: "part-9-0.parquet".into(),
                    size: 1,
                    mtime_ns: 1,
                });
                let empty = DayState::default();
                write_state(&wh, first.date, &cover, &empty);
            }),
            ("other rules", &|o| o.summary.bots.max_per_minute += 1),
        ];
        for (what, change) in cases {
            let mut topic = topic.clone();
            let mut o = opts();
            empty_states(dir.path());
            change(&mut o);
            topic.produce(&testdata::events(74, day(), 1, 2), 2);
            topic.run(dir.path(), &o).unwrap();
            let runs = summaries(dir.path());
            for date in dates(dir.path()) {
                crate::run::recompute(dir.path(), date, &o.summary).unwrap();
            }
            assert_eq!(runs, summaries(dir.path()), "{what}");
        }
    }

    #[test]
    fn a_state_is_read_with_room_for_the_rows_a_run_adds() {
        let dir = tempfile::tempdir().unwrap();
        two_runs(dir.path());
        let wh = Warehouse::new(dir.path());
        let files = |d: Option<NaiveDate>| -> Vec<PathBuf> {
            let all = wh.event_files().unwrap().into_iter();
            all.filter(|f| Some(f.date) == d).map(|f| f.path).collect()
        };
        let (day_files, prev_files) = (files(Some(day())), files(day().pred_opt()));
        for extra in [0, 5_000] {
            let both = (&day_files[..], &prev_files[..]);
            let loaded = load(&wh, day(), both, (&opts().summary, extra)).unwrap();
            assert!(loaded.rows_end.is_some(), "the state was read");
            let (rows, strings) = loaded.state.room();
            assert!(
                rows >= extra && strings >= extra,
                "{extra}: room for {rows} rows, {strings} strings"
            );
        }
    }

    #[test]
    fn a_dry_run_leaves_the_state_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut topic = two_runs(dir.path());
        let paths = Warehouse::new(dir.path()).day_state_paths(day());
        let read = || paths.each_ref().map(|p| std::fs::read(p).unwrap());
        let before = read();
        topic.produce(&testdata::events(75, day(), 1, 3), 2);
        let mut dry = opts();
        dry.dry_run = true;
        assert!(topic.run(dir.path(), &dry).unwrap().events_read > 0);
        assert_eq!(read(), before);
    }
}
