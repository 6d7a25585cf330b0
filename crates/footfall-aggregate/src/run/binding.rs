//! The warehouse's metadata as a run sees it: which topic it holds, which
//! group it is bound to, and its layout version.
//!
//! Contract (*Binding* in the run's docs): a warehouse of another topic, or of
//! a layout newer than this build, is refused; unless
//! [`RunOptions::rebind`], so is a warehouse bound to another group, a group
//! whose offsets carry another warehouse's mark, and a new warehouse on a
//! group that has already committed. The binding is recorded under the
//! metadata's lock, so runs sharing a new warehouse agree on its id. A layout
//! 1 warehouse is upgraded under the exclusive lock ([`upgrade_layout`]) and a
//! crash in the middle is finished by the next writer.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::group::Committed;
use super::recompute::recompute_locked;
use super::{RunOptions, RunReport, COMMIT_MARK};
use crate::error::AggregateError;
use crate::warehouse::{
    new_warehouse_id, LockMode, SummarySettings, Warehouse, WarehouseMeta, LAYOUT_VERSION,
};

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
/// (under the metadata's lock: runs sharing a new warehouse agree on its id),
/// after making sure a replica holds the metadata and erasure records.
/// Returns the metadata the run works with (`None`: a dry run of a new warehouse).
pub(crate) fn open_warehouse(
    wh: &Warehouse,
    opts: &RunOptions,
    committed: &BTreeMap<i32, Committed>,
) -> Result<Option<WarehouseMeta>, AggregateError> {
    if opts.dry_run {
        wh.check_publisher()?;
        let meta = read_meta(wh, &opts.topic)?;
        if meta.is_none() {
            refuse_a_used_replica(wh)?;
        }
        if !opts.rebind {
            check_binding(wh, meta.as_ref(), opts, committed)?;
        }
        return Ok(meta);
    }
    // Before the metadata changes: a replica holding this directory's
    // metadata holds its erasure records too (and a superseded directory
    // is refused).
    wh.publish_records()?;
    let meta = wh.update_meta(|meta| {
        let meta = checked_meta(wh, meta, &opts.topic)?;
        if meta.is_none() {
            refuse_a_used_replica(wh)?;
        }
        if !opts.rebind {
            check_binding(wh, meta.as_ref(), opts, committed)?;
        }
        let mut bound = meta.clone().unwrap_or_else(|| WarehouseMeta {
            format: LAYOUT_VERSION,
            id: None,
            topic: opts.topic.clone(),
            group: None,
            retained_from: None,
            replica: wh.replica().map(|r| r.url().to_string()),
            staging: None,
            summary: None,
        });
        bound.id.get_or_insert_with(new_warehouse_id);
        if bound.replica.is_some() {
            bound.staging.get_or_insert_with(new_warehouse_id);
        }
        record_settings(&mut bound, opts);
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
    })?;
    Ok(meta)
}

/// Records the run's summary settings (erasures use them), saying so when
/// they differ from the last run's: only the dates a run touches are
/// summarised with its settings.
fn record_settings(meta: &mut WarehouseMeta, opts: &RunOptions) {
    let now = SummarySettings::of(&opts.summary);
    match meta.summary.replace(now.clone()) {
        Some(before) if before != now => tracing::warn!(
            "the summary settings changed from the last run's ({before}) to {now}: the dates this run \
             touches are summarised with the new ones, the others keep theirs until \
             `footfall aggregate --recompute DATE`"
        ),
        _ => {}
    }
}

/// A new warehouse is not published where objects already are (another
/// staging directory's, or a copy): its runs would mix with theirs. A
/// published warehouse is restored instead (`warehouse/restore.rs`).
fn refuse_a_used_replica(wh: &Warehouse) -> Result<(), AggregateError> {
    let Some(r) = wh.replica() else {
        return Ok(());
    };
    if r.is_empty()? {
        return Ok(());
    }
    let (url, staging) = (r.url(), wh.root().display());
    Err(AggregateError::Config(match r.holds_warehouse()? {
        true => format!(
            "{url} holds a published warehouse, and staging directory {staging} is new: \
             restore it there with `footfall aggregate --restore` (or use the staging directory that published it)"
        ),
        false => format!(
            "{url} already holds objects, and staging directory {staging} is new: one staging directory per \
             object-store warehouse (use the one that published them, or another prefix)"
        ),
    }))
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

/// Brings an older warehouse to the current layout, under the exclusive
/// lock: every date that still has events gets its summaries recomputed (one
/// file per table; layout 3's `audience` and `bot_reason` columns), and a
/// layout 1 date loses its per-partition files. Dates whose events retention
/// has dropped keep their files as they are (their sums stay right; nothing
/// can recompute them). A crash in between is finished by the next run.
pub(crate) fn upgrade_layout(wh: &Warehouse, opts: &RunOptions) -> Result<(), AggregateError> {
    let old = wh.v1_summary_files()?;
    let files = wh.event_files()?;
    let dates: BTreeSet<NaiveDate> = files.iter().map(|f| f.date).collect();
    tracing::info!(
        dates = dates.len(),
        "upgrading the warehouse's summaries to layout {LAYOUT_VERSION}"
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
