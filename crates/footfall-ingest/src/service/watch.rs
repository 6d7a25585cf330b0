//! Kafka's reachability and the topics, watched for the whole run.
//!
//! * At start ([`check_topics`]): one metadata request for the topics the run
//!   produces to. A topic the cluster says does not exist (or may not be used)
//!   ends the start with [`IngestError::Topic`]; a cluster that does not
//!   answer does not stop the start.
//! * Once a second ([`watch_loop`]): a metadata request every
//!   `probe_interval`; after `unhealthy_after` without Kafka answering or
//!   acknowledging, one error, then a reminder every `reminder_interval`.
//!   The service that follows files waits for Kafka without limit. A run that
//!   ends by itself (stdin, files read once) gives up ([`Fatal`]) when a topic
//!   turns out to be unusable, or when Kafka has been unreachable for
//!   `unreachable_timeout`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::IngestError;
use crate::kafka::{ProbeError, Producer};
use crate::metrics::Metrics;

use super::ProgressFn;

/// How long the metadata requests wait for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// An error that ends a run which cannot succeed: raised by the watch loop,
/// acted on by the supervisor.
#[derive(Debug, Default)]
pub(super) struct Fatal {
    raised: CancellationToken,
    error: Mutex<Option<IngestError>>,
}

impl Fatal {
    /// Record `e` (the first error raised wins) and wake the supervisor.
    fn raise(&self, e: IngestError) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.raised.cancel();
    }

    /// Wait until an error is raised.
    pub async fn raised(&self) {
        self.raised.cancelled().await
    }

    /// The error raised.
    pub fn take(&self) -> IngestError {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.take()
            .unwrap_or_else(|| IngestError::Internal("run ended without its error".into()))
    }
}

/// Ask Kafka about `topics` once, at start: an unusable topic is an error,
/// an unreachable cluster is not (the watch loop deals with it).
pub(super) async fn check_topics(
    producer: &Arc<Producer>,
    topics: &[Arc<str>],
    shutdown: &CancellationToken,
) -> Result<(), IngestError> {
    let probe = spawn_probe(producer, topics);
    tokio::select! {
        joined = probe => match joined {
            Ok(Err(e)) if e.is_unusable_topic() => Err(IngestError::Topic(e.to_string())),
            Ok(Err(e)) => {
                tracing::info!("cannot check the topics at start ({e}); starting anyway");
                Ok(())
            }
            _ => Ok(()),
        },
        _ = shutdown.cancelled() => Ok(()),
    }
}

fn spawn_probe(
    producer: &Arc<Producer>,
    topics: &[Arc<str>],
) -> tokio::task::JoinHandle<Result<(), ProbeError>> {
    let producer = producer.clone();
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let names: Vec<&str> = topics.iter().map(|t| &**t).collect();
        producer.probe(&names, PROBE_TIMEOUT)
    })
}

pub(super) struct WatchCtx {
    pub producer: Arc<Producer>,
    pub metrics: Arc<Metrics>,
    pub permits: Arc<Semaphore>,
    pub max_in_flight: usize,
    pub unhealthy_after: Duration,
    pub reminder_interval: Duration,
    pub probe_interval: Duration,
    pub brokers: String,
    /// The topics produced to (events, and dead letters when on).
    pub topics: Vec<Arc<str>>,
    /// Set for a run that ends by itself: how long Kafka may be unreachable.
    pub give_up_after: Option<Duration>,
    pub fatal: Arc<Fatal>,
    pub progress: Option<ProgressFn>,
    pub stop: CancellationToken,
}

/// Once a second: reachability, the unreachable error and its reminders,
/// giving up (runs that end by itself), progress.
pub(super) async fn watch_loop(c: WatchCtx) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_probe: Option<Instant> = None;
    let mut probe = None;
    let mut down = Down::default();
    let mut topic_warned = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = c.stop.cancelled() => return,
        }
        if c.permits.available_permits() == c.max_in_flight {
            c.producer.health.idle();
        }
        if let Some(p) = probe.take_if(|p: &mut tokio::task::JoinHandle<_>| p.is_finished()) {
            if let Ok(Err(e)) = p.await {
                c.topic_trouble(e, &mut topic_warned);
            }
        }
        if probe.is_none() && last_probe.is_none_or(|t| t.elapsed() >= c.probe_interval) {
            last_probe = Some(Instant::now());
            probe = Some(spawn_probe(&c.producer, &c.topics));
        }
        let trouble = c.producer.health.trouble_for();
        down.report(&c, trouble);
        if let Some(limit) = c.give_up_after.filter(|l| trouble >= *l) {
            c.fatal.raise(IngestError::Unreachable {
                brokers: c.brokers.clone(),
                waited: limit,
                undelivered: c.metrics.queue_depth(),
            });
        }
        if let Some(p) = &c.progress {
            p(&c.metrics.snapshot());
        }
    }
}

impl WatchCtx {
    /// A probe found a topic unusable: the end of a run that ends by itself,
    /// a warning (once) for the service.
    fn topic_trouble(&self, e: ProbeError, warned: &mut bool) {
        if !e.is_unusable_topic() {
            return;
        }
        if self.give_up_after.is_some() {
            self.fatal.raise(IngestError::Topic(e.to_string()));
        } else if !*warned {
            tracing::warn!("{e}");
            *warned = true;
        }
    }
}

/// The unreachable error, its reminders, and the all-clear.
#[derive(Default)]
struct Down {
    since: Option<Instant>,
    last_reminder: Option<Instant>,
}

impl Down {
    fn report(&mut self, c: &WatchCtx, trouble: Duration) {
        let waiting = c.metrics.queue_depth();
        if trouble < c.unhealthy_after {
            if let Some(since) = self.since.take() {
                let after_s = since.elapsed().as_secs() + c.unhealthy_after.as_secs();
                tracing::info!(brokers = %c.brokers, after_s, "Kafka reachable again");
            }
            return;
        }
        if self.since.is_none() {
            let why = c
                .producer
                .health
                .last_error()
                .unwrap_or_else(|| "no acknowledgement".into());
            let then = match c.give_up_after {
                Some(limit) => format!(
                    "this run gives up if it lasts {}s (ingest.unreachable_timeout)",
                    limit.as_secs()
                ),
                None => "resumes by itself".into(),
            };
            tracing::error!(
                brokers = %c.brokers,
                for_s = trouble.as_secs(),
                waiting,
                "Kafka is unreachable or not acknowledging ({why}); reading pauses once {} messages wait; {then}",
                c.max_in_flight
            );
            self.since = Some(Instant::now());
            self.last_reminder = Some(Instant::now());
        } else if self
            .last_reminder
            .is_some_and(|t| t.elapsed() >= c.reminder_interval)
        {
            tracing::warn!(brokers = %c.brokers, for_s = trouble.as_secs(), waiting, "Kafka still unreachable");
            self.last_reminder = Some(Instant::now());
        }
    }
}
