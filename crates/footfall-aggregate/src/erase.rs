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

use arrow::array::{BooleanArray, RecordBatch};
use chrono::{NaiveDate, SecondsFormat, Utc};
use footfall_event::VisitEvent;
use serde::Serialize;

use crate::error::AggregateError;
use crate::run::{normalise, recompute_locked, upgrade_meta, Checkpoint, RunOptions, RunReport};
use crate::schema::{batch_to_events, events_schema, Cols};
use crate::sessions::SummaryOptions;
use crate::warehouse::{
    concat, read_parquet, EventFile, LockMode, Warehouse, ERASURE_DIR, LEDGER_FILE,
};

/// What an erasure did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EraseReport {
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
fn scan(
    files: &[EventFile],
    from: NaiveDate,
    to: NaiveDate,
    ids: &dyn Fn(NaiveDate, &str) -> Option<String>,
) -> Result<Person, AggregateError> {
    let mut person = Person::default();
    let in_range: Vec<&EventFile> = files
        .iter()
        .filter(|f| (from..=to).contains(&f.date))
        .collect();
    for day in in_range.chunk_by(|a, b| a.date == b.date) {
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

fn open(root: &Path, from: NaiveDate, to: NaiveDate) -> Result<Warehouse, AggregateError> {
    if from > to {
        return Err(AggregateError::Config(format!(
            "empty date range: {from} is after {to}"
        )));
    }
    let wh = Warehouse::new(root);
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
pub fn erase(
    root: &Path,
    from: NaiveDate,
    to: NaiveDate,
    ids: &dyn Fn(NaiveDate, &str) -> Option<String>,
    summary: &SummaryOptions,
    dry_run: bool,
) -> Result<EraseReport, AggregateError> {
    let mut opts = RunOptions::new("", "", root);
    opts.summary = summary.clone();
    opts.dry_run = dry_run;
    erase_with(root, from, to, ids, &opts)
}

/// [`erase`] with run options: `summary`, `dry_run` and `fault` are used.
pub(crate) fn erase_with(
    root: &Path,
    from: NaiveDate,
    to: NaiveDate,
    ids: &dyn Fn(NaiveDate, &str) -> Option<String>,
    opts: &RunOptions,
) -> Result<EraseReport, AggregateError> {
    let wh = open(root, from, to)?;
    let _lock = wh.lock(if opts.dry_run {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    })?;
    let files = wh.event_files()?;
    let person = scan(&files, from, to, ids)?;

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
    // 3. The events files.
    let schema = events_schema();
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
        let file = wh.write_pending(&f.path, &concat(&schema, &kept)?)?;
        opts.check(Checkpoint::TempWritten(f.path.clone()))?;
        file.persist()?;
        opts.check(Checkpoint::Persisted(f.path.clone()))?;
    }
    // 4. Summaries, from the events table as it is now.
    let files = wh.event_files()?;
    recompute_locked(&wh, &files, &targets, opts, &mut RunReport::default())?;
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
/// with [`crate::ErrorKind::Locked`]); changes nothing.
pub fn lookup(
    root: &Path,
    from: NaiveDate,
    to: NaiveDate,
    ids: &dyn Fn(NaiveDate, &str) -> Option<String>,
) -> Result<(Vec<VisitEvent>, Vec<NaiveDate>), AggregateError> {
    let wh = open(root, from, to)?;
    let _lock = wh.lock(LockMode::Shared)?;
    let person = scan(&wh.event_files()?, from, to, ids)?;
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
mod tests {
    use super::*;
    use crate::run::testkit::{snapshot, FakeTopic};
    use crate::schema::KafkaEvent;
    use crate::summaries::Table;
    use crate::testdata;
    use crate::ErrorKind;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

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
        let mut s = snapshot(dir);
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
            summaries(&snapshot(a.path())),
            summaries(&snapshot(b.path()))
        );

        let r = erase(
            a.path(),
            day(15),
            day(17),
            &ids_of(&visitor),
            &SummaryOptions::default(),
            false,
        )
        .unwrap();
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
        let (sa, sb) = (snapshot(a.path()), snapshot(b.path()));
        assert_eq!(
            summaries(&sa).keys().collect::<Vec<_>>(),
            summaries(&sb).keys().collect::<Vec<_>>()
        );
        for (k, v) in summaries(&sb) {
            assert!(
                sa[&k] == v,
                "{k} differs from the warehouse built without the person"
            );
        }
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
        erase(
            dir.path(),
            day(15),
            day(17),
            &ids_of(&visitor),
            &SummaryOptions::default(),
            false,
        )
        .unwrap();
        let erased = snapshot(dir.path());

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
            snapshot(dir.path()),
            erased,
            "the replay rewrote the same files"
        );

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
        assert_eq!(snapshot(dir.path()), erased);
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
        let r = erase(
            dir.path(),
            day(15),
            day(17),
            &ids,
            &SummaryOptions::default(),
            false,
        )
        .unwrap();
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
        let (found, unlinkable) = lookup(dir.path(), day(15), day(17), &ids).unwrap();
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
        erase(
            dir.path(),
            day(15),
            day(17),
            &ids_of(&visitor),
            &SummaryOptions::default(),
            true,
        )
        .unwrap();
        assert!(!ledger.exists(), "a dry run writes no ledger line");
        let r = erase(
            dir.path(),
            day(15),
            day(17),
            &ids_of(&visitor),
            &SummaryOptions::default(),
            false,
        )
        .unwrap();
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
        let before = snapshot(dir.path());
        let (found, unlinkable) = lookup(dir.path(), day(15), day(17), &ids_of(&visitor)).unwrap();
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
        let (found, _) = lookup(dir.path(), day(16), day(16), &ids_of(&visitor)).unwrap();
        assert!(!found.is_empty() && found.iter().all(|e| e.local_date() == day(16)));
        assert_eq!(snapshot(dir.path()), before, "lookup changes nothing");
    }

    #[test]
    fn erasing_twice_changes_nothing_the_second_time() {
        let events = input();
        let visitor = crossing_visitor(&events);
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), &events);
        erase(
            dir.path(),
            day(15),
            day(17),
            &ids_of(&visitor),
            &SummaryOptions::default(),
            false,
        )
        .unwrap();
        let once = without_ledger(dir.path());
        let r = erase(
            dir.path(),
            day(15),
            day(17),
            &ids_of(&visitor),
            &SummaryOptions::default(),
            false,
        )
        .unwrap();
        assert_eq!(
            (r.rows_removed, r.files_rewritten, r.files_removed),
            (0, 0, 0)
        );
        assert!(r.summaries_recomputed.is_empty());
        assert_eq!(r.days_erased, vec![day(15), day(16), day(17)]);
        assert_eq!(without_ledger(dir.path()), once);
        let ledger =
            std::fs::read_to_string(dir.path().join(ERASURE_DIR).join(LEDGER_FILE)).unwrap();
        assert_eq!(ledger.lines().count(), 2);
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        let events = input();
        let visitor = crossing_visitor(&events);
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), &events);
        let before = snapshot(dir.path());
        let dry = erase(
            dir.path(),
            day(15),
            day(17),
            &ids_of(&visitor),
            &SummaryOptions::default(),
            true,
        )
        .unwrap();
        assert!(dry.dry_run && dry.to_string().starts_with("dry run: "));
        assert_eq!(snapshot(dir.path()), before);
        let real = erase(
            dir.path(),
            day(15),
            day(17),
            &ids_of(&visitor),
            &SummaryOptions::default(),
            false,
        )
        .unwrap();
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
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "crash at {crash_at}"
            );
            for (k, v) in &want {
                assert!(
                    got[k] == *v,
                    "crash at {crash_at} ({:?}): {k} differs",
                    seen[crash_at]
                );
            }
        }
    }

    #[test]
    fn erasure_records_are_not_tables_and_expire_with_retention() {
        let events = input();
        let visitor = crossing_visitor(&events);
        let dir = tempfile::tempdir().unwrap();
        let mut topic = build(dir.path(), &events);
        erase(
            dir.path(),
            day(15),
            day(17),
            &ids_of(&visitor),
            &SummaryOptions::default(),
            false,
        )
        .unwrap();
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
        let err = erase(
            dir.path(),
            day(15),
            day(17),
            &none,
            &SummaryOptions::default(),
            false,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Locked);
        assert_eq!(
            lookup(dir.path(), day(15), day(17), &none)
                .unwrap_err()
                .kind(),
            ErrorKind::Locked
        );
        drop(held);
        let err = erase(
            dir.path(),
            day(17),
            day(15),
            &none,
            &SummaryOptions::default(),
            false,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let missing = dir.path().join("missing");
        assert_eq!(
            lookup(&missing, day(15), day(17), &none)
                .unwrap_err()
                .kind(),
            ErrorKind::Config
        );
        let bad = |_: NaiveDate, _: &str| Some("ab\ncd".to_string());
        let err = erase(
            dir.path(),
            day(15),
            day(17),
            &bad,
            &SummaryOptions::default(),
            false,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            !dir.path().join(ERASURE_DIR).exists(),
            "nothing was written"
        );
        // No key at all: every date is unlinkable, nothing changes.
        let before = snapshot(dir.path());
        let r = erase(
            dir.path(),
            day(15),
            day(17),
            &none,
            &SummaryOptions::default(),
            false,
        )
        .unwrap();
        assert_eq!(r.days_unlinkable, vec![day(15), day(16), day(17)]);
        assert_eq!((r.rows_removed, r.days_erased.len()), (0, 0));
        let after = snapshot(dir.path());
        assert_eq!(summaries(&after), summaries(&before));
        assert_eq!(after.len(), before.len() + 1, "only the ledger line");
    }
}
