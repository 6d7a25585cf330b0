//! The per-date write phase: which events files count, de-duplication, the
//! new events files, and the recompute of every touched date's summaries.
//!
//! Contract: the batch's events are taken in partition then offset order,
//! without those of dates retention has dropped or of erased visitors, and
//! de-duplicated by `event_id` against the batch and every counting events
//! file of their date, whatever its partition. A file counts when its run
//! committed; the run's own uncommitted files are removed and their dates
//! recomputed. New files are named by date, partition and start offset, and
//! are written atomically (temporary file, fsync, rename), so that a re-run
//! after a crash writes the same names and bytes. Nothing is committed here.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use arrow::array::RecordBatch;
use chrono::NaiveDate;

use super::consume::Consumed;
use super::recompute::{summarize_date, summary_projection};
use super::{Checkpoint, Progress, RunOptions, RunReport, Stage};
use crate::error::AggregateError;
use crate::hash::FxHashSet;
use crate::schema::{events_to_batch, Cols, KafkaEvent};
use crate::summaries::SUMMARY_COLUMNS;
use crate::warehouse::{read_parquet, EventFile, LockMode, Warehouse, WarehouseMeta};

/// The events of one date: the counting files (every partition) and this run's new batches.
#[derive(Default)]
struct Day {
    files: Vec<PathBuf>,
    new: Vec<RecordBatch>,
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

/// The batch's events by date, in partition then offset order, without those
/// of dates dropped by retention or of erased visitors (counted in `report`).
fn events_by_date<'a>(
    wh: &Warehouse,
    consumed: &'a [Consumed],
    retained_from: Option<NaiveDate>,
    report: &mut RunReport,
) -> Result<BTreeMap<NaiveDate, Vec<&'a KafkaEvent>>, AggregateError> {
    // Erased visitor ids, loaded for the dates of the batch only.
    let mut tombstones: BTreeMap<NaiveDate, BTreeSet<String>> = BTreeMap::new();
    let mut by_date: BTreeMap<NaiveDate, Vec<&KafkaEvent>> = BTreeMap::new();
    for c in consumed {
        report.events_read += c.messages;
        report.invalid += c.invalid;
        for e in &c.events {
            let date = e.event.local_date();
            if retained_from.is_some_and(|r| date < r) {
                report.expired += 1;
                continue;
            }
            let erased = match tombstones.entry(date) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => v.insert(wh.read_tombstones(date)?),
            };
            if erased.contains(e.event.visitor_id.as_str()) {
                report.erased += 1;
                continue;
            }
            by_date.entry(date).or_default().push(e);
        }
    }
    Ok(by_date)
}

/// The events whose `event_id` is in none of `files` (read: the `event_id`
/// column only) and not earlier in `events`; the others are counted as duplicates.
fn dedupe(
    files: &[PathBuf],
    events: Vec<&KafkaEvent>,
    report: &mut RunReport,
) -> Result<Vec<KafkaEvent>, AggregateError> {
    let mut existing = Vec::new();
    for path in files {
        existing.extend(read_parquet(path, Some(&["event_id"]))?);
    }
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    for b in &existing {
        seen.extend(Cols::new(b).str("event_id")?.iter().flatten());
    }
    let mut keep = Vec::with_capacity(events.len());
    for e in events {
        if seen.insert(e.event.event_id.as_str()) {
            keep.push(e.clone());
        } else {
            report.duplicates_dropped += 1;
        }
    }
    Ok(keep)
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
    let starts: BTreeMap<i32, i64> = consumed.iter().map(|c| (c.partition, c.start)).collect();
    let (mut days, stale) = sort_files(wh, consumed, others)?;
    let mut touched: BTreeSet<NaiveDate> = stale.iter().map(|f| f.date).collect();
    let mut pending: Vec<(PathBuf, RecordBatch)> = Vec::new();
    for (date, events) in events_by_date(wh, consumed, retained_from, report)? {
        let day = days.entry(date).or_default();
        let keep = dedupe(&day.files, events, report)?;
        report.events_written += keep.len() as u64;
        for run in keep.chunk_by(|a, b| a.partition == b.partition) {
            let p = run[0].partition;
            let batch = events_to_batch(run)?;
            pending.push((wh.events_path(date, p, starts[&p]), batch.clone()));
            day.new.push(batch);
            touched.insert(date);
        }
    }
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

    if !opts.dry_run {
        progress.stage(Stage::Writing);
        sweep(wh, opts, &starts, &touched)?;
        for f in &stale {
            if wh.remove_file(&f.path)? {
                report.files_removed += 1;
            }
            opts.check(Checkpoint::StaleRemoved(f.path.clone()))?;
        }
        for (path, batch) in &pending {
            let file = wh.write_pending(path, batch)?;
            opts.check(Checkpoint::TempWritten(path.clone()))?;
            file.persist()?;
            report.files_written += 1;
            opts.check(Checkpoint::Persisted(path.clone()))?;
        }
    }

    progress.stage(Stage::Summarizing);
    let (_, proj_idx) = summary_projection();
    let load = |date: NaiveDate| -> Result<Vec<RecordBatch>, AggregateError> {
        let mut out = Vec::new();
        if let Some(day) = days.get(&date) {
            for path in &day.files {
                out.extend(read_parquet(path, Some(SUMMARY_COLUMNS))?);
            }
            for b in &day.new {
                out.push(b.project(&proj_idx)?);
            }
        }
        Ok(out)
    };
    let total = touched.len();
    for (n, &date) in touched.iter().enumerate() {
        let day = load(date)?;
        // The previous day's events matter only when there is something to summarise.
        let prev = match date.pred_opt() {
            Some(prev) if day.iter().any(|b| b.num_rows() > 0) => load(prev)?,
            _ => Vec::new(),
        };
        summarize_date(wh, date, day, prev, opts, report)?;
        progress.summarized(n + 1, total);
    }
    crate::periods::refresh(wh, &touched, opts, report)?;
    report.dates_touched = touched.into_iter().collect();
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
