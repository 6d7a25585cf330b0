//! What a run tells its caller: the [`Stage`]s and counts it reports as it
//! goes ([`Progress`]), and what it did ([`RunReport`], one
//! [`PartitionReport`] per partition).
//!
//! Contract: a report only describes; nothing reads it back. Its counts add
//! up: every message read is an event or [`RunReport::invalid`], and every
//! event is written, expired, erased or a dropped duplicate.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

/// The phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Taking the partitions: joining the consumer group and waiting for its
    /// assignment, or (an exclusive run of an empty group) assigning itself
    /// every partition.
    Joining,
    /// Reading messages up to the start watermarks.
    Consuming,
    /// Writing events files.
    Writing,
    /// Recomputing the summaries of touched dates.
    Summarizing,
    /// Committing offsets.
    Committing,
    /// Dropping old event partitions.
    Retention,
}

/// Progress of a run, for a progress bar. Every method has an empty default.
pub trait Progress {
    /// A new phase begins.
    fn stage(&mut self, _stage: Stage) {}
    /// The number of messages the run will read (grows when partitions are assigned).
    fn planned(&mut self, _messages: u64) {}
    /// Messages read so far.
    fn consumed(&mut self, _messages: u64) {}
    /// Summaries of one more date are done, out of `total`.
    fn summarized(&mut self, _done: usize, _total: usize) {}
    /// The run's offsets are committed: every event it read is counted.
    fn committed(&mut self) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What one partition did in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (or the low watermark when none).
    pub start_offset: i64,
    /// High watermark noted at assignment.
    pub high_watermark: i64,
    /// Where the run stopped reading (the watermark, or the `max_events` cut).
    pub end_offset: i64,
    /// Messages read.
    pub messages: u64,
    /// Offset committed by this run: the end of what it read, or the start
    /// offset again when it read nothing (none in a dry run).
    pub committed: Option<i64>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// Nothing was written or committed: the counts are what a run would do.
    pub dry_run: bool,
    /// Messages read (valid events and invalid messages).
    pub events_read: u64,
    /// Messages that are not valid event JSON (skipped, offsets committed).
    pub invalid: u64,
    /// Events for dates already dropped by retention (skipped).
    pub expired: u64,
    /// Events of a visitor id erased for their date (see [`crate::erase`]): dropped.
    pub erased: u64,
    /// Events whose `event_id` was already in the batch or in the warehouse
    /// (on the same date, in any partition).
    pub duplicates_dropped: u64,
    /// Events written to the events table.
    pub events_written: u64,
    /// Dates whose summaries were recomputed.
    pub dates_touched: Vec<NaiveDate>,
    /// Files written (events and summaries).
    pub files_written: u64,
    /// Files removed (uncommitted leftovers, emptied summaries).
    pub files_removed: u64,
    /// Rows of the recomputed summaries, by table.
    pub summary_rows: BTreeMap<String, u64>,
    /// What each partition the run held did, in partition order.
    pub partitions: Vec<PartitionReport>,
    /// Dates whose event files retention removed.
    pub retention_dropped: Vec<NaiveDate>,
    /// Wall-clock duration of the run.
    pub seconds: f64,
}

impl RunReport {
    /// Adds the file and row counts of a piece of the run done on its own
    /// (one date's events or summaries, one period) to this report.
    pub(crate) fn absorb(&mut self, part: RunReport) {
        self.erased += part.erased;
        self.duplicates_dropped += part.duplicates_dropped;
        self.events_written += part.events_written;
        self.files_written += part.files_written;
        self.files_removed += part.files_removed;
        for (table, rows) in part.summary_rows {
            *self.summary_rows.entry(table).or_default() += rows;
        }
    }
}

impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}read {} events ({} duplicates dropped, {} invalid, {} expired, {} erased) from {} partitions; \
             wrote {} events; {} dates touched; {} files written, {} removed",
            if self.dry_run { "dry run: " } else { "" },
            self.events_read,
            self.duplicates_dropped,
            self.invalid,
            self.expired,
            self.erased,
            self.partitions.len(),
            self.events_written,
            self.dates_touched.len(),
            self.files_written,
            self.files_removed,
        )?;
        if !self.retention_dropped.is_empty() {
            write!(
                f,
                "; retention dropped {} dates",
                self.retention_dropped.len()
            )?;
        }
        write!(f, "; {:.1} s", self.seconds)
    }
}
