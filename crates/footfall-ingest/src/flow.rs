//! From raw lines to acknowledged Kafka messages, per source.
//!
//! ```text
//! reader ──RawBatch──▶ parse stage ──ParsedBatch──▶ produce stage ──▶ librdkafka
//!   (bounded channel)   (N batches at    (bounded)    (in-flight permits)   │
//!                        once, in order)               ack task ◀───────────┘
//! ```
//!
//! The parse stage of a source parses up to `parse_threads` batches at the
//! same time on the blocking pool (parsing is CPU work), each with a
//! [`Worker`] of its own, and hands them on in the order they were read. A
//! stream whose format keeps state from line to line (the `#Fields:` header of
//! W3C logs) is parsed one batch at a time, in order, so its state is always
//! that of the line before.
//!
//! The produce stage registers every line's offset with its [`Track`] before
//! sending and the ack task acknowledges it once Kafka has, which is what
//! moves checkpoints. Every message holds a permit of a global semaphore:
//! when Kafka stops acknowledging, permits run out, the channels fill, and
//! the readers stop reading. A failed delivery is counted and sent again.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use footfall_event::RejectKind;
use footfall_parse::{
    FormatState, KeyProvider, Outcome, ParseConfig, Pipeline, SourceRef, Tables, Worker,
};
use futures_util::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use rdkafka::message::{Headers, Message, OwnedMessage};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::error::IngestError;
use crate::kafka::{Outgoing, Producer, SendError};
use crate::metrics::{Metrics, SourceCounters};
use crate::source::RawBatch;
use crate::track::Track;

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// One parsed line, serialised: its key and payload are ranges of
/// [`ParsedBatch::data`].
#[derive(Debug, Clone)]
pub struct Prepared {
    pub offset: u64,
    pub key: Range<usize>,
    pub payload: Range<usize>,
    /// `None` for an event, the reason for a reject.
    pub reject: Option<RejectKind>,
}

/// A batch after parsing.
#[derive(Debug)]
pub struct ParsedBatch {
    pub track: Arc<Track>,
    pub source_name: Arc<str>,
    /// Keys and payloads of every item, back to back.
    pub data: Vec<u8>,
    pub items: Vec<Prepared>,
    pub end: u64,
}

impl ParsedBatch {
    /// The Kafka key of `item`.
    pub fn key(&self, item: &Prepared) -> &[u8] {
        &self.data[item.key.clone()]
    }

    /// The Kafka payload (event or reject JSON) of `item`.
    pub fn payload(&self, item: &Prepared) -> &[u8] {
        &self.data[item.payload.clone()]
    }
}

/// How a source's lines are parsed: one compiled pipeline, or (format
/// `auto`) one per format detected in each stream's first lines. Batches are
/// taken apart into [`ParseJob`]s that can run on any thread
/// ([`SourceParser::start`], [`ParseJob::run`], [`SourceParser::finish`]).
pub struct SourceParser {
    source: Arc<str>,
    /// Set for format `auto`: what is needed to compile a detected format.
    auto: Option<AutoDetect>,
    /// Compiled formats by name ([`FIXED`] when the format is not `auto`).
    compiled: HashMap<&'static str, Compiled>,
    streams: HashMap<u64, StreamParse>,
    batches: u64,
}

struct AutoDetect {
    cfg: ParseConfig,
    tables: Tables,
    keys: Arc<dyn KeyProvider>,
}

/// A compiled format and its idle workers (one per batch being parsed).
struct Compiled {
    pipeline: Arc<Pipeline>,
    /// Lines depend on earlier lines ([`FormatState`]): parse one batch at a time.
    stateful: bool,
    idle: Vec<Worker>,
}

impl Compiled {
    fn new(pipeline: Pipeline) -> Self {
        let stateful = is_stateful(pipeline.format_name());
        Compiled {
            pipeline: Arc::new(pipeline),
            stateful,
            idle: Vec::new(),
        }
    }
}

struct StreamParse {
    track: Weak<Track>,
    /// `None` while a job of a stateful format has it.
    state: Option<FormatState>,
    /// Key into `compiled`: the detected format (auto) or [`FIXED`].
    format: Option<&'static str>,
}

/// Key of the one compiled format of a source whose format is not `auto`.
const FIXED: &str = "";
/// Lines looked at to detect a format.
const DETECT_LINES: usize = 32;
/// Format used when detection finds nothing.
const FALLBACK_FORMAT: &str = "combined";

/// Whether a format carries state from line to line, so that a stream's
/// batches must be parsed in order, one at a time. Only the W3C-style formats
/// do (their `#Fields:` header names the columns of the lines after it); the
/// same rule decides whether `footfall parse` runs threads.
pub fn is_stateful(format_name: &str) -> bool {
    matches!(format_name, "w3c" | "cloudfront")
}

/// One batch with everything needed to parse it, on any thread.
pub struct ParseJob {
    batch: RawBatch,
    format: &'static str,
    worker: Worker,
    /// The stream's state (stateful formats) or a fresh one.
    state: FormatState,
    stateful: bool,
}

/// A parsed job, to be handed back with [`SourceParser::finish`].
pub struct ParseDone {
    parsed: ParsedBatch,
    stream: u64,
    format: &'static str,
    worker: Worker,
    /// The stream's state after the batch (stateful formats).
    state: Option<FormatState>,
}

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
        let (auto, compiled) = if cfg.format == "auto" && cfg.log_format.is_none() {
            // Validate everything but the format now, so mistakes surface at startup.
            let mut fallback = cfg.clone();
            fallback.format = FALLBACK_FORMAT.into();
            let p = Pipeline::new(&fallback, tables, keys.clone()).map_err(err)?;
            let auto = AutoDetect {
                cfg: cfg.clone(),
                tables: tables.clone(),
                keys,
            };
            (
                Some(auto),
                HashMap::from([(FALLBACK_FORMAT, Compiled::new(p))]),
            )
        } else {
            let p = Pipeline::new(cfg, tables, keys).map_err(err)?;
            (None, HashMap::from([(FIXED, Compiled::new(p))]))
        };
        Ok(SourceParser {
            source,
            auto,
            compiled,
            streams: HashMap::new(),
            batches: 0,
        })
    }

    /// Parse one batch here and now; counts lines, events and rejects.
    /// Not to be mixed with unfinished [`SourceParser::start`] jobs.
    pub fn parse(
        &mut self,
        batch: RawBatch,
        counters: &SourceCounters,
        metrics: &Metrics,
    ) -> ParsedBatch {
        let job = self.start(batch);
        self.finish(job.run(counters, metrics))
    }

    /// Whether `batch` has to wait: its stream's format is stateful and the
    /// previous batch of the stream is not finished yet.
    pub fn is_busy(&self, batch: &RawBatch) -> bool {
        self.streams
            .get(&batch.track.id)
            .is_some_and(|s| s.state.is_none())
    }

    /// Take a batch apart for [`ParseJob::run`]. Batches must be started in
    /// stream order, and not while [`SourceParser::is_busy`].
    pub fn start(&mut self, batch: RawBatch) -> ParseJob {
        self.batches += 1;
        if self.batches.is_multiple_of(1024) {
            self.streams.retain(|_, s| s.track.strong_count() > 0);
        }
        let auto = self.auto.is_some();
        let stream = self
            .streams
            .entry(batch.track.id)
            .or_insert_with(|| StreamParse {
                track: Arc::downgrade(&batch.track),
                state: Some(FormatState::default()),
                format: if auto { None } else { Some(FIXED) },
            });
        let format = match stream.format {
            Some(f) => f,
            None => {
                let detected = detect(&self.source, &batch);
                let name = self.compile(detected);
                self.streams
                    .get_mut(&batch.track.id)
                    .expect("inserted above")
                    .format = Some(name);
                name
            }
        };
        let stream = self
            .streams
            .get_mut(&batch.track.id)
            .expect("inserted above");
        let compiled = self
            .compiled
            .get_mut(format)
            .expect("formats are compiled before use");
        let state = if compiled.stateful {
            let busy = "a stateful stream's next batch is started after the previous one finished";
            stream.state.take().expect(busy)
        } else {
            FormatState::default()
        };
        let worker = compiled
            .idle
            .pop()
            .unwrap_or_else(|| compiled.pipeline.worker());
        ParseJob {
            batch,
            format,
            worker,
            state,
            stateful: compiled.stateful,
        }
    }

    /// Take back the worker (and state) of a finished job; returns its batch.
    pub fn finish(&mut self, done: ParseDone) -> ParsedBatch {
        if let Some(c) = self.compiled.get_mut(done.format) {
            c.idle.push(done.worker);
        }
        if let Some(state) = done.state {
            if let Some(s) = self.streams.get_mut(&done.stream) {
                s.state = Some(state);
            }
        }
        done.parsed
    }

    /// Compile the detected format `name` once; the name to use (the fallback
    /// when it cannot be compiled).
    fn compile(&mut self, name: &'static str) -> &'static str {
        if self.compiled.contains_key(name) {
            return name;
        }
        let auto = self
            .auto
            .as_ref()
            .expect("formats are detected in auto mode only");
        let mut c = auto.cfg.clone();
        c.format = name.to_string();
        match Pipeline::new(&c, &auto.tables, auto.keys.clone()) {
            Ok(p) => {
                self.compiled.insert(name, Compiled::new(p));
                name
            }
            Err(e) => {
                tracing::error!(source = %self.source, format = name, "cannot compile the detected format, parsing as {FALLBACK_FORMAT}: {e}");
                FALLBACK_FORMAT
            }
        }
    }
}

/// The format of a stream, from its first lines.
fn detect(source: &str, batch: &RawBatch) -> &'static str {
    let sample: Vec<&[u8]> = batch
        .prime
        .iter()
        .chain(batch.lines.iter())
        .take(DETECT_LINES)
        .map(|(_, l)| l)
        .collect();
    match Pipeline::detect_format(&sample) {
        Some(f) => {
            tracing::info!(source = %source, stream = %batch.src.name, format = f, "format detected");
            f
        }
        None => {
            tracing::warn!(source = %source, stream = %batch.src.name, "no known format recognised in the first lines; parsing as {FALLBACK_FORMAT}");
            FALLBACK_FORMAT
        }
    }
}

impl ParseJob {
    /// Parse and serialise every line; counts lines, events and rejects.
    pub fn run(mut self, counters: &SourceCounters, metrics: &Metrics) -> ParseDone {
        let batch = self.batch;
        let src: &SourceRef = &batch.src;
        for (offset, line) in batch.prime.iter() {
            let _ = self.worker.process(src, &mut self.state, offset, line);
        }
        let mut items = Vec::with_capacity(batch.lines.len());
        let mut data = Vec::with_capacity(batch.lines.bytes() * 2 + batch.lines.len() * 128);
        let (mut events, mut rejects) = (0u64, 0u64);
        for (offset, line) in batch.lines.iter() {
            match self.worker.process(src, &mut self.state, offset, line) {
                Outcome::Event(ev) => {
                    events += 1;
                    let k = data.len();
                    data.extend_from_slice(ev.visitor_id.as_bytes());
                    let p = data.len();
                    ev.write_json_line(&mut data);
                    data.pop(); // the newline
                    items.push(Prepared {
                        offset,
                        key: k..p,
                        payload: p..data.len(),
                        reject: None,
                    });
                }
                Outcome::Reject(r) => {
                    rejects += 1;
                    metrics.reject(r.kind);
                    let k = data.len();
                    data.extend_from_slice(src.name.as_bytes());
                    let p = data.len();
                    serde_json::to_writer(&mut data, &*r).expect("a Reject always serialises");
                    items.push(Prepared {
                        offset,
                        key: k..p,
                        payload: p..data.len(),
                        reject: Some(r.kind),
                    });
                }
            }
        }
        metrics.events_parsed.fetch_add(events, Relaxed);
        counters.lines_read.fetch_add(events + rejects, Relaxed);
        let stream = batch.track.id;
        ParseDone {
            parsed: ParsedBatch {
                track: batch.track,
                source_name: batch.src.name,
                data,
                items,
                end: batch.end,
            },
            stream,
            format: self.format,
            worker: self.worker,
            state: self.stateful.then_some(self.state),
        }
    }
}

/// Parse batches from `rx` on the blocking pool, up to `parallelism` at a
/// time, and pass them to `tx` in the order they came.
pub async fn parse_stage(
    mut rx: mpsc::Receiver<RawBatch>,
    tx: mpsc::Sender<ParsedBatch>,
    mut parser: SourceParser,
    parallelism: usize,
    counters: Arc<SourceCounters>,
    metrics: Arc<Metrics>,
) -> Result<(), IngestError> {
    let parallelism = parallelism.max(1);
    let joined = |r: Result<ParseDone, tokio::task::JoinError>| {
        r.map_err(|e| IngestError::Internal(format!("parser task failed: {e}")))
    };
    let mut running = FuturesOrdered::new();
    let mut input_open = true;
    loop {
        if !input_open && running.is_empty() {
            return Ok(());
        }
        tokio::select! {
            biased;
            Some(done) = running.next(), if !running.is_empty() => {
                if tx.send(parser.finish(joined(done)?)).await.is_err() {
                    return Ok(());
                }
            }
            b = rx.recv(), if input_open && running.len() < parallelism => match b {
                None => input_open = false,
                Some(batch) => {
                    // A batch of a stateful stream waits for the previous one of
                    // the stream, which has the state: jobs finish in order.
                    while parser.is_busy(&batch) {
                        let done = running.next().await.expect("an unfinished job holds the stream's state");
                        if tx.send(parser.finish(joined(done)?)).await.is_err() {
                            return Ok(());
                        }
                    }
                    let job = parser.start(batch);
                    let (c, m) = (counters.clone(), metrics.clone());
                    running.push_back(tokio::task::spawn_blocking(move || job.run(&c, &m)));
                }
            },
        }
    }
}

// ---------------------------------------------------------------------------
// Producing
// ---------------------------------------------------------------------------

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
                let out = Outgoing { topic: topic.clone(), key: batch.key(item).to_vec(), payload: batch.payload(item).to_vec(), source: batch.source_name.clone() };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::LineBuf;
    use crate::track::Registry;
    use footfall_parse::SecretKeys;

    fn parser(format: &str) -> SourceParser {
        let cfg = ParseConfig {
            format: format.into(),
            ..Default::default()
        };
        let keys: Arc<dyn KeyProvider> =
            Arc::new(SecretKeys::from_secret(b"flow test secret value").unwrap());
        SourceParser::new("s".into(), &cfg, &Tables::embedded(), keys).unwrap()
    }

    /// A stream cut into batches of `per_batch` lines.
    fn batches(name: &str, lines: &[String], per_batch: usize) -> Vec<RawBatch> {
        let track = Track::new("s".into(), None, 0);
        let src = SourceRef::from_first_line(name, lines[0].as_bytes());
        let mut out = Vec::new();
        let mut offset = 0u64;
        for chunk in lines.chunks(per_batch) {
            let mut buf = LineBuf::new();
            for l in chunk {
                buf.push(offset, l.as_bytes());
                offset += l.len() as u64 + 1;
            }
            out.push(RawBatch {
                track: track.clone(),
                src: src.clone(),
                prime: LineBuf::new(),
                lines: buf,
                end: offset,
            });
        }
        out
    }

    /// (stream, offset, reject kind, payload) of every item, in the order parsed batches came out.
    type Item = (String, u64, Option<RejectKind>, String);

    async fn run(format: &str, parallelism: usize, input: Vec<RawBatch>) -> Vec<Item> {
        let metrics = Arc::new(Metrics::new(&["s".into()], Arc::new(Registry::new())));
        let counters = metrics.source("s").unwrap();
        let (raw_tx, raw_rx) = mpsc::channel(4);
        let (tx, mut rx) = mpsc::channel(2);
        let stage = tokio::spawn(parse_stage(
            raw_rx,
            tx,
            parser(format),
            parallelism,
            counters.clone(),
            metrics.clone(),
        ));
        let n: usize = input.iter().map(|b| b.lines.len()).sum();
        let feed = tokio::spawn(async move {
            for b in input {
                raw_tx.send(b).await.unwrap();
            }
        });
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            for it in &b.items {
                out.push((
                    b.source_name.to_string(),
                    it.offset,
                    it.reject,
                    String::from_utf8(b.payload(it).to_vec()).unwrap(),
                ));
            }
        }
        feed.await.unwrap();
        stage.await.unwrap().unwrap();
        assert_eq!(
            counters.lines_read.load(Relaxed),
            n as u64,
            "every line counted once"
        );
        out
    }

    fn combined(i: usize) -> String {
        format!(
            "192.0.2.{} - - [10/Oct/2024:13:{:02}:{:02} +0000] \"GET /p{i} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0\"",
            i % 250,
            (i / 60) % 60,
            i % 60,
            100 + i
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_parsing_keeps_the_order_and_the_output_of_one_thread() {
        let mut lines: Vec<String> = (0..3000).map(combined).collect();
        lines[1234] = "not an access log line".into();
        let one = run("combined", 1, batches("a.log", &lines, 37)).await;
        let four = run("combined", 4, batches("a.log", &lines, 37)).await;
        assert_eq!(one.len(), lines.len());
        assert!(one.windows(2).all(|w| w[0].1 < w[1].1), "in stream order");
        assert_eq!(one, four, "same items, same order");
        assert_eq!(four[1234].2, Some(RejectKind::Malformed));
    }

    /// W3C `#Fields:` headers change the layout of the lines after them: with
    /// several threads, every batch must still see the header before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stateful_format_sees_each_header_before_its_lines() {
        let mut lines = Vec::new();
        for i in 0..2000 {
            if i % 500 == 0 {
                // Alternate two column orders; a line parsed with the wrong one is garbage.
                lines.push(if i % 1000 == 0 {
                    "#Fields: date time c-ip cs-method cs-uri-stem sc-status".to_string()
                } else {
                    "#Fields: date time cs-uri-stem sc-status cs-method c-ip".to_string()
                });
            }
            let ip = format!("198.51.100.{}", i % 250);
            lines.push(if (i / 500) % 2 == 0 {
                format!("2024-03-01 12:00:{:02} {ip} GET /w{i} 200", i % 60)
            } else {
                format!("2024-03-01 12:00:{:02} /w{i} 200 GET {ip}", i % 60)
            });
        }
        for format in ["w3c", "auto"] {
            let one = run(format, 1, batches("iis.log", &lines, 7)).await;
            let four = run(format, 4, batches("iis.log", &lines, 7)).await;
            assert_eq!(one, four, "{format}: same items, same order");
            let events: Vec<&Item> = four.iter().filter(|i| i.2.is_none()).collect();
            assert_eq!(events.len(), 2000, "{format}: every data line is an event");
            for (i, e) in events.iter().enumerate() {
                assert!(
                    e.3.contains(&format!("\"path\":\"/w{i}\"")),
                    "{format}: line {i} parsed with its header: {}",
                    e.3
                );
            }
        }
    }

    /// `auto` detects a format per stream; streams interleave in the channel.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn interleaved_streams_of_different_formats() {
        let web: Vec<String> = (0..500).map(combined).collect();
        let mut iis = vec!["#Fields: date time c-ip cs-method cs-uri-stem sc-status".to_string()];
        iis.extend((0..500).map(|i| {
            format!(
                "2024-03-01 12:00:{:02} 198.51.100.{} GET /w{i} 200",
                i % 60,
                i % 250
            )
        }));
        let (a, b) = (batches("web.log", &web, 10), batches("iis.log", &iis, 10));
        let interleave = |a: Vec<RawBatch>, b: Vec<RawBatch>| {
            let mut out = Vec::new();
            let (mut a, mut b) = (a.into_iter(), b.into_iter());
            loop {
                match (a.next(), b.next()) {
                    (None, None) => return out,
                    (x, y) => out.extend(x.into_iter().chain(y)),
                }
            }
        };
        let one = run("auto", 1, interleave(a, b)).await;
        let (a, b) = (batches("web.log", &web, 10), batches("iis.log", &iis, 10));
        let four = run("auto", 4, interleave(a, b)).await;
        assert_eq!(one, four);
        let rejects: Vec<&Item> = four.iter().filter(|i| i.2.is_some()).collect();
        assert_eq!(rejects.len(), 1, "only the #Fields: line: {rejects:?}");
        assert_eq!(rejects[0].2, Some(RejectKind::Header));
    }
}
