//! From raw lines to acknowledged Kafka messages, per source.
//!
//! ```text
//! reader ──RawBatch──▶ parse stage ──ParsedBatch──▶ produce stage ──▶ librdkafka
//!   (bounded channel)   (blocking pool)  (bounded)     (in-flight permits)   │
//!                                                        ack task ◀──────────┘
//! ```
//!
//! One parse stage per source processes batches in order on the blocking
//! pool (parsing is CPU work), so per-file order and format state are kept.
//! The produce stage registers every line's offset with its [`Track`] before
//! sending and the ack task acknowledges it once Kafka has, which is what
//! moves checkpoints. Every message holds a permit of a global semaphore:
//! when Kafka stops acknowledging, permits run out, the channels fill, and
//! the readers stop reading. A failed delivery is counted and sent again.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use footfall_event::RejectKind;
use footfall_parse::{FormatState, KeyProvider, Outcome, ParseConfig, Pipeline, Tables, Worker};
use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::message::{Headers, Message, OwnedMessage};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::error::IngestError;
use crate::kafka::{Outgoing, Producer, SendError};
use crate::metrics::{Metrics, SourceCounters};
use crate::source::RawBatch;
use crate::track::Track;

/// One parsed line, serialised.
#[derive(Debug)]
pub struct Prepared {
    pub offset: u64,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    /// `None` for an event, the reason for a reject.
    pub reject: Option<RejectKind>,
}

/// A batch after parsing.
#[derive(Debug)]
pub struct ParsedBatch {
    pub track: Arc<Track>,
    pub source_name: Arc<str>,
    pub items: Vec<Prepared>,
    pub end: u64,
}

/// How a source's lines are parsed: one compiled pipeline, or (format
/// `auto`) one per format detected in each stream's first lines.
pub struct SourceParser {
    source: Arc<str>,
    mode: Mode,
    streams: HashMap<u64, StreamParse>,
    batches: u64,
}

enum Mode {
    Fixed(Worker),
    Auto {
        cfg: ParseConfig,
        tables: Tables,
        keys: Arc<dyn KeyProvider>,
        compiled: HashMap<&'static str, Worker>,
    },
}

struct StreamParse {
    track: Weak<Track>,
    state: FormatState,
    /// Detected format (auto mode).
    format: Option<&'static str>,
}

/// Lines looked at to detect a format.
const DETECT_LINES: usize = 32;
/// Format used when detection finds nothing.
const FALLBACK_FORMAT: &str = "combined";

impl SourceParser {
    /// Compile `cfg` for a source; `auto` is resolved per stream later.
    pub fn new(
        source: Arc<str>,
        cfg: &ParseConfig,
        tables: &Tables,
        keys: Arc<dyn KeyProvider>,
    ) -> Result<Self, IngestError> {
        let err = |error| IngestError::Parse {
            source_name: source.to_string(),
            error,
        };
        let mode = if cfg.format == "auto" && cfg.log_format.is_none() {
            // Validate everything but the format now, so mistakes surface at startup.
            let mut fallback = cfg.clone();
            fallback.format = FALLBACK_FORMAT.into();
            let p = Arc::new(Pipeline::new(&fallback, tables, keys.clone()).map_err(err)?);
            let compiled = HashMap::from([(FALLBACK_FORMAT, p.worker())]);
            Mode::Auto {
                cfg: cfg.clone(),
                tables: tables.clone(),
                keys,
                compiled,
            }
        } else {
            let p = Arc::new(Pipeline::new(cfg, tables, keys).map_err(err)?);
            Mode::Fixed(p.worker())
        };
        Ok(SourceParser {
            source,
            mode,
            streams: HashMap::new(),
            batches: 0,
        })
    }

    /// Parse one batch; counts lines, events and rejects.
    pub fn parse(
        &mut self,
        batch: RawBatch,
        counters: &SourceCounters,
        metrics: &Metrics,
    ) -> ParsedBatch {
        self.batches += 1;
        if self.batches.is_multiple_of(1024) {
            self.streams.retain(|_, s| s.track.strong_count() > 0);
        }
        let stream = self
            .streams
            .entry(batch.track.id)
            .or_insert_with(|| StreamParse {
                track: Arc::downgrade(&batch.track),
                state: FormatState::default(),
                format: None,
            });
        let worker: &mut Worker = match &mut self.mode {
            Mode::Fixed(w) => w,
            Mode::Auto {
                cfg,
                tables,
                keys,
                compiled,
            } => {
                let name = *stream.format.get_or_insert_with(|| {
                    let sample: Vec<&[u8]> = batch.prime.iter().chain(batch.lines.iter()).take(DETECT_LINES).map(|(_, l)| l).collect();
                    match Pipeline::detect_format(&sample) {
                        Some(f) => {
                            tracing::info!(source = %self.source, stream = %batch.src.name, format = f, "format detected");
                            f
                        }
                        None => {
                            tracing::warn!(source = %self.source, stream = %batch.src.name, "no known format recognised in the first lines; parsing as {FALLBACK_FORMAT}");
                            FALLBACK_FORMAT
                        }
                    }
                });
                if !compiled.contains_key(name) {
                    let mut c = cfg.clone();
                    c.format = name.to_string();
                    match Pipeline::new(&c, tables, keys.clone()) {
                        Ok(p) => {
                            compiled.insert(name, Arc::new(p).worker());
                        }
                        Err(e) => {
                            tracing::error!(source = %self.source, format = name, "cannot compile the detected format, parsing as {FALLBACK_FORMAT}: {e}");
                            stream.format = Some(FALLBACK_FORMAT);
                        }
                    }
                }
                let name = stream.format.unwrap_or(FALLBACK_FORMAT);
                compiled
                    .get_mut(name)
                    .expect("the fallback pipeline is compiled at startup")
            }
        };
        for (offset, line) in batch.prime.iter() {
            let _ = worker.process(&batch.src, &mut stream.state, offset, line);
        }
        let mut items = Vec::with_capacity(batch.lines.len());
        let (mut events, mut rejects) = (0u64, 0u64);
        for (offset, line) in batch.lines.iter() {
            match worker.process(&batch.src, &mut stream.state, offset, line) {
                Outcome::Event(ev) => {
                    events += 1;
                    let payload = serde_json::to_vec(&*ev).expect("a VisitEvent always serialises");
                    items.push(Prepared {
                        offset,
                        key: ev.visitor_id.into_bytes(),
                        payload,
                        reject: None,
                    });
                }
                Outcome::Reject(r) => {
                    rejects += 1;
                    metrics.reject(r.kind);
                    let payload = serde_json::to_vec(&*r).expect("a Reject always serialises");
                    items.push(Prepared {
                        offset,
                        key: batch.src.name.as_bytes().to_vec(),
                        payload,
                        reject: Some(r.kind),
                    });
                }
            }
        }
        metrics.events_parsed.fetch_add(events, Relaxed);
        counters.lines_read.fetch_add(events + rejects, Relaxed);
        ParsedBatch {
            track: batch.track,
            source_name: batch.src.name,
            items,
            end: batch.end,
        }
    }
}

/// Parse batches from `rx` in order on the blocking pool, passing them to `tx`.
pub async fn parse_stage(
    mut rx: mpsc::Receiver<RawBatch>,
    tx: mpsc::Sender<ParsedBatch>,
    mut parser: SourceParser,
    counters: Arc<SourceCounters>,
    metrics: Arc<Metrics>,
) -> Result<(), IngestError> {
    while let Some(batch) = rx.recv().await {
        let (c, m) = (counters.clone(), metrics.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let parsed = parser.parse(batch, &c, &m);
            (parser, parsed)
        })
        .await;
        let parsed;
        (parser, parsed) =
            joined.map_err(|e| IngestError::Internal(format!("parser task failed: {e}")))?;
        if tx.send(parsed).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Shared by the produce stages.
pub struct Sink {
    pub producer: Arc<Producer>,
    pub permits: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
    pub dead_letters: bool,
    /// Cancelled when the shutdown deadline has passed: stop waiting for Kafka.
    pub abort: CancellationToken,
    /// Failed deliveries are logged once, then summarised at most this often.
    pub failures: FailureLog,
}

/// Rate-limited logging of failed deliveries.
#[derive(Debug)]
pub struct FailureLog {
    every: Duration,
    state: std::sync::Mutex<(Option<Instant>, u64)>,
}

impl FailureLog {
    pub fn new(every: Duration) -> Self {
        FailureLog {
            every,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    fn record(&self, topic: &str, error: &rdkafka::error::KafkaError) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, suppressed) = &mut *s;
        match last {
            Some(t) if t.elapsed() < self.every => *suppressed += 1,
            Some(_) => {
                tracing::warn!(
                    topic,
                    failed = *suppressed + 1,
                    "deliveries failed since the last report, each is sent again; latest: {error}"
                );
                *last = Some(Instant::now());
                *suppressed = 0;
            }
            None => {
                tracing::warn!(
                    topic,
                    "delivery failed, sending again (further failures are summarised): {error}"
                );
                *last = Some(Instant::now());
            }
        }
    }
}

struct InFlight {
    track: Arc<Track>,
    offset: u64,
    reject: bool,
    _permit: OwnedSemaphorePermit,
    attempt: u32,
}

type Step = Pin<Box<dyn Future<Output = (InFlight, StepResult)> + Send>>;

enum StepResult {
    Delivered,
    Failed(rdkafka::error::KafkaError, OwnedMessage),
    Resent(rdkafka::producer::DeliveryFuture),
    Stopped,
}

/// Send parsed batches to Kafka; returns when `rx` is closed and every message
/// is acknowledged, or when aborted.
pub async fn produce_stage(
    mut rx: mpsc::Receiver<ParsedBatch>,
    sink: Arc<Sink>,
) -> Result<(), IngestError> {
    let mut pending: FuturesUnordered<Step> = FuturesUnordered::new();
    let mut input_open = true;
    let mut current: Option<(ParsedBatch, usize)> = None;
    loop {
        // Next message to send, if any.
        if current.as_ref().is_some_and(|(b, i)| *i >= b.items.len()) {
            current = None;
        }
        let have_work = current.is_some();
        if !input_open && !have_work && pending.is_empty() {
            return Ok(());
        }
        tokio::select! {
            biased;
            _ = sink.abort.cancelled() => return Ok(()),
            Some((flight, result)) = pending.next(), if !pending.is_empty() => {
                handle(&sink, &mut pending, flight, result)?;
            }
            permit = sink.permits.clone().acquire_owned(), if have_work => {
                let permit = permit.map_err(|_| IngestError::Internal("in-flight semaphore closed".into()))?;
                let (batch, i) = current.as_mut().expect("have_work");
                let item = &batch.items[*i];
                let topic = if item.reject.is_some() { &sink.producer.dead_letter_topic } else { &sink.producer.events_topic };
                let out = Outgoing { topic: topic.clone(), key: item.key.clone(), payload: item.payload.clone(), source: batch.source_name.clone() };
                match send_with_backoff(&sink, &out, &mut pending).await? {
                    Some(fut) => {
                        let flight = InFlight { track: batch.track.clone(), offset: item.offset, reject: item.reject.is_some(), _permit: permit, attempt: 0 };
                        pending.push(Box::pin(wait_delivery(flight, fut)));
                        *i += 1;
                    }
                    None => return Ok(()), // aborted
                }
            }
            b = rx.recv(), if input_open && !have_work => match b {
                Some(batch) => {
                    let mut offsets = Vec::with_capacity(batch.items.len());
                    for it in &batch.items {
                        if it.reject.is_none() || sink.dead_letters {
                            offsets.push(it.offset);
                        } else {
                            sink.metrics.rejects_done.fetch_add(1, Relaxed);
                        }
                    }
                    batch.track.register(offsets, batch.end);
                    let mut batch = batch;
                    if !sink.dead_letters {
                        batch.items.retain(|it| it.reject.is_none());
                    }
                    current = Some((batch, 0));
                }
                None => input_open = false,
            },
        }
    }
}

/// Hand a message to librdkafka; while its queue is full keep processing
/// acknowledgements. `None` when aborted.
async fn send_with_backoff(
    sink: &Arc<Sink>,
    out: &Outgoing,
    pending: &mut FuturesUnordered<Step>,
) -> Result<Option<rdkafka::producer::DeliveryFuture>, IngestError> {
    let mut warned_at: Option<Instant> = None;
    loop {
        match sink.producer.send(out) {
            Ok(f) => return Ok(Some(f)),
            Err(SendError::QueueFull) => {}
            Err(SendError::Other(e)) => {
                if let Some(reason) = sink.producer.fatal_error() {
                    return Err(IngestError::Kafka(format!(
                        "producer failed fatally: {reason}"
                    )));
                }
                if warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                    tracing::error!(topic = %out.topic, "cannot enqueue message, retrying: {e}");
                    warned_at = Some(Instant::now());
                }
            }
        }
        let pause = tokio::time::sleep(Duration::from_millis(10));
        tokio::pin!(pause);
        loop {
            tokio::select! {
                biased;
                _ = sink.abort.cancelled() => return Ok(None),
                Some((flight, result)) = pending.next(), if !pending.is_empty() => {
                    handle(sink, pending, flight, result)?;
                }
                _ = &mut pause => break,
            }
        }
    }
}

async fn wait_delivery(
    flight: InFlight,
    fut: rdkafka::producer::DeliveryFuture,
) -> (InFlight, StepResult) {
    let r = match fut.await {
        Ok(Ok(_)) => StepResult::Delivered,
        Ok(Err((e, msg))) => StepResult::Failed(e, msg),
        Err(_) => StepResult::Stopped,
    };
    (flight, r)
}

fn handle(
    sink: &Arc<Sink>,
    pending: &mut FuturesUnordered<Step>,
    mut flight: InFlight,
    result: StepResult,
) -> Result<(), IngestError> {
    match result {
        StepResult::Delivered => {
            flight.track.ack(flight.offset);
            sink.producer.health.delivered();
            if flight.reject {
                sink.metrics.dead_letters_produced.fetch_add(1, Relaxed);
                sink.metrics.rejects_done.fetch_add(1, Relaxed);
            } else {
                sink.metrics.events_produced.fetch_add(1, Relaxed);
            }
        }
        StepResult::Failed(e, msg) => {
            sink.metrics.delivery_errors.fetch_add(1, Relaxed);
            if let Some(reason) = sink.producer.fatal_error() {
                return Err(IngestError::Kafka(format!(
                    "producer failed fatally: {reason}"
                )));
            }
            sink.failures.record(msg.topic(), &e);
            flight.attempt += 1;
            let backoff =
                Duration::from_millis(100u64 << flight.attempt.min(6)).min(Duration::from_secs(5));
            let sink = sink.clone();
            pending.push(Box::pin(async move {
                tokio::time::sleep(backoff).await;
                let out = Outgoing {
                    topic: msg.topic().into(),
                    key: msg.key().unwrap_or_default().to_vec(),
                    payload: msg.payload().unwrap_or_default().to_vec(),
                    source: msg
                        .headers()
                        .and_then(|h| {
                            h.iter()
                                .find(|h| h.key == crate::kafka::SOURCE_HEADER)
                                .and_then(|h| h.value)
                        })
                        .map(|v| String::from_utf8_lossy(v).into())
                        .unwrap_or_else(|| "".into()),
                };
                loop {
                    match sink.producer.send(&out) {
                        Ok(f) => return (flight, StepResult::Resent(f)),
                        Err(_) if sink.abort.is_cancelled() => {
                            return (flight, StepResult::Stopped)
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }));
        }
        StepResult::Resent(fut) => pending.push(Box::pin(wait_delivery(flight, fut))),
        StepResult::Stopped => {}
    }
    Ok(())
}
