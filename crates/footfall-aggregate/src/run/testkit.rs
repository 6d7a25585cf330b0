//! The test harness shared by the unit tests of runs and erasures: a topic in
//! memory driving [`complete`] as [`super::run`] does (warehouse snapshots
//! come from `footfall_testkit`).

use std::collections::{BTreeMap, BTreeSet};

use footfall_event::VisitEvent;

use super::consume::spill_root;
use super::group::{commit_mark, Committed, Group};
use super::spill::Spill;
use super::{complete, open_warehouse, plan_cut, Consumed, NoProgress, RunOptions, RunReport};
use crate::error::AggregateError;
use crate::schema::KafkaEvent;
use crate::testdata;
use crate::warehouse::{LockMode, Warehouse};

/// A topic in memory: the log of each partition, the group's committed
/// offsets and the marks committed with them.
#[derive(Clone, Default)]
pub(crate) struct FakeTopic {
    pub(crate) logs: BTreeMap<i32, Vec<VisitEvent>>,
    pub(crate) committed: BTreeMap<i32, i64>,
    pub(crate) marks: BTreeMap<i32, String>,
    /// Spill every this many events of a partition (0: once, at the end).
    pub(crate) spill_every: i64,
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
        let wh = Warehouse::open(dir, opts.replica.clone())?;
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
                let mut spill =
                    Spill::new(Spill::dir_of(&spill_root(&wh, opts), p)).expect("spill directory");
                let mut held = Vec::new();
                for o in start..end {
                    held.push(KafkaEvent {
                        partition: p,
                        offset: o,
                        event: log[o as usize].clone(),
                    });
                    if self.spill_every > 0 && (o - start + 1) % self.spill_every == 0 {
                        spill.push_events(&std::mem::take(&mut held)).expect("push");
                        spill.flush().expect("spill");
                    }
                }
                spill.push_events(&held).expect("push");
                spill.flush().expect("spill");
                Consumed {
                    partition: p,
                    start,
                    high_watermark: log.len() as i64,
                    end,
                    messages: (end - start) as u64,
                    last: (end > start).then_some(end - 1),
                    spill,
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
