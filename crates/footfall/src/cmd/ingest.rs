//! `footfall ingest`: access logs in, visit events out to Kafka, at least once.
//!
//! The Kafka settings come from the surface every command shares
//! ([`super::KafkaArgs`]: `--config`, `--brokers`, `-X`); the rest of the
//! file and the flags are [`footfall_ingest::IngestConfig::from_cli`]'s.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use footfall_keys::Keyring;

use footfall_ingest::{CliArgs, ErrorKind, IngestConfig, IngestError, IngestReport, StartAt};
use footfall_parse::Tables;

use super::{open_or_create_keyring, KeyringArg};
use crate::exit::{
    Failure, CANT_CREATE, CONFIG, DATA_ERR, FAILURE, INTERRUPTED, NO_INPUT, TEMP_FAIL, UNAVAILABLE,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Log files or glob patterns to follow (across rotation, also while stopped); `-` reads stdin
    /// (then the command exits once the input has ended and Kafka has acknowledged every event;
    /// interrupted before that, it exits 130 saying how many lines were not delivered).
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub kafka: super::KafkaArgs,
    #[command(flatten)]
    pub topics: super::TopicArgs,
    /// Log format: a preset name or `auto`.
    #[arg(long, short = 'f')]
    pub format: Option<String>,
    /// A custom format: an nginx `log_format` or Apache `LogFormat` string.
    #[arg(long)]
    pub log_format: Option<String>,
    /// Site name stamped on events.
    #[arg(long)]
    pub site: Option<String>,
    /// Host names of the site itself, for internal referrers (repeatable). Without one, the host
    /// that refers most to the site's own paths in a source's first lines is taken (and logged).
    #[arg(long = "site-host", value_name = "HOST")]
    pub site_hosts: Vec<String>,
    /// Do not infer the site's host from the referrers when no site host is configured
    /// (`[parse]` `infer_site_host = false`).
    #[arg(long)]
    pub no_infer_site_host: bool,
    /// IANA timezone for event times and calendar days.
    #[arg(long)]
    pub timezone: Option<String>,
    /// Directory for checkpoints (default .state/ingest).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Address for /metrics and /health, or `off` [default: 127.0.0.1:9464 while following
    /// files or syslog; none for stdin and --once unless the config has an [http] table].
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<String>,
    /// On the very first run, start files at their `beginning` (default) or `end`.
    #[arg(long, value_parser = ["beginning", "end"])]
    pub start_at: Option<String>,
    /// Read the given files once to their end and exit, instead of following them (a missing file,
    /// or a glob that matches nothing, exits 66).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub keyring: KeyringArg,
}

/// The configuration: the file, the flags and inputs, then the Kafka
/// environment and flags through the surface every command shares.
fn config(args: Args) -> anyhow::Result<IngestConfig> {
    let cli = CliArgs {
        config: args.kafka.config.clone(),
        brokers: None,
        topic: args.topics.topic,
        dlq_topic: args.topics.dlq_topic,
        format: args.format,
        log_format: args.log_format,
        site: args.site,
        site_hosts: args.site_hosts,
        no_infer_site_host: args.no_infer_site_host,
        timezone: args.timezone,
        inputs: args.inputs,
        state_dir: args.state_dir,
        http_listen: args.http_listen,
        start_at: args.start_at.map(|s| {
            if s == "end" {
                StartAt::End
            } else {
                StartAt::Beginning
            }
        }),
        once: args.once,
        keyring: args.keyring.keyring,
    };
    let mut cfg = IngestConfig::from_cli(&cli).map_err(|e| Failure::new(CONFIG, e.to_string()))?;
    args.kafka.apply(&mut cfg.kafka)?;
    Ok(cfg)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = config(args)?;
    // Logs (text or JSON, per [log]) go to stderr; a subscriber installed earlier stays.
    if let Err(e) = footfall_ingest::init_logging(&cfg.log) {
        eprintln!("footfall ingest: {e}");
    }
    let keyring = open_or_create_keyring(&cfg.keys, &KeyringArg::default(), "ingest")?;
    let horizon = cfg.keys.horizon_days;
    let topics_hint = topics_hint(&cfg);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let shutdown = footfall_ingest::shutdown_on_signals();
        let rotation = tokio::spawn(rotate_keys(Arc::clone(&keyring), horizon));
        let report =
            footfall_ingest::run(cfg, Tables::embedded(), keyring.clone(), shutdown, None).await;
        rotation.abort();
        report
    });
    advance_keys(&keyring, horizon);
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match report {
        Ok(r) => {
            eprintln!(
                "footfall ingest: {} lines, {} events, {} rejects, {} unacknowledged",
                r.counters.lines_read_total,
                r.counters.events_produced,
                r.counters.rejects_total,
                r.unacknowledged
            );
            stdin_outcome(&r)
        }
        Err(e) => Err(failure(e, topics_hint).into()),
    }
}

/// An interrupted run that read standard input fails with what it lost:
/// standard input cannot be read again.
fn stdin_outcome(r: &IngestReport) -> anyhow::Result<()> {
    match r.stdin {
        Some(s) if !s.complete() => {
            let rest = if s.ended {
                ""
            } else {
                ", and the rest of standard input was not read"
            };
            let message = format!(
                "interrupted: {} of the {} lines read from standard input were not delivered to \
                 Kafka{rest}",
                s.undelivered, s.lines_read
            );
            Err(Failure::new(INTERRUPTED, message)
                .with_hint(STDIN_LOST_HINT)
                .into())
        }
        _ => Ok(()),
    }
}

/// What to do when standard input was interrupted.
const STDIN_LOST_HINT: &str = "standard input cannot be read again: run the command again with \
    the whole input (lines delivered twice keep their event_id, so aggregate counts them once)";
/// What to do when Kafka stayed unreachable.
const UNREACHABLE_HINT: &str = "check that the brokers are up and reachable from here \
    ([ingest] unreachable_timeout sets how long a run that ends by itself waits); lines of files \
    are read again from the checkpoints on the next run, lines of standard input are lost";
/// What to do when an input of a run that reads files once is missing.
const NO_INPUT_HINT: &str =
    "check the path; without --once ([[source]] follow = true) ingest waits for files to appear";

/// The exit code and hint for an error that stopped ingest.
fn failure(e: IngestError, topics_hint: String) -> Failure {
    let format_hint = match &e {
        IngestError::Format {
            detected: Some(d), ..
        } => format!("set the source's format to {d} (or auto), or give log_format"),
        _ => "name the source's format, or give log_format with the server's format string"
            .to_string(),
    };
    let (code, hint) = match e.kind() {
        ErrorKind::Format => (DATA_ERR, Some(format_hint)),
        ErrorKind::Config | ErrorKind::Parse => (CONFIG, None),
        ErrorKind::Topic => (CONFIG, Some(topics_hint)),
        ErrorKind::Locked => (TEMP_FAIL, None),
        ErrorKind::Kafka | ErrorKind::Http => (UNAVAILABLE, None),
        ErrorKind::Unreachable => (UNAVAILABLE, Some(UNREACHABLE_HINT.to_string())),
        ErrorKind::NoInput => (NO_INPUT, Some(NO_INPUT_HINT.to_string())),
        ErrorKind::Source => (NO_INPUT, None),
        ErrorKind::State => (CANT_CREATE, None),
        _ => (FAILURE, None),
    };
    let f = Failure::new(code, e.to_string());
    match hint {
        Some(h) => f.with_hint(h),
        None => f,
    }
}

/// How to create the topics of `cfg`.
fn topics_hint(cfg: &IngestConfig) -> String {
    format!(
        "create the topics with `footfall topics --brokers {} --topic {} --dlq-topic {}`, \
         or set `[ingest] ensure_topics = \"create\"`",
        cfg.kafka.brokers,
        cfg.kafka.topics.visits().name,
        cfg.kafka.topics.dead_letter().name
    )
}

/// How often ingest moves the keyring's ratchet to its horizon.
const KEY_ROTATION_INTERVAL: Duration = Duration::from_secs(10);

/// Destroy day keys past the horizon as the newest day pseudonymised moves on.
async fn rotate_keys(keyring: Arc<Keyring>, horizon_days: u32) {
    let mut tick = tokio::time::interval(KEY_ROTATION_INTERVAL);
    loop {
        tick.tick().await;
        let k = Arc::clone(&keyring);
        let _ = tokio::task::spawn_blocking(move || advance_keys(&k, horizon_days)).await;
    }
}

/// One step of [`rotate_keys`]: logs what was destroyed; a failure is logged
/// and tried again on the next tick (the keys stay until it succeeds).
fn advance_keys(keyring: &Keyring, horizon_days: u32) {
    let today = chrono::Utc::now().date_naive();
    match keyring.advance_for_horizon(horizon_days, today) {
        Ok(Some(from)) => {
            tracing::info!(held_from = %from, horizon_days, "destroyed the day keys of every day before {from}")
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not move the keyring to its horizon (retrying)")
        }
    }
}
