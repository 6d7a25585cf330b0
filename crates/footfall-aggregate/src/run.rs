//! The bounded run: consume up to the start watermarks, write events and
//! summaries durably, then commit offsets.
//!
//! Exactly once, by construction:
//!
//! 1. The run locks the warehouse, joins the consumer group (subscribe) and,
//!    for every partition it is assigned, reads the group's committed offset
//!    (the batch's *start offset*) and the high watermark. It consumes each
//!    partition up to that watermark (or the `max_events` cut), no further.
//! 2. Events files written by a run that did not commit (their start offset is
//!    at or past the committed offset) are removed; their dates are recomputed.
//! 3. Events of a visitor id erased for their date (the tombstones written by
//!    [`crate::erase`]) are dropped. New events are de-duplicated by
//!    `event_id` (within the batch and against the committed files of the same
//!    date and partition) and written to
//!    `events/date=D/part-<partition>-<start offset>.parquet`: a re-run after a
//!    crash starts at the same offset and writes the same names and bytes.
//! 4. Summaries of every touched date (and the day after it, whose visits
//!    depend on its last half hour) are recomputed from that date's events.
//! 5. Only when every file is durable are the offsets committed (synchronously),
//!    each to the offset after the last message read.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use footfall_event::{VisitEvent, SCHEMA_VERSION};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

use crate::error::AggregateError;
use crate::hash::FxHashSet;
use crate::schema::{
    day_number, events_schema, events_to_batch, local_day, local_time_of_day, KafkaEvent, DAY_US,
};
use crate::sessions::SummaryOptions;
use crate::summaries::{summarize, Table, SUMMARY_COLUMNS};
use crate::warehouse::{
    concat, read_parquet, EventFile, LockMode, PartitionLock, Warehouse, WarehouseMeta,
    LAYOUT_VERSION,
};

/// Where a run can be stopped by an injected failure (see [`RunOptions::fault`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// Every assigned partition has been read up to its cut.
    Consumed,
    /// A file of an uncommitted earlier run has been removed.
    StaleRemoved(PathBuf),
    /// A file is written and fsynced under its temporary name, not yet renamed.
    TempWritten(PathBuf),
    /// A file has been renamed into place.
    Persisted(PathBuf),
    /// A summary file with no rows any more has been removed.
    SummaryRemoved(PathBuf),
    /// Every file is durable; offsets are about to be committed.
    BeforeCommit,
    /// Offsets are committed; retention has not run yet.
    Committed,
    /// An erasure step is durable: tombstones, the recompute journal or the
    /// ledger written, or an events file left without rows removed.
    Erase(PathBuf),
}

/// Decides whether to fail at a checkpoint (`true` = fail with [`AggregateError::Injected`]).
/// Used to test crash recovery: every checkpoint is a place where a real crash
/// leaves the warehouse.
pub type FaultHook = Arc<dyn Fn(&Checkpoint) -> bool + Send + Sync>;

/// What a run does.
#[derive(Clone)]
pub struct RunOptions {
    pub topic: String,
    pub group: String,
    pub warehouse: PathBuf,
    /// Read and compute, write nothing, commit nothing.
    pub dry_run: bool,
    /// Read at most this many messages (offsets), split over the assigned
    /// partitions deterministically (see [`plan_cut`]).
    pub max_events: Option<u64>,
    /// Drop event partitions older than this many days (see [`Warehouse::apply_retention`]).
    pub retention_days: Option<u32>,
    /// Exclusive (default) or shared warehouse lock.
    pub lock: LockMode,
    /// Visit timeout and privacy threshold.
    pub summary: SummaryOptions,
    /// How long to wait for the group to assign partitions.
    pub assignment_timeout: Duration,
    /// How long to wait without any message while partitions are unfinished.
    pub stall_timeout: Duration,
    /// Timeout of metadata, offset and watermark requests.
    pub request_timeout: Duration,
    /// Failure injection for crash-recovery tests; `None` in production.
    pub fault: Option<FaultHook>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("warehouse", &self.warehouse)
            .field("dry_run", &self.dry_run)
            .field("max_events", &self.max_events)
            .field("retention_days", &self.retention_days)
            .field("lock", &self.lock)
            .field("summary", &self.summary)
            .field("fault", &self.fault.is_some())
            .finish_non_exhaustive()
    }
}

impl RunOptions {
    /// Options with defaults: exclusive lock, 30 minute visits, k = 3, no cut, no retention.
    pub fn new(
        topic: impl Into<String>,
        group: impl Into<String>,
        warehouse: impl Into<PathBuf>,
    ) -> Self {
        RunOptions {
            topic: topic.into(),
            group: group.into(),
            warehouse: warehouse.into(),
            dry_run: false,
            max_events: None,
            retention_days: None,
            lock: LockMode::Exclusive,
            summary: SummaryOptions::default(),
            assignment_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            fault: None,
        }
    }

    pub(crate) fn check(&self, cp: Checkpoint) -> Result<(), AggregateError> {
        match &self.fault {
            Some(hook) if hook(&cp) => Err(AggregateError::Injected(cp)),
            _ => Ok(()),
        }
    }
}

/// The phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Joining the consumer group, waiting for partitions.
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
    /// Summaries of one more (date, partition) are done, out of `total`.
    fn summarized(&mut self, _done: usize, _total: usize) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What one partition did in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    pub partition: i32,
    /// The group's committed offset (or the low watermark when none).
    pub start_offset: i64,
    /// High watermark noted at assignment.
    pub high_watermark: i64,
    /// Where the run stopped reading (the watermark, or the `max_events` cut).
    pub end_offset: i64,
    /// Messages read.
    pub messages: u64,
    /// Offset committed by this run (none when nothing was read or in a dry run).
    pub committed: Option<i64>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    pub dry_run: bool,
    /// Messages read (valid events and invalid messages).
    pub events_read: u64,
    /// Messages that are not valid event JSON (skipped, offsets committed).
    pub invalid: u64,
    /// Events for dates already dropped by retention (skipped).
    pub expired: u64,
    /// Events of a visitor id erased for their date (see [`crate::erase`]): dropped.
    pub erased: u64,
    /// Events whose `event_id` was already in the batch or in the warehouse.
    pub duplicates_dropped: u64,
    /// Events written to the events table.
    pub events_written: u64,
    /// Dates whose summaries were recomputed (any partition).
    pub dates_touched: Vec<NaiveDate>,
    /// Files written (events and summaries).
    pub files_written: u64,
    /// Files removed (uncommitted leftovers, emptied summaries).
    pub files_removed: u64,
    /// Rows of the recomputed summaries, by table.
    pub summary_rows: BTreeMap<String, u64>,
    pub partitions: Vec<PartitionReport>,
    /// Dates whose event files retention removed.
    pub retention_dropped: Vec<NaiveDate>,
    pub seconds: f64,
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

/// One partition's messages, read in a run.
#[derive(Debug, Default)]
pub(crate) struct Consumed {
    pub(crate) partition: i32,
    pub(crate) start: i64,
    pub(crate) high_watermark: i64,
    pub(crate) end: i64,
    pub(crate) events: Vec<KafkaEvent>,
    pub(crate) messages: u64,
    pub(crate) last: Option<i64>,
    pub(crate) invalid: u64,
}

/// Splits a budget of `max` offsets over partitions deterministically:
/// `available` lists (partition, offsets available); returns (partition, allowed).
/// Water-filling in partition order: every partition gets an equal share, the
/// share of a partition with less available is redistributed, remainders go to
/// the lowest partitions.
pub fn plan_cut(available: &[(i32, u64)], max: u64) -> Vec<(i32, u64)> {
    let mut parts: Vec<(i32, u64, u64)> = available.iter().map(|&(p, a)| (p, a, 0)).collect();
    parts.sort_unstable_by_key(|x| x.0);
    let mut left = max;
    loop {
        let active: Vec<usize> = (0..parts.len())
            .filter(|&i| parts[i].2 < parts[i].1)
            .collect();
        if left == 0 || active.is_empty() {
            break;
        }
        let share = (left / active.len() as u64).max(1);
        for i in active {
            let give = share.min(parts[i].1 - parts[i].2).min(left);
            parts[i].2 += give;
            left -= give;
            if left == 0 {
                break;
            }
        }
    }
    parts.into_iter().map(|(p, _, g)| (p, g)).collect()
}

/// Records rebalances for the poll loop to act on.
struct Ctx {
    topic: String,
    events: Mutex<Vec<(bool, Vec<i32>)>>,
}

impl Ctx {
    fn record(&self, assign: bool, tpl: &TopicPartitionList) {
        let parts = tpl
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect();
        self.events
            .lock()
            .expect("rebalance log")
            .push((assign, parts));
    }

    fn take(&self) -> Vec<(bool, Vec<i32>)> {
        std::mem::take(&mut *self.events.lock().expect("rebalance log"))
    }
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.record(false, tpl);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => self.record(true, tpl),
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

struct Part {
    c: Consumed,
    done: bool,
    _lock: Option<PartitionLock>,
}

/// Runs one bounded aggregation. `client` carries the broker address and
/// security settings; the run sets the group id and its own consumer settings
/// (no auto commit, partition EOF, `auto.offset.reset=earliest` unless set).
pub fn run(
    client: &ClientConfig,
    opts: &RunOptions,
    progress: &mut dyn Progress,
) -> Result<RunReport, AggregateError> {
    let started = Instant::now();
    if opts.topic.is_empty() || opts.group.is_empty() {
        return Err(AggregateError::Config(
            "topic and group must not be empty".into(),
        ));
    }
    let wh = Warehouse::new(&opts.warehouse);
    if !opts.dry_run {
        wh.create()?;
    }
    let _lock = if wh.exists() {
        Some(wh.lock(opts.lock)?)
    } else {
        None
    };
    let meta = check_meta(&wh, &opts.topic, !opts.dry_run)?;

    let mut cfg = client.clone();
    cfg.set("group.id", &opts.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true");
    for (k, v) in [
        ("auto.offset.reset", "earliest"),
        ("max.poll.interval.ms", "3600000"),
    ] {
        if cfg.get(k).is_none() {
            cfg.set(k, v);
        }
    }
    let ctx = Ctx {
        topic: opts.topic.clone(),
        events: Mutex::new(Vec::new()),
    };
    let consumer: BaseConsumer<Ctx> = cfg
        .create_with_context(ctx)
        .map_err(AggregateError::kafka("create consumer"))?;

    let md = consumer
        .fetch_metadata(Some(&opts.topic), opts.request_timeout)
        .map_err(AggregateError::kafka("fetch metadata"))?;
    let exists = md
        .topics()
        .iter()
        .any(|t| t.name() == opts.topic && t.error().is_none() && !t.partitions().is_empty());
    if !exists {
        return Err(AggregateError::Config(format!(
            "topic {} does not exist",
            opts.topic
        )));
    }

    progress.stage(Stage::Joining);
    consumer
        .subscribe(&[&opts.topic])
        .map_err(AggregateError::kafka("subscribe"))?;
    let mut parts: BTreeMap<i32, Part> = BTreeMap::new();
    let mut assigned = false;
    let mut read_total = 0u64;
    let mut last_activity = Instant::now();
    loop {
        if apply_rebalances(&consumer, &wh, opts, &mut parts, &mut assigned, progress)? {
            last_activity = Instant::now();
        }
        if assigned && parts.values().all(|p| p.done) {
            break;
        }
        if !assigned && started.elapsed() > opts.assignment_timeout {
            return Err(AggregateError::Timeout(format!(
                "no partitions of {} assigned to group {} within {:?}",
                opts.topic, opts.group, opts.assignment_timeout
            )));
        }
        if assigned && last_activity.elapsed() > opts.stall_timeout {
            let waiting: Vec<String> = parts
                .values()
                .filter(|p| !p.done)
                .map(|p| {
                    format!(
                        "{}@{}/{}",
                        p.c.partition,
                        p.c.last.map_or(p.c.start, |l| l + 1),
                        p.c.end
                    )
                })
                .collect();
            return Err(AggregateError::Timeout(format!(
                "no messages for {:?}; partitions still to read (partition@next/end): {}",
                opts.stall_timeout,
                waiting.join(", ")
            )));
        }
        let Some(res) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        // A rebalance served inside this poll must be applied before its messages.
        if apply_rebalances(&consumer, &wh, opts, &mut parts, &mut assigned, progress)? {
            last_activity = Instant::now();
        }
        match res {
            Ok(msg) => {
                if msg.topic() != opts.topic {
                    continue;
                }
                let Some(part) = parts.get_mut(&msg.partition()) else {
                    continue;
                };
                let o = msg.offset();
                if part.done || o < part.c.start {
                    continue;
                }
                if o >= part.c.end {
                    finish(&consumer, &opts.topic, part);
                    continue;
                }
                last_activity = Instant::now();
                match msg.payload().map(serde_json::from_slice::<VisitEvent>) {
                    Some(Ok(ev)) if ev.v > SCHEMA_VERSION => {
                        return Err(AggregateError::UnsupportedSchema {
                            partition: part.c.partition,
                            offset: o,
                            version: ev.v,
                            supported: SCHEMA_VERSION,
                        })
                    }
                    Some(Ok(event)) => part.c.events.push(KafkaEvent {
                        partition: part.c.partition,
                        offset: o,
                        event,
                    }),
                    Some(Err(e)) => {
                        tracing::warn!(partition = part.c.partition, offset = o, error = %e, "skipping a message that is not a visit event");
                        part.c.invalid += 1;
                    }
                    None => {
                        tracing::warn!(
                            partition = part.c.partition,
                            offset = o,
                            "skipping a message without a value"
                        );
                        part.c.invalid += 1;
                    }
                }
                part.c.messages += 1;
                part.c.last = Some(o);
                read_total += 1;
                progress.consumed(read_total);
                if o + 1 >= part.c.end {
                    finish(&consumer, &opts.topic, part);
                }
            }
            Err(KafkaError::PartitionEOF(p)) => {
                if let Some(part) = parts.get_mut(&p) {
                    last_activity = Instant::now();
                    finish(&consumer, &opts.topic, part);
                }
            }
            Err(e @ (KafkaError::MessageConsumptionFatal(_) | KafkaError::Global(_))) => {
                return Err(AggregateError::Kafka {
                    op: "consume",
                    source: e,
                });
            }
            Err(KafkaError::MessageConsumption(code))
                if matches!(
                    code,
                    rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
                        | rdkafka::types::RDKafkaErrorCode::GroupAuthorizationFailed
                        | rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition
                        | rdkafka::types::RDKafkaErrorCode::UnknownTopic
                ) =>
            {
                return Err(AggregateError::Kafka {
                    op: "consume",
                    source: KafkaError::MessageConsumption(code),
                });
            }
            Err(e) => tracing::warn!(error = %e, "consumer error (retrying)"),
        }
    }
    tracing::info!(
        partitions = parts.len(),
        messages = parts.values().map(|p| p.c.messages).sum::<u64>(),
        "read every assigned partition up to its end"
    );
    opts.check(Checkpoint::Consumed)?;

    let own: BTreeSet<i32> = parts.keys().copied().collect();
    let mut partition_locks = Vec::new();
    let consumed: Vec<Consumed> = parts
        .into_values()
        .map(|p| {
            partition_locks.push(p._lock);
            p.c
        })
        .collect();
    let own_filter = (opts.lock == LockMode::Shared).then_some(&own);
    let commit = |offsets: &[(i32, i64)]| -> Result<(), AggregateError> {
        let mut tpl = TopicPartitionList::new();
        for &(p, o) in offsets {
            tpl.add_partition_offset(&opts.topic, p, Offset::Offset(o))
                .map_err(AggregateError::kafka("commit"))?;
        }
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(AggregateError::kafka("commit"))
    };
    let mut report = complete(
        &wh,
        meta.as_ref(),
        &consumed,
        opts,
        own_filter,
        progress,
        commit,
    )?;
    // Partition locks go before the group is left, so that the next owner can take them.
    drop(partition_locks);
    drop(consumer);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Everything after consuming: files, summaries, commit (through `commit`), retention.
pub(crate) fn complete(
    wh: &Warehouse,
    meta: Option<&WarehouseMeta>,
    consumed: &[Consumed],
    opts: &RunOptions,
    own: Option<&BTreeSet<i32>>,
    progress: &mut dyn Progress,
    commit: impl FnOnce(&[(i32, i64)]) -> Result<(), AggregateError>,
) -> Result<RunReport, AggregateError> {
    let mut report = RunReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    process(wh, meta, consumed, opts, own, progress, &mut report)?;
    // Only now is every file durable: commit the offset after the last message read.
    let offsets: Vec<(i32, i64)> = consumed
        .iter()
        .filter_map(|c| c.last.map(|l| (c.partition, l + 1)))
        .collect();
    if !opts.dry_run {
        opts.check(Checkpoint::BeforeCommit)?;
        if !offsets.is_empty() {
            progress.stage(Stage::Committing);
            commit(&offsets)?;
            tracing::info!(offsets = ?offsets, "offsets committed");
        }
        opts.check(Checkpoint::Committed)?;
    }
    for c in consumed {
        report.partitions.push(PartitionReport {
            partition: c.partition,
            start_offset: c.start,
            high_watermark: c.high_watermark,
            end_offset: c.end,
            messages: c.messages,
            committed: if opts.dry_run {
                None
            } else {
                c.last.map(|l| l + 1)
            },
        });
    }
    if let (Some(days), false) = (opts.retention_days, opts.dry_run) {
        progress.stage(Stage::Retention);
        report.retention_dropped = wh.apply_retention(days, own)?;
    }
    Ok(report)
}

/// Applies the rebalances recorded during the last poll; returns whether there were any.
fn apply_rebalances(
    consumer: &BaseConsumer<Ctx>,
    wh: &Warehouse,
    opts: &RunOptions,
    parts: &mut BTreeMap<i32, Part>,
    assigned: &mut bool,
    progress: &mut dyn Progress,
) -> Result<bool, AggregateError> {
    let events = consumer.context().take();
    for (assign, ps) in &events {
        if *assign {
            if !*assigned {
                progress.stage(Stage::Consuming);
            }
            *assigned = true;
            on_assign(consumer, wh, opts, ps, parts)?;
            progress.planned(parts.values().map(|p| (p.c.end - p.c.start) as u64).sum());
            tracing::info!(partitions = ?ps, "partitions assigned");
        } else {
            for p in ps {
                parts.remove(p);
            }
            tracing::info!(partitions = ?ps, "partitions revoked");
        }
    }
    Ok(!events.is_empty())
}

pub(crate) fn check_meta(
    wh: &Warehouse,
    topic: &str,
    write: bool,
) -> Result<Option<WarehouseMeta>, AggregateError> {
    match wh.read_meta()? {
        Some(m) if m.format > LAYOUT_VERSION => Err(AggregateError::Config(format!(
            "warehouse {} has layout version {}, newer than this build supports ({LAYOUT_VERSION})",
            wh.root().display(),
            m.format
        ))),
        Some(m) if m.topic != topic => Err(AggregateError::Config(format!(
            "warehouse {} holds topic {}, not {topic}",
            wh.root().display(),
            m.topic
        ))),
        Some(m) => Ok(Some(m)),
        None if write => {
            let m = WarehouseMeta {
                format: LAYOUT_VERSION,
                topic: topic.to_string(),
                retained_from: None,
            };
            wh.write_meta(&m)?;
            Ok(Some(m))
        }
        None => Ok(None),
    }
}

fn finish(consumer: &BaseConsumer<Ctx>, topic: &str, part: &mut Part) {
    if part.done {
        return;
    }
    part.done = true;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, part.c.partition);
    if let Err(e) = consumer.pause(&tpl) {
        tracing::warn!(partition = part.c.partition, error = %e, "could not pause a finished partition");
    }
}

fn on_assign(
    consumer: &BaseConsumer<Ctx>,
    wh: &Warehouse,
    opts: &RunOptions,
    partitions: &[i32],
    parts: &mut BTreeMap<i32, Part>,
) -> Result<(), AggregateError> {
    let new: Vec<i32> = partitions
        .iter()
        .copied()
        .filter(|p| !parts.contains_key(p))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for &p in &new {
        tpl.add_partition(&opts.topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, opts.request_timeout)
        .map_err(AggregateError::kafka("fetch committed offsets"))?;
    let mut fresh = Vec::new();
    for &p in &new {
        let lock = match opts.lock {
            LockMode::Shared if !opts.dry_run => Some(wh.lock_partition(p)?),
            _ => None,
        };
        let (low, high) = consumer
            .fetch_watermarks(&opts.topic, p, opts.request_timeout)
            .map_err(AggregateError::kafka("fetch watermarks"))?;
        let committed = committed
            .find_partition(&opts.topic, p)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        let start = match committed {
            Some(c) if c > high => {
                return Err(AggregateError::Config(format!(
                    "group {} committed offset {c} for {}/{p}, past its end {high}: was the topic recreated? reset the group's offsets",
                    opts.group, opts.topic
                )))
            }
            Some(c) if c < low => {
                tracing::warn!(partition = p, committed = c, low, "messages were deleted before being aggregated");
                low
            }
            Some(c) => c,
            None => low,
        };
        fresh.push((p, start, high, lock));
    }
    let cut: BTreeMap<i32, u64> = match opts.max_events {
        Some(max) => {
            let held: u64 = parts.values().map(|p| (p.c.end - p.c.start) as u64).sum();
            let avail: Vec<(i32, u64)> = fresh
                .iter()
                .map(|&(p, s, h, _)| (p, (h - s) as u64))
                .collect();
            plan_cut(&avail, max.saturating_sub(held))
                .into_iter()
                .collect()
        }
        None => fresh
            .iter()
            .map(|&(p, s, h, _)| (p, (h - s) as u64))
            .collect(),
    };
    for (p, start, high, lock) in fresh {
        let end = start + cut[&p] as i64;
        tracing::debug!(partition = p, start, high, end, "assigned");
        let mut part = Part {
            c: Consumed {
                partition: p,
                start,
                high_watermark: high,
                end,
                ..Default::default()
            },
            done: false,
            _lock: lock,
        };
        if start >= end {
            finish(consumer, &opts.topic, &mut part);
        }
        parts.insert(p, part);
    }
    Ok(())
}

/// The events columns summaries need, in events-schema order.
fn summary_projection() -> (SchemaRef, Vec<usize>) {
    let schema = events_schema();
    let idx: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| SUMMARY_COLUMNS.contains(&schema.field(i).name().as_str()))
        .collect();
    (
        Arc::new(schema.project(&idx).expect("projection indices are valid")),
        idx,
    )
}

/// Where the events of one (date, partition) come from.
#[derive(Default)]
struct DaySources {
    files: Vec<PathBuf>,
    new: Option<RecordBatch>,
}

/// Dedup, write events, recompute summaries (no commit).
pub(crate) fn process(
    wh: &Warehouse,
    meta: Option<&WarehouseMeta>,
    consumed: &[Consumed],
    opts: &RunOptions,
    own: Option<&BTreeSet<i32>>,
    progress: &mut dyn Progress,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    let retained_from = meta.and_then(|m| m.retained_from);
    let files: Vec<EventFile> = if wh.exists() {
        wh.event_files()?
    } else {
        Vec::new()
    };
    let mut sources: BTreeMap<(i32, NaiveDate), DaySources> = BTreeMap::new();
    let mut stale: Vec<PathBuf> = Vec::new();
    let mut touched: BTreeSet<(i32, NaiveDate)> = BTreeSet::new();
    let starts: BTreeMap<i32, i64> = consumed.iter().map(|c| (c.partition, c.start)).collect();
    for f in files {
        match starts.get(&f.partition) {
            // Written by a run that never committed: not part of the table.
            Some(&start) if f.start_offset >= start => {
                touched.insert((f.partition, f.date));
                stale.push(f.path);
            }
            _ => sources
                .entry((f.partition, f.date))
                .or_default()
                .files
                .push(f.path),
        }
    }

    let mut pending: Vec<(PathBuf, RecordBatch)> = Vec::new();
    // Erased visitor ids, loaded for the dates of the batch only.
    let mut tombstones: BTreeMap<NaiveDate, BTreeSet<String>> = BTreeMap::new();
    for c in consumed {
        report.events_read += c.messages;
        report.invalid += c.invalid;
        let mut by_date: BTreeMap<NaiveDate, Vec<&KafkaEvent>> = BTreeMap::new();
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
        for (date, events) in by_date {
            let src = sources.entry((c.partition, date)).or_default();
            let mut existing_batches = Vec::new();
            for path in &src.files {
                existing_batches.extend(read_parquet(path, Some(&["event_id"]))?);
            }
            let mut seen: FxHashSet<&str> = FxHashSet::default();
            for b in &existing_batches {
                let ids = crate::schema::Cols::new(b).str("event_id")?;
                seen.extend(ids.iter().flatten());
            }
            let mut keep: Vec<KafkaEvent> = Vec::with_capacity(events.len());
            for e in events {
                if seen.insert(e.event.event_id.as_str()) {
                    keep.push(e.clone());
                } else {
                    report.duplicates_dropped += 1;
                }
            }
            if keep.is_empty() {
                continue;
            }
            report.events_written += keep.len() as u64;
            let batch = events_to_batch(&keep)?;
            pending.push((wh.events_path(date, c.partition, c.start), batch.clone()));
            src.new = Some(batch);
            touched.insert((c.partition, date));
        }
    }
    // The next day's visits start from this day's last half hour.
    let next_days: Vec<(i32, NaiveDate)> = touched
        .iter()
        .filter_map(|&(p, d)| d.succ_opt().map(|n| (p, n)))
        .filter(|k| {
            sources
                .get(k)
                .is_some_and(|s| !s.files.is_empty() || s.new.is_some())
        })
        .collect();
    touched.extend(next_days);
    if let Some(r) = retained_from {
        touched.retain(|&(_, d)| d >= r);
    }
    if let Some(own) = own {
        touched.retain(|(p, _)| own.contains(p));
    }

    if !opts.dry_run {
        progress.stage(Stage::Writing);
        wh.sweep_temp_files(own)?;
        for path in &stale {
            if wh.remove_file(path)? {
                report.files_removed += 1;
            }
            opts.check(Checkpoint::StaleRemoved(path.clone()))?;
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
    let load = |key: &(i32, NaiveDate)| -> Result<Vec<RecordBatch>, AggregateError> {
        let mut out = Vec::new();
        if let Some(src) = sources.get(key) {
            for path in &src.files {
                out.extend(read_parquet(path, Some(SUMMARY_COLUMNS))?);
            }
            if let Some(b) = &src.new {
                out.push(b.project(&proj_idx)?);
            }
        }
        Ok(out)
    };
    let total = touched.len();
    let mut dates = BTreeSet::new();
    for (n, &(p, date)) in touched.iter().enumerate() {
        let day = load(&(p, date))?;
        // The previous day's events matter only when there is something to summarise.
        let prev = match date.pred_opt() {
            Some(prev) if day.iter().any(|b| b.num_rows() > 0) => load(&(p, prev))?,
            _ => Vec::new(),
        };
        summarize_partition(wh, date, p, day, prev, opts, report)?;
        dates.insert(date);
        progress.summarized(n + 1, total);
    }
    report.dates_touched = dates.into_iter().collect();
    Ok(())
}

/// Recompute and write the summaries of one (date, partition) from all its
/// events (`day`) plus the previous day's events (`prev`, of which only the
/// last visit timeout counts, for visits crossing midnight). Each file is
/// written atomically; tables left without rows lose their file; a (date,
/// partition) with no events left loses all its summaries.
pub(crate) fn summarize_partition(
    wh: &Warehouse,
    date: NaiveDate,
    p: i32,
    day: Vec<RecordBatch>,
    prev: Vec<RecordBatch>,
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    let summary_paths = |t: Table| wh.summary_path(t, date, p);
    if day.iter().all(|b| b.num_rows() == 0) {
        // No events left for this date and partition: its summaries go too.
        if !opts.dry_run {
            for t in Table::ALL {
                let path = summary_paths(t);
                if wh.remove_file(&path)? {
                    report.files_removed += 1;
                    opts.check(Checkpoint::SummaryRemoved(path))?;
                }
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
        let path = summary_paths(table);
        if batch.num_rows() == 0 {
            if wh.remove_file(&path)? {
                report.files_removed += 1;
                opts.check(Checkpoint::SummaryRemoved(path))?;
            }
            continue;
        }
        let file = wh.write_pending(&path, batch)?;
        opts.check(Checkpoint::TempWritten(path.clone()))?;
        file.persist()?;
        report.files_written += 1;
        opts.check(Checkpoint::Persisted(path))?;
    }
    Ok(())
}

/// Recompute every summary of one date from the events table alone (no Kafka):
/// after a rule change, a restored backup, or to measure the recompute. Takes
/// the exclusive warehouse lock; writes each summary file atomically, as a run does.
pub fn recompute(
    root: &std::path::Path,
    date: NaiveDate,
    summary: &SummaryOptions,
) -> Result<RunReport, AggregateError> {
    let started = Instant::now();
    let wh = Warehouse::new(root);
    let _lock = wh.lock(LockMode::Exclusive)?;
    let files = wh.event_files()?;
    let mut opts = RunOptions::new("", "", root);
    opts.summary = summary.clone();
    let mut report = RunReport::default();
    let targets: BTreeSet<(NaiveDate, i32)> = files
        .iter()
        .filter(|f| f.date == date)
        .map(|f| (f.date, f.partition))
        .collect();
    recompute_locked(&wh, &files, &targets, &opts, &mut report)?;
    report.dates_touched = vec![date];
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Recomputes the summaries of some (date, partition) pairs from `files` (the
/// events table as it is now), under a lock the caller holds. A pair without
/// events loses its summaries. Counts the events read in `report`.
pub(crate) fn recompute_locked(
    wh: &Warehouse,
    files: &[EventFile],
    targets: &BTreeSet<(NaiveDate, i32)>,
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    let read = |d: NaiveDate, p: i32| -> Result<Vec<RecordBatch>, AggregateError> {
        let mut out = Vec::new();
        for f in files.iter().filter(|f| f.date == d && f.partition == p) {
            out.extend(read_parquet(&f.path, Some(SUMMARY_COLUMNS))?);
        }
        Ok(out)
    };
    for &(date, p) in targets {
        let day = read(date, p)?;
        let rows = day.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        report.events_read += rows;
        let prev = match date.pred_opt() {
            Some(prev) if rows > 0 => read(prev, p)?,
            _ => Vec::new(),
        };
        summarize_partition(wh, date, p, day, prev, opts, report)?;
    }
    Ok(())
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

/// The test harness shared by the unit tests of runs and erasures: a topic in
/// memory driving [`complete`] as [`run`] does, and a byte snapshot of a warehouse.
#[cfg(test)]
pub(crate) mod testkit {
    use super::*;
    use crate::testdata;

    /// A topic in memory: the log of each partition and the group's committed offsets.
    #[derive(Clone, Default)]
    pub(crate) struct FakeTopic {
        pub(crate) logs: BTreeMap<i32, Vec<VisitEvent>>,
        pub(crate) committed: BTreeMap<i32, i64>,
    }

    impl FakeTopic {
        pub(crate) fn produce(&mut self, events: &[VisitEvent], partitions: i32) {
            for e in events {
                let p = testdata::partition_of(&e.visitor_id, partitions);
                self.logs.entry(p).or_default().push(e.clone());
            }
        }

        /// One run as `run` does it, with the topic in memory.
        pub(crate) fn run(
            &mut self,
            dir: &std::path::Path,
            opts: &RunOptions,
        ) -> Result<RunReport, AggregateError> {
            let wh = Warehouse::new(dir);
            wh.create()?;
            let _lock = wh.lock(LockMode::Exclusive)?;
            let meta = check_meta(&wh, "visits", true)?;
            let mut avail = Vec::new();
            let mut starts = BTreeMap::new();
            for (&p, log) in &self.logs {
                let start = self.committed.get(&p).copied().unwrap_or(0);
                starts.insert(p, start);
                avail.push((p, log.len() as u64 - start as u64));
            }
            let cut: BTreeMap<i32, u64> = match opts.max_events {
                Some(m) => plan_cut(&avail, m).into_iter().collect(),
                None => avail.into_iter().collect(),
            };
            let consumed: Vec<Consumed> = self
                .logs
                .iter()
                .map(|(&p, log)| {
                    let start = starts[&p];
                    let end = start + cut[&p] as i64;
                    let events: Vec<KafkaEvent> = (start..end)
                        .map(|o| KafkaEvent {
                            partition: p,
                            offset: o,
                            event: log[o as usize].clone(),
                        })
                        .collect();
                    Consumed {
                        partition: p,
                        start,
                        high_watermark: log.len() as i64,
                        end,
                        messages: events.len() as u64,
                        last: (end > start).then_some(end - 1),
                        events,
                        invalid: 0,
                    }
                })
                .collect();
            let committed = &mut self.committed;
            complete(
                &wh,
                meta.as_ref(),
                &consumed,
                opts,
                None,
                &mut NoProgress,
                |offsets| {
                    for &(p, o) in offsets {
                        committed.insert(p, o);
                    }
                    Ok(())
                },
            )
        }
    }

    /// Every file of the warehouse (relative path → bytes), lock and metadata aside.
    pub(crate) fn snapshot(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
        fn walk(root: &std::path::Path, d: &std::path::Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for e in std::fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    if !rel.starts_with(".footfall") && !rel.starts_with(".locks") {
                        out.insert(rel, std::fs::read(&p).unwrap());
                    }
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(dir, dir, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::{snapshot, FakeTopic};
    use super::*;
    use crate::testdata;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn cut_is_water_filled_in_partition_order() {
        assert_eq!(
            plan_cut(&[(0, 10), (1, 10), (2, 10)], 12),
            vec![(0, 4), (1, 4), (2, 4)]
        );
        assert_eq!(
            plan_cut(&[(2, 100), (0, 1), (1, 100)], 10),
            vec![(0, 1), (1, 5), (2, 4)]
        );
        assert_eq!(plan_cut(&[(0, 3), (1, 3)], 100), vec![(0, 3), (1, 3)]);
        assert_eq!(plan_cut(&[(0, 5), (1, 5)], 0), vec![(0, 0), (1, 0)]);
        assert_eq!(
            plan_cut(&[(0, 5), (1, 5), (2, 5)], 4),
            vec![(0, 2), (1, 1), (2, 1)]
        );
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2015, 5, d).unwrap()
    }

    /// Two batches: three days, then late events for the first day plus duplicates.
    fn batches() -> (Vec<VisitEvent>, Vec<VisitEvent>) {
        let first = testdata::events(1, day(15), 3, 8);
        let mut second = testdata::events(2, day(15), 1, 5);
        second.extend(first.iter().step_by(7).cloned()); // re-sent: duplicates
        (first, second)
    }

    fn opts() -> RunOptions {
        RunOptions::new("visits", "g", "unused")
    }

    #[test]
    fn crash_at_sampled_checkpoints_then_rerun_gives_identical_files() {
        let (first, second) = batches();
        let reference = tempfile::tempdir().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut o = opts();
        let log = Arc::clone(&seen);
        o.fault = Some(Arc::new(move |cp: &Checkpoint| {
            log.lock().unwrap().push(cp.clone());
            false
        }));
        let mut topic = FakeTopic::default();
        topic.produce(&first, 3);
        let r1 = topic.run(reference.path(), &o).unwrap();
        topic.produce(&second, 3);
        let r2 = topic.run(reference.path(), &o).unwrap();
        assert_eq!(r1.events_written, first.len() as u64);
        assert_eq!(
            r2.duplicates_dropped,
            first.iter().step_by(7).count() as u64
        );
        assert!(
            r2.dates_touched.contains(&day(15)),
            "late events recompute their date"
        );
        let want = snapshot(reference.path());
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() > 100, "{} checkpoints", seen.len());
        // Every checkpoint that is not a file write, every 3rd events file
        // checkpoint and every 20th summary file checkpoint.
        let crash_points: Vec<usize> = (0..seen.len())
            .filter(|&i| match &seen[i] {
                Checkpoint::TempWritten(p) | Checkpoint::Persisted(p)
                    if p.to_string_lossy().contains("/events/") =>
                {
                    i % 3 == 0
                }
                Checkpoint::TempWritten(_) | Checkpoint::Persisted(_) => i % 20 == 0,
                _ => true,
            })
            .collect();
        assert!(crash_points.len() > 20, "{}", crash_points.len());
        for kind in ["TempWritten", "Persisted", "BeforeCommit", "Committed"] {
            assert!(
                crash_points
                    .iter()
                    .any(|&i| format!("{:?}", seen[i]).starts_with(kind)),
                "no crash at a {kind} checkpoint"
            );
        }

        let mut stale_removed = 0;
        for crash_at in crash_points {
            let dir = tempfile::tempdir().unwrap();
            let counter = Arc::new(AtomicUsize::new(0));
            let c = Arc::clone(&counter);
            let mut crashing = opts();
            crashing.fault = Some(Arc::new(move |_: &Checkpoint| {
                c.fetch_add(1, Ordering::SeqCst) == crash_at
            }));
            let mut topic = FakeTopic::default();
            for batch in [&first, &second] {
                topic.produce(batch, 3);
                match topic.run(dir.path(), &crashing) {
                    Ok(_) => {}
                    Err(AggregateError::Injected(_)) => {
                        stale_removed += topic.run(dir.path(), &opts()).unwrap().files_removed;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            let got = snapshot(dir.path());
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "crash at {crash_at}"
            );
            for (k, v) in &want {
                assert!(got[k] == *v, "crash at {crash_at}: {k} differs");
            }
        }
        assert!(
            stale_removed > 0,
            "re-runs removed the files of crashed runs"
        );
    }

    #[test]
    fn second_run_without_new_data_changes_nothing() {
        let (first, _) = batches();
        let dir = tempfile::tempdir().unwrap();
        let mut topic = FakeTopic::default();
        topic.produce(&first, 2);
        topic.run(dir.path(), &opts()).unwrap();
        let before = snapshot(dir.path());
        let r = topic.run(dir.path(), &opts()).unwrap();
        assert_eq!((r.events_read, r.files_written, r.files_removed), (0, 0, 0));
        assert!(r.dates_touched.is_empty());
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn cut_runs_give_the_same_summaries_as_one_run() {
        let (first, second) = batches();
        let one = tempfile::tempdir().unwrap();
        let mut topic = FakeTopic::default();
        topic.produce(&first, 3);
        topic.produce(&second, 3);
        topic.run(one.path(), &opts()).unwrap();

        let many = tempfile::tempdir().unwrap();
        let mut topic = FakeTopic::default();
        topic.produce(&first, 3);
        topic.produce(&second, 3);
        let mut cut = opts();
        cut.max_events = Some(97);
        let mut runs = 0;
        loop {
            let r = topic.run(many.path(), &cut).unwrap();
            runs += 1;
            assert!(r.events_read <= 97);
            if r.events_read == 0 {
                break;
            }
        }
        let total = first.len() + second.len();
        assert_eq!(runs, total.div_ceil(97) + 1);
        let (a, b) = (snapshot(one.path()), snapshot(many.path()));
        let summaries = |s: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
            s.iter()
                .filter(|(k, _)| !k.starts_with("events/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        assert_eq!(summaries(&a), summaries(&b));
        assert!(
            b.keys().filter(|k| k.starts_with("events/")).count()
                > a.keys().filter(|k| k.starts_with("events/")).count()
        );
    }

    #[test]
    fn dry_run_writes_and_commits_nothing() {
        let (first, _) = batches();
        let dir = tempfile::tempdir().unwrap();
        let wh_dir = dir.path().join("wh");
        let mut topic = FakeTopic::default();
        topic.produce(&first, 2);
        let mut dry = opts();
        dry.dry_run = true;
        // The fake harness creates the directory; a real dry run does not.
        let r = topic.run(&wh_dir, &dry).unwrap();
        assert_eq!(r.events_written, first.len() as u64);
        assert!(r.summary_rows["traffic_daily"] > 0);
        assert!(topic.committed.is_empty());
        assert!(snapshot(&wh_dir).is_empty());
    }

    fn now_has(s: &BTreeMap<String, Vec<u8>>, prefix: &str) -> bool {
        s.keys().any(|k| k.starts_with(prefix))
    }

    #[test]
    fn late_events_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut topic = FakeTopic::default();
        topic.produce(&testdata::events(5, day(15), 3, 10), 2);
        topic.run(dir.path(), &opts()).unwrap();
        let before = snapshot(dir.path());
        let traffic15 = |s: &BTreeMap<String, Vec<u8>>| -> Vec<Vec<u8>> {
            s.iter()
                .filter(|(k, _)| k.starts_with("traffic_daily/date=2015-05-15/"))
                .map(|(_, v)| v.clone())
                .collect()
        };
        // Late events for the 15th, in the middle of the day.
        let mut late = testdata::events(6, day(15), 1, 4);
        late.retain(|e| e.ts.format("%H").to_string().as_str() < "20");
        topic.produce(&late, 2);
        let r = topic.run(dir.path(), &opts()).unwrap();
        assert!(r.dates_touched.contains(&day(15)));
        let after = snapshot(dir.path());
        assert_ne!(traffic15(&before), traffic15(&after));
        // The 17th is not touched at all.
        for (k, v) in &before {
            if k.contains("date=2015-05-17") {
                assert_eq!(&after[k], v, "{k}");
            }
        }
        // Retention keeps 3 days of events (the 16th to the 18th, where the last
        // visits of the 17th end), and all summaries.
        assert!(now_has(&after, "events/date=2015-05-18"));
        let mut keep3 = opts();
        keep3.retention_days = Some(3);
        let r = topic.run(dir.path(), &keep3).unwrap();
        assert_eq!(r.retention_dropped, vec![day(15)]);
        let now = snapshot(dir.path());
        assert!(!now.keys().any(|k| k.starts_with("events/date=2015-05-15")));
        assert!(now.keys().any(|k| k.starts_with("events/date=2015-05-16")));
        assert_eq!(traffic15(&now), traffic15(&after));
        // Events for a dropped date are refused and do not touch its summaries.
        topic.produce(&testdata::events(7, day(15), 1, 3), 2);
        let r = topic.run(dir.path(), &opts()).unwrap();
        assert!(r.expired > 0);
        assert_eq!(r.events_written, 0);
        assert_eq!(traffic15(&snapshot(dir.path())), traffic15(&after));
    }
}
