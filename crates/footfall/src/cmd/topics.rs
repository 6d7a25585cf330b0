//! `footfall topics`: create or check the visits and dead-letter topics, as
//! the config's `[kafka.topics]` describes them (flags beat the file).

use footfall_kafka::{ensure_topics, EnsureMode, ErrorKind};

use crate::exit::{Failure, CONFIG, FAILURE, UNAVAILABLE};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub kafka: super::KafkaArgs,
    #[command(flatten)]
    pub topics: super::TopicArgs,
    /// Partitions of the visits topic.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor of both topics (default: the broker's).
    #[arg(long)]
    pub replication_factor: Option<i32>,
    /// Only check: report missing topics and mismatches, create nothing.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = args.kafka.resolve()?;
    cfg.topics.rename(
        args.topics.topic.as_deref(),
        args.topics.dlq_topic.as_deref(),
    );
    if args.partitions.is_some() {
        cfg.topics.visits.partitions = args.partitions;
    }
    if args.replication_factor.is_some() {
        cfg.topics.visits.replication_factor = args.replication_factor;
        cfg.topics.dead_letter.replication_factor = args.replication_factor;
    }
    let specs = cfg.topics.specs();
    let mode = if args.check {
        EnsureMode::CheckOnly
    } else {
        EnsureMode::Create
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt
        .block_on(ensure_topics(&cfg, &specs, mode))
        .map_err(|e| {
            let code = match e.kind() {
                ErrorKind::Unreachable => UNAVAILABLE,
                ErrorKind::Config => CONFIG,
                _ => FAILURE,
            };
            anyhow::Error::new(Failure::new(
                code,
                format!("topics on {}: {e}", cfg.brokers),
            ))
        })?;
    for spec in &specs {
        let state = if report.created.contains(&spec.name) {
            "created"
        } else if report.missing.contains(&spec.name) {
            "missing"
        } else if report.mismatches.iter().any(|m| m.topic == spec.name) {
            "differs"
        } else {
            "ok"
        };
        println!(
            "{:<8} {} ({} partitions)",
            state, spec.name, spec.partitions
        );
    }
    for m in &report.mismatches {
        println!("  mismatch: {m}");
    }
    if !report.is_ok() {
        return Err(Failure::new(CONFIG, format!(
            "{} topic(s) missing, {} setting(s) differ from the expected layout",
            report.missing.len(),
            report.mismatches.len()
        ))
        .with_hint("footfall never alters an existing topic: fix it with kafka-configs/kafka-topics, or pass the actual layout")
        .into());
    }
    Ok(())
}
