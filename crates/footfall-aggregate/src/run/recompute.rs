//! Summaries of one date from its events: [`summarize_date`] for a run,
//! [`recompute`] and [`recompute_locked`] for the writers without Kafka
//! (recompute, erase, the layout upgrade).
//!
//! Contract: a date's summaries are a function of all its counting events,
//! every partition together, plus the previous day's last visit timeout (for
//! visits that cross midnight). Each table gets one file per date, written
//! atomically; a table left without rows loses its file, and a date without
//! events loses all its summaries. A dry run counts rows and writes nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;

use super::binding::upgrade_meta;
use super::{Checkpoint, RunOptions, RunReport};
use crate::error::AggregateError;
use crate::schema::{day_number, events_schema, local_day, local_time_of_day, DAY_US};
use crate::sessions::SummaryOptions;
use crate::summaries::{summarize, Table, SUMMARY_COLUMNS};
use crate::warehouse::{concat, read_parquet, EventFile, LockMode, Warehouse};

/// The events columns summaries need, in events-schema order.
pub(crate) fn summary_projection() -> (SchemaRef, Vec<usize>) {
    let schema = events_schema();
    let idx: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| SUMMARY_COLUMNS.contains(&schema.field(i).name().as_str()))
        .collect();
    (
        Arc::new(schema.project(&idx).expect("projection indices are valid")),
        idx,
    )
}

/// Recompute and write the summaries of one date from all its events (`day`,
/// every partition) plus the previous day's events (`prev`, of which only the
/// last visit timeout counts, for visits crossing midnight). Each file is
/// written atomically; tables left without rows lose their file; a date with
/// no events left loses all its summaries.
pub(crate) fn summarize_date(
    wh: &Warehouse,
    date: NaiveDate,
    day: Vec<RecordBatch>,
    prev: Vec<RecordBatch>,
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    if day.iter().all(|b| b.num_rows() == 0) {
        // No events left for this date: its summaries go too.
        if !opts.dry_run {
            for t in Table::ALL {
                remove_summary(wh, wh.summary_path(t, date), opts, report)?;
            }
        }
        return Ok(());
    }
    let (proj_schema, _) = summary_projection();
    let timeout_us = opts.summary.timeout_us().min(DAY_US);
    let mut batches = day;
    if let Some(prev_date) = date.pred_opt() {
        for b in prev {
            batches.push(tail_of(&b, prev_date, timeout_us)?);
        }
    }
    let events = concat(&proj_schema, &normalise(&proj_schema, batches)?)?;
    let summaries = summarize(&events, date, &opts.summary)?;
    for (table, batch) in summaries.iter() {
        *report
            .summary_rows
            .entry(table.name().to_string())
            .or_default() += batch.num_rows() as u64;
        if opts.dry_run {
            continue;
        }
        put_file(wh, wh.summary_path(table, date), batch, opts, report)?;
    }
    Ok(())
}

/// Writes a summary-like file atomically (temp file, fsync, rename), or
/// removes it when `batch` has no rows; counted in `report`.
pub(crate) fn put_file(
    wh: &Warehouse,
    path: PathBuf,
    batch: &RecordBatch,
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    if batch.num_rows() == 0 {
        return remove_summary(wh, path, opts, report);
    }
    let file = wh.write_pending(&path, batch)?;
    opts.check(Checkpoint::TempWritten(path.clone()))?;
    file.persist()?;
    report.files_written += 1;
    opts.check(Checkpoint::Persisted(path))
}

fn remove_summary(
    wh: &Warehouse,
    path: PathBuf,
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    if wh.remove_file(&path)? {
        report.files_removed += 1;
        opts.check(Checkpoint::SummaryRemoved(path))?;
    }
    Ok(())
}

/// Recompute every summary of one date from the events table alone (no Kafka):
/// after a rule change, a restored backup, or to measure the recompute. Takes
/// the exclusive warehouse lock (and upgrades a layout 1 warehouse); writes
/// each summary file atomically, as a run does.
pub fn recompute(
    root: &std::path::Path,
    date: NaiveDate,
    summary: &SummaryOptions,
) -> Result<RunReport, AggregateError> {
    let started = Instant::now();
    let wh = Warehouse::new(root);
    let _lock = wh.lock(LockMode::Exclusive)?;
    let mut opts = RunOptions::new("", "", root);
    opts.summary = summary.clone();
    upgrade_meta(&wh, &opts)?;
    let files = wh.event_files()?;
    let mut report = RunReport::default();
    let targets: BTreeSet<NaiveDate> = files
        .iter()
        .filter(|f| f.date == date)
        .map(|f| f.date)
        .collect();
    recompute_locked(&wh, &files, &targets, &opts, &mut report)?;
    report.dates_touched = vec![date];
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Recomputes the summaries of some dates from `files` (the events table as it
/// is now, every file counting), under a lock the caller holds. A date without
/// events loses its summaries. Counts the events read in `report`.
pub(crate) fn recompute_locked(
    wh: &Warehouse,
    files: &[EventFile],
    targets: &BTreeSet<NaiveDate>,
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    let read = |d: NaiveDate| -> Result<Vec<RecordBatch>, AggregateError> {
        let mut out = Vec::new();
        for f in files.iter().filter(|f| f.date == d) {
            out.extend(read_parquet(&f.path, Some(SUMMARY_COLUMNS))?);
        }
        Ok(out)
    };
    for &date in targets {
        let day = read(date)?;
        let rows = day.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        report.events_read += rows;
        let prev = match date.pred_opt() {
            Some(prev) if rows > 0 => read(prev)?,
            _ => Vec::new(),
        };
        summarize_date(wh, date, day, prev, opts, report)?;
    }
    crate::periods::refresh(wh, targets, opts, report)
}

/// Rows of `batch` in the last `timeout_us` of `date` (local time).
fn tail_of(
    batch: &RecordBatch,
    date: NaiveDate,
    timeout_us: i64,
) -> Result<RecordBatch, AggregateError> {
    let c = crate::schema::Cols::new(batch);
    let (ts, tz) = (c.ts("ts")?, c.i32("tz_offset_s")?);
    let day = day_number(date);
    let from = DAY_US - timeout_us;
    let mask: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            let (t, o) = (ts.value(i), tz.value(i));
            Some(local_day(t, o) == day && local_time_of_day(t, o) >= from)
        })
        .collect();
    Ok(arrow::compute::filter_record_batch(batch, &mask)?)
}

/// Gives every batch exactly `schema`, taking its columns by name.
pub(crate) fn normalise(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, AggregateError> {
    batches
        .into_iter()
        .map(|b| {
            let cols = schema
                .fields()
                .iter()
                .map(|f| {
                    b.column_by_name(f.name()).cloned().ok_or_else(|| {
                        AggregateError::Arrow(arrow::error::ArrowError::SchemaError(format!(
                            "events file lacks column {}",
                            f.name()
                        )))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RecordBatch::try_new(Arc::clone(schema), cols)?)
        })
        .collect()
}
