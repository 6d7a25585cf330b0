//! Wiring: sources → parse → produce, checkpoints, health, HTTP, shutdown.
//!
//! [`start`] goes through its phases in an order that makes mistakes surface
//! before anything is read: parse configurations, then the inputs of sources
//! that read their files once (a missing one: [`IngestError::NoInput`]), the
//! state directory and the checkpoints of the events topic (`state`), the
//! producer and the topics (`watch::check_topics`), the `/metrics`
//! listener, and only then the readers.

mod state;
mod watch;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use footfall_parse::{KeyProvider, Tables};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{IngestConfig, SourceConfig, SourceKind, SyslogProtocol, TopicsMode};
use crate::error::{ConfigError, IngestError};
use crate::flow::{parse_stage, produce_stage, Sink, SourceParser};
use crate::follow::{run_files, FileSettings, Follower};
use crate::http::{self, Status};
use crate::kafka::{KafkaHealth, Producer};
use crate::metrics::{Metrics, Snapshot, SourceCounters};
use crate::source::RawBatch;
use crate::track::{Registry, Track};
use state::State;
use watch::{Fatal, WatchCtx};

/// Called about once a second with the current counters.
pub type ProgressFn = Arc<dyn Fn(&Snapshot) + Send + Sync>;

/// Raw batches buffered between a reader and its parser.
const RAW_QUEUE: usize = 4;
/// Parsed batches buffered between a parser and its producer.
const PARSED_QUEUE: usize = 2;
/// Most in-flight permits a produce stage takes at once: it hands this many
/// messages to librdkafka between two looks at its other work.
const PERMIT_CHUNK: usize = 512;
/// Longest line kept whole by readers, relative to the parser's limit: lines
/// up to this size get the same `event_id` as with `footfall parse`.
const MIN_LINE_CAP: usize = 1 << 20;

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IngestReport {
    /// Counters at the end.
    pub counters: Snapshot,
    /// Lines read whose outcome Kafka did not acknowledge before the shutdown
    /// deadline. Those of files are after the checkpoints and will be read
    /// again; those of standard input are lost ([`IngestReport::stdin`]).
    pub unacknowledged: u64,
    /// How standard input ended, when a source read it.
    pub stdin: Option<StdinOutcome>,
    /// The run ended because shutdown was requested (else: every source ended).
    pub shutdown_requested: bool,
    /// Checkpoint documents written.
    pub checkpoints_written: u64,
    /// How long the run took, in milliseconds.
    pub elapsed_ms: u64,
}

/// How far standard input got. It cannot be read again: lines not delivered
/// when the run ends are lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StdinOutcome {
    /// Read to its end (else the run was interrupted before).
    pub ended: bool,
    /// Lines read.
    pub lines_read: u64,
    /// Lines read whose outcome Kafka did not acknowledge.
    pub undelivered: u64,
}

impl StdinOutcome {
    /// Everything standard input held was delivered.
    pub fn complete(&self) -> bool {
        self.ended && self.undelivered == 0
    }
}

/// A running service.
pub struct IngestHandle {
    http_addr: Option<SocketAddr>,
    syslog_addrs: Vec<(String, SocketAddr)>,
    metrics: Arc<Metrics>,
    health: Arc<KafkaHealth>,
    unhealthy_after: Duration,
    task: tokio::task::JoinHandle<Result<IngestReport, IngestError>>,
}

impl IngestHandle {
    /// Address of the `/metrics` listener, when enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Bound address of each syslog source, by source name.
    pub fn syslog_addrs(&self) -> &[(String, SocketAddr)] {
        &self.syslog_addrs
    }

    /// Current counters.
    pub fn snapshot(&self) -> Snapshot {
        self.metrics.snapshot()
    }

    /// Whether Kafka currently accepts events (what `/health` reports).
    pub fn kafka_healthy(&self) -> bool {
        self.health.trouble_for() < self.unhealthy_after
    }

    /// Wait for the service to end (every source finished, or shutdown).
    pub async fn wait(self) -> Result<IngestReport, IngestError> {
        self.task
            .await
            .map_err(|e| IngestError::Internal(format!("ingest task failed: {e}")))?
    }
}

/// Run the service until every source has ended (standard input at EOF,
/// files read once) and Kafka has acknowledged everything, or until
/// `shutdown` is cancelled: then reading stops, what was read is flushed for
/// up to `shutdown_timeout`, checkpoints are written and the report returned.
pub async fn run(
    cfg: IngestConfig,
    tables: Tables,
    keys: Arc<dyn KeyProvider>,
    shutdown: CancellationToken,
    progress: Option<ProgressFn>,
) -> Result<IngestReport, IngestError> {
    start(cfg, tables, keys, shutdown, progress)
        .await?
        .wait()
        .await
}

struct StatusView {
    metrics: Arc<Metrics>,
    health: Arc<KafkaHealth>,
    unhealthy_after: Duration,
}

impl Status for StatusView {
    fn metrics(&self) -> String {
        self.metrics
            .render(self.health.trouble_for() < self.unhealthy_after)
    }

    fn health(&self) -> Result<String, String> {
        let trouble = self.health.trouble_for();
        if trouble < self.unhealthy_after {
            Ok("ok\n".into())
        } else {
            Err(format!(
                "kafka unreachable or not acknowledging for {}s; {} lines waiting\n",
                trouble.as_secs(),
                self.metrics.queue_depth()
            ))
        }
    }
}

/// Start the service; see [`run`].
pub async fn start(
    cfg: IngestConfig,
    tables: Tables,
    keys: Arc<dyn KeyProvider>,
    shutdown: CancellationToken,
    progress: Option<ProgressFn>,
) -> Result<IngestHandle, IngestError> {
    let started = Instant::now();
    if cfg.sources.is_empty() {
        return Err(
            ConfigError::invalid("sources", "nothing to read: no sources configured").into(),
        );
    }

    // Configuration mistakes and missing inputs surface before anything is opened.
    let parsers = compile_parsers(&cfg, &tables, &keys)?;
    let files = file_settings(&cfg)?;
    // The HTTP port is taken before Kafka is asked anything, so that a port in
    // use ends the run at once rather than after Kafka answers.
    let http_listener = bind_http(cfg.http_listen).await?;

    // Checkpoints of the events topic.
    let topic = cfg.kafka.topics.visits().name;
    let registry = Arc::new(Registry::new());
    let state = State::open(&cfg, &topic, &registry)?.map(Arc::new);

    // Kafka.
    let producer = Arc::new(Producer::new(&cfg.kafka, cfg.max_in_flight)?);
    tracing::info!(kafka = %cfg.kafka, events_topic = %producer.events_topic, dead_letter_topic = %producer.dead_letter_topic, "producer ready");
    let topics = produced_topics(&cfg, &producer);
    ensure_topics(&cfg).await;
    watch::check_topics(&producer, &topics, &shutdown).await?;

    let names: Vec<Arc<str>> = cfg.sources.iter().map(|s| s.name_arc()).collect();
    let metrics = Arc::new(Metrics::new(&names, registry.clone()));
    let health = producer.health.clone();
    let permits = Arc::new(Semaphore::new(cfg.max_in_flight));
    let stop_reading = shutdown.child_token();
    let abort = CancellationToken::new();
    let background = CancellationToken::new();
    let sink = Arc::new(Sink {
        producer: producer.clone(),
        permits: permits.clone(),
        permit_chunk: (cfg.max_in_flight / 4).clamp(1, PERMIT_CHUNK),
        metrics: metrics.clone(),
        dead_letters: cfg.dead_letters,
        abort: abort.clone(),
        failures: crate::flow::FailureLog::new(cfg.reminder_interval.min(Duration::from_secs(30))),
    });

    // HTTP.
    let mut background_tasks = JoinSet::new();
    let view = StatusView {
        metrics: metrics.clone(),
        health: health.clone(),
        unhealthy_after: cfg.unhealthy_after,
    };
    let http_addr = http_listener
        .map(|l| serve_http(l, view, &mut background_tasks, &background))
        .transpose()?;

    // Sources.
    let mut readers = Readers {
        tasks: JoinSet::new(),
        syslog_addrs: Vec::new(),
        stdin: None,
        stop: stop_reading.clone(),
        registry: registry.clone(),
        read_chunk: cfg.read_chunk_bytes,
    };
    let mut pipelines: JoinSet<Result<(), IngestError>> = JoinSet::new();
    for ((s, parser), settings) in cfg.sources.iter().zip(parsers).zip(files) {
        let counters = metrics
            .source(&s.name)
            .ok_or_else(|| IngestError::Internal("source counters missing".into()))?;
        let (raw_tx, raw_rx) = mpsc::channel::<RawBatch>(RAW_QUEUE);
        readers.spawn(s, settings, raw_tx, &counters).await?;
        let (parsed_tx, parsed_rx) = mpsc::channel(PARSED_QUEUE);
        pipelines.spawn(parse_stage(
            raw_rx,
            parsed_tx,
            parser,
            cfg.parse_threads,
            counters,
            metrics.clone(),
        ));
        pipelines.spawn(produce_stage(parsed_rx, sink.clone()));
    }

    // Checkpoints, health, progress.
    if let Some(state) = &state {
        background_tasks.spawn(state.clone().save_loop(
            registry.clone(),
            cfg.checkpoint_interval,
            background.clone(),
        ));
    }
    let fatal = Arc::new(Fatal::default());
    background_tasks.spawn(watch::watch_loop(WatchCtx {
        producer: producer.clone(),
        metrics: metrics.clone(),
        permits: permits.clone(),
        max_in_flight: cfg.max_in_flight,
        unhealthy_after: cfg.unhealthy_after,
        reminder_interval: cfg.reminder_interval,
        probe_interval: cfg.probe_interval,
        brokers: cfg.kafka.brokers.clone(),
        topics,
        give_up_after: cfg.is_finite().then_some(cfg.unreachable_timeout),
        fatal: fatal.clone(),
        progress,
        stop: background.clone(),
    }));

    let Readers {
        tasks: reader_tasks,
        syslog_addrs,
        stdin,
        ..
    } = readers;
    let task = tokio::spawn(end_of_run(Ending {
        tasks: Tasks {
            pipelines,
            readers: reader_tasks,
        },
        stops: Stops {
            shutdown,
            stop_reading,
            abort,
            fatal,
        },
        shutdown_timeout: cfg.shutdown_timeout,
        background,
        background_tasks,
        state,
        registry,
        producer,
        metrics: metrics.clone(),
        stdin,
        started,
    }));
    Ok(IngestHandle {
        http_addr,
        syslog_addrs,
        metrics,
        health,
        unhealthy_after: cfg.unhealthy_after,
        task,
    })
}

/// Compile every source's parse configuration.
fn compile_parsers(
    cfg: &IngestConfig,
    tables: &Tables,
    keys: &Arc<dyn KeyProvider>,
) -> Result<Vec<SourceParser>, IngestError> {
    cfg.sources
        .iter()
        .map(|s| SourceParser::new(s.name_arc(), &s.parse, tables, keys.clone()))
        .collect()
}

/// Longest line a reader of `s` keeps whole.
fn line_cap(s: &SourceConfig) -> usize {
    s.parse.max_line_bytes.saturating_mul(2).max(MIN_LINE_CAP)
}

/// The follower settings of every file source (`None` for other sources),
/// after checking that sources reading their files once have them.
fn file_settings(cfg: &IngestConfig) -> Result<Vec<Option<Arc<FileSettings>>>, IngestError> {
    let mut out = Vec::with_capacity(cfg.sources.len());
    for s in &cfg.sources {
        let SourceKind::Files(f) = &s.kind else {
            out.push(None);
            continue;
        };
        let exclude = f
            .exclude
            .iter()
            .map(|p| {
                glob::Pattern::new(p)
                    .map_err(|e| IngestError::source(&s.name, format!("exclude {p:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let settings = FileSettings {
            source: s.name_arc(),
            patterns: f.paths.clone(),
            exclude,
            start_at: f.start_at,
            follow: f.follow,
            poll_interval: f.poll_interval,
            scan_interval: f.scan_interval,
            rotate_wait: f.rotate_wait,
            close_idle: f.close_idle,
            forget_after: f.forget_after,
            read_chunk: cfg.read_chunk_bytes,
            line_cap: line_cap(s),
        };
        settings.check_inputs()?;
        out.push(Some(Arc::new(settings)));
    }
    Ok(out)
}

/// The topics the run produces to: events, and dead letters when they are on.
fn produced_topics(cfg: &IngestConfig, producer: &Producer) -> Vec<Arc<str>> {
    let mut topics = vec![producer.events_topic.clone()];
    if cfg.dead_letters {
        topics.push(producer.dead_letter_topic.clone());
    }
    topics
}

/// `[ingest] ensure_topics`: check or create the topics (never fails the start).
async fn ensure_topics(cfg: &IngestConfig) {
    let mode = match cfg.ensure_topics {
        TopicsMode::Off => return,
        TopicsMode::Create => footfall_kafka::EnsureMode::Create,
        TopicsMode::Check => footfall_kafka::EnsureMode::CheckOnly,
    };
    let mut specs = vec![cfg.kafka.topics.visits()];
    if cfg.dead_letters {
        specs.push(cfg.kafka.topics.dead_letter());
    }
    match footfall_kafka::ensure_topics(&cfg.kafka, &specs, mode).await {
        Ok(report) if report.is_ok() => tracing::info!(%report, "topics"),
        Ok(report) => tracing::warn!(%report, "topics differ from what footfall expects"),
        Err(e) => tracing::warn!("cannot check topics: {e}"),
    }
}

/// The listener of `/metrics` and `/health`, if they are served.
async fn bind_http(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, IngestError> {
    let Some(addr) = addr else { return Ok(None) };
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(Some(listener)),
        Err(error) => Err(IngestError::Http {
            addr: addr.to_string(),
            error,
        }),
    }
}

/// Serve `/metrics` and `/health` on `listener` until `stop`; the bound address.
fn serve_http(
    listener: TcpListener,
    view: StatusView,
    tasks: &mut JoinSet<()>,
    stop: &CancellationToken,
) -> Result<SocketAddr, IngestError> {
    let bound = listener.local_addr().map_err(|error| IngestError::Http {
        addr: "the HTTP listener".into(),
        error,
    })?;
    let view: Arc<dyn Status> = Arc::new(view);
    tasks.spawn(http::serve(listener, view, stop.clone()));
    tracing::info!(addr = %bound, "serving /metrics and /health");
    Ok(bound)
}

/// What the end of a run needs.
struct Ending {
    tasks: Tasks,
    stops: Stops,
    shutdown_timeout: Duration,
    /// Stops the checkpoint writer, the watch loop and the HTTP listener.
    background: CancellationToken,
    background_tasks: JoinSet<()>,
    state: Option<Arc<State>>,
    registry: Arc<Registry>,
    producer: Arc<Producer>,
    metrics: Arc<Metrics>,
    stdin: Option<StdinWatch>,
    started: Instant,
}

/// Wait for the run to end ([`supervise`]), stop the background tasks, write
/// the final checkpoints, and report.
async fn end_of_run(e: Ending) -> Result<IngestReport, IngestError> {
    let shutdown = e.stops.shutdown.clone();
    let (stop_reading, abort) = (e.stops.stop_reading.clone(), e.stops.abort.clone());
    let result = supervise(e.tasks, e.stops, e.shutdown_timeout).await;
    stop_reading.cancel();
    abort.cancel();
    e.background.cancel();
    let mut background_tasks = e.background_tasks;
    while background_tasks.join_next().await.is_some() {}
    if let Some(state) = &e.state {
        if let Err(err) = state.save(&e.registry).await {
            tracing::error!("final checkpoint: {err}");
            if result.is_ok() {
                return Err(err);
            }
        }
    }
    e.producer.flush(Duration::from_millis(100));
    result.map_err(|err| with_final_count(err, &e.metrics))?;
    let written = e.state.as_ref().map_or(0, |s| s.written.load(Relaxed));
    Ok(report(
        &e.metrics,
        e.stdin.as_ref(),
        shutdown.is_cancelled(),
        written,
        e.started,
    ))
}

/// Standard input's stream and its source's counters.
struct StdinWatch {
    track: Arc<Track>,
    counters: Arc<SourceCounters>,
}

/// The reader tasks of the sources.
struct Readers {
    tasks: JoinSet<()>,
    syslog_addrs: Vec<(String, SocketAddr)>,
    stdin: Option<StdinWatch>,
    stop: CancellationToken,
    registry: Arc<Registry>,
    read_chunk: usize,
}

impl Readers {
    /// Start the reader of source `s` (`files`: its follower settings).
    async fn spawn(
        &mut self,
        s: &SourceConfig,
        files: Option<Arc<FileSettings>>,
        tx: mpsc::Sender<RawBatch>,
        counters: &Arc<SourceCounters>,
    ) -> Result<(), IngestError> {
        let stop = self.stop.clone();
        match (&s.kind, files) {
            (SourceKind::Files(_), Some(settings)) => {
                let follower = Follower::new(settings, self.registry.clone(), counters.clone());
                self.tasks.spawn(run_files(follower, tx, stop));
            }
            (SourceKind::Stdin, _) => self.spawn_stdin(s, tx, counters)?,
            (
                SourceKind::Syslog {
                    protocol,
                    listen,
                    max_connections,
                },
                _,
            ) => {
                let (name, cap) = (s.name_arc(), line_cap(s));
                let bound = match protocol {
                    SyslogProtocol::Udp => {
                        let socket = UdpSocket::bind(listen).await.map_err(|e| {
                            IngestError::source(&s.name, format!("bind udp {listen}: {e}"))
                        })?;
                        let bound = socket
                            .local_addr()
                            .map_err(|e| IngestError::source(&s.name, e))?;
                        tracing::info!(source = %s.name, addr = %bound, "syslog udp listening");
                        let task = crate::syslog::run_udp(socket, name, tx, stop, cap);
                        self.tasks.spawn(task);
                        bound
                    }
                    SyslogProtocol::Tcp => {
                        let listener = TcpListener::bind(listen).await.map_err(|e| {
                            IngestError::source(&s.name, format!("bind tcp {listen}: {e}"))
                        })?;
                        let bound = listener
                            .local_addr()
                            .map_err(|e| IngestError::source(&s.name, e))?;
                        tracing::info!(source = %s.name, addr = %bound, "syslog tcp listening");
                        let task =
                            crate::syslog::run_tcp(listener, name, tx, stop, cap, *max_connections);
                        self.tasks.spawn(task);
                        bound
                    }
                };
                self.syslog_addrs.push((s.name.clone(), bound));
            }
            (SourceKind::Files(_), None) => {
                return Err(IngestError::Internal("file source without settings".into()))
            }
        }
        Ok(())
    }

    fn spawn_stdin(
        &mut self,
        s: &SourceConfig,
        tx: mpsc::Sender<RawBatch>,
        counters: &Arc<SourceCounters>,
    ) -> Result<(), IngestError> {
        if self.stdin.is_some() {
            return Err(IngestError::source(
                &s.name,
                "standard input can be read by one source only",
            ));
        }
        let track = Track::new(s.name_arc(), None, 0);
        self.stdin = Some(StdinWatch {
            track: track.clone(),
            counters: counters.clone(),
        });
        let (stop, chunk, cap) = (self.stop.clone(), self.read_chunk, line_cap(s));
        let source_name = s.name.clone();
        self.tasks.spawn(async move {
            let reader = crate::stdin::stdin_reader(chunk);
            let name = footfall_parse::SourceRef::STDIN.into();
            if let Err(e) =
                crate::stdin::run_stream(reader, name, track, tx, stop, cap, chunk).await
            {
                tracing::error!(source = %source_name, "reading standard input failed: {e}");
            }
        });
        Ok(())
    }
}

/// The report of a run that ended, with what is lost or will be read again.
fn report(
    metrics: &Metrics,
    stdin: Option<&StdinWatch>,
    shutdown_requested: bool,
    checkpoints_written: u64,
    started: Instant,
) -> IngestReport {
    let counters = metrics.snapshot();
    let unacknowledged = counters.queue_depth;
    let stdin = stdin.map(|s| StdinOutcome {
        ended: s.track.lock().complete,
        lines_read: s.counters.lines_read.load(Relaxed),
        undelivered: s.counters.undelivered(),
    });
    let lost = stdin.map_or(0, |s| s.undelivered);
    if unacknowledged > lost {
        tracing::warn!(
            unacknowledged = unacknowledged - lost,
            "stopped with lines of files not acknowledged by Kafka; they will be read again from the checkpoints"
        );
    }
    if let Some(s) = stdin.filter(|s| !s.complete()) {
        tracing::warn!(
            undelivered = s.undelivered,
            ended = s.ended,
            "stopped before standard input was delivered: {} lines read from it were not acknowledged by Kafka{}; standard input cannot be read again",
            s.undelivered,
            if s.ended { "" } else { ", and the rest of it was not read" }
        );
    }
    tracing::info!(
        lines = counters.lines_read_total,
        events = counters.events_produced,
        rejects = counters.rejects_total,
        delivery_errors = counters.delivery_errors,
        "ingest finished"
    );
    IngestReport {
        counters,
        unacknowledged,
        stdin,
        shutdown_requested,
        checkpoints_written,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

/// `e` with the lines left undelivered once the run has stopped (the watch
/// loop that gives up cannot know them yet).
fn with_final_count(e: IngestError, metrics: &Metrics) -> IngestError {
    match e {
        IngestError::Unreachable {
            brokers, waited, ..
        } => IngestError::Unreachable {
            brokers,
            waited,
            undelivered: metrics.queue_depth(),
        },
        e => e,
    }
}

/// What [`supervise`] waits for.
struct Tasks {
    pipelines: JoinSet<Result<(), IngestError>>,
    readers: JoinSet<()>,
}

/// What ends a run early, and what [`supervise`] cancels.
struct Stops {
    shutdown: CancellationToken,
    stop_reading: CancellationToken,
    abort: CancellationToken,
    fatal: Arc<Fatal>,
}

/// Wait for the pipelines; on shutdown stop the readers and give Kafka
/// `timeout` to acknowledge what was read. A pipeline error or a fatal error
/// raised by the watch loop stops everything at once.
async fn supervise(mut t: Tasks, stops: Stops, timeout: Duration) -> Result<(), IngestError> {
    let mut deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            joined = t.pipelines.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    tracing::error!("{e}");
                    return Err(stop_now(t, &stops, e).await);
                }
                Some(Err(e)) => {
                    let e = IngestError::Internal(format!("pipeline task failed: {e}"));
                    return Err(stop_now(t, &stops, e).await);
                }
            },
            _ = stops.fatal.raised() => {
                let e = stops.fatal.take();
                return Err(stop_now(t, &stops, e).await);
            }
            _ = stops.shutdown.cancelled(), if deadline.is_none() => {
                tracing::info!(timeout_ms = timeout.as_millis() as u64, "shutdown requested: reading stopped, waiting for Kafka to acknowledge what was read");
                stops.stop_reading.cancel();
                deadline = Some(Box::pin(tokio::time::sleep(timeout)));
            }
            _ = async { deadline.as_mut().expect("guarded").await }, if deadline.is_some() && !stops.abort.is_cancelled() => {
                tracing::warn!("shutdown deadline reached before Kafka acknowledged everything");
                stops.abort.cancel();
            }
        }
    }
    t.readers.shutdown().await;
    Ok(())
}

/// Stop reading and producing, wait for the tasks to end; returns `e`.
async fn stop_now(mut t: Tasks, stops: &Stops, e: IngestError) -> IngestError {
    stops.stop_reading.cancel();
    stops.abort.cancel();
    while t.pipelines.join_next().await.is_some() {}
    t.readers.shutdown().await;
    e
}
