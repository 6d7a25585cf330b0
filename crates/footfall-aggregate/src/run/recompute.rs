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
use super::kept;
use super::{Checkpoint, RunOptions, RunReport};
use crate::error::AggregateError;
use crate::schema::{day_number, events_schema, local_day, local_time_of_day, DAY_US};
use crate::sessions::SummaryOptions;
use crate::summaries::{summarize_batches, Summaries, Table, SUMMARY_COLUMNS};
use crate::warehouse::{read_parquet_each, EventFile, LockMode, RowKeep, Warehouse};

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

/// Where one date's events are: its counting files and, in a dry run, the
/// batch's new events (projected); `written`: how many events the run
/// wrote (in a dry run, would write), which a day state makes room for.
#[derive(Clone, Copy, Default)]
pub(crate) struct DayEvents<'a> {
    pub files: &'a [PathBuf],
    pub new: &'a [RecordBatch],
    pub written: u64,
}

/// Where a date's summaries are counted from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counting {
    /// The date's day state (`kept.rs`) and the files it does not hold yet;
    /// the state is saved (unless in a dry run). What a run does.
    Kept,
    /// Every event of the date, read again: the reference (recompute,
    /// erase, the layout upgrade).
    Whole,
}

/// Recompute and write the summaries of one date from all its events (`day`,
/// every partition) plus the previous day's last visit timeout (`prev`, for
/// visits crossing midnight), read one batch at a time: from its day state
/// and the files it does not hold ([`Counting::Kept`]), or from every file.
/// Each file is written atomically; tables left without rows lose their
/// file; a date with no events left loses all its summaries. With `ahead` >
/// 0 the files are decoded on a thread of their own, up to `ahead` batches
/// ahead of the summary (each batch held adds its memory). A day state is
/// saved while its summaries are built ([`summaries_while_saving`]), and
/// freed before they are written. Returns how many events the date has.
pub(crate) fn summarize_date(
    wh: &Warehouse,
    date: NaiveDate,
    (day, prev): (DayEvents<'_>, DayEvents<'_>),
    (counting, ahead): (Counting, usize),
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<u64, AggregateError> {
    let started = Instant::now();
    let (counted, rows) = count_date(date, (day, prev), (counting, ahead), wh, opts)?;
    let counted_s = started.elapsed().as_secs_f64();
    let (summaries, saved_s) = match counted {
        Counted::Whole(summaries) => (summaries, 0.0),
        // The state's memory is freed before the files are written.
        Counted::Kept(k) => summaries_while_saving(wh, date, &k, opts)?,
    };
    let built_s = started.elapsed().as_secs_f64() - counted_s;
    write_summaries(wh, date, (&summaries, rows), opts, report)?;
    tracing::debug!(
        %date,
        counted_s,
        state_saved_s = saved_s,
        built_s,
        written_s = started.elapsed().as_secs_f64() - counted_s - built_s,
        "date summarised"
    );
    Ok(rows)
}

/// A date counted: its summaries, or the day state they come from.
enum Counted {
    Whole(Summaries),
    Kept(Box<kept::Loaded>),
}

/// The summaries of a day state, built while the state is saved on a
/// thread of its own (unless in a dry run), with the seconds the save took.
/// Both are done before the run commits, in either order: a state is
/// checked against the events files it covers, never against the summaries.
fn summaries_while_saving(
    wh: &Warehouse,
    date: NaiveDate,
    k: &kept::Loaded,
    opts: &RunOptions,
) -> Result<(Summaries, f64), AggregateError> {
    if opts.dry_run {
        return Ok((k.state.summaries(&opts.summary)?, 0.0));
    }
    let (saved, summaries) = crate::parallel::both(
        || {
            let started = Instant::now();
            k.save(wh, date, opts)
                .map(|()| started.elapsed().as_secs_f64())
        },
        || k.state.summaries(&opts.summary),
    );
    Ok((summaries?, saved?))
}

/// A date counted (as [`summarize_date`] reads its events), with how many
/// events it has.
fn count_date(
    date: NaiveDate,
    (day, prev): (DayEvents<'_>, DayEvents<'_>),
    (counting, ahead): (Counting, usize),
    wh: &Warehouse,
    opts: &RunOptions,
) -> Result<(Counted, u64), AggregateError> {
    let mut kept = match counting {
        Counting::Kept => {
            // The previous date's new rows count only in its last visit
            // timeout: few, so no room is made for them.
            let new_rows = day.written as usize;
            let files = (day.files, prev.files);
            Some(kept::load(wh, date, files, (&opts.summary, new_rows))?)
        }
        Counting::Whole => None,
    };
    let (day_files, prev_files) = match &mut kept {
        Some(k) => (
            std::mem::take(&mut k.new_day),
            std::mem::take(&mut k.new_prev),
        ),
        None => (day.files.to_vec(), prev.files.to_vec()),
    };
    let timeout_us = opts.summary.timeout_us().min(DAY_US);
    let prev_date = date.pred_opt();
    let tail = move || -> Option<RowKeep> {
        let prev_date = prev_date?;
        Some((
            &["ts", "tz_offset_s"],
            Box::new(move |b: &RecordBatch| tail_mask(b, prev_date, timeout_us)),
        ))
    };
    let day_files = day_files.iter().map(|p| (p, None));
    let prev_files = prev_files.iter().map(|p| (p, tail()));
    let files = read_parquet_each(day_files.chain(prev_files), Some(SUMMARY_COLUMNS));
    let new = day.new.iter().map(|b| Ok(b.clone()));
    let prev_new = prev.new.iter().map(|b| match prev_date {
        Some(d) => filter(b, &tail_mask(b, d, timeout_us)?),
        None => Ok(b.slice(0, 0)),
    });
    crate::parallel::ahead(files, ahead, |files| {
        let batches = files.chain(new).chain(prev_new);
        match kept {
            Some(mut k) => {
                let rows = k.state.update(batches, date, &opts.summary)?;
                Ok((Counted::Kept(Box::new(k)), rows))
            }
            None => summarize_batches(batches, date, &opts.summary)
                .map(|(s, rows)| (Counted::Whole(s), rows)),
        }
    })
}

/// Writes (or, in a dry run, counts) the summaries of a date with `rows`
/// events, and keeps its visitor records.
fn write_summaries(
    wh: &Warehouse,
    date: NaiveDate,
    (summaries, rows): (&Summaries, u64),
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    for (table, batch) in summaries.iter() {
        if rows == 0 {
            // No events left for this date: its summaries go too.
            if !opts.dry_run {
                remove_summary(wh, wh.summary_path(table, date), opts, report)?;
            }
            continue;
        }
        *report
            .summary_rows
            .entry(table.name().to_string())
            .or_default() += batch.num_rows() as u64;
        if opts.dry_run {
            continue;
        }
        put_file(wh, wh.summary_path(table, date), batch, opts, report)?;
    }
    if !opts.dry_run {
        let visits = (rows > 0).then(|| summaries.get(Table::Visits));
        crate::periods::keep_records(wh, date, visits)?;
    }
    Ok(())
}

fn filter(b: &RecordBatch, keep: &BooleanArray) -> Result<RecordBatch, AggregateError> {
    Ok(arrow::compute::filter_record_batch(b, keep)?)
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
    opts.persist(wh.write_pending(&path, batch)?)?;
    report.files_written += 1;
    Ok(())
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
/// each summary file atomically, as a run does. A date without events files
/// is refused ([`AggregateError::Config`]): its summaries stay as they are.
pub fn recompute(
    root: &std::path::Path,
    date: NaiveDate,
    summary: &SummaryOptions,
) -> Result<RunReport, AggregateError> {
    let started = Instant::now();
    let wh = Warehouse::open(root, None)?;
    let _lock = wh.lock(LockMode::Exclusive)?;
    let mut opts = RunOptions::new("", "", root);
    opts.summary = summary.clone();
    wh.publish_records()?;
    upgrade_meta(&wh, &opts)?;
    let files = wh.event_files()?;
    let mut report = RunReport::default();
    let targets: BTreeSet<NaiveDate> = files
        .iter()
        .filter(|f| f.date == date)
        .map(|f| f.date)
        .collect();
    if targets.is_empty() {
        return Err(AggregateError::Config(format!(
            "{} holds no events of {date}: nothing to recompute (a date whose events retention dropped keeps its summaries)",
            root.display()
        )));
    }
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
    let of = |d: NaiveDate| -> Vec<PathBuf> {
        files
            .iter()
            .filter(|f| f.date == d)
            .map(|f| f.path.clone())
            .collect()
    };
    for &date in targets {
        let (day, prev) = (of(date), date.pred_opt().map(of).unwrap_or_default());
        let events = (
            DayEvents {
                files: &day,
                ..DayEvents::default()
            },
            DayEvents {
                files: &prev,
                ..DayEvents::default()
            },
        );
        let ahead = crate::parallel::read_ahead(opts.threads.get(), 1);
        let how = (Counting::Whole, ahead);
        report.events_read += summarize_date(wh, date, events, how, opts, report)?;
    }
    crate::periods::refresh(wh, targets, opts, report)
}

/// Which rows of `batch` are in the last `timeout_us` of `date` (local time).
fn tail_mask(
    batch: &RecordBatch,
    date: NaiveDate,
    timeout_us: i64,
) -> Result<BooleanArray, AggregateError> {
    let c = crate::schema::Cols::new(batch);
    let (ts, tz) = (c.ts("ts")?, c.i32("tz_offset_s")?);
    let day = day_number(date);
    let from = DAY_US - timeout_us;
    Ok((0..batch.num_rows())
        .map(|i| {
            let (t, o) = (ts.value(i), tz.value(i));
            Some(local_day(t, o) == day && local_time_of_day(t, o) >= from)
        })
        .collect())
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
