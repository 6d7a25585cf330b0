//! The per-date write phase: which events files count, de-duplication, the
//! new events files, and the recompute of every touched date's summaries.
//!
//! Contract: the batch's events are taken date by date from the partitions'
//! spills, in partition then offset order within a date, without those of
//! dates retention has dropped or of erased visitors, and de-duplicated by
//! `event_id` against the batch and every counting events file of their date,
//! whatever its partition. Each (date, partition) file is streamed into
//! place, so only one date's `event_id`s (as 128-bit keys) are held at a time. A file counts when its run
//! committed; the run's own uncommitted files are removed and their dates
//! recomputed. New files are named by date, partition and start offset, and
//! are written atomically (temporary file, fsync, rename), so that a re-run
//! after a crash writes the same names and bytes. Nothing is committed here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use chrono::NaiveDate;

use super::consume::Consumed;
use super::recompute::{summarize_date, summary_projection, Counting, DayEvents};
use super::seen::SeenIds;
use super::{Checkpoint, Progress, RunOptions, RunReport, Stage};
use crate::error::AggregateError;
use crate::parallel;
use crate::schema::{events_schema, Cols};
use crate::warehouse::{EventFile, LockMode, PendingFile, PendingWriter, Warehouse, WarehouseMeta};

/// The events of one date: the counting files (every partition, and those
/// this run wrote), and in a dry run the batch's new events (projected).
#[derive(Default)]
struct Day {
    files: Vec<PathBuf>,
    new: Vec<RecordBatch>,
    /// The date's events once this run's are in, when the run wrote to it.
    events: u64,
    /// The events the run wrote to the date (in a dry run, would write:
    /// those of `new`).
    written: u64,
}

impl Day {
    fn is_empty(&self) -> bool {
        self.files.is_empty() && self.new.is_empty()
    }
}

/// The events files of the warehouse sorted out for a run: the counting ones
/// by date, and the run's own uncommitted ones (to remove). `others` is the
/// group's committed offsets in shared mode (another partition's file counts
/// below it), `None` for an exclusive run (every other file counts).
fn sort_files(
    wh: &Warehouse,
    consumed: &[Consumed],
    others: Option<&BTreeMap<i32, i64>>,
) -> Result<(BTreeMap<NaiveDate, Day>, Vec<EventFile>), AggregateError> {
    let starts: BTreeMap<i32, i64> = consumed.iter().map(|c| (c.partition, c.start)).collect();
    let files = if wh.exists() {
        wh.event_files()?
    } else {
        Vec::new()
    };
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    let mut stale = Vec::new();
    for f in files {
        let counts = match (starts.get(&f.partition), others) {
            // Written by a run of this partition that never committed.
            (Some(&start), _) if f.start_offset >= start => {
                stale.push(f);
                continue;
            }
            (Some(_), _) | (None, None) => true,
            (None, Some(committed)) => committed
                .get(&f.partition)
                .is_some_and(|&c| f.start_offset < c),
        };
        if counts {
            days.entry(f.date).or_default().files.push(f.path);
        } else {
            tracing::debug!(path = %f.path.display(), "not committed yet: not counted");
        }
    }
    Ok((days, stale))
}

/// One date's new events of one partition, from its spill: without the events
/// of erased visitors and those already seen (counted in `report`), written
/// to its events file (not in a dry run: then only counted, and kept in `new` for the
/// summaries). Returns the pending file (named by the date, the partition
/// and the batch's start offset), if any event was new.
fn write_date(
    wh: &Warehouse,
    c: &Consumed,
    date: NaiveDate,
    (erased, seen): (&BTreeSet<String>, &mut SeenIds),
    opts: &RunOptions,
    new: &mut Vec<RecordBatch>,
    report: &mut RunReport,
) -> Result<Option<PendingFile>, AggregateError> {
    let mut out: Option<PendingWriter> = None;
    for batch in c.spill.read(date) {
        let batch = batch?;
        let cols = Cols::new(&batch);
        let (ids, visitors) = (cols.str("event_id")?, cols.str("visitor_id")?);
        let mut keep = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let k = if erased.contains(visitors.value(i)) {
                report.erased += 1;
                false
            } else if seen.insert(ids.value(i)) {
                true
            } else {
                report.duplicates_dropped += 1;
                false
            };
            keep.push(k);
        }
        let kept = filter_record_batch(&batch, &BooleanArray::from(keep))?;
        if kept.num_rows() == 0 {
            continue;
        }
        report.events_written += kept.num_rows() as u64;
        if opts.dry_run {
            new.push(kept.project(&summary_projection().1)?);
            continue;
        }
        if out.is_none() {
            let path = wh.events_path(date, c.partition, c.start);
            out = Some(wh.pending_writer(&path, events_schema())?);
        }
        out.as_mut().expect("just made").write(&kept)?;
    }
    out.map(PendingWriter::finish).transpose()
}

/// Dedup, write events, recompute summaries (no commit). `others`: see [`sort_files`].
pub(crate) fn process(
    wh: &Warehouse,
    meta: Option<&WarehouseMeta>,
    consumed: &[Consumed],
    opts: &RunOptions,
    others: Option<&BTreeMap<i32, i64>>,
    progress: &mut dyn Progress,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    let retained_from = meta.and_then(|m| m.retained_from);
    let (mut days, stale) = sort_files(wh, consumed, others)?;
    let mut touched: BTreeSet<NaiveDate> = stale.iter().map(|f| f.date).collect();
    if !opts.dry_run {
        progress.stage(Stage::Writing);
        let starts: BTreeMap<i32, i64> = consumed.iter().map(|c| (c.partition, c.start)).collect();
        let dates = consumed
            .iter()
            .flat_map(|c| c.spill.dates().keys().copied());
        sweep(
            wh,
            opts,
            &starts,
            &dates.chain(touched.iter().copied()).collect(),
        )?;
        for f in &stale {
            if wh.remove_file(&f.path)? {
                report.files_removed += 1;
            }
            opts.check(Checkpoint::StaleRemoved(f.path.clone()))?;
        }
    }
    touched.extend(write_events(
        wh,
        consumed,
        retained_from,
        &mut days,
        opts,
        report,
    )?);
    // The next day's visits start from this day's last half hour.
    let next_days: Vec<NaiveDate> = touched
        .iter()
        .filter_map(|d| d.succ_opt())
        .filter(|n| days.get(n).is_some_and(|d| !d.is_empty()))
        .collect();
    touched.extend(next_days);
    if let Some(r) = retained_from {
        touched.retain(|&d| d >= r);
    }
    summarize_touched(wh, &days, &touched, opts, progress, report)?;
    crate::periods::refresh(wh, &touched, opts, report)?;
    report.dates_touched = touched.into_iter().collect();
    Ok(())
}

/// The batch's new events, date by date (dates side by side on
/// [`RunOptions::threads`]) and in partition then offset order within a date,
/// de-duplicated and written one file per (date, partition); returns the
/// dates that got new events.
fn write_events(
    wh: &Warehouse,
    consumed: &[Consumed],
    retained_from: Option<NaiveDate>,
    days: &mut BTreeMap<NaiveDate, Day>,
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<BTreeSet<NaiveDate>, AggregateError> {
    let mut dates: BTreeMap<NaiveDate, u64> = BTreeMap::new();
    for c in consumed {
        report.events_read += c.messages;
        report.invalid += c.invalid;
        for (&d, &n) in c.spill.dates() {
            *dates.entry(d).or_default() += n;
        }
    }
    let mut live = Vec::new();
    for (date, n) in dates {
        match retained_from {
            Some(r) if date < r => report.expired += n,
            _ => live.push(date),
        }
    }
    let counting = &*days;
    // Threads that no date takes decode the `event_id`s ahead.
    let ahead = parallel::read_ahead(opts.threads.get(), live.len());
    let written = parallel::map(
        &live,
        opts.threads.get(),
        |&date| {
            let files = counting.get(&date).map_or(&[][..], |d| &d.files[..]);
            write_day(wh, consumed, (date, files), ahead, opts)
        },
        |_| {},
    )?;
    let mut touched = BTreeSet::new();
    for (date, w) in live.into_iter().zip(written) {
        if w.report.events_written > 0 {
            touched.insert(date);
        }
        let day = days.entry(date).or_default();
        day.written = w.report.events_written;
        report.absorb(w.report);
        day.files.extend(w.files);
        day.new.extend(w.new);
        day.events = w.events;
    }
    Ok(touched)
}

/// What [`write_day`] did for one date.
#[derive(Default)]
struct Written {
    /// The events files it wrote.
    files: Vec<PathBuf>,
    /// In a dry run, the new events (projected for the summaries).
    new: Vec<RecordBatch>,
    /// The date's events, its earlier ones and the new.
    events: u64,
    report: RunReport,
}

/// One date's new events from every partition's spill, de-duplicated against
/// the date's counting `files` (their ids from the date's id index and the
/// files it does not cover, see [`SeenIds::load`]) and each other, written
/// one file per partition; then the date's id index, covering them all.
fn write_day(
    wh: &Warehouse,
    consumed: &[Consumed],
    (date, files): (NaiveDate, &[PathBuf]),
    ahead: usize,
    opts: &RunOptions,
) -> Result<Written, AggregateError> {
    let erased = wh.read_tombstones(date)?;
    let mut seen = SeenIds::load(wh, date, files, ahead)?;
    let mut w = Written::default();
    for c in consumed
        .iter()
        .filter(|c| c.spill.dates().contains_key(&date))
    {
        let ids = (&erased, &mut seen);
        let file = write_date(wh, c, date, ids, opts, &mut w.new, &mut w.report)?;
        if let Some(file) = file {
            let path = opts.persist(file)?;
            seen.cover(&path)?;
            w.files.push(path);
            w.report.files_written += 1;
        }
    }
    w.events = seen.len();
    if !opts.dry_run {
        seen.save(wh, date)?;
    }
    Ok(w)
}

/// Recomputes the summaries of every touched date from its events files (and,
/// in a dry run, the batch's new events): the dates of at least
/// [`RunOptions::large_date_events`] events one at a time, then the others
/// side by side on [`RunOptions::threads`].
fn summarize_touched(
    wh: &Warehouse,
    days: &BTreeMap<NaiveDate, Day>,
    touched: &BTreeSet<NaiveDate>,
    opts: &RunOptions,
    progress: &mut dyn Progress,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    progress.stage(Stage::Summarizing);
    let events = |date: Option<NaiveDate>| match date.and_then(|d| days.get(&d)) {
        Some(day) => DayEvents {
            files: &day.files,
            new: &day.new,
            written: day.written,
        },
        None => DayEvents::default(),
    };
    let is_large = |d: &NaiveDate| {
        let events = days.get(d).map_or(0, |day| day.events);
        events >= opts.large_date_events
    };
    let (large, small): (Vec<NaiveDate>, Vec<NaiveDate>) =
        touched.iter().copied().partition(is_large);
    let total = touched.len();
    let mut done = 0;
    for (dates, threads) in [(large, 1), (small, opts.threads.get())] {
        // Threads that no date takes decode the files ahead of the summaries.
        let ahead = parallel::read_ahead(opts.threads.get(), dates.len().min(threads));
        let parts = parallel::map(
            &dates,
            threads,
            |&date| {
                let mut part = RunReport::default();
                let both = (events(Some(date)), events(date.pred_opt()));
                summarize_date(wh, date, both, (Counting::Kept, ahead), opts, &mut part)?;
                Ok::<_, AggregateError>(part)
            },
            |n| progress.summarized(done + n, total),
        )?;
        done += dates.len();
        for part in parts {
            report.absorb(part);
        }
    }
    Ok(())
}

/// Removes the temporary files of interrupted runs that this run may remove:
/// all of them (exclusive), or its own partitions' and its dates' (shared).
fn sweep(
    wh: &Warehouse,
    opts: &RunOptions,
    starts: &BTreeMap<i32, i64>,
    dates: &BTreeSet<NaiveDate>,
) -> Result<(), AggregateError> {
    if opts.lock == LockMode::Exclusive {
        wh.sweep_temp_files(None)?;
        return Ok(());
    }
    wh.sweep_temp_files(Some(&starts.keys().copied().collect()))?;
    for &d in dates {
        wh.sweep_date_temp_files(d)?;
    }
    Ok(())
}
