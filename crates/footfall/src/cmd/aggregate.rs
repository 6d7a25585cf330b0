//! `footfall aggregate`: one bounded, exactly-once run from the visits topic to
//! the Parquet warehouse. Made for cron: exit 0 on success, 75 when another run
//! holds the warehouse lock, 69 when Kafka is unavailable.

use std::path::PathBuf;
use std::time::Duration;

use footfall_aggregate::{
    ErrorKind, LockMode, Progress, RunOptions, RunReport, Stage, SummaryOptions,
};
use footfall_kafka::KafkaConfig;
use indicatif::ProgressBar;

use crate::exit::{Failure, CANT_CREATE, CONFIG, FAILURE, TEMP_FAIL, UNAVAILABLE};
use crate::progress;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "FOOTFALL_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Visits topic.
    #[arg(long, default_value = footfall_kafka::VISITS_TOPIC)]
    pub topic: String,
    /// Consumer group whose committed offsets mark what is already aggregated.
    #[arg(long, default_value = "footfall-aggregate")]
    pub group: String,
    /// Warehouse directory (created when missing).
    #[arg(long)]
    pub warehouse: PathBuf,
    /// Read and compute, but write nothing and commit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Read at most this many events in this run (the rest is left for the next).
    #[arg(long)]
    pub max_events: Option<u64>,
    /// Drop event partitions older than this many days (summaries stay).
    #[arg(long)]
    pub retention_days: Option<u32>,
    /// Minutes of inactivity that end a visit.
    #[arg(long, default_value_t = 30)]
    pub visit_timeout_minutes: u64,
    /// Search terms and referrer hosts seen by fewer distinct visitors a day are folded into `(other)`.
    #[arg(long, default_value_t = 3)]
    pub min_visitors: u32,
    /// Share the warehouse with other instances of the same group (scale-out: each locks its partitions).
    #[arg(long)]
    pub shared: bool,
    /// Recompute the summaries of this date (YYYY-MM-DD) from the events table only,
    /// without reading Kafka (after a rule change or a restore).
    #[arg(long, value_name = "DATE")]
    pub recompute: Option<chrono::NaiveDate>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Raw librdkafka property (repeatable), e.g. `-X security.protocol=ssl`.
    #[arg(short = 'X', value_parser = super::parse_kv)]
    pub options: Vec<(String, String)>,
}

struct Bar {
    bar: ProgressBar,
}

impl Progress for Bar {
    fn stage(&mut self, stage: Stage) {
        self.bar.set_message(format!("{stage:?}").to_lowercase());
    }
    fn planned(&mut self, messages: u64) {
        self.bar.set_length(messages);
    }
    fn consumed(&mut self, messages: u64) {
        self.bar.set_position(messages);
    }
    fn summarized(&mut self, done: usize, total: usize) {
        self.bar.set_message(format!("summaries {done}/{total}"));
    }
}

/// Build the run options from the command line.
pub fn options(args: &Args) -> RunOptions {
    let mut opts = RunOptions::new(
        args.topic.clone(),
        args.group.clone(),
        args.warehouse.clone(),
    );
    opts.dry_run = args.dry_run;
    opts.max_events = args.max_events;
    opts.retention_days = args.retention_days;
    opts.lock = if args.shared {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    };
    opts.summary = SummaryOptions {
        visit_timeout: Duration::from_secs(args.visit_timeout_minutes * 60),
        min_visitors: args.min_visitors,
    };
    opts
}

/// Run with a Kafka config and options; maps errors to exit codes.
pub fn run_with(
    cfg: &KafkaConfig,
    group: &str,
    opts: &RunOptions,
    quiet: bool,
) -> anyhow::Result<RunReport> {
    let mut client = cfg
        .consumer_config(group)
        .map_err(|e| Failure::new(CONFIG, e.to_string()))?;
    if opts.lock == LockMode::Exclusive && client.get("group.instance.id").is_none() {
        // Static membership: one warehouse has one exclusive run at a time, so a
        // run started after a crash takes over the dead run's place in the group
        // at once instead of waiting for its session to expire.
        let path = std::path::absolute(&opts.warehouse).unwrap_or_else(|_| opts.warehouse.clone());
        let id = xxhash_rust::xxh3::xxh3_64(path.to_string_lossy().as_bytes());
        client.set("group.instance.id", format!("footfall-aggregate-{id:016x}"));
    }
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        progress::count_bar(None, "aggregate")
    };
    let mut p = Bar { bar: bar.clone() };
    let result = footfall_aggregate::run(&client, opts, &mut p);
    bar.finish_and_clear();
    result.map_err(|e| {
        let code = match e.kind() {
            ErrorKind::Locked => TEMP_FAIL,
            ErrorKind::Config => CONFIG,
            ErrorKind::Kafka | ErrorKind::Timeout => UNAVAILABLE,
            ErrorKind::Io => CANT_CREATE,
            _ => FAILURE,
        };
        let msg = format!(
            "aggregate {} → {}: {e}",
            opts.topic,
            opts.warehouse.display()
        );
        let f = Failure::new(code, msg);
        let f = match e.kind() {
            ErrorKind::Locked => {
                f.with_hint("another aggregate run holds the warehouse lock; cron will try again")
            }
            ErrorKind::Kafka | ErrorKind::Timeout => {
                f.with_hint("is Kafka reachable? check --brokers and -X options")
            }
            _ => f,
        };
        anyhow::Error::new(f)
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = options(&args);
    let report = match args.recompute {
        Some(date) => {
            footfall_aggregate::recompute(&args.warehouse, date, &opts.summary).map_err(|e| {
                let code = if e.kind() == ErrorKind::Locked {
                    TEMP_FAIL
                } else {
                    FAILURE
                };
                anyhow::Error::new(Failure::new(
                    code,
                    format!("recompute {date} in {}: {e}", args.warehouse.display()),
                ))
            })?
        }
        None => {
            let mut cfg = KafkaConfig::for_brokers(args.brokers.clone());
            super::apply_options(&mut cfg, &args.options)?;
            run_with(&cfg, &args.group, &opts, args.json)?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!("{report}");
    }
    Ok(())
}
