//! The bounded run: consume up to the start watermarks, write events and
//! summaries durably, then commit offsets.
//!
//! Exactly once, by construction:
//!
//! 1. The run locks the warehouse and checks that it and the consumer group
//!    belong together (see *Binding* below), before joining the group. It then
//!    joins (subscribe) and, for every partition it is assigned, reads the
//!    group's committed offset (the batch's *start offset*) and the high
//!    watermark. It consumes each partition up to that watermark (or the
//!    `max_events` cut), no further. A run assigned no partition, or (exclusive
//!    run) not every partition of the topic, fails with
//!    [`crate::ErrorKind::Unassigned`]: other members of the group hold them.
//! 2. An events file `part-<p>-<start>` *counts* when its run committed, that
//!    is when `start` is below the group's committed offset of `p`. Files of the
//!    run's own partitions at or past its start offset were written by a run
//!    that did not commit: they are removed and their dates recomputed.
//! 3. Events of a visitor id erased for their date (the tombstones written by
//!    [`crate::erase`]) are dropped. New events are de-duplicated by
//!    `event_id`, within the batch (every partition, in partition then offset
//!    order) and against every counting events file of their date, whatever its
//!    partition (only the `event_id` column of that date's files is read), and
//!    written to `events/date=D/part-<partition>-<start offset>.parquet`: a
//!    re-run after a crash starts at the same offsets and writes the same names
//!    and bytes.
//! 4. The summaries of every touched date (and the day after it, whose visits
//!    depend on its last half hour) are recomputed from all the counting events
//!    of that date, every partition together, into one file per table and date.
//! 5. Only when every file is durable are the offsets committed (synchronously),
//!    each to the offset after the last message read (a partition with nothing
//!    new: its start offset again), marked with the warehouse's id
//!    ([`COMMIT_MARK`]).
//!
//! # Shared mode
//!
//! Several runs of one group may share a warehouse ([`LockMode::Shared`]):
//! each holds the warehouse's shared lock and a lock per assigned partition.
//! Because a date's summaries and its de-duplication span every partition, a
//! shared run, once it has read its batch, locks every date it may write (the
//! dates of its batch and of its own uncommitted files, and the next day of
//! each), in ascending order, waiting up to [`RunOptions::lock_wait`] for the
//! run that holds one. Under those locks it reads the group's committed offsets
//! again: another run's file counts only if that run has committed it (an
//! uncommitted file is ignored, and removed by the next run that owns its
//! partition). It keeps the date locks until its own offsets are committed, so
//! no other run de-duplicates or summarises those dates against files that are
//! not yet committed. The result equals one exclusive run's.
//!
//! # Binding
//!
//! The warehouse records its topic, its group and an id ([`WarehouseMeta`]).
//! Unless [`RunOptions::rebind`] is set, a run is refused
//! ([`AggregateError::Binding`]) when the warehouse is bound to another group,
//! when the group's committed offsets carry another warehouse's mark, or when
//! the warehouse is new but the group has already committed offsets for the
//! topic (those events would be missing). A re-bound warehouse takes the
//! group's committed offsets as they are.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use footfall_event::{Reject, VisitEvent, SCHEMA_VERSION};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

use crate::error::AggregateError;
use crate::hash::FxHashSet;
use crate::schema::{
    day_number, events_schema, events_to_batch, local_day, local_time_of_day, Cols, KafkaEvent,
    DAY_US,
};
use crate::sessions::SummaryOptions;
use crate::summaries::{summarize, Table, SUMMARY_COLUMNS};
use crate::warehouse::{
    concat, new_warehouse_id, read_parquet, EventFile, LockMode, PartitionLock, Warehouse,
    WarehouseMeta, LAYOUT_VERSION,
};

/// Prefix of the metadata a run stores with each committed offset; the
/// warehouse id follows. It tells a group's committing warehouse apart.
pub const COMMIT_MARK: &str = "footfall-warehouse=";

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
    /// Drop event partitions older than this many days before today (see
    /// [`Warehouse::apply_retention`]).
    pub retention_days: Option<u32>,
    /// The date retention counts back from; `None`: today's date (UTC) by the clock.
    pub today: Option<NaiveDate>,
    /// Exclusive (default) or shared warehouse lock.
    pub lock: LockMode,
    /// Accept `group` as the warehouse's group, and the group's committed
    /// offsets as they are, whatever the warehouse was bound to (see *Binding*).
    pub rebind: bool,
    /// Visit timeout and privacy threshold.
    pub summary: SummaryOptions,
    /// How long to wait for the group to assign partitions.
    pub assignment_timeout: Duration,
    /// How long to wait without any message while partitions are unfinished.
    pub stall_timeout: Duration,
    /// Timeout of metadata, offset and watermark requests.
    pub request_timeout: Duration,
    /// How long every broker may stay unreachable during a run before it
    /// fails ([`AggregateError::Lost`]); at the start, an unreachable cluster
    /// fails the run at once.
    pub broker_timeout: Duration,
    /// How long a shared run waits for a date that another run holds.
    pub lock_wait: Duration,
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
            .field("today", &self.today)
            .field("lock", &self.lock)
            .field("rebind", &self.rebind)
            .field("summary", &self.summary)
            .field("fault", &self.fault.is_some())
            .finish_non_exhaustive()
    }
}

impl RunOptions {
    /// Options with defaults: exclusive lock, 30 minute visits, k = 3, no cut,
    /// no retention, no re-binding.
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
            today: None,
            lock: LockMode::Exclusive,
            rebind: false,
            summary: SummaryOptions::default(),
            assignment_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            broker_timeout: Duration::from_secs(30),
            lock_wait: Duration::from_secs(600),
            fault: None,
        }
    }

    pub(crate) fn check(&self, cp: Checkpoint) -> Result<(), AggregateError> {
        match &self.fault {
            Some(hook) if hook(&cp) => Err(AggregateError::Injected(cp)),
            _ => Ok(()),
        }
    }

    /// The date retention counts back from.
    fn today(&self) -> NaiveDate {
        self.today
            .unwrap_or_else(|| chrono::Utc::now().date_naive())
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
    /// Summaries of one more date are done, out of `total`.
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
    /// Offset committed by this run: the end of what it read, or the start
    /// offset again when it read nothing (none in a dry run).
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

/// A partition's committed offset in the group, and the metadata its committer
/// stored with it (footfall stores [`COMMIT_MARK`] and the warehouse id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Committed {
    pub(crate) offset: i64,
    pub(crate) mark: String,
}

/// The consumer group as a run sees it once it has read its batch.
pub(crate) trait Group {
    /// The group's committed offset of every partition of the topic that has one.
    fn committed(&mut self) -> Result<BTreeMap<i32, i64>, AggregateError>;
    /// Commits each (partition, next offset to read), with the warehouse's mark.
    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<(), AggregateError>;
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

/// A rebalance, as the poll loop acts on it.
struct RebalanceEvent {
    assign: bool,
    partitions: Vec<i32>,
    /// A revocation because the membership was lost (session timeout, fatal error).
    lost: bool,
}

/// Records rebalances for the poll loop to act on.
struct Ctx {
    topic: String,
    events: Mutex<Vec<RebalanceEvent>>,
}

impl Ctx {
    fn record(&self, assign: bool, tpl: &TopicPartitionList, lost: bool) {
        let partitions = tpl
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect();
        self.events
            .lock()
            .expect("rebalance log")
            .push(RebalanceEvent {
                assign,
                partitions,
                lost,
            });
    }

    fn take(&self) -> Vec<RebalanceEvent> {
        std::mem::take(&mut *self.events.lock().expect("rebalance log"))
    }
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.record(false, tpl, consumer.assignment_lost());
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => self.record(true, tpl, false),
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

/// The consumer's side of [`Group`].
struct KafkaGroup<'a> {
    consumer: &'a BaseConsumer<Ctx>,
    opts: &'a RunOptions,
    partitions: Vec<i32>,
    mark: String,
}

impl Group for KafkaGroup<'_> {
    fn committed(&mut self) -> Result<BTreeMap<i32, i64>, AggregateError> {
        let all = fetch_committed(
            self.consumer,
            &self.opts.topic,
            &self.partitions,
            self.opts.request_timeout,
        )?;
        Ok(all.into_iter().map(|(p, c)| (p, c.offset)).collect())
    }

    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<(), AggregateError> {
        let mut tpl = TopicPartitionList::new();
        for &(p, o) in offsets {
            let mut e = tpl.add_partition(&self.opts.topic, p);
            e.set_offset(Offset::Offset(o))
                .map_err(AggregateError::kafka("commit"))?;
            e.set_metadata(&self.mark);
        }
        let timeout = self.opts.request_timeout;
        while_coordinator_moves(timeout, || self.consumer.commit(&tpl, CommitMode::Sync))
            .map_err(AggregateError::kafka("commit"))
    }
}

/// Retries `op` while the group coordinator is still being elected or has
/// just moved (a new group on a fresh cluster, a broker restart), up to
/// `timeout`; any other error, or the last one, is returned as it is.
fn while_coordinator_moves<T>(
    timeout: Duration,
    mut op: impl FnMut() -> Result<T, KafkaError>,
) -> Result<T, KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        match op() {
            Err(e) if coordinator_moving(&e) && Instant::now() < deadline => {
                tracing::debug!(error = %e, "group coordinator not ready; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

fn coordinator_moving(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::CoordinatorLoadInProgress
        )
    )
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
    check_options(opts)?;
    let wh = Warehouse::new(&opts.warehouse);
    if !opts.dry_run {
        wh.create()?;
    }
    let _lock = if wh.exists() {
        Some(wh.lock(opts.lock)?)
    } else {
        None
    };
    read_meta(&wh, &opts.topic)?;
    let consumer = consumer(client, opts)?;
    let partitions = topic_partitions(&consumer, opts)?;
    let committed = fetch_committed(&consumer, &opts.topic, &partitions, opts.request_timeout)?;
    let meta = open_warehouse(&wh, opts, &committed)?;

    progress.stage(Stage::Joining);
    consumer
        .subscribe(&[&opts.topic])
        .map_err(AggregateError::kafka("subscribe"))?;
    let parts = consume(&consumer, &wh, opts, &partitions, progress)?;
    tracing::info!(
        partitions = parts.len(),
        messages = parts.values().map(|p| p.c.messages).sum::<u64>(),
        "read every assigned partition up to its end"
    );
    opts.check(Checkpoint::Consumed)?;

    let mut partition_locks = Vec::new();
    let consumed: Vec<Consumed> = parts
        .into_values()
        .map(|p| {
            partition_locks.push(p._lock);
            p.c
        })
        .collect();
    let mut all: BTreeSet<i32> = partitions.into_iter().collect();
    all.extend(consumed.iter().map(|c| c.partition));
    let mut group = KafkaGroup {
        consumer: &consumer,
        opts,
        partitions: all.into_iter().collect(),
        mark: commit_mark(meta.as_ref()),
    };
    let mut report = complete(&wh, meta.as_ref(), &consumed, opts, &mut group, progress)?;
    // Partition locks go before the group is left, so that the next owner can take them.
    drop(partition_locks);
    drop(consumer);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Options that no run can use: empty names, a dead-letter topic by its name.
fn check_options(opts: &RunOptions) -> Result<(), AggregateError> {
    if opts.topic.is_empty() || opts.group.is_empty() {
        return Err(AggregateError::Config(
            "topic and group must not be empty".into(),
        ));
    }
    if opts.topic.ends_with(".dlq") {
        return Err(AggregateError::DeadLetterTopic {
            topic: opts.topic.clone(),
            why: "its name ends in .dlq".into(),
        });
    }
    Ok(())
}

/// The consumer of a run: the group, no auto commit, partition EOF events.
fn consumer(client: &ClientConfig, opts: &RunOptions) -> Result<BaseConsumer<Ctx>, AggregateError> {
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
    cfg.create_with_context(ctx)
        .map_err(AggregateError::kafka("create consumer"))
}

/// The topic's partitions, from the cluster's metadata. An unreachable
/// cluster fails at once ([`AggregateError::Lost`]); a missing topic is a
/// configuration error.
fn topic_partitions(
    consumer: &BaseConsumer<Ctx>,
    opts: &RunOptions,
) -> Result<Vec<i32>, AggregateError> {
    let started = Instant::now();
    let step = opts.request_timeout.min(Duration::from_secs(1));
    let md = loop {
        match consumer.fetch_metadata(Some(&opts.topic), step) {
            Ok(md) => break md,
            Err(e) if started.elapsed() >= opts.request_timeout => {
                return Err(AggregateError::kafka("fetch metadata")(e))
            }
            Err(e) => {
                tracing::debug!(error = %e, "no metadata yet");
                if let Some(down) = brokers_down(consumer) {
                    return Err(AggregateError::Lost(format!(
                        "no broker is reachable ({down})"
                    )));
                }
            }
        }
    };
    let topic = md
        .topics()
        .iter()
        .find(|t| t.name() == opts.topic && t.error().is_none());
    match topic {
        Some(t) if !t.partitions().is_empty() => {
            let mut ps: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            ps.sort_unstable();
            Ok(ps)
        }
        _ => Err(AggregateError::Config(format!(
            "topic {} does not exist",
            opts.topic
        ))),
    }
}

/// Drains the consumer's queued errors (before subscribing: no messages);
/// returns librdkafka's words when every broker is down.
fn brokers_down(consumer: &BaseConsumer<Ctx>) -> Option<String> {
    let mut down = None;
    while let Some(res) = consumer.poll(Duration::ZERO) {
        if let Err(e @ KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown)) = res {
            down = Some(e.to_string());
        }
    }
    down
}

/// The group's committed offsets (and marks) of the given partitions; those
/// without a committed offset are absent.
fn fetch_committed(
    consumer: &BaseConsumer<Ctx>,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<BTreeMap<i32, Committed>, AggregateError> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition(topic, p);
    }
    let got = while_coordinator_moves(timeout, || consumer.committed_offsets(tpl.clone(), timeout))
        .map_err(AggregateError::kafka("fetch committed offsets"))?;
    Ok(got
        .elements_for_topic(topic)
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((
                e.partition(),
                Committed {
                    offset,
                    mark: e.metadata().to_string(),
                },
            )),
            _ => None,
        })
        .collect())
}

/// The metadata a run commits its offsets with.
fn commit_mark(meta: Option<&WarehouseMeta>) -> String {
    format!(
        "{COMMIT_MARK}{}",
        meta.and_then(|m| m.id.as_deref()).unwrap_or_default()
    )
}

/// Reads the warehouse's metadata and refuses one this build cannot write or
/// that holds another topic.
pub(crate) fn read_meta(
    wh: &Warehouse,
    topic: &str,
) -> Result<Option<WarehouseMeta>, AggregateError> {
    checked_meta(wh, wh.read_meta()?, topic)
}

fn checked_meta(
    wh: &Warehouse,
    meta: Option<WarehouseMeta>,
    topic: &str,
) -> Result<Option<WarehouseMeta>, AggregateError> {
    match meta {
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
        other => Ok(other),
    }
}

/// Checks that the warehouse and the group belong together (unless
/// `opts.rebind`), upgrades a layout 1 warehouse, and records the binding
/// (under the metadata's lock: runs sharing a new warehouse agree on its id).
/// Returns the metadata the run works with (`None`: a dry run of a new warehouse).
pub(crate) fn open_warehouse(
    wh: &Warehouse,
    opts: &RunOptions,
    committed: &BTreeMap<i32, Committed>,
) -> Result<Option<WarehouseMeta>, AggregateError> {
    if opts.dry_run {
        let meta = read_meta(wh, &opts.topic)?;
        if !opts.rebind {
            check_binding(wh, meta.as_ref(), opts, committed)?;
        }
        return Ok(meta);
    }
    wh.update_meta(|meta| {
        let meta = checked_meta(wh, meta, &opts.topic)?;
        if !opts.rebind {
            check_binding(wh, meta.as_ref(), opts, committed)?;
        }
        let mut bound = meta.clone().unwrap_or_else(|| WarehouseMeta {
            format: LAYOUT_VERSION,
            id: None,
            topic: opts.topic.clone(),
            group: None,
            retained_from: None,
        });
        bound.id.get_or_insert_with(new_warehouse_id);
        bound.group = Some(opts.group.clone());
        if meta.as_ref().is_some_and(|m| m.group != bound.group) && opts.rebind {
            tracing::warn!(group = %opts.group, "the warehouse is re-bound to this group");
        }
        if bound.format < LAYOUT_VERSION {
            if opts.lock == LockMode::Shared {
                return Err(AggregateError::Config(format!(
                    "warehouse {} has layout version {}: run one aggregate without --shared to upgrade it",
                    wh.root().display(),
                    bound.format
                )));
            }
            upgrade_layout(wh, opts)?;
            bound.format = LAYOUT_VERSION;
        }
        Ok(Some(bound))
    })
}

/// The refusals of *Binding* (module docs).
fn check_binding(
    wh: &Warehouse,
    meta: Option<&WarehouseMeta>,
    opts: &RunOptions,
    committed: &BTreeMap<i32, Committed>,
) -> Result<(), AggregateError> {
    let (root, group, topic) = (wh.root().display(), &opts.group, &opts.topic);
    if let Some(bound) = meta.and_then(|m| m.group.as_ref()) {
        if bound != group {
            return Err(AggregateError::Binding(format!(
                "warehouse {root} is bound to consumer group {bound}, not {group}"
            )));
        }
    }
    let own = meta.and_then(|m| m.id.as_deref());
    let foreign: Vec<i32> = committed
        .iter()
        .filter(|(_, c)| {
            c.mark
                .strip_prefix(COMMIT_MARK)
                .is_some_and(|id| Some(id) != own)
        })
        .map(|(&p, _)| p)
        .collect();
    if !foreign.is_empty() {
        return Err(AggregateError::Binding(format!(
            "group {group} has read topic {topic} into another warehouse (its offsets of partitions {foreign:?} \
             carry another warehouse's mark): two warehouses on one group each get only part of the events"
        )));
    }
    if meta.is_none() && !committed.is_empty() {
        let ps: Vec<i32> = committed.keys().copied().collect();
        return Err(AggregateError::Binding(format!(
            "warehouse {root} is new, but group {group} has already read topic {topic} \
             (committed offsets on partitions {ps:?}): the events before them would be missing"
        )));
    }
    Ok(())
}

/// Brings a layout 1 warehouse (one summary file per date and partition) to
/// the current layout, under the exclusive lock: every date that still has
/// events gets its summaries recomputed into one file per table, then loses
/// its per-partition files; dates whose events retention has dropped keep
/// their per-partition files (their sums stay right; nothing can recompute
/// them). A crash in between is finished by the next run.
pub(crate) fn upgrade_layout(wh: &Warehouse, opts: &RunOptions) -> Result<(), AggregateError> {
    let old = wh.v1_summary_files()?;
    if old.is_empty() {
        return Ok(());
    }
    let files = wh.event_files()?;
    let with_events: BTreeSet<NaiveDate> = files.iter().map(|f| f.date).collect();
    let dates: BTreeSet<NaiveDate> = old
        .iter()
        .map(|(d, _)| *d)
        .filter(|d| with_events.contains(d))
        .collect();
    tracing::info!(
        dates = dates.len(),
        "upgrading the warehouse's summaries to one file per date"
    );
    let mut report = RunReport::default();
    recompute_locked(wh, &files, &dates, opts, &mut report)?;
    for (date, path) in old {
        if dates.contains(&date) {
            wh.remove_file(&path)?;
        }
    }
    Ok(())
}

/// Joins the group's assignment and reads every assigned partition up to its
/// cut. Fails when the group gives the run no partition (or, exclusive, not
/// all of `partitions`), when the membership or every broker is lost, or when
/// nothing arrives for too long.
fn consume(
    consumer: &BaseConsumer<Ctx>,
    wh: &Warehouse,
    opts: &RunOptions,
    partitions: &[i32],
    progress: &mut dyn Progress,
) -> Result<BTreeMap<i32, Part>, AggregateError> {
    let mut state = Loop {
        parts: BTreeMap::new(),
        assigned: false,
        waiting_since: Instant::now(),
        last_activity: Instant::now(),
        down_since: None,
        read_total: 0,
    };
    loop {
        state.apply_rebalances(consumer, wh, opts, progress)?;
        if state.assigned {
            state.check_assignment(consumer, opts, partitions)?;
            if state.parts.values().all(|p| p.done) {
                return Ok(state.parts);
            }
        }
        state.check_timeouts(opts)?;
        let Some(res) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        // A rebalance served inside this poll must be applied before its messages.
        state.apply_rebalances(consumer, wh, opts, progress)?;
        match res {
            Ok(msg) => state.message(consumer, opts, &msg, progress)?,
            Err(KafkaError::PartitionEOF(p)) => {
                state.alive();
                if let Some(part) = state.parts.get_mut(&p) {
                    finish(consumer, &opts.topic, part);
                }
            }
            Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown)) => {
                tracing::warn!("every broker is down");
                state.down_since.get_or_insert_with(Instant::now);
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
                    RDKafkaErrorCode::TopicAuthorizationFailed
                        | RDKafkaErrorCode::GroupAuthorizationFailed
                        | RDKafkaErrorCode::UnknownTopicOrPartition
                        | RDKafkaErrorCode::UnknownTopic
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
}

/// The state of the poll loop.
struct Loop {
    parts: BTreeMap<i32, Part>,
    /// The run holds an assignment (none while an eager rebalance is under way).
    assigned: bool,
    /// Since when the run has been waiting for an assignment.
    waiting_since: Instant,
    last_activity: Instant,
    /// Since when every broker has been down (cleared by any sign of life).
    down_since: Option<Instant>,
    read_total: u64,
}

impl Loop {
    /// The cluster answered.
    fn alive(&mut self) {
        self.last_activity = Instant::now();
        self.down_since = None;
    }

    fn check_timeouts(&self, opts: &RunOptions) -> Result<(), AggregateError> {
        if let Some(since) = self.down_since {
            if since.elapsed() > opts.broker_timeout {
                return Err(AggregateError::Lost(format!(
                    "every broker has been unreachable for {:?}",
                    opts.broker_timeout
                )));
            }
        }
        if !self.assigned && self.waiting_since.elapsed() > opts.assignment_timeout {
            return Err(AggregateError::Timeout(format!(
                "no partitions of {} assigned to group {} within {:?}",
                opts.topic, opts.group, opts.assignment_timeout
            )));
        }
        if self.assigned && self.last_activity.elapsed() > opts.stall_timeout {
            let waiting: Vec<String> = self
                .parts
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
        Ok(())
    }

    /// Applies the rebalances recorded during the last poll.
    fn apply_rebalances(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        wh: &Warehouse,
        opts: &RunOptions,
        progress: &mut dyn Progress,
    ) -> Result<(), AggregateError> {
        let events = consumer.context().take();
        if events.is_empty() {
            return Ok(());
        }
        self.alive();
        let eager = !matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        for ev in &events {
            if ev.assign {
                on_assign(consumer, wh, opts, &ev.partitions, &mut self.parts)?;
                self.assigned = true;
                progress.stage(Stage::Consuming);
                progress.planned(
                    self.parts
                        .values()
                        .map(|p| (p.c.end - p.c.start) as u64)
                        .sum(),
                );
                tracing::info!(partitions = ?ev.partitions, "partitions assigned");
                continue;
            }
            if ev.lost {
                return Err(AggregateError::Lost(format!(
                    "the group's session ended and partitions {:?} were revoked",
                    ev.partitions
                )));
            }
            for p in &ev.partitions {
                self.parts.remove(p);
            }
            tracing::info!(partitions = ?ev.partitions, "partitions revoked");
            if eager {
                // An eager rebalance revokes everything, then assigns anew.
                self.assigned = false;
                self.waiting_since = Instant::now();
            }
        }
        Ok(())
    }

    /// An assignment the run cannot work with: none, or (exclusive) not every
    /// partition. Under the cooperative protocol assignments grow step by
    /// step, so only the assignment timeout decides.
    fn check_assignment(
        &self,
        consumer: &BaseConsumer<Ctx>,
        opts: &RunOptions,
        partitions: &[i32],
    ) -> Result<(), AggregateError> {
        let eager = !matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let missing: Vec<i32> = match opts.lock {
            LockMode::Exclusive => partitions
                .iter()
                .copied()
                .filter(|p| !self.parts.contains_key(p))
                .collect(),
            LockMode::Shared if self.parts.is_empty() => partitions.to_vec(),
            LockMode::Shared => Vec::new(),
        };
        let patient = !eager && self.waiting_since.elapsed() <= opts.assignment_timeout;
        if missing.is_empty() || patient {
            return Ok(());
        }
        Err(AggregateError::Unassigned {
            topic: opts.topic.clone(),
            group: opts.group.clone(),
            what: if self.parts.is_empty() {
                "no partition".into()
            } else {
                format!(
                    "partitions {:?}, not all",
                    self.parts.keys().collect::<Vec<_>>()
                )
            },
            held: format!("partitions {missing:?}"),
        })
    }

    /// One message of an assigned partition.
    fn message(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        opts: &RunOptions,
        msg: &rdkafka::message::BorrowedMessage<'_>,
        progress: &mut dyn Progress,
    ) -> Result<(), AggregateError> {
        self.alive();
        if msg.topic() != opts.topic {
            return Ok(());
        }
        let Some(part) = self.parts.get_mut(&msg.partition()) else {
            return Ok(());
        };
        let o = msg.offset();
        if part.done || o < part.c.start {
            return Ok(());
        }
        if o >= part.c.end {
            finish(consumer, &opts.topic, part);
            return Ok(());
        }
        decode(opts, part, o, msg.payload())?;
        part.c.messages += 1;
        part.c.last = Some(o);
        self.read_total += 1;
        progress.consumed(self.read_total);
        if o + 1 >= part.c.end {
            finish(consumer, &opts.topic, part);
        }
        Ok(())
    }
}

/// Decodes one message into the partition's events, or counts it invalid. A
/// newer schema version stops the run; so does a dead letter (the input is the
/// dead-letter topic).
fn decode(
    opts: &RunOptions,
    part: &mut Part,
    offset: i64,
    payload: Option<&[u8]>,
) -> Result<(), AggregateError> {
    let p = part.c.partition;
    let Some(payload) = payload else {
        tracing::warn!(partition = p, offset, "skipping a message without a value");
        part.c.invalid += 1;
        return Ok(());
    };
    match serde_json::from_slice::<VisitEvent>(payload) {
        Ok(ev) if ev.v > SCHEMA_VERSION => Err(AggregateError::UnsupportedSchema {
            partition: p,
            offset,
            version: ev.v,
            supported: SCHEMA_VERSION,
        }),
        Ok(event) => {
            part.c.events.push(KafkaEvent {
                partition: p,
                offset,
                event,
            });
            Ok(())
        }
        Err(_) if serde_json::from_slice::<Reject>(payload).is_ok() => {
            Err(AggregateError::DeadLetterTopic {
                topic: opts.topic.clone(),
                why: format!("partition {p} offset {offset} holds a dead letter (a rejected line)"),
            })
        }
        Err(e) => {
            tracing::warn!(partition = p, offset, error = %e, "skipping a message that is not a visit event");
            part.c.invalid += 1;
            Ok(())
        }
    }
}

/// Everything after consuming: files, summaries, commit (through `group`), retention.
pub(crate) fn complete(
    wh: &Warehouse,
    meta: Option<&WarehouseMeta>,
    consumed: &[Consumed],
    opts: &RunOptions,
    group: &mut dyn Group,
    progress: &mut dyn Progress,
) -> Result<RunReport, AggregateError> {
    let mut report = RunReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let shared = opts.lock == LockMode::Shared;
    // Shared: the dates this run may write are its alone until it has
    // committed; under their locks, learn what the other runs have committed.
    let date_locks = if shared && !opts.dry_run {
        wh.lock_dates(&dates_to_lock(wh, consumed)?, opts.lock_wait)?
    } else {
        Vec::new()
    };
    let others = if shared {
        Some(group.committed()?)
    } else {
        None
    };
    let meta = match shared {
        true if wh.exists() => wh.read_meta()?,
        _ => meta.cloned(),
    };
    process(
        wh,
        meta.as_ref(),
        consumed,
        opts,
        others.as_ref(),
        progress,
        &mut report,
    )?;
    // Only now is every file durable: commit the offset after the last message
    // read (or the start offset again, so that every partition the run holds
    // carries this warehouse's mark).
    let offsets: Vec<(i32, i64)> = consumed
        .iter()
        .map(|c| (c.partition, c.last.map_or(c.start, |l| l + 1)))
        .collect();
    if !opts.dry_run {
        opts.check(Checkpoint::BeforeCommit)?;
        if !offsets.is_empty() {
            progress.stage(Stage::Committing);
            group.commit(&offsets)?;
            tracing::info!(offsets = ?offsets, "offsets committed");
        }
        opts.check(Checkpoint::Committed)?;
    }
    drop(date_locks);
    for c in consumed {
        report.partitions.push(PartitionReport {
            partition: c.partition,
            start_offset: c.start,
            high_watermark: c.high_watermark,
            end_offset: c.end,
            messages: c.messages,
            committed: (!opts.dry_run).then(|| c.last.map_or(c.start, |l| l + 1)),
        });
    }
    if let (Some(days), false) = (opts.retention_days, opts.dry_run) {
        progress.stage(Stage::Retention);
        let own: BTreeSet<i32> = consumed.iter().map(|c| c.partition).collect();
        report.retention_dropped =
            wh.apply_retention(days, opts.today(), shared.then_some(&own), opts.lock_wait)?;
    }
    Ok(report)
}

/// Every date a run may write: those of its events, those of its own
/// uncommitted files, and the day after each.
fn dates_to_lock(
    wh: &Warehouse,
    consumed: &[Consumed],
) -> Result<BTreeSet<NaiveDate>, AggregateError> {
    let starts: BTreeMap<i32, i64> = consumed.iter().map(|c| (c.partition, c.start)).collect();
    let mut dates: BTreeSet<NaiveDate> = consumed
        .iter()
        .flat_map(|c| c.events.iter().map(|e| e.event.local_date()))
        .collect();
    if wh.exists() {
        dates.extend(
            wh.event_files()?
                .into_iter()
                .filter(|f| {
                    starts
                        .get(&f.partition)
                        .is_some_and(|&s| f.start_offset >= s)
                })
                .map(|f| f.date),
        );
    }
    let next: Vec<NaiveDate> = dates.iter().filter_map(|d| d.succ_opt()).collect();
    dates.extend(next);
    Ok(dates)
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
    let committed = fetch_committed(consumer, &opts.topic, &new, opts.request_timeout)?;
    let mut fresh = Vec::new();
    for &p in &new {
        let lock = match opts.lock {
            LockMode::Shared if !opts.dry_run => Some(wh.lock_partition(p)?),
            _ => None,
        };
        let (low, high) = consumer
            .fetch_watermarks(&opts.topic, p, opts.request_timeout)
            .map_err(AggregateError::kafka("fetch watermarks"))?;
        let start = match committed.get(&p).map(|c| c.offset) {
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
        let path = wh.summary_path(table, date);
        if batch.num_rows() == 0 {
            remove_summary(wh, path, opts, report)?;
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

/// Upgrades a layout 1 warehouse (see [`upgrade_layout`]) for the writers that
/// work without Kafka (recompute, erase), and records the new layout version.
pub(crate) fn upgrade_meta(wh: &Warehouse, opts: &RunOptions) -> Result<(), AggregateError> {
    match wh.read_meta()? {
        Some(mut meta) if meta.format < LAYOUT_VERSION => {
            upgrade_layout(wh, opts)?;
            meta.format = LAYOUT_VERSION;
            wh.write_meta(&meta)
        }
        _ => Ok(()),
    }
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

    /// A topic in memory: the log of each partition, the group's committed
    /// offsets and the marks committed with them.
    #[derive(Clone, Default)]
    pub(crate) struct FakeTopic {
        pub(crate) logs: BTreeMap<i32, Vec<VisitEvent>>,
        pub(crate) committed: BTreeMap<i32, i64>,
        pub(crate) marks: BTreeMap<i32, String>,
    }

    /// The group of a [`FakeTopic`].
    struct FakeGroup<'a> {
        committed: &'a mut BTreeMap<i32, i64>,
        marks: &'a mut BTreeMap<i32, String>,
        mark: String,
    }

    impl Group for FakeGroup<'_> {
        fn committed(&mut self) -> Result<BTreeMap<i32, i64>, AggregateError> {
            Ok(self.committed.clone())
        }

        fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<(), AggregateError> {
            for &(p, o) in offsets {
                self.committed.insert(p, o);
                self.marks.insert(p, self.mark.clone());
            }
            Ok(())
        }
    }

    impl FakeTopic {
        /// Produces each event to its visitor's partition among `partitions`.
        pub(crate) fn produce(&mut self, events: &[VisitEvent], partitions: i32) {
            for e in events {
                let p = testdata::partition_of(&e.visitor_id, partitions);
                self.logs.entry(p).or_default().push(e.clone());
            }
        }

        /// Produces events to one partition, whatever their key.
        pub(crate) fn produce_to(&mut self, partition: i32, events: &[VisitEvent]) {
            self.logs
                .entry(partition)
                .or_default()
                .extend(events.iter().cloned());
        }

        /// One run as `run` does it, with the topic in memory.
        pub(crate) fn run(
            &mut self,
            dir: &std::path::Path,
            opts: &RunOptions,
        ) -> Result<RunReport, AggregateError> {
            self.run_owning(dir, opts, None)
        }

        /// One run assigned only the partitions `own` (every partition: `None`),
        /// as a member of a shared group is.
        pub(crate) fn run_owning(
            &mut self,
            dir: &std::path::Path,
            opts: &RunOptions,
            own: Option<&BTreeSet<i32>>,
        ) -> Result<RunReport, AggregateError> {
            let wh = Warehouse::new(dir);
            wh.create()?;
            let _lock = wh.lock(opts.lock)?;
            let committed: BTreeMap<i32, Committed> = self
                .committed
                .iter()
                .map(|(&p, &offset)| {
                    let mark = self.marks.get(&p).cloned().unwrap_or_default();
                    (p, Committed { offset, mark })
                })
                .collect();
            let meta = open_warehouse(&wh, opts, &committed)?;
            let mine: Vec<i32> = self
                .logs
                .keys()
                .copied()
                .filter(|p| own.is_none_or(|o| o.contains(p)))
                .collect();
            let _partition_locks = match opts.lock {
                LockMode::Shared => mine
                    .iter()
                    .map(|&p| wh.lock_partition(p))
                    .collect::<Result<Vec<_>, _>>()?,
                LockMode::Exclusive => Vec::new(),
            };
            let mut avail = Vec::new();
            let mut starts = BTreeMap::new();
            for &p in &mine {
                let start = self.committed.get(&p).copied().unwrap_or(0);
                starts.insert(p, start);
                avail.push((p, self.logs[&p].len() as u64 - start as u64));
            }
            let cut: BTreeMap<i32, u64> = match opts.max_events {
                Some(m) => plan_cut(&avail, m).into_iter().collect(),
                None => avail.into_iter().collect(),
            };
            let consumed: Vec<Consumed> = mine
                .iter()
                .map(|&p| {
                    let log = &self.logs[&p];
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
            let mut group = FakeGroup {
                committed: &mut self.committed,
                marks: &mut self.marks,
                mark: commit_mark(meta.as_ref()),
            };
            complete(
                &wh,
                meta.as_ref(),
                &consumed,
                opts,
                &mut group,
                &mut NoProgress,
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
        crash_then_rerun(3, 3);
    }

    /// The partitions go from 3 to 4 between the batches: the second batch's
    /// re-sent duplicates and its visitors of the first days land in other
    /// partitions than before.
    #[test]
    fn crash_after_a_partition_increase_then_rerun_gives_identical_files() {
        crash_then_rerun(3, 4);
    }

    /// Two runs (the batches over `p1`, then `p2` partitions), with a crash at
    /// sampled checkpoints of either followed by a re-run, give the files of
    /// the two runs without a crash, byte for byte.
    fn crash_then_rerun(p1: i32, p2: i32) {
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
        topic.produce(&first, p1);
        let r1 = topic.run(reference.path(), &o).unwrap();
        topic.produce(&second, p2);
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
            for (batch, partitions) in [(&first, p1), (&second, p2)] {
                topic.produce(batch, partitions);
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
        keep3.today = Some(day(18));
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

    /// The summary files of a snapshot.
    fn summary_files(s: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
        s.iter()
            .filter(|(k, _)| !k.starts_with("events/") && !k.starts_with("_erasure"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every event of the warehouse's events table.
    fn stored_events(dir: &std::path::Path) -> Vec<KafkaEvent> {
        let mut out = Vec::new();
        for f in Warehouse::new(dir).event_files().unwrap() {
            for b in read_parquet(&f.path, None).unwrap() {
                out.extend(crate::schema::batch_to_events(&b).unwrap());
            }
        }
        out
    }

    /// The rows of one summary table of one date.
    fn table_of(dir: &std::path::Path, table: Table, date: NaiveDate) -> RecordBatch {
        let path = Warehouse::new(dir).summary_path(table, date);
        let batches = read_parquet(&path, None).unwrap();
        concat(&batches[0].schema(), &batches).unwrap()
    }

    fn strs(b: &RecordBatch, col: &str) -> Vec<String> {
        let a = Cols::new(b).str(col).unwrap();
        a.iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect()
    }

    fn i64s(b: &RecordBatch, col: &str) -> Vec<i64> {
        Cols::new(b).i64(col).unwrap().values().to_vec()
    }

    #[test]
    fn an_event_resent_into_another_partition_is_counted_once() {
        let events = testdata::events(51, day(15), 2, 10);
        let once = tempfile::tempdir().unwrap();
        let mut reference = FakeTopic::default();
        reference.produce(&events, 2);
        reference.run(once.path(), &opts()).unwrap();

        // After a partition increase, re-sent events land in partitions 2 and 3:
        // in the same batch as the originals, and in a later one.
        let dir = tempfile::tempdir().unwrap();
        let mut topic = FakeTopic::default();
        topic.produce(&events, 2);
        let resent: Vec<VisitEvent> = events.iter().step_by(5).cloned().collect();
        topic.produce_to(2, &resent);
        let r = topic.run(dir.path(), &opts()).unwrap();
        assert_eq!(r.duplicates_dropped, resent.len() as u64);
        assert_eq!(r.events_written, events.len() as u64);
        topic.produce_to(3, &resent);
        let r = topic.run(dir.path(), &opts()).unwrap();
        assert_eq!(
            (r.duplicates_dropped, r.events_written, r.files_written),
            (resent.len() as u64, 0, 0)
        );
        // Each event once, from the partition it was first read from: the
        // warehouse is the one of each event sent once.
        let stored = stored_events(dir.path());
        assert_eq!(stored.len(), events.len());
        assert!(stored.iter().all(|e| e.partition < 2));
        assert_eq!(snapshot(dir.path()), snapshot(once.path()));
    }

    #[test]
    fn a_visitor_split_across_partitions_is_one_visitor() {
        let events = testdata::events(52, day(15), 2, 12);
        let whole = tempfile::tempdir().unwrap();
        let mut one = FakeTopic::default();
        one.produce(&events, 1);
        one.run(whole.path(), &opts()).unwrap();

        // Every visitor's events spread over three partitions.
        let split = tempfile::tempdir().unwrap();
        let mut three = FakeTopic::default();
        for (i, e) in events.iter().enumerate() {
            three.produce_to(i as i32 % 3, std::slice::from_ref(e));
        }
        three.run(split.path(), &opts()).unwrap();
        let (a, b) = (snapshot(whole.path()), snapshot(split.path()));
        assert!(summary_files(&a).len() > 20);
        assert_eq!(summary_files(&a), summary_files(&b));

        // And the visitor counts are the events' distinct visitors.
        for d in [day(15), day(16)] {
            let t = table_of(split.path(), Table::TrafficDaily, d);
            let mut want = Vec::new();
            for site in strs(&t, "site") {
                let visitors: BTreeSet<&str> = events
                    .iter()
                    .filter(|e| e.local_date() == d && e.site == site && e.is_visitor_request())
                    .map(|e| e.visitor_id.as_str())
                    .collect();
                want.push(visitors.len() as i64);
            }
            assert_eq!(i64s(&t, "visitors"), want, "{d}");
        }
    }

    #[test]
    fn rare_values_are_hidden_per_day_across_partitions() {
        use crate::summaries::tests::ev;
        let search = |visitor: String, terms: &str, campaign: Option<&str>| {
            let mut e = ev(&visitor, "2015-05-17T10:00:00", "/search", 200, true);
            e.site_search = Some(terms.into());
            if let Some(c) = campaign {
                e.utm_source = Some("news".into());
                e.utm_campaign = Some(c.into());
            }
            e
        };
        // 7 visitors search "shoes" (3 of them from the spring campaign), 2
        // search "hats" (1 from a campaign of their own).
        let mut events: Vec<VisitEvent> = (0..7)
            .map(|i| search(format!("S{i}"), "shoes", (i < 3).then_some("spring")))
            .collect();
        events.push(search("H0".into(), "hats", Some("solo")));
        events.push(search("H1".into(), "hats", None));
        // Spread over three partitions: no partition has 3 visitors of a term.
        let mut topic = FakeTopic::default();
        for (i, e) in events.iter().enumerate() {
            topic.produce_to(i as i32 % 3, std::slice::from_ref(e));
        }
        let dir = tempfile::tempdir().unwrap();
        topic.run(dir.path(), &opts()).unwrap();
        let d = NaiveDate::from_ymd_opt(2015, 5, 17).unwrap();

        let terms = table_of(dir.path(), Table::SearchTermsDaily, d);
        assert_eq!(strs(&terms, "terms"), vec![crate::OTHER, "shoes"]);
        assert_eq!(i64s(&terms, "searches"), vec![2, 7]);
        assert_eq!(i64s(&terms, "visitors"), vec![2, 7]);
        let campaigns = table_of(dir.path(), Table::CampaignsDaily, d);
        assert_eq!(strs(&campaigns, "utm_source"), vec!["news", "news"]);
        assert_eq!(
            strs(&campaigns, "utm_campaign"),
            vec![crate::OTHER, "spring"]
        );
        assert_eq!(i64s(&campaigns, "visits"), vec![1, 3]);
        // The tables still add up to the events table.
        let traffic = table_of(dir.path(), Table::TrafficDaily, d);
        let stored = stored_events(dir.path());
        assert_eq!(i64s(&traffic, "requests"), vec![stored.len() as i64]);
        assert_eq!(i64s(&traffic, "visitors"), vec![9]);
        assert_eq!(i64s(&traffic, "visits"), vec![9]);
        let searched = stored
            .iter()
            .filter(|e| e.event.site_search.is_some())
            .count() as i64;
        assert_eq!(i64s(&terms, "searches").iter().sum::<i64>(), searched);
        let with_campaign = stored
            .iter()
            .filter(|e| e.event.utm_campaign.is_some())
            .count() as i64;
        assert_eq!(
            i64s(&campaigns, "visits").iter().sum::<i64>(),
            with_campaign
        );
    }

    #[test]
    fn shared_runs_count_only_committed_files() {
        let events = testdata::events(53, day(15), 2, 12);
        let resent: Vec<VisitEvent> = events
            .iter()
            .filter(|e| testdata::partition_of(&e.visitor_id, 2) == 0)
            .take(5)
            .cloned()
            .collect();
        let produce = |topic: &mut FakeTopic| {
            topic.produce(&events, 2);
            topic.produce_to(1, &resent);
        };
        let single = tempfile::tempdir().unwrap();
        let mut reference = FakeTopic::default();
        produce(&mut reference);
        reference.run(single.path(), &opts()).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let mut topic = FakeTopic::default();
        produce(&mut topic);
        let mut shared = opts();
        shared.lock = LockMode::Shared;
        let (p0, p1) = (BTreeSet::from([0]), BTreeSet::from([1]));
        // The owner of partition 0 writes its files, then dies before committing.
        let mut crashing = shared.clone();
        crashing.fault = Some(Arc::new(|cp: &Checkpoint| *cp == Checkpoint::BeforeCommit));
        let err = topic
            .run_owning(dir.path(), &crashing, Some(&p0))
            .unwrap_err();
        assert!(matches!(err, AggregateError::Injected(_)), "{err}");
        assert!(topic.committed.is_empty());
        // The owner of partition 1 ignores them: it keeps its copies of the
        // re-sent events and summarises partition 1's events only.
        let r = topic.run_owning(dir.path(), &shared, Some(&p1)).unwrap();
        assert_eq!(r.duplicates_dropped, 0);
        let requests: i64 = r
            .dates_touched
            .iter()
            .map(|&d| i64s(&table_of(dir.path(), Table::TrafficDaily, d), "requests"))
            .flat_map(|v| v.into_iter())
            .sum();
        assert_eq!(requests, topic.logs[&1].len() as i64);
        // Partition 0's owner again: its uncommitted files go, its copies of
        // what partition 1 committed are dropped, and the summaries are those
        // of one exclusive run.
        let r = topic.run_owning(dir.path(), &shared, Some(&p0)).unwrap();
        assert_eq!(r.duplicates_dropped, resent.len() as u64);
        assert!(r.files_removed > 0);
        let stored = stored_events(dir.path());
        let ids: BTreeSet<&str> = stored.iter().map(|e| e.event.event_id.as_str()).collect();
        assert_eq!((stored.len(), ids.len()), (events.len(), events.len()));
        assert_eq!(
            summary_files(&snapshot(dir.path())),
            summary_files(&snapshot(single.path()))
        );
    }

    #[test]
    fn warehouse_and_group_are_bound_together() {
        let mut topic = FakeTopic::default();
        topic.produce(&testdata::events(54, day(15), 1, 5), 2);
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        topic.run(a.path(), &opts()).unwrap();
        let meta = Warehouse::new(a.path()).read_meta().unwrap().unwrap();
        assert_eq!(meta.group.as_deref(), Some("g"));
        let id = meta.id.clone().unwrap();
        assert_eq!(topic.marks.len(), 2);
        assert!(topic
            .marks
            .values()
            .all(|m| *m == format!("{COMMIT_MARK}{id}")));
        let binding = |r: Result<RunReport, AggregateError>, says: &str| {
            let err = r.unwrap_err();
            assert!(matches!(err, AggregateError::Binding(_)), "{err}");
            assert_eq!(err.kind(), crate::ErrorKind::Config);
            assert!(err.to_string().contains(says), "{err}");
        };
        // Another group on the warehouse.
        let mut h = opts();
        h.group = "h".into();
        binding(topic.clone().run(a.path(), &h), "bound to consumer group g");
        // Another warehouse on the group: its offsets carry the first one's mark.
        binding(topic.clone().run(b.path(), &opts()), "another warehouse");
        assert!(Warehouse::new(b.path()).read_meta().unwrap().is_none());
        // A new warehouse on a group that read the topic before marks existed.
        let mut unmarked = topic.clone();
        unmarked.marks.clear();
        binding(unmarked.clone().run(b.path(), &opts()), "is new");
        // A warehouse made before binding existed binds on its next run.
        let old = Warehouse::new(a.path());
        old.write_meta(&WarehouseMeta {
            id: None,
            group: None,
            ..meta.clone()
        })
        .unwrap();
        unmarked.produce(&testdata::events(55, day(16), 1, 3), 2);
        unmarked.run(a.path(), &opts()).unwrap();
        let rebound = old.read_meta().unwrap().unwrap();
        assert_eq!(rebound.group.as_deref(), Some("g"));
        assert!(rebound.id.is_some_and(|i| i != id));
        // Re-binding on purpose: the second warehouse takes the group as it is
        // and marks its commits; the first one is then refused.
        let mut rebind = opts();
        rebind.rebind = true;
        let r = unmarked.run(b.path(), &rebind).unwrap();
        assert_eq!(
            r.events_read, 0,
            "the group's offsets are taken as they are"
        );
        unmarked.produce(&testdata::events(56, day(17), 1, 3), 2);
        unmarked.run(b.path(), &opts()).unwrap();
        binding(unmarked.clone().run(a.path(), &opts()), "another warehouse");
        h.rebind = true;
        topic.run(a.path(), &h).unwrap();
        assert_eq!(
            old.read_meta().unwrap().unwrap().group.as_deref(),
            Some("h")
        );
    }

    #[test]
    fn a_layout_1_warehouse_is_upgraded_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut topic = FakeTopic::default();
        topic.produce(&testdata::events(57, day(15), 3, 8), 2);
        topic.run(dir.path(), &opts()).unwrap();
        let want = snapshot(dir.path());
        // Layout 1: one summary file per date and partition, and a date whose
        // events retention has already dropped.
        let wh = Warehouse::new(dir.path());
        let dates: BTreeSet<NaiveDate> = wh.event_files().unwrap().iter().map(|f| f.date).collect();
        for &d in &dates {
            for (_, path) in wh.summary_files(d) {
                std::fs::copy(&path, path.with_file_name("part-1.parquet")).unwrap();
                std::fs::rename(&path, path.with_file_name("part-0.parquet")).unwrap();
            }
        }
        let gone = dir.path().join("traffic_daily/date=2015-05-01");
        std::fs::create_dir_all(&gone).unwrap();
        std::fs::write(gone.join("part-0.parquet"), b"old").unwrap();
        let mut meta = wh.read_meta().unwrap().unwrap();
        meta.format = 1;
        wh.write_meta(&meta).unwrap();
        assert!(wh.v1_summary_files().unwrap().len() > 40);

        let r = topic.run(dir.path(), &opts()).unwrap();
        assert_eq!(r.events_read, 0);
        let mut expect = want;
        expect.insert(
            "traffic_daily/date=2015-05-01/part-0.parquet".into(),
            b"old".to_vec(),
        );
        assert_eq!(snapshot(dir.path()), expect);
        assert_eq!(wh.read_meta().unwrap().unwrap().format, LAYOUT_VERSION);
    }

    #[test]
    fn retention_counts_back_from_today_not_from_the_newest_date() {
        let today = chrono::Utc::now().date_naive();
        let back = |n: i64| today - chrono::Duration::days(n);
        let mut topic = FakeTopic::default();
        // Old days, yesterday, today, and one line from a clock a year ahead.
        for (seed, d) in [(61, back(10)), (62, back(3)), (63, back(1)), (64, today)] {
            topic.produce(&testdata::events(seed, d, 1, 3), 2);
        }
        let mut future = testdata::events(65, today, 1, 1);
        future.truncate(1);
        future[0].ts += chrono::Duration::days(365);
        future[0].event_id.push_str("-future");
        topic.produce(&future, 2);
        let dir = tempfile::tempdir().unwrap();
        let mut keep2 = opts();
        keep2.retention_days = Some(2);
        let r = topic.run(dir.path(), &keep2).unwrap();
        assert!(r.retention_dropped.contains(&back(10)));
        assert!(r.retention_dropped.contains(&back(3)));
        let left: BTreeSet<NaiveDate> = Warehouse::new(dir.path())
            .event_files()
            .unwrap()
            .iter()
            .map(|f| f.date)
            .collect();
        assert!(left.iter().all(|&d| d >= back(1)), "{left:?}");
        for d in [back(1), today, future[0].local_date()] {
            assert!(left.contains(&d), "{d} kept: {left:?}");
        }
        let meta = Warehouse::new(dir.path()).read_meta().unwrap().unwrap();
        assert_eq!(meta.retained_from, Some(back(1)));
        // Events of a dropped date are refused from then on.
        topic.produce(&testdata::events(66, back(3), 1, 1), 2);
        let r = topic.run(dir.path(), &keep2).unwrap();
        assert!(r.expired > 0 && r.events_written == 0, "{r}");
    }

    #[test]
    fn a_dead_letter_topic_is_refused() {
        let mut named = opts();
        named.topic = "footfall.visits.dlq".into();
        let err = check_options(&named).unwrap_err();
        assert!(
            matches!(err, AggregateError::DeadLetterTopic { .. }),
            "{err}"
        );
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        // By content: a message that is a dead letter stops the run.
        let reject = Reject {
            v: SCHEMA_VERSION,
            event_id: "e".into(),
            source: "access.log".into(),
            offset: 0,
            kind: footfall_event::RejectKind::Malformed,
            reason: "no request line".into(),
            line: "garbage".into(),
            truncated: false,
        };
        let mut part = Part {
            c: Consumed::default(),
            done: false,
            _lock: None,
        };
        let payload = serde_json::to_vec(&reject).unwrap();
        let err = decode(&opts(), &mut part, 7, Some(&payload)).unwrap_err();
        assert!(
            err.to_string().contains("offset 7 holds a dead letter"),
            "{err}"
        );
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        // Anything else that is not an event is skipped as invalid.
        decode(&opts(), &mut part, 8, Some(b"not a visit event")).unwrap();
        assert_eq!((part.c.invalid, part.c.events.len()), (1, 0));
    }
}
