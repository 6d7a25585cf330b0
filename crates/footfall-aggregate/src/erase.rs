//! Erasure and lookup of one person's data: the library side of "you can
//! review and delete your data".
//!
//! The caller names the person by a closure `ids(date, site)` that gives the
//! person's `visitor_id` for that date and site, or `None` when it cannot: the
//! key of that date is destroyed, so the date's rows can no longer be tied to
//! anyone (such dates are reported as *unlinkable* and left as they are). The
//! closure is called once for every (date, site) of the events table in the
//! range; dates are the events table's `date=` partitions, the event's local
//! calendar date, which is also the day of the key that made its `visitor_id`.
//!
//! # What [`erase`] removes
//!
//! * Every row of the events table, in the dates `from..=to`, whose
//!   (`site`, `visitor_id`) is the person's for that date.
//! * The person's part of every summary table: the summaries of every date
//!   that lost rows are recomputed from the events that are left (every
//!   partition), and so are those of the next date (its visits continue the
//!   previous day's last visit timeout). This removes the person's rows of the
//!   `visits` table (which carries `visitor_id`) and their share of every count.
//! * Their return: the ids are recorded as tombstones
//!   (`DIR/_erasure/tombstones/date=YYYY-MM-DD.ids`), and every later aggregate
//!   run drops events of a tombstoned (date, `visitor_id`) before de-duplication
//!   (counted in [`crate::RunReport::erased`]), so a replay of the topic does not
//!   bring them back. Retention deletes the tombstones of dates it drops (events
//!   of those dates are refused anyway).
//!
//! Each erasure appends one line to `DIR/_erasure/ledger.jsonl`: when, the
//! range, the dates erased and unlinkable, and the counts. It holds no visitor
//! id, address, user agent or cookie.
//!
//! # Order of writes
//!
//! Under the warehouse's exclusive lock (a running aggregate makes `erase` fail
//! with [`crate::ErrorKind::Locked`]):
//!
//! 1. the tombstones of every date with a key (merged with those already there;
//!    temporary file, fsync, rename, fsync of the directory);
//! 2. the journal `DIR/_erasure/pending.json`: the dates whose summaries the
//!    next step makes stale (dates only);
//! 3. every events file with rows of the person, rewritten without them under
//!    the same name (temporary file, fsync, rename), or removed when no rows are
//!    left;
//! 4. the summaries of the journaled dates and of their next dates;
//! 5. the ledger line (appended, fsynced);
//! 6. the journal is removed.
//!
//! An erasure interrupted anywhere is completed by running it again with the
//! same arguments, and gives the same files: the tombstones are already there,
//! the files already rewritten have no rows of the person left, and the journal
//! brings back the summaries still owed. An aggregate run in between cannot
//! bring the events back (step 1 came first). A re-run appends a ledger line of
//! its own.
//!
//! # What it does not reach
//!
//! * The Kafka topic: the events stay in it until the topic's retention deletes
//!   them. The tombstones keep them out of the warehouse meanwhile, but only for
//!   the (date, site) pairs that had events in the warehouse when `erase` ran:
//!   run it once the aggregate has caught up with the topic.
//! * Copies made outside the warehouse: exports, query results, backups,
//!   files analysts copied.
//! * Unlinkable dates (no key): their rows stay, and are anonymous.
//!
//! [`lookup`] returns the person's events in a range, for review, without
//! changing anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use chrono::{NaiveDate, SecondsFormat, Utc};
use footfall_event::VisitEvent;
use serde::Serialize;

use crate::error::AggregateError;
use crate::run::{
    normalise, recompute_locked, upgrade_meta, Checkpoint, Progress, RunOptions, RunReport, Stage,
};
use crate::schema::{batch_to_events, events_schema, Cols};
use crate::sessions::SummaryOptions;
use crate::warehouse::{
    concat, read_parquet, EventFile, LockMode, Replica, Warehouse, ERASURE_DIR, LEDGER_FILE,
};

/// What an erasure did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EraseReport {
    /// Nothing was written: the counts are what an erasure would do.
    pub dry_run: bool,
    /// Dates with events in the range for which the person's id could be computed
    /// (for at least one site).
    pub days_erased: Vec<NaiveDate>,
    /// Dates with events in the range for which the closure gave no id (for at
    /// least one site): the key is destroyed, the rows are left.
    pub days_unlinkable: Vec<NaiveDate>,
    /// Rows removed from the events table.
    pub rows_removed: u64,
    /// Events files rewritten without the person's rows.
    pub files_rewritten: u64,
    /// Events files removed (only the person's rows were in them).
    pub files_removed: u64,
    /// Dates whose summaries were recomputed.
    pub summaries_recomputed: Vec<NaiveDate>,
}

impl std::fmt::Display for EraseReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}erased {} events on {} dates ({} dates unlinkable); {} events files rewritten, {} removed; \
             summaries of {} dates recomputed",
            if self.dry_run { "dry run: " } else { "" },
            self.rows_removed,
            self.days_erased.len(),
            self.days_unlinkable.len(),
            self.files_rewritten,
            self.files_removed,
            self.summaries_recomputed.len(),
        )
    }
}

/// One line of the ledger: what was done, never whose.
#[derive(Serialize)]
struct LedgerLine<'a> {
    at: String,
    from: NaiveDate,
    to: NaiveDate,
    days_erased: &'a [NaiveDate],
    days_unlinkable: &'a [NaiveDate],
    rows_removed: u64,
    files_rewritten: u64,
    files_removed: u64,
}

/// The person in the events table of a range.
#[derive(Debug, Default)]
struct Person {
    /// date → site → the person's visitor id.
    ids: BTreeMap<NaiveDate, BTreeMap<String, String>>,
    erased: Vec<NaiveDate>,
    unlinkable: Vec<NaiveDate>,
    /// Events files with rows of the person: (file, the person's rows, all rows).
    hits: Vec<(EventFile, u64, u64)>,
}

/// The rows of `batch` (events columns, at least `site` and `visitor_id`) that are the person's.
fn person_rows(
    batch: &RecordBatch,
    ids: &BTreeMap<String, String>,
) -> Result<BooleanArray, AggregateError> {
    let c = Cols::new(batch);
    let (site, visitor) = (c.str("site")?, c.str("visitor_id")?);
    Ok((0..batch.num_rows())
        .map(|i| {
            Some(
                ids.get(site.value(i))
                    .is_some_and(|id| id == visitor.value(i)),
            )
        })
        .collect())
}

/// Finds the person's ids and rows in the events files of `from..=to`, reading
/// only the `site` and `visitor_id` columns, one date at a time.
/// `progress` is told the files in the range (`planned`) and those read
/// (`consumed`).
fn scan(
    files: &[EventFile],
    from: NaiveDate,
    to: NaiveDate,
    ids: &dyn Fn(NaiveDate, &str) -> Option<String>,
    progress: &mut dyn Progress,
) -> Result<Person, AggregateError> {
    let mut person = Person::default();
    let in_range: Vec<&EventFile> = files
        .iter()
        .filter(|f| (from..=to).contains(&f.date))
        .collect();
    progress.stage(Stage::Consuming);
    progress.planned(in_range.len() as u64);
    let mut read = 0;
    for day in in_range.chunk_by(|a, b| a.date == b.date) {
        read += day.len() as u64;
        progress.consumed(read);
        let date = day[0].date;
        let mut columns = Vec::with_capacity(day.len());
        let mut sites: BTreeSet<String> = BTreeSet::new();
        for &f in day {
            let batches = read_parquet(&f.path, Some(&["site", "visitor_id"]))?;
            for b in &batches {
                for s in Cols::new(b).str("site")?.iter().flatten() {
                    if !sites.contains(s) {
                        sites.insert(s.to_string());
                    }
                }
            }
            columns.push((f, batches));
        }
        let mut by_site = BTreeMap::new();
        let mut unlinkable = false;
        for site in sites {
            match ids(date, &site) {
                Some(id) => {
                    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(AggregateError::Config(format!(
                            "the visitor id given for {date} and site {site} is not a pseudonym \
                             (empty, or with spaces or control characters)"
                        )));
                    }
                    by_site.insert(site, id);
                }
                None => unlinkable = true,
            }
        }
        if unlinkable {
            person.unlinkable.push(date);
        }
        if by_site.is_empty() {
            continue;
        }
        person.erased.push(date);
        for (f, batches) in columns {
            let (mut mine, mut all) = (0u64, 0u64);
            for b in &batches {
                mine += person_rows(b, &by_site)?.true_count() as u64;
                all += b.num_rows() as u64;
            }
            if mine > 0 {
                person.hits.push((f.clone(), mine, all));
            }
        }
        person.ids.insert(date, by_site);
    }
    Ok(person)
}

fn open(
    root: &Path,
    from: NaiveDate,
    to: NaiveDate,
    replica: Option<Arc<Replica>>,
) -> Result<Warehouse, AggregateError> {
    if from > to {
        return Err(AggregateError::Config(format!(
            "empty date range: {from} is after {to}"
        )));
    }
    let wh = Warehouse::open(root, replica)?;
    if !wh.exists() {
        return Err(AggregateError::Config(format!(
            "no warehouse at {}",
            root.display()
        )));
    }
    Ok(wh)
}

/// Erases one person's events of the dates `from..=to` from the warehouse at
/// `root`, recomputes the summaries they were part of and keeps them from
/// coming back. `ids(date, site)` gives the person's visitor id for a date and
/// site, `None` when that date's key is destroyed (the date is reported as
/// unlinkable and left as it is). A dry run reads everything, reports what it
/// would do and writes nothing.
///
/// Under the exclusive warehouse lock, in this order: tombstones
/// (`_erasure/tombstones/date=D.ids`, which every later run obeys), a journal
/// of the summaries about to go stale, the events files rewritten without the
/// person's rows (same names, atomic) or removed, the summaries of the affected
/// dates and of the next dates, a ledger line without ids
/// (`_erasure/ledger.jsonl`). An interrupted erasure is completed by running it
/// again. It does not reach the Kafka topic (until the topic's retention) or
/// copies made outside the warehouse; the module source (`src/erase.rs`)
/// states the full contract.
///
/// `progress` is told the events files it reads, then [`Stage::Writing`]
/// and [`Stage::Summarizing`] (each recomputed date).
pub fn erase(
    root: &Path,
    from: NaiveDate,
    to: NaiveDate,
    ids: &dyn Fn(NaiveDate, &str) -> Option<String>,
    summary: &SummaryOptions,
    dry_run: bool,
    progress: &mut dyn Progress,
) -> Result<EraseReport, AggregateError> {
    let mut opts = RunOptions::new("", "", root);
    opts.summary = summary.clone();
    opts.dry_run = dry_run;
    erase_reporting(root, from, to, ids, &opts, progress)
}

/// [`erase`] with run options: `summary`, `dry_run` and `fault` are used.
#[cfg(test)]
pub(crate) fn erase_with(
    root: &Path,
    from: NaiveDate,
    to: NaiveDate,
    ids: &dyn Fn(NaiveDate, &str) -> Option<String>,
    opts: &RunOptions,
) -> Result<EraseReport, AggregateError> {
    erase_reporting(root, from, to, ids, opts, &mut crate::run::NoProgress)
}

fn erase_reporting(
    root: &Path,
    from: NaiveDate,
    to: NaiveDate,
    ids: &dyn Fn(NaiveDate, &str) -> Option<String>,
    opts: &RunOptions,
    progress: &mut dyn Progress,
) -> Result<EraseReport, AggregateError> {
    let wh = open(root, from, to, opts.replica.clone())?;
    let _lock = wh.lock(if opts.dry_run {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    })?;
    let files = wh.event_files()?;
    let person = scan(&files, from, to, ids, progress)?;

    let mut report = EraseReport {
        dry_run: opts.dry_run,
        days_erased: person.erased.clone(),
        days_unlinkable: person.unlinkable.clone(),
        ..Default::default()
    };
    for (_, mine, all) in &person.hits {
        report.rows_removed += mine;
        if mine == all {
            report.files_removed += 1;
        } else {
            report.files_rewritten += 1;
        }
    }
    // Summaries to recompute: those of the dates losing rows, those an
    // interrupted erasure left, and the next date of each.
    let retained_from = wh.read_meta()?.and_then(|m| m.retained_from);
    let mut stale: BTreeSet<NaiveDate> = person.hits.iter().map(|(f, _, _)| f.date).collect();
    stale.extend(
        wh.read_erase_pending()?
            .into_iter()
            .filter(|&d| retained_from.is_none_or(|r| d >= r)),
    );
    let with_events: BTreeSet<NaiveDate> = files.iter().map(|f| f.date).collect();
    let mut targets = stale.clone();
    targets.extend(
        stale
            .iter()
            .filter_map(|d| d.succ_opt())
            .filter(|d| with_events.contains(d)),
    );
    report.summaries_recomputed = targets.iter().copied().collect();
    if opts.dry_run {
        return Ok(report);
    }
    wh.publish_records()?;
    upgrade_meta(&wh, opts)?;

    wh.sweep_temp_files(None)?;
    // 1. Tombstones first: from now on no run brings the rows back.
    for (&date, by_site) in &person.ids {
        let mine: BTreeSet<String> = by_site.values().cloned().collect();
        if wh.add_tombstones(date, &mine)? {
            opts.check(Checkpoint::Erase(wh.tombstone_path(date)))?;
        }
    }
    // 2. The summaries about to go stale.
    if !stale.is_empty() {
        let path = wh.write_erase_pending(&stale)?;
        opts.check(Checkpoint::Erase(path))?;
    }
    // 3. The events files, once their dates' id indexes and day states are
    // gone (neither may keep erased rows; the next run rebuilds them). The
    // next date's day state holds this date's last visit timeout.
    for (f, _, _) in &person.hits {
        wh.remove_id_index(f.date)?;
        wh.remove_day_state(f.date)?;
        if let Some(next) = f.date.succ_opt() {
            wh.remove_day_state(next)?;
        }
    }
    let schema = events_schema();
    progress.stage(Stage::Writing);
    for (f, mine, all) in &person.hits {
        if mine == all {
            wh.remove_file(&f.path)?;
            opts.check(Checkpoint::Erase(f.path.clone()))?;
            continue;
        }
        let by_site = &person.ids[&f.date];
        let mut kept = Vec::new();
        for b in normalise(&schema, read_parquet(&f.path, None)?)? {
            let keep = arrow::compute::not(&person_rows(&b, by_site)?)?;
            kept.push(arrow::compute::filter_record_batch(&b, &keep)?);
        }
        opts.persist(wh.write_pending(&f.path, &concat(&schema, &kept)?)?)?;
    }
    // 4. Summaries, from the events table as it is now.
    let files = wh.event_files()?;
    progress.stage(Stage::Summarizing);
    recompute_locked(&wh, &files, &targets, opts, &mut RunReport::default())?;
    progress.summarized(targets.len(), targets.len());
    // 5. The ledger.
    let line = LedgerLine {
        at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        from,
        to,
        days_erased: &report.days_erased,
        days_unlinkable: &report.days_unlinkable,
        rows_removed: report.rows_removed,
        files_rewritten: report.files_rewritten,
        files_removed: report.files_removed,
    };
    wh.append_ledger(&serde_json::to_string(&line).expect("a ledger line serialises"))?;
    opts.check(Checkpoint::Erase(
        wh.root().join(ERASURE_DIR).join(LEDGER_FILE),
    ))?;
    // 6. Nothing is owed any more.
    wh.clear_erase_pending()?;
    tracing::info!(
        rows = report.rows_removed,
        dates = report.days_erased.len(),
        unlinkable = report.days_unlinkable.len(),
        "erased a person's events"
    );
    Ok(report)
}

/// The person's events of the dates `from..=to`, sorted by (time, `event_id`),
/// and the dates in the range that have events but no key (`ids` gave `None`).
/// Takes the warehouse's shared lock (an exclusive aggregate run makes it fail
/// with [`crate::ErrorKind::Locked`]); changes nothing. `progress` is told
/// the events files it reads.
pub fn lookup(
    root: &Path,
    from: NaiveDate,
    to: NaiveDate,
    ids: &dyn Fn(NaiveDate, &str) -> Option<String>,
    progress: &mut dyn Progress,
) -> Result<(Vec<VisitEvent>, Vec<NaiveDate>), AggregateError> {
    let wh = open(root, from, to, None)?;
    let _lock = wh.lock(LockMode::Shared)?;
    let person = scan(&wh.event_files()?, from, to, ids, progress)?;
    let mut events = Vec::new();
    for (f, _, _) in &person.hits {
        let by_site = &person.ids[&f.date];
        for b in read_parquet(&f.path, None)? {
            let mine = arrow::compute::filter_record_batch(&b, &person_rows(&b, by_site)?)?;
            events.extend(batch_to_events(&mine)?.into_iter().map(|k| k.event));
        }
    }
    events.sort_by(|a, b| (a.ts, &a.event_id).cmp(&(b.ts, &b.event_id)));
    Ok((events, person.unlinkable))
}

#[cfg(test)]
mod tests;
