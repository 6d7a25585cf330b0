//! Reading the batch: taking on each assigned partition (the group's
//! assignment, or the run's own, see [`Membership`]), noting its start offset
//! and high watermark, splitting a `max_events` cut ([`plan_cut`]), and
//! polling every partition up to its end.
//!
//! Contract: a partition is read from the group's committed offset (the low
//! watermark when it has none or when its messages were deleted) up to the
//! high watermark noted at its assignment, or its share of the cut, and no
//! further; it is paused once finished. Every message is decoded into a
//! [`KafkaEvent`](crate::schema::KafkaEvent) or counted invalid; a newer
//! schema version or a dead letter stops the run. Decoded events go to the partition's spill ([`Spill`]),
//! so the run holds at most [`SPILL_EVENTS`] of them in memory. The read fails when the group gives the run no partition
//! (or, exclusive, not all), when the membership is lost, when every broker is
//! unreachable for longer than [`RunOptions::broker_timeout`], or when nothing
//! arrives for [`RunOptions::stall_timeout`]. Nothing is written here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use footfall_event::SCHEMA_VERSION;
use rdkafka::consumer::{BaseConsumer, Consumer, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::decoder::{Decoded, DecodedChunk, Decoder};
use super::group::{fetch_committed, Committed, Ctx, Membership};
use super::spill::{Spill, SPILL_EVENTS};
use super::{Progress, RunOptions, Stage};
use crate::error::AggregateError;
use crate::warehouse::{LockMode, PartitionLock, Warehouse};

/// Messages read between two progress reports.
const PROGRESS_EVERY: u64 = 1024;
/// Polls between two timeout checks while messages arrive (every poll when
/// none do).
const CHECK_EVERY: u32 = 256;

/// One partition's messages, read in a run.
#[derive(Debug, Default)]
pub(crate) struct Consumed {
    pub(crate) partition: i32,
    pub(crate) start: i64,
    pub(crate) high_watermark: i64,
    pub(crate) end: i64,
    pub(crate) spill: Spill,
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

pub(crate) struct Part {
    pub(crate) c: Consumed,
    pub(crate) done: bool,
    pub(crate) _lock: Option<PartitionLock>,
}

/// Joins the group's assignment and reads every assigned partition up to its
/// cut. `committed` holds the group's committed offsets as the run fetched
/// them before taking its partitions: an [`Membership::Assigned`] run starts
/// from them; a member of the group fetches them again when they are assigned
/// (another member may have committed since). Fails when the group gives the
/// run no partition (or, exclusive, not all of `partitions`), when the
/// membership or every broker is lost, or when nothing arrives for too long.
pub(crate) fn consume(
    consumer: &BaseConsumer<Ctx>,
    wh: &Warehouse,
    opts: &RunOptions,
    partitions: &[i32],
    membership: Membership,
    committed: BTreeMap<i32, Committed>,
    progress: &mut dyn Progress,
) -> Result<BTreeMap<i32, Part>, AggregateError> {
    let mut state = Loop {
        membership,
        known: (membership == Membership::Assigned).then_some(committed),
        parts: BTreeMap::new(),
        assigned: false,
        waiting_since: Instant::now(),
        last_activity: Instant::now(),
        down_since: None,
        read_total: 0,
        buffered: 0,
        eager: true,
        decoder: Decoder::start()?,
        heard: false,
        polls: 0,
    };
    loop {
        state.apply_rebalances(consumer, wh, opts, progress)?;
        if state.assigned {
            let whole = state.check_assignment(opts, partitions)?;
            if whole && state.parts.values().all(|p| p.done) {
                state.drain(opts)?;
                progress.consumed(state.read_total);
                state.spill_all()?;
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
    /// Whether the run assigned itself its partitions or the group did.
    membership: Membership,
    /// The committed offsets fetched before the run assigned itself its
    /// partitions, until that assignment is taken on.
    known: Option<BTreeMap<i32, Committed>>,
    parts: BTreeMap<i32, Part>,
    /// The run holds an assignment (none while an eager rebalance is under way).
    assigned: bool,
    /// Since when the run has been waiting for an assignment.
    waiting_since: Instant,
    last_activity: Instant,
    /// Since when every broker has been down (cleared by any sign of life).
    down_since: Option<Instant>,
    read_total: u64,
    /// Decoded events held in the partitions' spill buffers.
    buffered: usize,
    /// The group's rebalance protocol is eager, as of the last rebalance
    /// (asking librdkafka is a round trip to its main thread: not per message).
    eager: bool,
    /// Decodes the messages read, beside the loop.
    decoder: Decoder,
    /// A message arrived since the timeouts were last checked.
    heard: bool,
    /// Polls so far (see [`CHECK_EVERY`]).
    polls: u32,
}

impl Loop {
    /// Writes every partition's buffered events to its spill.
    fn spill_all(&mut self) -> Result<(), AggregateError> {
        for part in self.parts.values_mut() {
            part.c.spill.flush()?;
        }
        self.buffered = 0;
        Ok(())
    }

    /// The cluster answered.
    fn alive(&mut self) {
        self.last_activity = Instant::now();
        self.down_since = None;
    }

    fn check_timeouts(&mut self, opts: &RunOptions) -> Result<(), AggregateError> {
        // While messages flow, the clock is read once every CHECK_EVERY polls.
        self.polls = self.polls.wrapping_add(1);
        if self.heard {
            if !self.polls.is_multiple_of(CHECK_EVERY) {
                return Ok(());
            }
            self.heard = false;
            self.alive();
        }
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
        // Every message read so far belongs to the assignment it was read in.
        self.drain(opts)?;
        self.alive();
        self.eager = !matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        for ev in &events {
            if ev.assign {
                let new = Assignment {
                    consumer,
                    wh,
                    opts,
                    membership: self.membership,
                    known: self.known.take(),
                };
                new.take(&ev.partitions, &mut self.parts)?;
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
            if self.eager {
                // An eager rebalance revokes everything, then assigns anew.
                self.assigned = false;
                self.waiting_since = Instant::now();
            }
        }
        Ok(())
    }

    /// An assignment the run cannot work with: none, or (exclusive) not every
    /// partition. Under the cooperative protocols assignments grow step by
    /// step, so only the assignment timeout decides. Returns whether the run
    /// may finish with what it holds: shared, always; exclusive, once it
    /// holds every partition.
    fn check_assignment(
        &self,
        opts: &RunOptions,
        partitions: &[i32],
    ) -> Result<bool, AggregateError> {
        let missing: Vec<i32> = match opts.lock {
            LockMode::Exclusive => partitions
                .iter()
                .copied()
                .filter(|p| !self.parts.contains_key(p))
                .collect(),
            LockMode::Shared if self.parts.is_empty() => partitions.to_vec(),
            LockMode::Shared => Vec::new(),
        };
        let whole = opts.lock == LockMode::Shared || missing.is_empty();
        let patient = !self.eager && self.waiting_since.elapsed() <= opts.assignment_timeout;
        if missing.is_empty() || patient {
            return Ok(whole);
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
        self.heard = true;
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
        part.c.messages += 1;
        part.c.last = Some(o);
        if o + 1 >= part.c.end {
            finish(consumer, &opts.topic, part);
        }
        self.read_total += 1;
        if self.read_total.is_multiple_of(PROGRESS_EVERY) {
            progress.consumed(self.read_total);
        }
        let decoded = self.decoder.push(msg.partition(), o, msg.payload())?;
        self.apply(opts, decoded)
    }

    /// Applies decoded chunks to their partitions, in order.
    fn apply(
        &mut self,
        opts: &RunOptions,
        chunks: Vec<DecodedChunk>,
    ) -> Result<(), AggregateError> {
        for chunk in chunks {
            for (p, o, d) in chunk.others {
                apply(opts, self.part(p), o, d)?;
            }
            for (p, date, batch) in chunk.events {
                self.buffered += batch.num_rows();
                self.part(p).c.spill.push(date, batch);
            }
            if self.buffered >= SPILL_EVENTS {
                self.spill_all()?;
            }
        }
        Ok(())
    }

    fn part(&mut self, p: i32) -> &mut Part {
        match self.parts.get_mut(&p) {
            Some(part) => part,
            None => unreachable!("results are drained before a partition is revoked"),
        }
    }

    /// Takes back and applies every message sent to the decoder.
    fn drain(&mut self, opts: &RunOptions) -> Result<(), AggregateError> {
        let decoded = self.decoder.drain()?;
        self.apply(opts, decoded)
    }
}

/// Where the partitions' spill directories go: `.spill` in the warehouse, or
/// a temporary directory for a dry run without a warehouse.
pub(crate) fn spill_root(wh: &Warehouse, opts: &RunOptions) -> std::path::PathBuf {
    if opts.dry_run && !wh.exists() {
        std::env::temp_dir().join(format!("footfall-spill-{}", std::process::id()))
    } else {
        wh.root().join(".spill")
    }
}

/// Decodes one message into the partition's events, or counts it invalid
/// (see [`apply`]), as the decoder threads and [`apply`] together would.
#[cfg(test)]
pub(crate) fn decode(
    opts: &RunOptions,
    part: &mut Part,
    offset: i64,
    payload: Option<&[u8]>,
) -> Result<(), AggregateError> {
    match super::decoder::classify(payload) {
        Decoded::Event(event) => part.c.spill.push_events(&[crate::schema::KafkaEvent {
            partition: part.c.partition,
            offset,
            event: *event,
        }]),
        other => apply(opts, part, offset, other),
    }
}

/// Applies one decoded message that is not an event (the decoder threads hand
/// events back as batches, [`DecodedChunk`]'s `events`): counts it invalid,
/// or stops the run at a newer schema version or a dead letter (the input is
/// the dead-letter topic).
fn apply(
    opts: &RunOptions,
    part: &mut Part,
    offset: i64,
    decoded: Decoded,
) -> Result<(), AggregateError> {
    let p = part.c.partition;
    match decoded {
        Decoded::Event(_) => unreachable!("the decoder threads return events as batches"),
        Decoded::Newer(version) => Err(AggregateError::UnsupportedSchema {
            partition: p,
            offset,
            version,
            supported: SCHEMA_VERSION,
        }),
        Decoded::DeadLetter => Err(AggregateError::DeadLetterTopic {
            topic: opts.topic.clone(),
            why: format!("partition {p} offset {offset} holds a dead letter (a rejected line)"),
        }),
        Decoded::Empty => {
            tracing::warn!(partition = p, offset, "skipping a message without a value");
            part.c.invalid += 1;
            Ok(())
        }
        Decoded::Invalid(error) => {
            tracing::warn!(partition = p, offset, %error, "skipping a message that is not a visit event");
            part.c.invalid += 1;
            Ok(())
        }
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

/// What taking on newly assigned partitions needs.
struct Assignment<'a> {
    consumer: &'a BaseConsumer<Ctx>,
    wh: &'a Warehouse,
    opts: &'a RunOptions,
    membership: Membership,
    /// The committed offsets already fetched, if any.
    known: Option<BTreeMap<i32, Committed>>,
}

impl Assignment<'_> {
    /// Takes on the partitions of an assignment that the run does not hold
    /// yet: notes their starts, watermarks and cut; a run that assigned
    /// itself its partitions starts fetching them at their starts.
    fn take(
        self,
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
        let (consumer, topic) = (self.consumer, &self.opts.topic);
        if self.membership == Membership::Subscribed {
            // librdkafka keeps the application's pause of a partition across a
            // rebalance: one this run finished (and paused) in an earlier
            // assignment would deliver nothing now, and the run would stall.
            let mut paused = TopicPartitionList::new();
            for &p in &new {
                paused.add_partition(topic, p);
            }
            consumer
                .resume(&paused)
                .map_err(AggregateError::kafka("resume"))?;
        }
        let committed = match self.known {
            Some(known) => known,
            None => fetch_committed(consumer, topic, &new, self.opts.request_timeout)?,
        };
        let fresh = starts(consumer, self.wh, self.opts, &new, &committed)?;
        if self.membership == Membership::Assigned {
            let mut at = TopicPartitionList::new();
            for &(p, start, ..) in &fresh {
                at.add_partition_offset(topic, p, Offset::Offset(start))
                    .map_err(AggregateError::kafka("assign"))?;
            }
            consumer
                .assign(&at)
                .map_err(AggregateError::kafka("assign"))?;
        }
        take_on(consumer, self.wh, self.opts, fresh, parts)
    }
}

/// A partition newly taken on: (partition, start, high watermark, its lock).
type Fresh = (i32, i64, i64, Option<PartitionLock>);

/// The start (the group's `committed` offset, or the low watermark) and the
/// high watermark of each of `new`; shared, its partition lock.
fn starts(
    consumer: &BaseConsumer<Ctx>,
    wh: &Warehouse,
    opts: &RunOptions,
    new: &[i32],
    committed: &BTreeMap<i32, Committed>,
) -> Result<Vec<Fresh>, AggregateError> {
    let mut fresh = Vec::new();
    for &p in new {
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
    Ok(fresh)
}

/// Notes the cut of each fresh partition and pauses those with nothing to read.
fn take_on(
    consumer: &BaseConsumer<Ctx>,
    wh: &Warehouse,
    opts: &RunOptions,
    fresh: Vec<Fresh>,
    parts: &mut BTreeMap<i32, Part>,
) -> Result<(), AggregateError> {
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
                spill: Spill::new(Spill::dir_of(&spill_root(wh, opts), p))?,
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
