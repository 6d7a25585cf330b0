//! From raw lines to acknowledged Kafka messages, per source.
//!
//! ```text
//! reader ──RawBatch──▶ parse stage ──ParsedBatch──▶ produce stage ──▶ librdkafka
//!   (bounded channel)   (N batches at    (bounded)    (in-flight permits)   │
//!                        once, in order)              delivery callback ◀───┘
//! ```
//!
//! The parse stage of a source parses up to `parse_threads` batches at the
//! same time on the blocking pool (parsing is CPU work), each with a
//! [`Worker`] of its own, and hands them on in the order they were read. A
//! stream whose format keeps state from line to line (the `#Fields:` header of
//! W3C logs) is parsed one batch at a time, in order, so its state is always
//! that of the line before.
//!
//! The produce stage registers every batch with its stream's [`Track`] before
//! sending it; librdkafka's delivery callback ([`BatchAck`]) counts the
//! acknowledgements and, once every message of the batch is acknowledged,
//! acknowledges the batch, which is what moves checkpoints. Every message
//! holds a permit of a global semaphore from the moment it is handed to
//! librdkafka until Kafka has acknowledged it: when Kafka stops acknowledging,
//! permits run out, the channels fill, and the readers stop reading. A failed
//! delivery is counted and sent again.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use footfall_event::{RejectKind, SOURCE_HEADER};
use footfall_parse::{
    FormatState, KeyProvider, ParseConfig, Pipeline, SiteHostSample, SourceRef, Tables, Worker,
};
use futures_util::stream::{FuturesOrdered, StreamExt};
use rdkafka::message::{BorrowedMessage, DeliveryResult, Headers, Message};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::error::IngestError;
use crate::kafka::{KafkaHealth, Producer, SendError};
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
    /// Stream offset of the line's start.
    pub offset: u64,
    /// The Kafka key: the visitor id of an event, the stream name of a dead letter.
    pub key: Range<usize>,
    /// The Kafka value: the event's or the dead letter's JSON.
    pub payload: Range<usize>,
    /// `None` for an event, the reason for a reject.
    pub reject: Option<RejectKind>,
}

/// A batch after parsing.
#[derive(Debug)]
pub struct ParsedBatch {
    /// Progress of the stream the lines come from.
    pub track: Arc<Track>,
    /// The configured source's name.
    pub source_name: Arc<str>,
    /// Counters of the configured source (settled lines).
    pub counters: Arc<SourceCounters>,
    /// Keys and payloads of every item, back to back.
    pub data: Vec<u8>,
    /// Every line of the batch, in stream order.
    pub items: Vec<Prepared>,
    /// Stream offset after the last line of the batch.
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
    /// A stream whose first lines the format evidently does not fit.
    mistake: Option<IngestError>,
    /// Set while the site's host is being inferred from the source's first
    /// lines (`infer_site_host` without `site_hosts`).
    infer: Option<HostInference>,
    /// Bumped when the compiled pipelines are replaced (a host was
    /// inferred): workers of older pipelines are dropped, not reused.
    generation: u64,
}

/// The site's host, inferred from the first lines a source reads, of every
/// stream, in the order they are parsed ([`footfall_parse::self_host`]).
/// Decided as soon as a host shows clearly, or given up when the sample is
/// full: then every pipeline of the source counts it as the site's, for the
/// batches started from then on.
#[derive(Default)]
struct HostInference {
    sample: SiteHostSample,
    /// The format state of each stream sampled (W3C headers).
    states: HashMap<u64, FormatState>,
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
    /// Batches started.
    batches: u64,
}

/// Key of the one compiled format of a source whose format is not `auto`.
const FIXED: &str = "";
/// Lines looked at to detect a format.
const DETECT_LINES: usize = 32;
/// Format used when detection finds nothing.
const FALLBACK_FORMAT: &str = "combined";
/// A stream's first batch is judged for a wrong format only with at least
/// this many lines: a followed file's first few lines prove nothing.
const FORMAT_CHECK_MIN_LINES: usize = 20;

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
    /// The [`SourceParser`]'s pipelines the worker belongs to.
    generation: u64,
}

/// A parsed job, to be handed back with [`SourceParser::finish`].
pub struct ParseDone {
    parsed: ParsedBatch,
    stream: u64,
    format: &'static str,
    worker: Worker,
    /// The stream's state after the batch (stateful formats).
    state: Option<FormatState>,
    generation: u64,
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
            mistake: None,
            infer: cfg.infers_site_host().then(HostInference::default),
            generation: 0,
        })
    }

    /// Parse one batch here and now; counts lines, events and rejects.
    /// Not to be mixed with unfinished [`SourceParser::start`] jobs.
    pub fn parse(
        &mut self,
        batch: RawBatch,
        counters: &Arc<SourceCounters>,
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
                batches: 0,
            });
        let new_stream = stream.batches == 0;
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
        if new_stream {
            self.check_first_lines(&batch, format);
        }
        self.infer_site_host(&batch, format);
        let stream = self
            .streams
            .get_mut(&batch.track.id)
            .expect("inserted above");
        stream.batches += 1;
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
            generation: self.generation,
        }
    }

    /// While the site's host is undecided, add the batch's lines to the
    /// sample; when a host shows, log it and make every pipeline of the
    /// source count it as the site's.
    fn infer_site_host(&mut self, batch: &RawBatch, format: &'static str) {
        let Some(inference) = self.infer.as_mut() else {
            return;
        };
        let pipeline = &self.compiled[format].pipeline;
        let state = inference.states.entry(batch.track.id).or_default();
        for (_, line) in batch.prime.iter().chain(batch.lines.iter()) {
            if inference.sample.is_full() {
                break;
            }
            inference.sample.add(pipeline, state, line);
        }
        let found = inference.sample.infer(pipeline);
        let lines = inference.sample.lines();
        let Some(found) = found else {
            if inference.sample.is_full() {
                tracing::debug!(source = %self.source, lines, "no site host inferred from the first lines");
                self.infer = None;
            }
            return;
        };
        tracing::info!(
            source = %self.source,
            stream = %batch.src.name,
            host = %found.host,
            referrals = found.referrals,
            considered = found.considered,
            "site host inferred: {found}; set site_hosts (--site-host) or infer_site_host = false (--no-infer-site-host) to change"
        );
        for compiled in self.compiled.values_mut() {
            *compiled = Compiled::new(compiled.pipeline.with_site_host(&found.host));
        }
        if let Some(auto) = self.auto.as_mut() {
            auto.cfg.site_hosts.push(found.host);
        }
        self.generation += 1;
        self.infer = None;
    }

    /// The first batch of a stream that starts at the beginning of its file,
    /// with enough lines to judge: when the format evidently does not fit
    /// them ([`footfall_parse::check_sample`], the rule `footfall parse`
    /// applies), the source stops with [`IngestError::Format`].
    fn check_first_lines(&mut self, batch: &RawBatch, format: &'static str) {
        let starts_at_zero = batch
            .lines
            .iter()
            .next()
            .is_some_and(|(offset, _)| offset == 0);
        if !starts_at_zero || batch.lines.len() < FORMAT_CHECK_MIN_LINES {
            return;
        }
        let sample: Vec<&[u8]> = batch
            .lines
            .iter()
            .take(footfall_parse::check::SAMPLE_LINES)
            .map(|(_, l)| l)
            .collect();
        let pipeline = &self.compiled[format].pipeline;
        if let Some((better, n)) = footfall_parse::ignored_fields(pipeline.format_name(), &sample) {
            tracing::warn!(
                source = %self.source,
                stream = %batch.src.name,
                "format {} ignores about {n} field(s) per line that these lines carry; format {better} reads them",
                pipeline.format_name()
            );
        }
        if let Some(m) = footfall_parse::check_sample(pipeline, &batch.src, &sample) {
            self.mistake.get_or_insert(IngestError::Format {
                source_name: self.source.to_string(),
                stream: batch.src.name.to_string(),
                format: pipeline.format_name().to_string(),
                detail: m.to_string(),
                detected: m.detected,
            });
        }
    }

    /// The format mistake found in a stream's first lines, once.
    pub fn take_mistake(&mut self) -> Option<IngestError> {
        self.mistake.take()
    }

    /// Take back the worker (and state) of a finished job; returns its batch.
    pub fn finish(&mut self, done: ParseDone) -> ParsedBatch {
        if let Some(c) = self
            .compiled
            .get_mut(done.format)
            .filter(|_| done.generation == self.generation)
        {
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
    pub fn run(mut self, counters: &Arc<SourceCounters>, metrics: &Metrics) -> ParseDone {
        let batch = self.batch;
        let src: &SourceRef = &batch.src;
        for (offset, line) in batch.prime.iter() {
            let _ = self.worker.process(src, &mut self.state, offset, line);
        }
        let mut items = Vec::with_capacity(batch.lines.len());
        let mut data = Vec::with_capacity(batch.lines.bytes() * 2 + batch.lines.len() * 128);
        let (mut events, mut rejects) = (0u64, 0u64);
        for (offset, line) in batch.lines.iter() {
            let k = data.len();
            // The borrowed event goes straight into the batch buffer: key, then payload.
            let written = self
                .worker
                .process_with(src, &mut self.state, offset, line, |ev| {
                    data.extend_from_slice(ev.visitor_id.as_bytes());
                    let p = data.len();
                    ev.write_json_line(&mut data);
                    data.pop(); // the newline
                    p
                });
            match written {
                Ok(p) => {
                    events += 1;
                    items.push(Prepared {
                        offset,
                        key: k..p,
                        payload: p..data.len(),
                        reject: None,
                    });
                }
                Err(r) => {
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
                counters: counters.clone(),
                data,
                items,
                end: batch.end,
            },
            stream,
            format: self.format,
            worker: self.worker,
            state: self.stateful.then_some(self.state),
            generation: self.generation,
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
                    if let Some(mistake) = parser.take_mistake() {
                        return Err(mistake);
                    }
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
    /// The Kafka producer and its topics.
    pub producer: Arc<Producer>,
    /// Messages that may be in flight (sent, not acknowledged) at once.
    pub permits: Arc<Semaphore>,
    /// Permits a stage takes at once (at most the total).
    pub permit_chunk: usize,
    /// The process's counters.
    pub metrics: Arc<Metrics>,
    /// Rejected lines go to the dead-letter topic (else they are only counted).
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
    /// A log that summarises failures at most once per `every`.
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

/// What the delivery callbacks of one produce stage report to: counters,
/// permits, and the stage itself (failed messages, the last batch acknowledged).
pub struct StageAcks {
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    health: Arc<KafkaHealth>,
    dead_letter_topic: Arc<str>,
    /// Batches handed to librdkafka with messages not yet acknowledged.
    open_batches: AtomicUsize,
    /// Failed deliveries waiting to be sent again.
    failed: Mutex<Vec<Failed>>,
    /// Wakes the stage: a delivery failed, or the last open batch is acknowledged.
    wake: Notify,
}

/// One batch's messages in librdkafka: every message carries it as its
/// delivery opaque, and the last acknowledgement acknowledges the batch in
/// its [`Track`].
pub struct BatchAck {
    stage: Arc<StageAcks>,
    track: Arc<Track>,
    counters: Arc<SourceCounters>,
    /// Offset the batch is registered under in `track` (its first line's).
    first: u64,
    /// Messages not yet acknowledged.
    remaining: AtomicUsize,
}

/// A message whose delivery failed, copied out of librdkafka.
struct Failed {
    batch: Arc<BatchAck>,
    topic: String,
    key: Vec<u8>,
    payload: Vec<u8>,
    source: Vec<u8>,
    error: rdkafka::error::KafkaError,
}

impl BatchAck {
    /// librdkafka's delivery report for one message of the batch (on its
    /// polling thread): count it, release its permit, acknowledge the batch
    /// after its last message; a failure goes back to the stage to be sent again.
    pub fn delivered(self: Arc<Self>, result: &DeliveryResult<'_>) {
        let stage = &self.stage;
        match result {
            Ok(msg) => {
                if msg.topic() == &*stage.dead_letter_topic {
                    stage.metrics.dead_letters_produced.fetch_add(1, Relaxed);
                    stage.metrics.rejects_done.fetch_add(1, Relaxed);
                } else {
                    stage.metrics.events_produced.fetch_add(1, Relaxed);
                }
                self.counters.lines_done.fetch_add(1, Relaxed);
                stage.health.delivered();
                stage.permits.add_permits(1);
                if self.remaining.fetch_sub(1, AcqRel) == 1 {
                    self.track.ack(self.first);
                    if stage.open_batches.fetch_sub(1, AcqRel) == 1 {
                        stage.wake.notify_one();
                    }
                }
            }
            Err((error, msg)) => {
                stage.metrics.delivery_errors.fetch_add(1, Relaxed);
                let failed = Failed {
                    topic: msg.topic().to_string(),
                    key: msg.key().unwrap_or_default().to_vec(),
                    payload: msg.payload().unwrap_or_default().to_vec(),
                    source: source_header(msg).to_vec(),
                    error: error.clone(),
                    batch: self.clone(),
                };
                stage
                    .failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(failed);
                stage.wake.notify_one();
            }
        }
    }
}

fn source_header<'a>(msg: &'a BorrowedMessage<'_>) -> &'a [u8] {
    msg.headers()
        .and_then(|h| {
            h.iter()
                .find(|h| h.key == SOURCE_HEADER)
                .and_then(|h| h.value)
        })
        .unwrap_or_default()
}

/// Failed deliveries are sent again after this long, doubled (up to
/// [`RETRY_MAX`]) while nothing is acknowledged in between.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The batch being handed to librdkafka.
struct Sending {
    batch: ParsedBatch,
    ack: Arc<BatchAck>,
    next: usize,
}

/// Send parsed batches to Kafka; returns when `rx` is closed and every message
/// is acknowledged, or when aborted.
pub async fn produce_stage(
    mut rx: mpsc::Receiver<ParsedBatch>,
    sink: Arc<Sink>,
) -> Result<(), IngestError> {
    let stage = Arc::new(StageAcks {
        metrics: sink.metrics.clone(),
        permits: sink.permits.clone(),
        health: sink.producer.health.clone(),
        dead_letter_topic: sink.producer.dead_letter_topic.clone(),
        open_batches: AtomicUsize::new(0),
        failed: Mutex::new(Vec::new()),
        wake: Notify::new(),
    });
    let chunk = sink.permit_chunk.max(1);
    let mut input_open = true;
    let mut current: Option<Sending> = None;
    // Failed deliveries: when to send them again, and the pause before that.
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut retry_pause = RETRY_MIN;
    let mut acked_at_retry = 0u64;
    loop {
        if retry_at.is_none()
            && !stage
                .failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
        {
            if let Some(reason) = sink.producer.fatal_error() {
                return Err(IngestError::Kafka(format!(
                    "producer failed fatally: {reason}"
                )));
            }
            retry_at = Some(tokio::time::Instant::now() + retry_pause);
        }
        if current
            .as_ref()
            .is_some_and(|s| s.next >= s.batch.items.len())
        {
            current = None;
        }
        if !input_open && current.is_none() && stage.open_batches.load(Relaxed) == 0 {
            return Ok(());
        }
        let sending = current.is_some();
        let want = current
            .as_ref()
            .map_or(1, |s| (s.batch.items.len() - s.next).min(chunk)) as u32;
        tokio::select! {
            biased;
            _ = sink.abort.cancelled() => return Ok(()),
            _ = stage.wake.notified() => {}
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => {
                retry_at = None;
                let acked = acknowledged(&sink.metrics);
                retry_pause = if acked != acked_at_retry { RETRY_MIN } else { (retry_pause * 2).min(RETRY_MAX) };
                acked_at_retry = acked;
                let failed = std::mem::take(&mut *stage.failed.lock().unwrap_or_else(|p| p.into_inner()));
                for f in failed {
                    sink.failures.record(&f.topic, &f.error);
                    let source = String::from_utf8_lossy(&f.source);
                    if !send_one(&sink, &f.topic, &f.key, &f.payload, &source, f.batch).await? {
                        return Ok(()); // aborted
                    }
                }
            }
            permit = sink.permits.acquire_many(want), if sending => {
                permit.map_err(|_| IngestError::Internal("in-flight semaphore closed".into()))?.forget();
                let s = current.as_mut().expect("sending");
                let topics = (&sink.producer.events_topic, &sink.producer.dead_letter_topic);
                for _ in 0..want {
                    let item = &s.batch.items[s.next];
                    let topic = if item.reject.is_some() { topics.1 } else { topics.0 };
                    let (key, payload) = (s.batch.key(item), s.batch.payload(item));
                    if !send_one(&sink, topic, key, payload, &s.batch.source_name, s.ack.clone()).await? {
                        return Ok(()); // aborted
                    }
                    s.next += 1;
                }
            }
            b = rx.recv(), if input_open && !sending => match b {
                Some(batch) => current = start_batch(&sink, &stage, batch),
                None => input_open = false,
            },
        }
    }
}

/// Events and dead letters acknowledged so far, by every stage.
fn acknowledged(m: &Metrics) -> u64 {
    m.events_produced.load(Relaxed) + m.dead_letters_produced.load(Relaxed)
}

/// Register a batch with its track; what is left to send, if anything.
fn start_batch(sink: &Sink, stage: &Arc<StageAcks>, mut batch: ParsedBatch) -> Option<Sending> {
    if !sink.dead_letters {
        let before = batch.items.len();
        batch.items.retain(|it| it.reject.is_none());
        let dropped = (before - batch.items.len()) as u64;
        sink.metrics.rejects_done.fetch_add(dropped, Relaxed);
        batch.counters.lines_done.fetch_add(dropped, Relaxed);
    }
    let Some(first) = batch.items.first().map(|it| it.offset) else {
        batch.track.register(std::iter::empty(), batch.end);
        return None;
    };
    batch.track.register([first], batch.end);
    stage.open_batches.fetch_add(1, Relaxed);
    let ack = Arc::new(BatchAck {
        stage: stage.clone(),
        track: batch.track.clone(),
        counters: batch.counters.clone(),
        first,
        remaining: AtomicUsize::new(batch.items.len()),
    });
    Some(Sending {
        batch,
        ack,
        next: 0,
    })
}

/// Hand one message to librdkafka, waiting while its queue is full.
/// `Ok(false)` when aborted.
async fn send_one(
    sink: &Sink,
    topic: &str,
    key: &[u8],
    payload: &[u8],
    source: &str,
    ack: Arc<BatchAck>,
) -> Result<bool, IngestError> {
    let mut ack = ack;
    let mut warned_at: Option<Instant> = None;
    loop {
        match sink.producer.send(topic, key, payload, source, ack) {
            Ok(()) => return Ok(true),
            Err((SendError::QueueFull, back)) => ack = back,
            Err((SendError::Other(e), back)) => {
                ack = back;
                if let Some(reason) = sink.producer.fatal_error() {
                    return Err(IngestError::Kafka(format!(
                        "producer failed fatally: {reason}"
                    )));
                }
                if warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                    tracing::error!(topic, "cannot enqueue message, retrying: {e}");
                    warned_at = Some(Instant::now());
                }
            }
        }
        tokio::select! {
            _ = sink.abort.cancelled() => return Ok(false),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
}

#[cfg(test)]
mod tests;
