//! The run's side of the Kafka consumer group: the consumer and its
//! rebalance log ([`Ctx`]), the topic's partitions, the group's committed
//! offsets ([`fetch_committed`]) and the commit of new ones, marked with the
//! warehouse's id ([`COMMIT_MARK`]).
//!
//! **Taking the partitions** ([`take_partitions`]). An exclusive run of a
//! group with no active member assigns itself every partition of the topic,
//! starting at the group's committed offsets: it never joins the group, so it
//! pays no join and sync round trips and no `group.initial.rebalance.delay.ms`
//! (3 s on a stock broker, for a group that is empty between runs). The broker
//! takes such a run's commit only while the group has no member, so a consumer
//! that joins meanwhile makes the commit fail ([`AggregateError::Joined`]) and
//! nothing counts. Any other run subscribes and waits for the group's
//! assignment as before: a `--shared` run, a run with `group.protocol=consumer`
//! (KIP-848 members do not show in the classic description the check reads),
//! and an exclusive run that finds members (a `--shared` run, a stray
//! consumer, a killed member not yet expired).
//!
//! Contract: every group request that can meet a coordinator being elected or
//! moving is retried ([`while_coordinator_moves`]) up to the request timeout;
//! an unreachable cluster at the start fails at once
//! ([`AggregateError::Lost`]). Offsets are committed synchronously, each with
//! [`commit_mark`] of the warehouse, through the [`Group`] trait, which the
//! unit tests implement with a topic in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::RunOptions;
use crate::error::AggregateError;
use crate::warehouse::{LockMode, WarehouseMeta};

/// Prefix of the metadata a run stores with each committed offset; the
/// warehouse id follows. It tells a group's committing warehouse apart.
pub const COMMIT_MARK: &str = "footfall-warehouse=";

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

/// A rebalance, as the poll loop acts on it.
pub(crate) struct RebalanceEvent {
    pub(crate) assign: bool,
    pub(crate) partitions: Vec<i32>,
    /// A revocation because the membership was lost (session timeout, fatal error).
    pub(crate) lost: bool,
}

/// Records rebalances for the poll loop to act on.
pub(crate) struct Ctx {
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

    /// Records an assignment the run made itself ([`Membership::Assigned`]).
    fn assign_all(&self, partitions: &[i32]) {
        self.events
            .lock()
            .expect("rebalance log")
            .push(RebalanceEvent {
                assign: true,
                partitions: partitions.to_vec(),
                lost: false,
            });
    }

    pub(crate) fn take(&self) -> Vec<RebalanceEvent> {
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

/// How a run holds its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    /// Assigned by the run itself, at the committed offsets (`assign`).
    Assigned,
    /// A member of the group, assigned by it (`subscribe`).
    Subscribed,
}

/// Takes the run's partitions ([module docs](self)): assigns every one of
/// `partitions` to an exclusive run of an empty group (the assignment reaches
/// the poll loop as a rebalance), subscribes otherwise.
pub(crate) fn take_partitions(
    client: &ClientConfig,
    consumer: &BaseConsumer<Ctx>,
    opts: &RunOptions,
    partitions: &[i32],
) -> Result<Membership, AggregateError> {
    // The classic description does not show the members of a KIP-848 group.
    let classic = client
        .get("group.protocol")
        .is_none_or(|p| p.eq_ignore_ascii_case("classic"));
    if opts.lock == LockMode::Exclusive && classic && group_is_empty(consumer, opts) {
        consumer.context().assign_all(partitions);
        return Ok(Membership::Assigned);
    }
    consumer
        .subscribe(&[&opts.topic])
        .map_err(AggregateError::kafka("subscribe"))?;
    Ok(Membership::Subscribed)
}

/// Whether the group has no active member; a failed description counts as
/// "not known to be empty".
fn group_is_empty(consumer: &BaseConsumer<Ctx>, opts: &RunOptions) -> bool {
    match consumer.fetch_group_list(Some(&opts.group), opts.request_timeout) {
        Ok(list) => {
            let members: usize = list.groups().iter().map(|g| g.members().len()).sum();
            tracing::debug!(members, "the group's active members");
            members == 0
        }
        Err(e) => {
            tracing::debug!(error = %e, "could not describe the group; joining it");
            false
        }
    }
}

/// The consumer's side of [`Group`].
pub(crate) struct KafkaGroup<'a> {
    pub(crate) consumer: &'a BaseConsumer<Ctx>,
    pub(crate) opts: &'a RunOptions,
    pub(crate) membership: Membership,
    pub(crate) partitions: Vec<i32>,
    pub(crate) mark: String,
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
        while_coordinator_moves(timeout, || self.consumer.commit(&tpl, CommitMode::Sync)).map_err(
            |e| match (self.membership, e.rdkafka_error_code()) {
                (Membership::Assigned, Some(code)) if refuses_a_non_member(code) => {
                    AggregateError::Joined {
                        group: self.opts.group.clone(),
                        source: e,
                    }
                }
                _ => AggregateError::kafka("commit")(e),
            },
        )
    }
}

/// The broker's answers to the commit of a consumer that is no member of a
/// group that now has members.
fn refuses_a_non_member(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::StaleMemberEpoch
            | RDKafkaErrorCode::FencedMemberEpoch
    )
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

/// librdkafka settings a run uses unless the operator sets them (`-X`).
///
/// A run reads as fast as it can decode, so it empties librdkafka's queue
/// often. By default librdkafka then waits `fetch.queue.backoff.ms` (1 s)
/// before fetching a partition whose queue was full, and the run sits idle:
/// 1M events took 12.7 s, 8.2 s with these (same peak memory, since the
/// smaller `queued.min.messages` keeps the prefetched queue as small).
///
/// A broker answers one connection's requests in order, and holds a fetch
/// that finds nothing new for `fetch.wait.max.ms` (500 ms by default): the
/// watermark queries of each newly assigned partition, and the last fetches
/// of a run, queued behind such fetches. A run reads up to a known end and
/// has no use for the long poll: with 50 ms, a run late in a 1M-event day
/// (6,000 new events, dry run) took 2.3-2.6 s instead of 4.6-4.7 s.
const CONSUMER_DEFAULTS: [(&str, &str); 5] = [
    ("auto.offset.reset", "earliest"),
    ("max.poll.interval.ms", "3600000"),
    ("fetch.queue.backoff.ms", "20"),
    ("queued.min.messages", "20000"),
    ("fetch.wait.max.ms", "50"),
];

/// The consumer of a run: the group, no auto commit, partition EOF events.
pub(crate) fn consumer(
    client: &ClientConfig,
    opts: &RunOptions,
) -> Result<BaseConsumer<Ctx>, AggregateError> {
    let mut cfg = client.clone();
    cfg.set("group.id", &opts.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true");
    for (k, v) in CONSUMER_DEFAULTS {
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

/// Closes the consumer (a member leaves the group) before it is dropped,
/// polling every few milliseconds until the close is done or `timeout` has
/// passed. rdkafka's drop would close it too, but its poll loop only notices
/// the close after a whole 100 ms poll: a tenth of a second on every run.
/// Closed here, the drop's own close finds nothing to do (and logs that as an
/// error, which the log filter of `footfall_ingest::init_logging` drops).
pub(crate) fn close(consumer: &BaseConsumer<Ctx>, timeout: Duration) {
    if let Err(e) = consumer.close_queue() {
        tracing::debug!(error = %e, "closing the consumer");
        return;
    }
    let deadline = Instant::now() + timeout;
    while !consumer.closed() && Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(2));
    }
}

/// The topic's partitions, from the cluster's metadata. An unreachable
/// cluster fails at once ([`AggregateError::Lost`]); a missing topic is a
/// configuration error.
pub(crate) fn topic_partitions(
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
pub(crate) fn fetch_committed(
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
pub(crate) fn commit_mark(meta: Option<&WarehouseMeta>) -> String {
    format!(
        "{COMMIT_MARK}{}",
        meta.and_then(|m| m.id.as_deref()).unwrap_or_default()
    )
}
