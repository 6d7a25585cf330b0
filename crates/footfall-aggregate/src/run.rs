//! The bounded run: consume up to the start watermarks, write events and
//! summaries durably, then commit offsets.
//!
//! Exactly once, by construction:
//!
//! 1. The run locks the warehouse and checks that it and the consumer group
//!    belong together (see *Binding* below), before joining the group. It then
//!    takes its partitions (an exclusive run of a group with no active member
//!    assigns itself every partition; any other joins the group, see `group`)
//!    and, for every partition it holds, reads the
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
//!
//! # Modules
//!
//! [`run`] and [`complete`] (this file) put the phases in order; each phase
//! lives in a module of its own, whose docs state its part of the contract:
//!
//! * `options`: [`RunOptions`], the options no run can use, [`Checkpoint`]s;
//! * `report`: [`Progress`] and [`RunReport`];
//! * `group`: the consumer, the group's committed offsets, the commit and its
//!   mark ([`COMMIT_MARK`]);
//! * `binding`: the warehouse's metadata, *Binding*, the layout upgrade;
//! * `consume`: reading every assigned partition up to its end ([`plan_cut`]);
//! * `decoder`: decoding what is read on a thread beside the poll loop;
//! * `spill`: the batch on local disk, per partition and date, so that a
//!   run's memory does not grow with its size;
//! * `write`: which files count, de-duplication, the new events files;
//! * `recompute`: the summaries of one date ([`recompute`]).

mod binding;
mod consume;
mod decoder;
mod group;
mod kept;
mod options;
mod recompute;
mod report;
mod seen;
mod spill;
mod write;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::NaiveDate;
use rdkafka::config::ClientConfig;

pub use consume::plan_cut;
pub use group::COMMIT_MARK;
pub use options::{Checkpoint, FaultHook, RunOptions};
pub use recompute::recompute;
pub use report::{NoProgress, PartitionReport, Progress, RunReport, Stage};

pub(crate) use binding::{open_warehouse, read_meta, upgrade_meta};
pub(crate) use consume::Consumed;
pub(crate) use recompute::{normalise, put_file, recompute_locked};
#[cfg(test)]
pub(crate) use seen::tests::assert_id_indexes_exact;

use consume::consume;
use group::{
    close, commit_mark, consumer, fetch_committed, take_partitions, topic_partitions, Group,
    KafkaGroup,
};
use options::check_options;
use write::process;

use crate::error::AggregateError;
use crate::warehouse::{LockMode, Warehouse, WarehouseMeta};

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
    let wh = Warehouse::open(&opts.warehouse, opts.replica.clone())?;
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
    let membership = take_partitions(client, &consumer, opts, &partitions)?;
    let parts = consume(
        &consumer,
        &wh,
        opts,
        &partitions,
        membership,
        committed,
        progress,
    )?;
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
        membership,
        partitions: all.into_iter().collect(),
        mark: commit_mark(meta.as_ref()),
    };
    let mut report = complete(&wh, meta.as_ref(), &consumed, opts, &mut group, progress)?;
    // The spill directories go while their partitions are still locked: the
    // next owner of a partition empties and fills the same directory.
    drop(consumed);
    // Partition locks go before the group is left, so that the next owner can take them.
    drop(partition_locks);
    close(&consumer, opts.request_timeout);
    drop(consumer);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
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
        progress.committed();
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
        report.retention_dropped = retention(wh, consumed, opts, days)?;
    }
    Ok(report)
}

/// The last phase: drops the events of dates older than `days` before today
/// (a shared run: only in its own partitions' files); returns the dates dropped.
fn retention(
    wh: &Warehouse,
    consumed: &[Consumed],
    opts: &RunOptions,
    days: u32,
) -> Result<Vec<NaiveDate>, AggregateError> {
    let own: BTreeSet<i32> = consumed.iter().map(|c| c.partition).collect();
    let shared = opts.lock == LockMode::Shared;
    wh.apply_retention(days, opts.today(), shared.then_some(&own), opts.lock_wait)
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
        .flat_map(|c| c.spill.dates().keys().copied())
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
