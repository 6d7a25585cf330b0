//! footfall ingest: follow access logs, parse and pseudonymise each line,
//! and produce visit events to Kafka, at least once.
//!
//! * **Sources** ([`config::SourceKind`]): files by path or glob, followed
//!   across rename and copytruncate rotation, also rotation while ingest was
//!   stopped (`.gz` files read once, [`follow`]); standard input; syslog over
//!   UDP or TCP (nginx's `access_log syslog:`). Each source has its own
//!   [`footfall_parse::ParseConfig`].
//! * **Events**: every line becomes exactly one [`footfall_event::VisitEvent`]
//!   (JSON, key = `visitor_id`, headers `footfall-schema` and
//!   `footfall-source`) on the events topic, or one [`footfall_event::Reject`]
//!   (key = source name) on the dead-letter topic. `event_id`s are
//!   deterministic (source key from the file's lineage and first line, byte
//!   offset, line), the same as `footfall parse` gives for the same file, so
//!   a consumer can drop the duplicates a restart produces.
//! * **At least once**: a file's checkpoint, per events topic, advances only
//!   past lines Kafka has acknowledged; checkpoints are written atomically
//!   every second and at shutdown ([`checkpoint`]).
//! * **Honest endings**: a run that ends by itself (stdin, files read once)
//!   fails on a missing input, a missing topic, or a Kafka unreachable for
//!   `unreachable_timeout`, and reports what standard input lost when
//!   interrupted ([`IngestReport::stdin`]).
//! * **Bounded**: queues and in-flight messages are bounded; when Kafka stops
//!   acknowledging, reading stops, an error is logged (then a reminder every
//!   minute), and everything resumes by itself.
//! * **Operations**: `/metrics` (Prometheus) and `/health` on
//!   `127.0.0.1:9464`; logs through `tracing` with no raw lines or addresses
//!   above debug level.
//!
//! ```no_run
//! use std::sync::Arc;
//! use footfall_ingest::{CliArgs, IngestConfig};
//! use footfall_keys::Keyring;
//! use footfall_parse::Tables;
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = IngestConfig::from_cli(&CliArgs {
//!     brokers: Some("127.0.0.1:9092".into()),
//!     format: Some("combined".into()),
//!     inputs: vec!["-".into()],
//!     ..CliArgs::default()
//! })?;
//! let shutdown = footfall_ingest::shutdown_on_signals();
//! let (keyring, _created) = Keyring::open_or_create(cfg.keys.dir_or(None))?;
//! let report = footfall_ingest::run(cfg, Tables::embedded(), Arc::new(keyring), shutdown, None).await?;
//! println!("{} events, {} rejects", report.counters.events_produced, report.counters.rejects_total);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod flow;
pub mod follow;
pub mod http;
pub mod kafka;
pub mod lines;
pub mod metrics;
pub mod service;
pub mod source;
pub mod stdin;
pub mod syslog;
pub mod track;

pub use config::{
    AggregateConfig, CliArgs, FileOptions, IngestConfig, LogConfig, LogFormat, SourceConfig,
    SourceKind, StartAt, SyslogProtocol, TailConfig, TopicsMode,
};
pub use error::{ConfigError, ErrorKind, IngestError};
pub use metrics::Snapshot;
pub use service::{run, start, IngestHandle, IngestReport, ProgressFn, StdinOutcome};

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT (Ctrl-C). Must be called
/// inside a tokio runtime.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let name = wait_for_signal().await;
        tracing::info!(signal = name, "shutting down");
        t.cancel();
    });
    token
}

/// Wait for SIGTERM or SIGINT; returns the signal's name.
pub async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// Install a global `tracing` subscriber writing to stderr, as `[log]` says.
/// `RUST_LOG`, when set, overrides `log.level`.
pub fn init_logging(cfg: &LogConfig) -> Result<(), IngestError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => parse_log_filter(&v),
        _ => parse_log_filter(&cfg.level),
    }
    .map_err(|e| ConfigError::invalid("log.level", e))?;
    // Colour only on a terminal: escape codes do not belong in journald or files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // The fmt builder stops at `info` by default: `filter` alone decides.
    let builder = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let quiet = tracing_subscriber::filter::filter_fn(|m| !is_drop_after_close(m));
    let result = match cfg.format {
        LogFormat::Text => builder.finish().with(filter).with(quiet).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(filter)
            .with(quiet)
            .try_init(),
    };
    result.map_err(|e| IngestError::Internal(format!("cannot install the log subscriber: {e}")))
}

/// Whether a log event is the error rdkafka's `BaseConsumer` logs when it is
/// dropped after an explicit close ("Failed to close consumer queue on drop:
/// Consumer queue close error: BrokerDestroy ..."), the only error that
/// module logs. The aggregate run closes its consumer itself
/// (`footfall_aggregate`'s run `group::close`), so the message would be on
/// every run and mean nothing.
fn is_drop_after_close(m: &tracing::Metadata<'_>) -> bool {
    m.target() == "rdkafka::consumer::base_consumer" && *m.level() == tracing::Level::ERROR
}

/// A log filter such as `info` or `footfall_ingest=debug,librdkafka=off,warn`:
/// comma-separated `target=level` directives and at most one bare default
/// level (`RUST_LOG`'s syntax without span and field filters).
pub fn parse_log_filter(spec: &str) -> Result<tracing_subscriber::filter::Targets, String> {
    spec.trim()
        .parse::<tracing_subscriber::filter::Targets>()
        .map_err(|e| format!("{spec:?}: {e}"))
}
