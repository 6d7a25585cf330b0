//! What a run is asked to do: [`RunOptions`], the options no run can use
//! ([`check_options`]), and the failure-injection points of crash tests
//! ([`Checkpoint`], [`FaultHook`]).
//!
//! Contract: options are plain data; a run reads them and never changes them.
//! [`RunOptions::check`] is the only place an injected failure enters a run or
//! an erasure, and it does nothing unless [`RunOptions::fault`] is set.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;

use crate::error::AggregateError;
use crate::sessions::SummaryOptions;
use crate::warehouse::{LockMode, PendingFile};

/// Where a run can be stopped by an injected failure (see [`RunOptions::fault`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// Every assigned partition has been read up to its cut.
    Consumed,
    /// A file of an uncommitted earlier run has been removed.
    StaleRemoved(PathBuf),
    /// A file is written and fsynced under its temporary name, not yet renamed.
    TempWritten(PathBuf),
    /// A file has been uploaded to the warehouse's replica, not yet renamed
    /// into place locally.
    Published(PathBuf),
    /// A file has been renamed into place.
    Persisted(PathBuf),
    /// A summary file with no rows any more has been removed.
    SummaryRemoved(PathBuf),
    /// A day state's rows are appended to its rows file (named), and its
    /// `.state` file is not written yet.
    RowsWritten(PathBuf),
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
    /// The visits topic to read.
    pub topic: String,
    /// The consumer group whose committed offsets mark what the warehouse holds.
    pub group: String,
    /// The warehouse's root directory (its staging directory when published).
    pub warehouse: PathBuf,
    /// The object store a new warehouse's tables are published to (an
    /// existing warehouse uses the one its metadata records; see
    /// [`Warehouse::open`](crate::Warehouse::open)).
    pub replica: Option<Arc<crate::Replica>>,
    /// Read and compute, write nothing, commit nothing.
    pub dry_run: bool,
    /// Read at most this many messages (offsets), split over the assigned
    /// partitions deterministically (see [`plan_cut`](super::plan_cut)).
    pub max_events: Option<u64>,
    /// Drop event partitions older than this many days before today (see
    /// [`Warehouse::apply_retention`](crate::Warehouse::apply_retention)).
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
    /// Threads that write events files and summaries, one date (or week, or
    /// month) each at a time; each holds that date's working state. Default:
    /// the machine's cores, at most 4.
    pub threads: NonZeroUsize,
    /// Dates of at least this many events are summarised one at a time (with
    /// one more thread decoding ahead), so that two large dates' working
    /// states are never in memory together. Default: 1,000,000.
    pub large_date_events: u64,
    /// Failure injection for crash-recovery tests; `None` in production.
    pub fault: Option<FaultHook>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("warehouse", &self.warehouse)
            .field("replica", &self.replica.as_ref().map(|r| r.url()))
            .field("dry_run", &self.dry_run)
            .field("max_events", &self.max_events)
            .field("retention_days", &self.retention_days)
            .field("today", &self.today)
            .field("lock", &self.lock)
            .field("rebind", &self.rebind)
            .field("summary", &self.summary)
            .field("threads", &self.threads)
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
            replica: None,
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
            threads: NonZeroUsize::new(crate::parallel::default_threads())
                .unwrap_or(NonZeroUsize::MIN),
            large_date_events: 1_000_000,
            fault: None,
        }
    }

    pub(crate) fn check(&self, cp: Checkpoint) -> Result<(), AggregateError> {
        match &self.fault {
            Some(hook) if hook(&cp) => Err(AggregateError::Injected(cp)),
            _ => Ok(()),
        }
    }

    /// Makes `file` visible with a checkpoint between each step a crash can
    /// fall between: written under its temporary name, uploaded to the
    /// replica (when the warehouse has one), renamed into place.
    pub(crate) fn persist(&self, mut file: PendingFile) -> Result<PathBuf, AggregateError> {
        let path = file.path().to_path_buf();
        self.check(Checkpoint::TempWritten(path.clone()))?;
        if file.publish()? {
            self.check(Checkpoint::Published(path.clone()))?;
        }
        file.persist()?;
        self.check(Checkpoint::Persisted(path.clone()))?;
        Ok(path)
    }

    /// The date retention counts back from.
    pub(crate) fn today(&self) -> NaiveDate {
        self.today
            .unwrap_or_else(|| chrono::Utc::now().date_naive())
    }
}

/// Options that no run can use: empty names, a dead-letter topic by its name.
pub(crate) fn check_options(opts: &RunOptions) -> Result<(), AggregateError> {
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
