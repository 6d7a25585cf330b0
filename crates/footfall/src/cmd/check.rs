//! `footfall check`: is this installation ready to run? In the spirit of
//! `vector validate`: every check prints one line (`ok` or `FAIL` with a
//! one-line hint), every check runs, and the exit code is that of the first
//! problem found, one code per kind of problem ([`code`]; the table with
//! the hints is in docs/configuration.md, "Exit codes").
//!
//! The warehouse and group checked are `--warehouse` and `--group`, else
//! the config's `[aggregate]` table.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use footfall_aggregate::SummarySettings;
use footfall_ingest::AggregateConfig;
use footfall_kafka::{ensure_topics, EnsureMode, KafkaConfig};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::{KafkaArgs, KeyringArg};
use crate::exit::Failure;

/// Exit codes of `footfall check`, one per kind of problem.
pub mod code {
    /// The config file is invalid (unknown key, impossible value).
    pub const CONFIG: i32 = 78;
    /// No keyring where the configuration says it is.
    pub const KEYRING: i32 = 66;
    /// No broker answers.
    pub const UNREACHABLE: i32 = 69;
    /// The broker refuses the credentials.
    pub const CREDENTIALS: i32 = 77;
    /// A topic is missing.
    pub const TOPIC_MISSING: i32 = 68;
    /// A topic's layout differs from the configuration.
    pub const TOPIC_LAYOUT: i32 = 76;
    /// The warehouse is bound to another topic or consumer group.
    pub const WAREHOUSE: i32 = 65;
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub keyring: KeyringArg,
    /// Also check this warehouse's binding to the topic and group, and for an
    /// object-store URL that the store answers [default: the config's
    /// aggregate.warehouse, if any].
    #[arg(long, value_name = "DIR|URL")]
    pub warehouse: Option<PathBuf>,
    /// The aggregate consumer group the warehouse should be bound to [default: the config's
    /// aggregate.group, else footfall-aggregate].
    #[arg(long)]
    pub group: Option<String>,
    /// How long to wait for the broker.
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    pub timeout: u64,
}

/// One problem: its code, what is wrong, what to do.
struct Problem {
    code: i32,
    what: String,
    hint: String,
}

/// The checks' outcomes, printed as they come.
#[derive(Default)]
struct Report {
    problems: Vec<Problem>,
}

impl Report {
    fn ok(&self, check: &str, detail: impl std::fmt::Display) {
        println!("ok    {check:<10} {detail}");
    }

    fn fail(&mut self, check: &str, code: i32, what: impl Into<String>, hint: impl Into<String>) {
        let (what, hint) = (what.into(), hint.into());
        println!("FAIL  {check:<10} {what}\n      {:<10} hint: {hint}", "");
        self.problems.push(Problem { code, what, hint });
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut r = Report::default();
    let file = match args.kafka.file() {
        Ok(f) => {
            if let Some(p) = &args.kafka.config {
                r.ok("config", p.display());
            }
            f
        }
        Err(e) => {
            r.fail(
                "config",
                code::CONFIG,
                format!("{e:#}"),
                "fix the file: docs/configuration.md lists every key",
            );
            None
        }
    };
    let keys = file.as_ref().map(|c| c.keys.clone()).unwrap_or_default();
    match footfall_keys::Keyring::open(keys.dir_or(args.keyring.keyring.clone())) {
        Ok(k) => {
            let s = k.status();
            r.ok("keyring", format!("{} (fingerprint {}, day keys from {} on)", s.dir.display(), s.fingerprint, s.held_from));
        }
        Err(e) => r.fail(
            "keyring",
            code::KEYRING,
            e.to_string(),
            "footfall keys init (a new installation) or footfall keys import FILE (another host's export)",
        ),
    }
    let (kafka, aggregate) = file.map(|c| (c.kafka, c.aggregate)).unwrap_or_default();
    let topic = kafka.topics.visits().name;
    check_kafka(&mut r, kafka, &args);
    let group = args.group.clone().or(aggregate.group.clone());
    let warehouse = args.warehouse.clone().or(aggregate.warehouse.clone());
    if let Some(wh) = warehouse {
        let group = group.as_deref().unwrap_or(super::aggregate::DEFAULT_GROUP);
        let located = AggregateConfig {
            warehouse: Some(wh),
            ..aggregate
        };
        check_located(&mut r, &located, &topic, group);
    }
    match r.problems.first() {
        None => {
            println!("footfall check: everything is ready");
            Ok(())
        }
        Some(p) => {
            let n = r.problems.len();
            Err(
                Failure::new(p.code, format!("{n} problem(s); the first: {}", p.what))
                    .with_hint(p.hint.clone())
                    .into(),
            )
        }
    }
}

/// Broker, credentials, topics.
fn check_kafka(r: &mut Report, mut kafka: KafkaConfig, args: &Args) {
    if let Err(e) = super::apply_kafka_overrides(
        &mut kafka,
        args.kafka.brokers.as_deref(),
        &args.kafka.options,
    ) {
        r.fail(
            "kafka",
            code::CONFIG,
            format!("{e:#}"),
            "fix the [kafka] table or the -X options",
        );
        return;
    }
    let timeout = Duration::from_secs(args.timeout.max(1));
    match probe(&kafka, timeout) {
        Ok(brokers) => r.ok(
            "broker",
            format!("{} ({brokers} broker(s) answer)", kafka.brokers),
        ),
        Err(Probe::Credentials(why)) => {
            return r.fail(
                "broker",
                code::CREDENTIALS,
                format!("{} refuses the credentials: {why}", kafka.brokers),
                "check sasl_username and the password file ([kafka] sasl_password_file)",
            )
        }
        Err(Probe::Unreachable(why)) => {
            return r.fail(
                "broker",
                code::UNREACHABLE,
                format!(
                    "no broker answers at {} within {timeout:?}: {why}",
                    kafka.brokers
                ),
                "is Kafka running? check brokers and security_protocol",
            )
        }
    }
    let specs = kafka.topics.specs();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return r.fail("topics", 1, e.to_string(), "report this"),
    };
    match rt.block_on(ensure_topics(&kafka, &specs, EnsureMode::CheckOnly)) {
        Ok(t) => {
            for name in &t.missing {
                r.fail(
                    "topics",
                    code::TOPIC_MISSING,
                    format!("topic {name} does not exist"),
                    "footfall topics --config FILE creates it",
                );
            }
            for m in &t.mismatches {
                r.fail(
                    "topics",
                    code::TOPIC_LAYOUT,
                    m.to_string(),
                    "make the topic or the [kafka.topics] table match (docs/operations.md, Topics)",
                );
            }
            for name in &t.matching {
                r.ok("topics", format!("{name} exists and matches"));
            }
        }
        Err(e) => r.fail(
            "topics",
            code::UNREACHABLE,
            e.to_string(),
            "is Kafka reachable?",
        ),
    }
}

/// Why a metadata request failed.
enum Probe {
    Credentials(String),
    Unreachable(String),
}

/// Keeps the last authentication error librdkafka reports, and keeps
/// librdkafka's own log lines off the screen (check reports each problem
/// once, itself).
#[derive(Default)]
struct ProbeContext {
    auth: Mutex<Option<String>>,
}

impl ProbeContext {
    fn note_auth(&self, reason: &str) {
        *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
    }
}

impl ClientContext for ProbeContext {
    /// A refused login shows in a log line (served by the poll after the
    /// metadata request), sometimes without an error callback.
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, message: &str) {
        if message.contains("SASL authentication error")
            || message.contains("Authentication failed")
        {
            self.note_auth(message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if matches!(
            code,
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
        ) || reason.contains("SASL authentication error")
        {
            self.note_auth(reason);
        }
    }
}

impl ConsumerContext for ProbeContext {}

/// One metadata round trip; the number of brokers that answer.
fn probe(kafka: &KafkaConfig, timeout: Duration) -> Result<usize, Probe> {
    let config = kafka
        .consumer_config(&format!("footfall-check-{}", std::process::id()))
        .map_err(|e| Probe::Unreachable(e.to_string()))?;
    let consumer: BaseConsumer<ProbeContext> = config
        .create_with_context(ProbeContext::default())
        .map_err(|e| {
            Probe::Unreachable(footfall_kafka::KafkaError::from_rdkafka("client", e).to_string())
        })?;
    let result = consumer.fetch_metadata(None, timeout);
    if result.is_err() {
        // Serve the queued log lines and errors, which say whether the login was refused.
        let _ = consumer.poll(Duration::from_millis(200));
    }
    let auth = consumer
        .context()
        .auth
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match (result, auth) {
        (_, Some(why)) => Err(Probe::Credentials(why)),
        (Ok(md), None) => Ok(md.brokers().len()),
        (Err(e), None) => Err(Probe::Unreachable(e.to_string())),
    }
}

/// The warehouse's binding in its local directory and, for an object-store
/// warehouse, whether the object store answers with these credentials.
fn check_located(r: &mut Report, located: &AggregateConfig, topic: &str, group: &str) {
    let (dir, replica) = match super::aggregate::warehouse(located) {
        Ok(found) => found,
        Err(e) => {
            return r.fail(
                "warehouse",
                code::WAREHOUSE,
                e.to_string(),
                "see docs/operations.md",
            )
        }
    };
    check_warehouse(r, &dir, topic, group, located);
    if let Some(replica) = replica {
        check_store(r, &replica, &dir);
    }
}

/// Whether the object store answers, and whether the staging directory
/// would be refused: new while the store holds a published warehouse, or
/// superseded by another (a restore).
fn check_store(r: &mut Report, replica: &footfall_aggregate::Replica, dir: &std::path::Path) {
    let url = replica.url();
    let answer = replica
        .is_empty()
        .and_then(|empty| Ok((empty, !empty && replica.holds_warehouse()?)));
    let theirs = match answer {
        Ok((_, true)) => superseded(replica, dir),
        _ => None,
    };
    match answer {
        Ok((_, true)) if !dir.join(footfall_aggregate::META_FILE).exists() => r.fail(
            "store",
            code::WAREHOUSE,
            format!(
                "{url} holds a published warehouse, and staging directory {} is new",
                dir.display()
            ),
            "restore it there: footfall aggregate --restore (docs/operations.md)",
        ),
        Ok((_, true)) if theirs.is_some() => r.fail(
            "store",
            code::WAREHOUSE,
            format!(
                "staging directory {} was superseded: {url} is published by another staging directory \
                 (id {}, made by a restore)",
                dir.display(),
                theirs.unwrap_or_default()
            ),
            "use that staging directory, or remove this one and restore into it again (docs/operations.md)",
        ),
        Ok((empty, held)) => r.ok(
            "store",
            format!(
                "{url} answers ({})",
                match (empty, held) {
                    (true, _) => "no objects yet",
                    (false, true) => "holds this warehouse",
                    (false, false) => "holds objects",
                }
            ),
        ),
        Err(e) if e.kind() == footfall_aggregate::ErrorKind::Config => r.fail(
            "store",
            code::CONFIG,
            e.to_string(),
            "create the bucket, or correct the warehouse URL",
        ),
        Err(e) => r.fail(
            "store",
            code::UNREACHABLE,
            e.to_string(),
            "check AWS_ENDPOINT_URL, the AWS_* credentials and the bucket (docs/operations.md)",
        ),
    }
}

/// The staging id the store's metadata names, when it is not this
/// directory's (a restore made another staging directory).
fn superseded(replica: &footfall_aggregate::Replica, dir: &std::path::Path) -> Option<String> {
    let ours = footfall_aggregate::Warehouse::new(dir)
        .read_meta()
        .ok()
        .flatten()?
        .staging;
    replica
        .published_staging()
        .ok()
        .flatten()
        .filter(|theirs| ours.as_ref() != Some(theirs))
}

/// The summary settings the last run recorded, and the configured ones
/// that differ from them (a run with these would summarise its dates
/// otherwise than the rest).
fn last_settings(meta: &serde_json::Value, located: &AggregateConfig) -> String {
    let Ok(last) = serde_json::from_value::<SummarySettings>(meta["summary"].clone()) else {
        return String::new();
    };
    let mut differ = Vec::new();
    if let Some(k) = located.min_visitors.filter(|&k| k != last.min_visitors) {
        differ.push(format!("min_visitors {k}"));
    }
    if let Some(m) = located
        .visit_timeout_minutes
        .filter(|&m| m * 60 != last.visit_timeout_s)
    {
        differ.push(format!("visit timeout {m} min"));
    }
    match differ.is_empty() {
        true => format!("; the last run: {last}"),
        false => format!("; the last run: {last}, the config: {}", differ.join(", ")),
    }
}

/// The warehouse's recorded topic and group against the configured ones.
fn check_warehouse(
    r: &mut Report,
    wh: &std::path::Path,
    topic: &str,
    group: &str,
    located: &AggregateConfig,
) {
    let meta = wh.join(footfall_aggregate::META_FILE);
    let text = match std::fs::read_to_string(&meta) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return r.ok(
                "warehouse",
                format!("{} is new: the first aggregate run binds it", wh.display()),
            )
        }
        Err(e) => {
            return r.fail(
                "warehouse",
                code::WAREHOUSE,
                format!("cannot read {}: {e}", meta.display()),
                "check permissions",
            )
        }
    };
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return r.fail(
                "warehouse",
                code::WAREHOUSE,
                format!("{} is not valid: {e}", meta.display()),
                "restore it from a backup",
            )
        }
    };
    let (bound_topic, bound_group) = (v["topic"].as_str(), v["group"].as_str());
    if bound_topic.is_some_and(|t| t != topic) {
        r.fail(
            "warehouse",
            code::WAREHOUSE,
            format!(
                "{} holds topic {}, not {topic}",
                wh.display(),
                bound_topic.unwrap_or_default()
            ),
            "use the warehouse of that topic, or a new directory",
        );
    } else if bound_group.is_some_and(|g| g != group) {
        r.fail(
            "warehouse",
            code::WAREHOUSE,
            format!(
                "{} is bound to group {}, not {}",
                wh.display(),
                bound_group.unwrap_or_default(),
                group
            ),
            "use that group; footfall aggregate --help says how to re-bind on purpose",
        );
    } else {
        r.ok(
            "warehouse",
            format!(
                "{} (topic {topic}, group {}){}",
                wh.display(),
                bound_group.unwrap_or(group),
                last_settings(&v, located)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warehouse_line_names_the_last_runs_settings_and_a_config_that_differs() {
        let last = SummarySettings::of(&footfall_aggregate::SummaryOptions::default());
        let meta = serde_json::json!({ "topic": "t", "summary": last });
        let same = AggregateConfig {
            min_visitors: Some(3),
            ..AggregateConfig::default()
        };
        assert_eq!(
            last_settings(&meta, &same),
            "; the last run: visit timeout 30 min, min_visitors 3"
        );
        let other = AggregateConfig {
            min_visitors: Some(7),
            visit_timeout_minutes: Some(45),
            ..AggregateConfig::default()
        };
        assert_eq!(
            last_settings(&meta, &other),
            "; the last run: visit timeout 30 min, min_visitors 3, the config: min_visitors 7, visit timeout 45 min"
        );
        assert_eq!(
            last_settings(&serde_json::json!({ "topic": "t" }), &other),
            ""
        );
    }
}
