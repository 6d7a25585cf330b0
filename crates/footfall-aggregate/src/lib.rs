//! footfall aggregate: a bounded, exactly-once batch from the Kafka visits topic
//! to a Parquet warehouse.
//!
//! A [`run`] joins a consumer group, reads every assigned partition from the
//! group's committed offset up to the high watermark noted at the start (or a
//! [`RunOptions::max_events`] cut), and then:
//!
//! * appends the new events, de-duplicated by `event_id`, to the events table
//!   (`DIR/events/date=YYYY-MM-DD/part-<partition>-<start offset>.parquet`,
//!   schema in [`events_schema`]);
//! * recomputes the summary tables ([`Table`]) of every (date, partition) it
//!   touched from that date's full events ([`summarize`], visits from
//!   [`Sessionizer`]), one file per date and partition
//!   (`DIR/<table>/date=YYYY-MM-DD/part-<partition>.parquet`);
//! * commits the offsets only once every file is durable.
//!
//! [`erase`] removes one person's events from the warehouse (and from the
//! summaries), records tombstones so that later runs drop them, and [`lookup`]
//! lists them for review (see [`erase`] for the contract).
//!
//! A crash at any point followed by a re-run gives the same files, byte for
//! byte. The [`Warehouse`] is locked for the run (a second run fails at once
//! with [`ErrorKind::Locked`]). `docs/tables.md` describes every table and column.
//!
//! ```no_run
//! use footfall_aggregate::{run, NoProgress, RunOptions};
//! use rdkafka::ClientConfig;
//!
//! let mut client = ClientConfig::new();
//! client.set("bootstrap.servers", "127.0.0.1:9092");
//! let mut opts = RunOptions::new("footfall.visits", "footfall-aggregate", "/var/lib/footfall/wh");
//! opts.retention_days = Some(90);
//! match run(&client, &opts, &mut NoProgress) {
//!     Ok(report) => println!("{report}"),
//!     Err(e) if e.kind() == footfall_aggregate::ErrorKind::Locked => std::process::exit(75),
//!     Err(e) => panic!("{e}"),
//! }
//! ```

mod erase;
mod error;
mod hash;
mod run;
mod schema;
mod sessions;
mod summaries;
mod warehouse;

#[cfg(test)]
mod testdata;

pub use erase::{erase, lookup, EraseReport};
pub use error::{AggregateError, ErrorKind};
pub use run::{
    plan_cut, recompute, run, Checkpoint, FaultHook, NoProgress, PartitionReport, Progress,
    RunOptions, RunReport, Stage,
};
pub use schema::{batch_to_events, events_schema, events_to_batch, KafkaEvent};
pub use sessions::{CampaignKey, Sessionizer, SummaryOptions};
pub use summaries::{
    summarize, Summaries, Table, ENTRANCE, EXIT, LATENCY_COLUMNS, OTHER, STATUS_COLUMNS,
    SUMMARY_COLUMNS,
};
pub use warehouse::{
    read_parquet, writer_properties, EventFile, LockMode, PartitionLock, PendingFile, Warehouse,
    WarehouseLock, WarehouseMeta, ERASURE_DIR, EVENTS_DIR, LAYOUT_VERSION, LEDGER_FILE, LOCK_FILE,
    META_FILE,
};
