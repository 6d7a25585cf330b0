//! `footfall demo`: the whole pipeline on the sample logs built into the
//! binary — ingest → Kafka → aggregate → Parquet — then what an analyst wants
//! to see first. Zero setup: an in-process Kafka-protocol broker unless
//! `--brokers` names a real one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use footfall_aggregate::{RunOptions, RunReport};
use footfall_ingest::{
    CliArgs, FileOptions, IngestConfig, SourceConfig, SourceKind, StartAt, TopicsMode,
};
use footfall_kafka::{EmbeddedKafka, KafkaConfig, TopicSpec};
use footfall_parse::{ParseConfig, SecretKeys, Tables};
use tokio_util::sync::CancellationToken;

use super::report::{self, Warehouse};
use crate::exit::{Failure, CANT_CREATE, FAILURE, UNAVAILABLE};

/// A sample log built into the binary.
pub struct Sample {
    pub file: &'static str,
    pub site: &'static str,
    pub format: &'static str,
    pub lines: u64,
    pub gz: &'static [u8],
}

/// The sample logs: real third-party logs whose licences allow redistribution
/// (see tests/data/README.md): 32,126 lines over 15 days in two formats.
pub const SAMPLES: &[Sample] = &[
    Sample {
        file: "semicomplete.com-access.log.gz",
        site: "semicomplete.com",
        format: "combined",
        lines: 10_000,
        gz: include_bytes!("../../../../tests/data/elastic-apache-logs/apache_logs.gz"),
    },
    Sample {
        file: "secrepo.com-2018-12-15.log.gz",
        site: "secrepo.com",
        format: "combined",
        lines: 4_961,
        gz: include_bytes!("../../../../tests/data/secrepo-selflogs/access-2018-12-15.log.gz"),
    },
    Sample {
        file: "secrepo.com-2021.log.gz",
        site: "secrepo.com",
        format: "combined",
        lines: 5_854,
        gz: include_bytes!("../../../../tests/data/secrepo-selflogs/2021_all.log.gz"),
    },
    Sample {
        file: "secrepo.com-2022-12-22.log.gz",
        site: "secrepo.com",
        format: "combined",
        lines: 1_262,
        gz: include_bytes!("../../../../tests/data/secrepo-selflogs/access.log.2022-12-22.gz"),
    },
    Sample {
        file: "thedash.com-nginx.json.gz",
        site: "thedash.com",
        format: "nginx-json",
        lines: 10_049,
        gz: include_bytes!("../../../../tests/data/formats/thedash-nginx-json-2013/access.log.gz"),
    },
];

/// The key the demo pseudonymises with: fixed, so the demo's numbers are
/// reproducible. Never use it for real data.
pub const DEMO_KEY: &[u8] = b"footfall demo key: reproducible, public, never for real data";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Warehouse directory to write (replaced if it holds an earlier demo).
    #[arg(long, short = 'o', default_value = "footfall-demo")]
    pub dir: PathBuf,
    /// Use this Kafka cluster instead of the embedded broker.
    #[arg(long, env = "FOOTFALL_DEMO_BROKERS")]
    pub brokers: Option<String>,
    /// Visits topic (with --brokers; a fresh name per run by default).
    #[arg(long)]
    pub topic: Option<String>,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    prepare_dir(&args.dir)?;
    let logs_dir = args.dir.join(".demo-logs");
    std::fs::create_dir_all(&logs_dir)
        .map_err(|e| Failure::new(CANT_CREATE, format!("{}: {e}", logs_dir.display())))?;
    for s in SAMPLES {
        std::fs::write(logs_dir.join(s.file), s.gz)
            .with_context(|| format!("writing {}", s.file))?;
    }
    let lines_in: u64 = SAMPLES.iter().map(|s| s.lines).sum();

    // Kafka: embedded by default.
    let suffix = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let (embedded, mut kafka, topic) = match &args.brokers {
        None => {
            let topic = footfall_kafka::VISITS_TOPIC.to_string();
            let specs = [
                TopicSpec::new(topic.clone(), 6),
                TopicSpec::new(format!("{topic}.dlq"), 1),
            ];
            let e = EmbeddedKafka::with_topics(&specs)
                .map_err(|e| Failure::new(FAILURE, format!("starting the embedded broker: {e}")))?;
            let cfg = e.kafka_config();
            eprintln!(
                "footfall demo: embedded Kafka-protocol broker at {}",
                e.bootstrap_servers()
            );
            (Some(e), cfg, topic)
        }
        Some(b) => {
            let topic = args
                .topic
                .clone()
                .unwrap_or_else(|| format!("footfall.demo.{suffix}"));
            eprintln!("footfall demo: Kafka at {b}, topic {topic}");
            (None, KafkaConfig::for_brokers(b.clone()), topic)
        }
    };
    kafka.topics.visits.name = Some(topic.clone());
    kafka.topics.visits.partitions = Some(6);
    kafka.topics.dead_letter.name = Some(format!("{topic}.dlq"));

    // 1. Ingest every sample file once.
    let keys: Arc<dyn footfall_parse::KeyProvider> =
        Arc::new(SecretKeys::from_secret(DEMO_KEY).expect("demo key is long enough"));
    let tables = Tables::embedded();
    let cli = CliArgs {
        brokers: Some(kafka.brokers.clone()),
        inputs: vec![logs_dir.join(SAMPLES[0].file).display().to_string()],
        ..Default::default()
    };
    let mut cfg = IngestConfig::from_cli(&cli).map_err(|e| Failure::new(FAILURE, e.to_string()))?;
    cfg.kafka = kafka.clone();
    cfg.http_listen = None;
    cfg.state_dir = args.dir.join(".demo-state");
    cfg.ensure_topics = if embedded.is_some() {
        TopicsMode::Off
    } else {
        TopicsMode::Create
    };
    cfg.sources = SAMPLES
        .iter()
        .map(|s| SourceConfig {
            name: s.file.to_string(),
            kind: SourceKind::Files(FileOptions {
                paths: vec![logs_dir.join(s.file).display().to_string()],
                start_at: StartAt::Beginning,
                follow: false,
                ..Default::default()
            }),
            parse: ParseConfig {
                format: s.format.into(),
                site: Some(s.site.into()),
                ..Default::default()
            },
        })
        .collect();
    eprintln!(
        "footfall demo: ingesting {} sample logs ({lines_in} lines)",
        SAMPLES.len()
    );
    let ingest = rt
        .block_on(footfall_ingest::run(
            cfg,
            tables,
            keys,
            CancellationToken::new(),
            None,
        ))
        .map_err(|e| Failure::new(UNAVAILABLE, format!("ingest: {e}")))?;
    let c = &ingest.counters;
    eprintln!(
        "footfall demo: ingested {} lines: {} events, {} rejects ({} dead letters)",
        c.lines_read_total, c.events_produced, c.rejects_total, c.dead_letters_produced
    );

    // 2. Aggregate what is on the topic into the warehouse.
    let opts = RunOptions::new(topic.clone(), "footfall-demo", args.dir.clone());
    let agg: RunReport = super::aggregate::run_with(&kafka, "footfall-demo", &opts, true)?;
    drop(embedded);
    eprintln!("footfall demo: aggregated: {agg}");

    // 3. Check the books: lines in = events + rejects = rows in the events table.
    let wh = Warehouse::new(&args.dir);
    let rows = wh.count_rows("events")?;
    let ok = c.lines_read_total == lines_in
        && c.events_produced + c.rejects_total == lines_in
        && rows == c.events_produced;
    let check = format!(
        "lines in {lines_in} = events {} + rejects {} = {}; events table rows {rows}",
        c.events_produced,
        c.rejects_total,
        c.events_produced + c.rejects_total
    );
    let _ = std::fs::remove_dir_all(&logs_dir);
    if !ok {
        return Err(Failure::new(FAILURE, format!("the counts do not reconcile: {check}")).into());
    }

    // 4. What an analyst wants first.
    let r = report::build(&wh)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", report::render(&r));
        println!();
        println!("check: {check} ✓");
        println!(
            "warehouse: {}/ ({} tables, Hive-partitioned by date)",
            args.dir.display(),
            wh.tables()?.len()
        );
        println!("query it:  duckdb -c \"SELECT date, sum(visits) visits, sum(visitors) visitors FROM read_parquet('{}/traffic_daily/*/*.parquet', hive_partitioning=true) GROUP BY date ORDER BY date\"", args.dir.display());
        println!("done in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Make `dir` ready: create it, or clear an earlier demo's output. Refuses to
/// touch a non-empty directory that does not look like a footfall warehouse.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
        let ours = entries.iter().all(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with('.')
                || n.ends_with("_daily")
                || n.ends_with("_hourly")
                || n == "events"
                || n == "visits"
        });
        if !entries.is_empty() && !ours {
            return Err(Failure::new(
                CANT_CREATE,
                format!(
                    "{} exists and is not a footfall demo warehouse",
                    dir.display()
                ),
            )
            .with_hint("pass another --dir")
            .into());
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::new(CANT_CREATE, format!("{}: {e}", dir.display())))?;
    Ok(())
}
