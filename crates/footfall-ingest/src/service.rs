//! Wiring: sources → parse → produce, checkpoints, health, HTTP, shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use footfall_parse::{KeyProvider, Tables};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{self, FileCheckpoint, StateDir};
use crate::config::{IngestConfig, SourceKind, SyslogProtocol, TopicsMode};
use crate::error::{ConfigError, IngestError};
use crate::flow::{parse_stage, produce_stage, Sink, SourceParser};
use crate::http::{self, Status};
use crate::kafka::{KafkaHealth, Producer};
use crate::metrics::{Metrics, Snapshot};
use crate::source::RawBatch;
use crate::tail::{run_files, FileSettings, Tailer};
use crate::track::{Registry, Track};

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
    /// deadline; they are after the checkpoints and will be read again.
    pub unacknowledged: u64,
    /// The run ended because shutdown was requested (else: every source ended).
    pub shutdown_requested: bool,
    /// Checkpoint documents written.
    pub checkpoints_written: u64,
    pub elapsed_ms: u64,
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

    // Parsers first: configuration mistakes surface before anything is opened.
    let mut parsers = Vec::new();
    for s in &cfg.sources {
        parsers.push(SourceParser::new(
            s.name_arc(),
            &s.parse,
            &tables,
            keys.clone(),
        )?);
    }

    // Checkpoints.
    let registry = Arc::new(Registry::new());
    let has_files = cfg
        .sources
        .iter()
        .any(|s| matches!(s.kind, SourceKind::Files(_)));
    let state = if has_files {
        let dir = StateDir::open(&cfg.state_dir)?;
        if let Some(doc) = dir.load()? {
            for e in doc.files {
                let Some(identity) = e.identity() else {
                    tracing::warn!(path = %e.path.display(), "checkpoint with an invalid fingerprint ignored");
                    continue;
                };
                let t = Track::new(e.source.as_str().into(), Some(identity), e.offset);
                {
                    let mut p = t.lock();
                    p.size = e.size;
                    p.complete = e.complete;
                    p.last_seen = e.last_seen_time();
                }
                registry.add(t);
            }
            tracing::info!(dir = %dir.path().display(), files = registry.tracks().len(), "checkpoints loaded");
        }
        Some(Arc::new(dir))
    } else {
        None
    };

    // Kafka.
    let producer = Arc::new(Producer::new(&cfg.kafka, cfg.max_in_flight)?);
    tracing::info!(kafka = %cfg.kafka, events_topic = %producer.events_topic, dead_letter_topic = %producer.dead_letter_topic, "producer ready");
    if cfg.ensure_topics != TopicsMode::Off {
        let mode = if cfg.ensure_topics == TopicsMode::Create {
            footfall_kafka::EnsureMode::Create
        } else {
            footfall_kafka::EnsureMode::CheckOnly
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
    let http_addr = match cfg.http_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|error| IngestError::Http {
                    addr: addr.to_string(),
                    error,
                })?;
            let bound = listener.local_addr().map_err(|error| IngestError::Http {
                addr: addr.to_string(),
                error,
            })?;
            let view: Arc<dyn Status> = Arc::new(StatusView {
                metrics: metrics.clone(),
                health: health.clone(),
                unhealthy_after: cfg.unhealthy_after,
            });
            background_tasks.spawn(http::serve(listener, view, background.clone()));
            tracing::info!(addr = %bound, "serving /metrics and /health");
            Some(bound)
        }
        None => None,
    };

    // Sources.
    let line_cap = |s: &crate::config::SourceConfig| {
        s.parse.max_line_bytes.saturating_mul(2).max(MIN_LINE_CAP)
    };
    let mut readers = JoinSet::new();
    let mut pipelines: JoinSet<Result<(), IngestError>> = JoinSet::new();
    let mut syslog_addrs = Vec::new();
    let mut stdin_used = false;
    for (s, parser) in cfg.sources.iter().zip(parsers) {
        let name = s.name_arc();
        let cap = line_cap(s);
        let (raw_tx, raw_rx) = mpsc::channel::<RawBatch>(RAW_QUEUE);
        match &s.kind {
            SourceKind::Files(f) => {
                let exclude = f
                    .exclude
                    .iter()
                    .map(|p| {
                        glob::Pattern::new(p).map_err(|e| {
                            IngestError::source(&s.name, format!("exclude {p:?}: {e}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let settings = Arc::new(FileSettings {
                    source: name.clone(),
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
                    line_cap: cap,
                });
                let tailer = Tailer::new(settings, registry.clone());
                readers.spawn(run_files(tailer, raw_tx, stop_reading.clone()));
            }
            SourceKind::Stdin => {
                if stdin_used {
                    return Err(IngestError::source(
                        &s.name,
                        "standard input can be read by one source only",
                    ));
                }
                stdin_used = true;
                let track = Track::new(name.clone(), None, 0);
                let stop = stop_reading.clone();
                let chunk = cfg.read_chunk_bytes;
                let source_name = s.name.clone();
                readers.spawn(async move {
                    if let Err(e) = crate::stdin::run_stream(crate::stdin::stdin_reader(chunk), "stdin".into(), track, raw_tx, stop, cap, chunk).await {
                        tracing::error!(source = %source_name, "reading standard input failed: {e}");
                    }
                });
            }
            SourceKind::Syslog {
                protocol,
                listen,
                max_connections,
            } => {
                let stop = stop_reading.clone();
                match protocol {
                    SyslogProtocol::Udp => {
                        let socket = UdpSocket::bind(listen).await.map_err(|e| {
                            IngestError::source(&s.name, format!("bind udp {listen}: {e}"))
                        })?;
                        let bound = socket
                            .local_addr()
                            .map_err(|e| IngestError::source(&s.name, e))?;
                        tracing::info!(source = %s.name, addr = %bound, "syslog udp listening");
                        syslog_addrs.push((s.name.clone(), bound));
                        readers.spawn(crate::syslog::run_udp(
                            socket,
                            name.clone(),
                            raw_tx,
                            stop,
                            cap,
                        ));
                    }
                    SyslogProtocol::Tcp => {
                        let listener = TcpListener::bind(listen).await.map_err(|e| {
                            IngestError::source(&s.name, format!("bind tcp {listen}: {e}"))
                        })?;
                        let bound = listener
                            .local_addr()
                            .map_err(|e| IngestError::source(&s.name, e))?;
                        tracing::info!(source = %s.name, addr = %bound, "syslog tcp listening");
                        syslog_addrs.push((s.name.clone(), bound));
                        readers.spawn(crate::syslog::run_tcp(
                            listener,
                            name.clone(),
                            raw_tx,
                            stop,
                            cap,
                            *max_connections,
                        ));
                    }
                }
            }
        }
        let (parsed_tx, parsed_rx) = mpsc::channel(PARSED_QUEUE);
        let counters = metrics
            .source(&s.name)
            .ok_or_else(|| IngestError::Internal("source counters missing".into()))?;
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
    let checkpoints_written = Arc::new(AtomicU64::new(0));
    if let Some(dir) = &state {
        background_tasks.spawn(checkpoint_loop(
            dir.clone(),
            registry.clone(),
            cfg.checkpoint_interval,
            checkpoints_written.clone(),
            background.clone(),
        ));
    }
    background_tasks.spawn(watch_loop(WatchCtx {
        producer: producer.clone(),
        metrics: metrics.clone(),
        permits: permits.clone(),
        max_in_flight: cfg.max_in_flight,
        unhealthy_after: cfg.unhealthy_after,
        reminder_interval: cfg.reminder_interval,
        probe_interval: cfg.probe_interval,
        brokers: cfg.kafka.brokers.clone(),
        progress,
        stop: background.clone(),
    }));

    let shutdown_timeout = cfg.shutdown_timeout;
    let task = {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let result = supervise(
                pipelines,
                readers,
                shutdown.clone(),
                stop_reading.clone(),
                abort.clone(),
                shutdown_timeout,
            )
            .await;
            stop_reading.cancel();
            abort.cancel();
            background.cancel();
            while background_tasks.join_next().await.is_some() {}
            let mut written = 0;
            if let Some(dir) = &state {
                written = checkpoints_written.load(Relaxed);
                let files = collect(&registry);
                match tokio::task::spawn_blocking({
                    let dir = dir.clone();
                    move || dir.save(files)
                })
                .await
                {
                    Ok(Ok(())) => written += 1,
                    Ok(Err(e)) => {
                        tracing::error!("final checkpoint: {e}");
                        if result.is_ok() {
                            return Err(e);
                        }
                    }
                    Err(e) => tracing::error!("final checkpoint task: {e}"),
                }
            }
            producer.flush(Duration::from_millis(100));
            result?;
            let counters = metrics.snapshot();
            let unacknowledged = counters.queue_depth;
            if unacknowledged > 0 {
                tracing::warn!(unacknowledged, "stopped with lines not acknowledged by Kafka; they will be read again from the checkpoints");
            }
            tracing::info!(
                lines = counters.lines_read_total,
                events = counters.events_produced,
                rejects = counters.rejects_total,
                delivery_errors = counters.delivery_errors,
                "ingest finished"
            );
            Ok(IngestReport {
                counters,
                unacknowledged,
                shutdown_requested: shutdown.is_cancelled(),
                checkpoints_written: written,
                elapsed_ms: started.elapsed().as_millis() as u64,
            })
        })
    };
    Ok(IngestHandle {
        http_addr,
        syslog_addrs,
        metrics,
        health,
        unhealthy_after: cfg.unhealthy_after,
        task,
    })
}

/// Wait for the pipelines; on shutdown stop the readers and give Kafka
/// `timeout` to acknowledge what was read.
async fn supervise(
    mut pipelines: JoinSet<Result<(), IngestError>>,
    mut readers: JoinSet<()>,
    shutdown: CancellationToken,
    stop_reading: CancellationToken,
    abort: CancellationToken,
    timeout: Duration,
) -> Result<(), IngestError> {
    let mut deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            joined = pipelines.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    tracing::error!("{e}");
                    stop_reading.cancel();
                    abort.cancel();
                    while pipelines.join_next().await.is_some() {}
                    readers.shutdown().await;
                    return Err(e);
                }
                Some(Err(e)) => {
                    stop_reading.cancel();
                    abort.cancel();
                    while pipelines.join_next().await.is_some() {}
                    readers.shutdown().await;
                    return Err(IngestError::Internal(format!("pipeline task failed: {e}")));
                }
            },
            _ = shutdown.cancelled(), if deadline.is_none() => {
                tracing::info!(timeout_ms = timeout.as_millis() as u64, "shutdown requested: reading stopped, waiting for Kafka to acknowledge what was read");
                stop_reading.cancel();
                deadline = Some(Box::pin(tokio::time::sleep(timeout)));
            }
            _ = async { deadline.as_mut().expect("guarded").await }, if deadline.is_some() && !abort.is_cancelled() => {
                tracing::warn!("shutdown deadline reached before Kafka acknowledged everything");
                abort.cancel();
            }
        }
    }
    readers.shutdown().await;
    Ok(())
}

fn collect(registry: &Registry) -> Vec<FileCheckpoint> {
    let mut out = Vec::new();
    for t in registry.tracks() {
        let p = t.lock();
        let Some(id) = &p.identity else { continue };
        out.push(FileCheckpoint {
            source: t.source.to_string(),
            path: id.path.clone(),
            fingerprint: checkpoint::to_hex(&id.fingerprint),
            head_len: id.head_len,
            dev: id.dev,
            ino: id.ino,
            gzip: id.gzip,
            offset: p.checkpoint(),
            size: p.size,
            complete: p.complete && p.all_acknowledged(),
            last_seen: checkpoint::unix_secs(p.last_seen),
        });
    }
    out
}

async fn checkpoint_loop(
    dir: Arc<StateDir>,
    registry: Arc<Registry>,
    every: Duration,
    written: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Vec<FileCheckpoint>> = None;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let files = collect(&registry);
        if last.as_ref() == Some(&files) {
            continue;
        }
        let d = dir.clone();
        let f = files.clone();
        match tokio::task::spawn_blocking(move || d.save(f)).await {
            Ok(Ok(())) => {
                written.fetch_add(1, Relaxed);
                last = Some(files);
                if failing {
                    tracing::info!("checkpoints written again");
                    failing = false;
                }
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::error!("cannot write checkpoints (retrying): {e}");
                    failing = true;
                }
            }
            Err(e) => tracing::error!("checkpoint task: {e}"),
        }
    }
}

struct WatchCtx {
    producer: Arc<Producer>,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    unhealthy_after: Duration,
    reminder_interval: Duration,
    probe_interval: Duration,
    brokers: String,
    progress: Option<ProgressFn>,
    stop: CancellationToken,
}

/// Once a second: reachability, the unreachable error and its reminders, progress.
async fn watch_loop(c: WatchCtx) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_probe: Option<Instant> = None;
    let mut probe: Option<tokio::task::JoinHandle<Result<(), String>>> = None;
    let mut down_since: Option<(SystemTime, Instant)> = None;
    let mut last_reminder = Instant::now();
    let mut topic_warned = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = c.stop.cancelled() => return,
        }
        if c.permits.available_permits() == c.max_in_flight {
            c.producer.health.idle();
        }
        if let Some(p) = probe.take_if(|p| p.is_finished()) {
            match p.await {
                Ok(Err(e)) if e.starts_with("topic ") && !topic_warned => {
                    tracing::warn!("{e}");
                    topic_warned = true;
                }
                _ => {}
            }
        }
        if probe.is_none() && last_probe.is_none_or(|t| t.elapsed() >= c.probe_interval) {
            last_probe = Some(Instant::now());
            let producer = c.producer.clone();
            probe = Some(tokio::task::spawn_blocking(move || {
                producer.probe(Duration::from_secs(5))
            }));
        }
        let trouble = c.producer.health.trouble_for();
        let waiting = c.metrics.queue_depth();
        if trouble >= c.unhealthy_after {
            match down_since {
                None => {
                    let why = c
                        .producer
                        .health
                        .last_error()
                        .unwrap_or_else(|| "no acknowledgement".into());
                    tracing::error!(
                        brokers = %c.brokers,
                        for_s = trouble.as_secs(),
                        waiting,
                        "Kafka is unreachable or not acknowledging ({why}); reading pauses once {} messages wait, and resumes by itself",
                        c.max_in_flight
                    );
                    down_since = Some((SystemTime::now(), Instant::now()));
                    last_reminder = Instant::now();
                }
                Some(_) if last_reminder.elapsed() >= c.reminder_interval => {
                    tracing::warn!(brokers = %c.brokers, for_s = trouble.as_secs(), waiting, "Kafka still unreachable");
                    last_reminder = Instant::now();
                }
                Some(_) => {}
            }
        } else if let Some((_, since)) = down_since.take() {
            tracing::info!(brokers = %c.brokers, after_s = since.elapsed().as_secs() + c.unhealthy_after.as_secs(), "Kafka reachable again");
        }
        if let Some(p) = &c.progress {
            p(&c.metrics.snapshot());
        }
    }
}
