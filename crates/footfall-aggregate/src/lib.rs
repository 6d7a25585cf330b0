#![warn(missing_docs)]
//! footfall aggregate: a bounded, exactly-once batch from the Kafka visits topic
//! to a Parquet warehouse.
//!
//! A [`run`] checks that the warehouse and the consumer group belong together
//! (the warehouse records its topic and group, and marks the group's commits
//! with its id: another group, or another warehouse on the group, is
//! [`AggregateError::Binding`] unless [`RunOptions::rebind`]), joins the group,
//! reads every assigned partition from the group's committed offset up to the
//! high watermark noted at the start (or a [`RunOptions::max_events`] cut),
//! spilling what it reads to local disk (so its memory grows with its largest
//! date, not with its size), and then:
//!
//! * appends the new events to the events table
//!   (`DIR/events/date=YYYY-MM-DD/part-<partition>-<start offset>.parquet`,
//!   schema in [`events_schema`]), de-duplicated by `event_id` against the
//!   batch and every events file of the same date, whatever its partition;
//! * recomputes the summary tables ([`Table`]) of every date it touched from
//!   all that date's events, every partition together ([`summarize`], visits
//!   from [`Sessionizer`]): one file per table and date
//!   (`DIR/<table>/date=YYYY-MM-DD/day.parquet`), exact for the day (distinct
//!   visitors, rare values folded below [`SummaryOptions::min_visitors`]);
//! * does both a date at a time on up to [`RunOptions::threads`] threads;
//! * commits the offsets only once every file is durable;
//! * drops the events of dates older than [`RunOptions::retention_days`]
//!   before today.
//!
//! A warehouse may publish its tables to an object store ([`Replica`]:
//! `s3://`, `gs://`, `az://`): every table file is uploaded (or deleted) there
//! before the same change is made in the local, staging directory, which keeps
//! the locks and state (`src/warehouse/replica.rs` states the contract).
//!
//! [`erase`] removes one person's events from the warehouse (and from the
//! summaries), records tombstones so that later runs drop them, and [`lookup`]
//! lists them for review (see [`erase`] for the contract).
//!
//! A crash at any point followed by a re-run gives the same files, byte for
//! byte. The [`Warehouse`] is locked for the run (a second run fails at once
//! with [`ErrorKind::Locked`]); runs of one group may share it
//! ([`LockMode::Shared`]: each locks its partitions and, while it writes, its
//! dates). A run that the group assigns no partition (or, exclusive, not all),
//! or whose group gains a member while it reads without having joined (an
//! exclusive run of an empty group), fails with [`ErrorKind::Unassigned`]; a
//! broker lost during the run with
//! [`ErrorKind::Kafka`]. `docs/tables.md` describes every table and column;
//! `src/run.rs` states the run's contract in full.
//!
//! ```no_run
//! use footfall_aggregate::{run, ErrorKind, NoProgress, RunOptions};
//! use rdkafka::ClientConfig;
//!
//! let mut client = ClientConfig::new();
//! client.set("bootstrap.servers", "127.0.0.1:9092");
//! let mut opts = RunOptions::new("footfall.visits", "footfall-aggregate", "/var/lib/footfall/wh");
//! opts.retention_days = Some(90);
//! match run(&client, &opts, &mut NoProgress) {
//!     Ok(report) => println!("{report}"),
//!     // Another run holds the warehouse, or other group members the partitions: later.
//!     Err(e) if matches!(e.kind(), ErrorKind::Locked | ErrorKind::Unassigned) => {
//!         std::process::exit(75)
//!     }
//!     Err(e) => panic!("{e}"),
//! }
//! ```

mod bots;
mod erase;
mod error;
mod hash;
mod parallel;
mod periods;
mod run;
mod schema;
mod sessions;
mod summaries;
mod warehouse;

#[cfg(test)]
mod testdata;

pub use bots::{BotRules, AUDIENCES, BOT_REASONS};
pub use erase::{erase, lookup, EraseReport};
pub use error::{AggregateError, ErrorKind};
pub use periods::Period;
pub use run::{
    plan_cut, recompute, run, Checkpoint, FaultHook, NoProgress, PartitionReport, Progress,
    RunOptions, RunReport, Stage, COMMIT_MARK,
};
pub use schema::{batch_to_events, events_schema, events_to_batch, KafkaEvent};
pub use sessions::{CampaignKey, Sessionizer, SummaryOptions};
pub use summaries::{
    summarize, Summaries, Table, ENTRANCE, EXIT, LATENCY_COLUMNS, OTHER, STATUS_COLUMNS,
    SUMMARY_COLUMNS,
};
pub use warehouse::{
    is_store_url, read_parquet, writer_properties, DateLock, EventFile, LockMode, PartitionLock,
    PendingFile, PeriodLock, Replica, Restored, SummarySettings, Warehouse, WarehouseLock,
    WarehouseMeta, ERASURE_DIR, EVENTS_DIR, LAYOUT_VERSION, LEDGER_FILE, LOCK_FILE, META_FILE,
    META_OBJECT, SUMMARY_FILE,
};
