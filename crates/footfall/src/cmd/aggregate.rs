//! `footfall aggregate`: one bounded, exactly-once run from the visits topic to
//! the Parquet warehouse. Made for cron: exit 0 on success; 75 when another run
//! holds the warehouse lock (or, shared, one of this run's partitions or
//! dates) or other members of the group hold the partitions (try again
//! later); 69 when Kafka is unavailable or lost during the run; 78 when the
//! warehouse is bound to another group (or the group to another
//! warehouse), or the topic is a dead-letter topic. Each failure prints a
//! one-line hint.
//!
//! Settings: a flag beats the config's `[aggregate]` table, which beats the
//! defaults; Kafka comes from the shared surface ([`super::KafkaArgs`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use footfall_aggregate::{
    is_store_url, AggregateError, BotRules, ErrorKind, LockMode, Progress, Replica, RunOptions,
    RunReport, Stage, SummaryOptions, Warehouse,
};
use footfall_ingest::AggregateConfig;
use footfall_kafka::KafkaConfig;
use indicatif::ProgressBar;

use crate::exit::{Failure, CANT_CREATE, CONFIG, DATA_ERR, FAILURE, TEMP_FAIL, UNAVAILABLE};
use crate::interrupt::{say_on_interrupt, Note};
use crate::progress;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub kafka: super::KafkaArgs,
    /// Visits topic [default: the config's kafka.topics.visits.name, else footfall.visits].
    #[arg(long)]
    pub topic: Option<String>,
    /// Consumer group whose committed offsets mark what is already aggregated
    /// [default: the config's aggregate.group, else footfall-aggregate].
    /// The warehouse is bound to it on its first run (see --rebind).
    #[arg(long)]
    pub group: Option<String>,
    /// Bind the warehouse to --group, taking the group's committed offsets as
    /// they are, although it was bound to another group or the group's offsets
    /// were committed by another warehouse.
    #[arg(long)]
    pub rebind: bool,
    /// Warehouse directory, created when missing, or the object store its
    /// tables are published to (s3://bucket/prefix, gs://, az://; credentials
    /// from the AWS_*, GOOGLE_* or AZURE_* environment)
    /// [default: the config's aggregate.warehouse].
    #[arg(long, value_name = "DIR|URL")]
    pub warehouse: Option<PathBuf>,
    /// The local directory of an object-store warehouse: locks, state and the
    /// tables runs read back [default: the config's aggregate.staging, else
    /// $XDG_STATE_HOME/footfall/staging/<scheme>/<bucket>/<prefix>].
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,
    /// Read and compute, but write nothing and commit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Read at most this many events in this run (the rest is left for the next).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_events: Option<u64>,
    /// Keep the events of this many days, today's date (UTC) included; older
    /// dates' event files are dropped and their late events refused (summaries stay)
    /// [default: the config's aggregate.retention_days, else every day].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub retention_days: Option<u32>,
    /// Minutes of inactivity that end a visit [default: the config's
    /// aggregate.visit_timeout_minutes, else 30].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub visit_timeout_minutes: Option<u64>,
    /// Search terms, referrer hosts and campaign values used by fewer distinct
    /// visitors a day (all partitions together) are folded into `(other)`
    /// [default: the config's aggregate.min_visitors, else 3].
    #[arg(long)]
    pub min_visitors: Option<u32>,
    /// Share the warehouse with other instances of the same group (scale-out: each
    /// locks its partitions, and each date while it writes it) [also: aggregate.shared].
    #[arg(long)]
    pub shared: bool,
    /// Threads that write events files and summaries, one date (or week, or
    /// month) each; memory grows with them [default: the config's
    /// aggregate.threads, else the cores, at most 4].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..256))]
    pub threads: Option<u64>,
    /// Recompute the summaries of this date (YYYY-MM-DD) from the events table only,
    /// without reading Kafka (after a rule change or a restore); the last run's visit
    /// timeout, min_visitors and bot rules (recorded in the warehouse) stand in for those
    /// neither flags nor the config set.
    #[arg(long, value_name = "DATE")]
    pub recompute: Option<chrono::NaiveDate>,
    /// Make a lost staging directory of an object-store warehouse again from
    /// the store (its tables, erasure records and binding), then exit; the
    /// next run rebuilds its caches and goes on from the group's committed
    /// offsets. Only into a directory that holds no warehouse (new, empty, or
    /// one a restore cut short).
    #[arg(long, conflicts_with_all = ["recompute", "dry_run", "max_events", "rebind"])]
    pub restore: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

struct Bar {
    bar: ProgressBar,
}

/// What a run interrupted by SIGINT or SIGTERM leaves, by how far it got
/// ([`crate::interrupt`]): its files are durable before its offsets are
/// committed, so none of them counts anything twice.
static BEFORE_COMMIT: Note = Note(
    "\nfootfall aggregate: interrupted before committing: nothing was committed; the next run reads these messages again and counts them once\n",
);
static COMMITTING: Note = Note(
    "\nfootfall aggregate: interrupted while committing offsets: the next run reads again whatever was not committed, and counts nothing twice\n",
);
static COMMITTED: Note = Note(
    "\nfootfall aggregate: interrupted after committing: every event read is counted (expired dates not dropped yet are dropped by the next run)\n",
);

impl Progress for Bar {
    fn stage(&mut self, stage: Stage) {
        if stage == Stage::Committing {
            say_on_interrupt(&COMMITTING);
        }
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
    fn committed(&mut self) {
        say_on_interrupt(&COMMITTED);
    }
}

/// The consumer group of a warehouse unless `--group` or `[aggregate] group` names another.
pub const DEFAULT_GROUP: &str = "footfall-aggregate";

/// The flags over the config's `[aggregate]` table: a flag beats its key.
pub fn settings(args: &Args, file: AggregateConfig) -> AggregateConfig {
    AggregateConfig {
        warehouse: args.warehouse.clone().or(file.warehouse),
        staging: args.staging.clone().or(file.staging),
        group: args.group.clone().or(file.group),
        retention_days: args.retention_days.or(file.retention_days),
        visit_timeout_minutes: args.visit_timeout_minutes.or(file.visit_timeout_minutes),
        min_visitors: args.min_visitors.or(file.min_visitors),
        shared: args.shared || file.shared,
        threads: args.threads.map(|n| n as usize).or(file.threads),
        bots: file.bots,
    }
}

/// Build the run options from the settings, the flags of this run alone and
/// the Kafka settings.
pub fn options(
    args: &Args,
    s: &AggregateConfig,
    kafka: &KafkaConfig,
) -> anyhow::Result<RunOptions> {
    let topic = args
        .topic
        .clone()
        .unwrap_or_else(|| kafka.topics.visits().name);
    let group = s.group.clone().unwrap_or_else(|| DEFAULT_GROUP.into());
    let (root, replica) = warehouse(s)?;
    let mut opts = RunOptions::new(topic, group, root);
    opts.replica = replica;
    opts.dry_run = args.dry_run;
    opts.max_events = args.max_events;
    opts.retention_days = s.retention_days;
    opts.rebind = args.rebind;
    if let Some(n) = s.threads.and_then(std::num::NonZeroUsize::new) {
        opts.threads = n;
    }
    opts.lock = if s.shared {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    };
    opts.summary = summary_options(s)?;
    Ok(opts)
}

/// The summary settings of `s` (defaults for unset keys; the default epoch).
pub fn summary_options(s: &AggregateConfig) -> anyhow::Result<SummaryOptions> {
    summary_over(s, SummaryOptions::default())
}

/// The summary settings of `s` for the commands that recompute what runs
/// wrote in the warehouse at `dir` (`erase`, `--recompute`): what the last
/// run recorded there stands in for each key `s` leaves unset, so that a day
/// is not folded with another `min_visitors` than the rest.
pub fn as_the_runs(s: &AggregateConfig, dir: &Path) -> anyhow::Result<SummaryOptions> {
    let recorded = Warehouse::new(dir).read_meta().ok().flatten();
    let base = SummaryOptions::default();
    match recorded.and_then(|m| m.summary) {
        Some(r) => summary_over(s, r.apply(base)),
        None => summary_over(s, base),
    }
}

/// `base` under the keys `s` sets.
fn summary_over(s: &AggregateConfig, base: SummaryOptions) -> anyhow::Result<SummaryOptions> {
    Ok(SummaryOptions {
        visit_timeout: s
            .visit_timeout_minutes
            .map_or(base.visit_timeout, |m| Duration::from_secs(m * 60)),
        min_visitors: s.min_visitors.unwrap_or(base.min_visitors),
        bots: match s.bots {
            Some(_) => bot_rules(s)?,
            None => base.bots,
        },
        epoch: base.epoch,
    })
}

/// The bot rules of `[aggregate.bots]` (defaults for unset keys).
pub fn bot_rules(s: &AggregateConfig) -> anyhow::Result<BotRules> {
    let bad = |e: String| -> anyhow::Error {
        Failure::new(CONFIG, format!("[aggregate.bots]: {e}"))
            .with_hint("see the [aggregate.bots] keys in docs/configuration.md")
            .into()
    };
    let rules: BotRules = match &s.bots {
        Some(t) => t
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| bad(e.message().to_string()))?,
        None => BotRules::default(),
    };
    rules.validate().map_err(bad)?;
    Ok(rules)
}

/// The warehouse's local directory (`--warehouse`, else `[aggregate]
/// warehouse`) and, when that is an object-store URL, the replica its tables
/// are published to (the directory is then the staging directory).
pub fn warehouse(s: &AggregateConfig) -> anyhow::Result<(PathBuf, Option<Arc<Replica>>)> {
    let root = local_dir(s)?;
    let url = s.warehouse.as_deref().unwrap_or(&root).to_string_lossy();
    if !is_store_url(&url) {
        return Ok((root, None));
    }
    let replica = Replica::open(&url).map_err(|e| {
        Failure::new(CONFIG, e.to_string()).with_hint(
            "warehouse URLs: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix (docs/operations.md)",
        )
    })?;
    Ok((root, Some(Arc::new(replica))))
}

/// The warehouse's local directory: `--warehouse` itself, or the staging
/// directory of an object-store URL (`--staging`, else [`default_staging`]).
pub fn local_dir(s: &AggregateConfig) -> anyhow::Result<PathBuf> {
    let given = s.warehouse.clone().ok_or_else(|| {
        Failure::new(CONFIG, "no warehouse directory")
            .with_hint("pass --warehouse DIR, or set warehouse in the config's [aggregate] table")
    })?;
    let url = given.to_string_lossy();
    match (&s.staging, is_store_url(&url)) {
        (None, false) => Ok(given),
        (Some(dir), true) => Ok(dir.clone()),
        (None, true) => default_staging(&url),
        (Some(_), false) => Err(Failure::new(
            CONFIG,
            "--staging is for a warehouse on an object store",
        )
        .with_hint(format!(
            "{} is a local directory: leave out --staging (or [aggregate] staging)",
            given.display()
        ))
        .into()),
    }
}

/// `$XDG_STATE_HOME/footfall/staging/<scheme>/<bucket>/<prefix>` (the state
/// directory defaults to `~/.local/state`).
fn default_staging(url: &str) -> anyhow::Result<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .ok_or_else(|| {
            Failure::new(
                CONFIG,
                "no staging directory for the object-store warehouse",
            )
            .with_hint("pass --staging DIR (neither XDG_STATE_HOME nor HOME is set)")
        })?;
    let (scheme, rest) = url.split_once("://").unwrap_or(("store", url));
    let mut dir = state.join("footfall/staging").join(scheme);
    for part in rest
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
    {
        dir.push(part);
    }
    Ok(dir)
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
        // Static membership, for an exclusive run that joins its group (it
        // found a member there; an empty group's run assigns itself every
        // partition): one warehouse has one exclusive run at a time, so a run
        // started after a crash takes over the dead run's place in the group at
        // once instead of waiting for its session to expire.
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
    say_on_interrupt(&BEFORE_COMMIT);
    let result = footfall_aggregate::run(&client, opts, &mut p);
    bar.finish_and_clear();
    result.map_err(|e| {
        let msg = format!(
            "aggregate {} → {}: {e}",
            opts.topic,
            opts.warehouse.display()
        );
        let f = Failure::new(exit_code(e.kind()), msg);
        let f = match hint(&e, &opts.group) {
            Some(h) => f.with_hint(h),
            None => f,
        };
        anyhow::Error::new(f)
    })
}

/// The exit code of a failed run, by the error's kind.
pub fn exit_code(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::Locked | ErrorKind::Unassigned => TEMP_FAIL,
        ErrorKind::Config => CONFIG,
        ErrorKind::Kafka | ErrorKind::Timeout | ErrorKind::Store => UNAVAILABLE,
        ErrorKind::Io => CANT_CREATE,
        _ => FAILURE,
    }
}

/// What the operator can do about a failed run of `group`, in one line.
fn hint(e: &AggregateError, group: &str) -> Option<String> {
    Some(match e {
        AggregateError::Binding(_) => format!(
            "one warehouse per consumer group: use the warehouse's own --group, or another --group for \
             another warehouse; add --rebind to bind this warehouse to group {group} on purpose (docs/operations.md)"
        ),
        AggregateError::DeadLetterTopic { .. } => format!(
            "aggregate reads the visits topic (--topic {}); read dead letters with `footfall tail --dlq`",
            footfall_kafka::VISITS_TOPIC
        ),
        AggregateError::Unassigned { .. } | AggregateError::Joined { .. } => format!(
            "another consumer is in group {group} (a --shared run, or a stray consumer: \
             kafka-consumer-groups.sh --describe --group {group}); cron will try again"
        ),
        _ => match e.kind() {
            ErrorKind::Locked => "nothing was committed; the next run tries again \
                 (a partition is held for a moment after a rebalance, a date or the warehouse \
                 until the other run is done: docs/operations.md, exit 75)"
                .into(),
            ErrorKind::Store => "is the object store reachable, and are the AWS_* (GOOGLE_*, AZURE_*) \
                 credentials right? nothing was committed, the next run redoes it"
                .into(),
            ErrorKind::Kafka | ErrorKind::Timeout => {
                "is Kafka reachable? check --brokers and -X options; nothing was committed, the next run redoes it"
                    .into()
            }
            _ => return None,
        },
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let file = args.kafka.file()?;
    let kafka = args.kafka.resolve_in(file.as_ref())?;
    let epoch = file.as_ref().and_then(|f| f.keys.epoch);
    let settings = settings(&args, file.map(|f| f.aggregate).unwrap_or_default());
    if args.restore {
        return restore(&settings, args.json);
    }
    let mut opts = options(&args, &settings, &kafka)?;
    opts.summary.epoch = epoch.unwrap_or_default();
    let report = match args.recompute {
        Some(date) => {
            let mut summary = as_the_runs(&settings, &opts.warehouse)?;
            summary.epoch = opts.summary.epoch;
            footfall_aggregate::recompute(&opts.warehouse, date, &summary).map_err(|e| {
                anyhow::Error::new(Failure::new(
                    exit_code(e.kind()),
                    format!("recompute {date} in {}: {e}", opts.warehouse.display()),
                ))
            })?
        }
        None => run_with(&kafka, &opts.group, &opts, args.json)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!("{report}");
    }
    refuse_invalid(&report, &opts.topic)
}

/// A run that skipped messages which are not visit events does its work
/// but does not exit 0: nothing footfall wrote was lost, yet something in
/// the topic was not counted, and cron should say so.
fn refuse_invalid(report: &RunReport, topic: &str) -> anyhow::Result<()> {
    if report.invalid == 0 {
        return Ok(());
    }
    let done = if report.dry_run {
        "a run would skip them"
    } else {
        "skipped, their offsets committed with the rest"
    };
    Err(Failure::new(
        DATA_ERR,
        format!(
            "{} message(s) of topic {topic} are not visit events: {done}",
            report.invalid
        ),
    )
    .with_hint(format!(
        "another producer writes to {topic}, or messages were damaged; the warnings above name each \
         partition and offset (kcat -C -t {topic} -p P -o OFFSET -c 1 shows one)"
    ))
    .into())
}

/// `--restore`: a lost staging directory made again from its object store.
fn restore(s: &AggregateConfig, json: bool) -> anyhow::Result<()> {
    let (root, replica) = warehouse(s)?;
    let Some(replica) = replica else {
        return Err(
            Failure::new(CONFIG, "--restore is for a warehouse on an object store")
                .with_hint(
                    "pass --warehouse s3://bucket/prefix (and --staging DIR, or its default)",
                )
                .into(),
        );
    };
    let url = replica.url().to_string();
    let bar = progress::bytes_bar(Some(0), "restore");
    let restored = Warehouse::restore(&root, replica, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let r = restored.map_err(|e| {
        let f = Failure::new(
            exit_code(e.kind()),
            format!("restore {url} into {}: {e}", root.display()),
        );
        match hint(&e, "") {
            Some(h) => f.with_hint(h),
            None => f,
        }
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    eprintln!(
        "footfall aggregate: restored {} files ({}) of {url} into {}; the next run rebuilds its caches and goes on from the group's committed offsets",
        r.files,
        indicatif::HumanBytes(r.bytes),
        root.display()
    );
    if let Some(first) = r.skipped.first() {
        eprintln!(
            "footfall aggregate: left {} objects that are no warehouse file where they are (the first: {first})",
            r.skipped.len()
        );
    }
    Ok(())
}
