//! `footfall topics`: create or check the visits and dead-letter topics.

use footfall_kafka::{ensure_topics, EnsureMode, ErrorKind, KafkaConfig};

use crate::exit::{Failure, CONFIG, FAILURE, UNAVAILABLE};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "FOOTFALL_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Visits topic name.
    #[arg(long, default_value = footfall_kafka::VISITS_TOPIC)]
    pub topic: String,
    /// Dead-letter topic name.
    #[arg(long, default_value = footfall_kafka::DEAD_LETTER_TOPIC)]
    pub dlq_topic: String,
    /// Partitions of the visits topic.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor of both topics (default: the broker's).
    #[arg(long)]
    pub replication_factor: Option<i32>,
    /// Only check: report missing topics and mismatches, create nothing.
    #[arg(long)]
    pub check: bool,
    /// Raw librdkafka property (repeatable), e.g. `-X security.protocol=ssl`.
    #[arg(short = 'X', value_parser = super::parse_kv)]
    pub options: Vec<(String, String)>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = KafkaConfig::for_brokers(args.brokers.clone());
    super::apply_options(&mut cfg, &args.options)?;
    cfg.topics.visits.name = Some(args.topic.clone());
    cfg.topics.dead_letter.name = Some(args.dlq_topic.clone());
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
                format!("topics on {}: {e}", args.brokers),
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
