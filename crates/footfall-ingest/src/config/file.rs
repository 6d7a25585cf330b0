//! The config file's schema: every table and key that any footfall command
//! accepts, as serde structs that refuse unknown keys. This is the one home
//! of the file's shape; [`super`] builds ingest's validated runtime form
//! from it, and `footfall aggregate`, `tail`, `check`, `keys`, `erase` and
//! `lookup` read their tables from the same parse, so a typo in any table is
//! an error for every command.
//!
//! Tables: `[kafka]` ([`KafkaConfig`], shared), `[ingest]`, `[http]`,
//! `[log]`, `[keys]` ([`KeysConfig`]), `[parse]` (defaults of every
//! source's `parse` table, a [`footfall_parse::ParseConfig`]),
//! `[[source]]`, `[aggregate]` ([`AggregateConfig`]) and `[tail]`
//! ([`TailConfig`]). `docs/configuration.md` documents every key; a test
//! checks that it and `deploy/footfall.example.toml` name each one.

use std::path::PathBuf;
use std::time::Duration;

use footfall_kafka::KafkaConfig;
use footfall_keys::KeysConfig;
use serde::{Deserialize, Deserializer};

use crate::error::ConfigError;
use crate::follow::StartAt;

/// Default `/metrics` listener.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9464";

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub ingest: IngestSection,
    /// `None` when the file has no `[http]` table: then a run that ends by
    /// itself opens no listener.
    #[serde(default)]
    pub http: Option<HttpSection>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub keys: KeysConfig,
    #[serde(default)]
    pub parse: Option<toml::Table>,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceSection>,
    #[serde(default)]
    pub aggregate: AggregateConfig,
    #[serde(default)]
    pub tail: TailConfig,
}

impl FileConfig {
    /// Parse config text (`origin` names it in errors): syntax, and every
    /// table and key known. Values are checked by the runtime forms.
    pub fn parse(text: &str, origin: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_string(),
            message: e.to_string(),
        })
    }
}

/// `[ingest]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct IngestSection {
    pub state_dir: Option<PathBuf>,
    #[serde(deserialize_with = "de_duration")]
    pub checkpoint_interval: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_timeout: Duration,
    pub max_in_flight: usize,
    pub parse_threads: Option<usize>,
    pub read_chunk_bytes: usize,
    pub max_line_bytes: Option<usize>,
    pub dead_letters: bool,
    pub ensure_topics: TopicsMode,
    #[serde(deserialize_with = "de_duration")]
    pub unhealthy_after: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub reminder_interval: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub probe_interval: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub unreachable_timeout: Duration,
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            state_dir: None,
            checkpoint_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(10),
            max_in_flight: 50_000,
            parse_threads: None,
            read_chunk_bytes: 256 * 1024,
            max_line_bytes: None,
            dead_letters: true,
            ensure_topics: TopicsMode::Off,
            unhealthy_after: Duration::from_secs(30),
            reminder_interval: Duration::from_secs(60),
            probe_interval: Duration::from_secs(5),
            unreachable_timeout: Duration::from_secs(60),
        }
    }
}

/// `[http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpSection {
    pub enabled: bool,
    pub listen: String,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            enabled: true,
            listen: DEFAULT_HTTP_LISTEN.into(),
        }
    }
}

/// `[log]`: how the service logs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (default) or `json` (one object per line).
    pub format: LogFormat,
    /// A `tracing` filter: `info` (default), `debug`, `footfall_ingest=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Whether to check or create the topics at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TopicsMode {
    /// Do nothing (topics are managed elsewhere or auto-created).
    #[default]
    Off,
    /// Log a warning for a missing or differing topic.
    Check,
    /// Create missing topics; log a warning for differing ones.
    Create,
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogProtocol {
    /// One message per datagram.
    Udp,
    /// Octet-counted or newline-framed messages on a stream.
    Tcp,
}

/// `[[source]]`, by its `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum SourceSection {
    File(FileSection),
    Stdin(StdinSection),
    Syslog(SyslogSection),
}

impl SourceSection {
    /// Whether the source ends by itself (standard input, files read once).
    pub fn is_finite(&self) -> bool {
        match self {
            SourceSection::File(f) => !f.follow,
            SourceSection::Stdin(_) => true,
            SourceSection::Syslog(_) => false,
        }
    }
}

/// `[[source]] type = "file"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSection {
    pub name: Option<String>,
    pub paths: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub start_at: StartAt,
    #[serde(default = "yes")]
    pub follow: bool,
    #[serde(default = "d_poll", deserialize_with = "de_duration")]
    pub poll_interval: Duration,
    #[serde(default = "d_scan", deserialize_with = "de_duration")]
    pub scan_interval: Duration,
    #[serde(default = "d_rotate", deserialize_with = "de_duration")]
    pub rotate_wait: Duration,
    #[serde(default = "d_idle", deserialize_with = "de_duration")]
    pub close_idle: Duration,
    #[serde(default = "d_forget", deserialize_with = "de_duration")]
    pub forget_after: Duration,
    #[serde(default)]
    pub parse: Option<toml::Table>,
}

/// `[[source]] type = "stdin"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StdinSection {
    pub name: Option<String>,
    #[serde(default)]
    pub parse: Option<toml::Table>,
}

/// `[[source]] type = "syslog"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyslogSection {
    pub name: Option<String>,
    pub protocol: SyslogProtocol,
    pub listen: String,
    #[serde(default = "d_conns")]
    pub max_connections: usize,
    #[serde(default)]
    pub parse: Option<toml::Table>,
}

/// `[aggregate]`: the settings of `footfall aggregate` (and of `footfall
/// check --warehouse`) that suit a file; each flag of the same name beats
/// its key. Unset keys take the command's defaults. The visits topic is
/// `kafka.topics.visits.name`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregateConfig {
    /// The warehouse directory, or the object-store URL its tables are
    /// published to (`--warehouse`).
    pub warehouse: Option<PathBuf>,
    /// The local staging directory of an object-store warehouse (`--staging`;
    /// default: under `$XDG_STATE_HOME/footfall/staging/`).
    pub staging: Option<PathBuf>,
    /// The consumer group the warehouse is bound to (`--group`; default
    /// `footfall-aggregate`).
    pub group: Option<String>,
    /// Days of events kept, today (UTC) included (`--retention-days`; default: all).
    pub retention_days: Option<u32>,
    /// Minutes of inactivity that end a visit (`--visit-timeout-minutes`; default 30).
    pub visit_timeout_minutes: Option<u64>,
    /// Rare values used by fewer distinct visitors a day are folded into
    /// `(other)` (`--min-visitors`; default 3).
    pub min_visitors: Option<u32>,
    /// Share the warehouse with other runs of the same group (`--shared`).
    pub shared: bool,
    /// Threads writing events files and summaries, a date each (`--threads`;
    /// default: the cores, at most 4).
    pub threads: Option<usize>,
    /// `[aggregate.bots]`: the behavioural bot rules and thresholds, read
    /// by `footfall aggregate` (keys in docs/configuration.md).
    pub bots: Option<toml::Table>,
}

impl AggregateConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.group.as_deref().is_some_and(|g| g.trim().is_empty()) {
            return Err(ConfigError::invalid("aggregate.group", "is empty"));
        }
        if self.retention_days == Some(0) {
            return Err(ConfigError::invalid(
                "aggregate.retention_days",
                "must be at least 1 (leave it unset to keep every day)",
            ));
        }
        if self.threads == Some(0) {
            return Err(ConfigError::invalid(
                "aggregate.threads",
                "must be at least 1",
            ));
        }
        if self.visit_timeout_minutes == Some(0) {
            return Err(ConfigError::invalid(
                "aggregate.visit_timeout_minutes",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// `[tail]`: the settings of `footfall tail` that suit a file; its flags
/// beat them. The topics are those of `[kafka.topics]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailConfig {
    /// How long to wait for Kafka when connecting (`--timeout`; default 10s).
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            timeout: Duration::from_secs(10),
        }
    }
}

impl TailConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::invalid("tail.timeout", "must be positive"));
        }
        Ok(())
    }
}

fn yes() -> bool {
    true
}
pub(crate) fn d_poll() -> Duration {
    Duration::from_millis(250)
}
pub(crate) fn d_scan() -> Duration {
    Duration::from_secs(1)
}
pub(crate) fn d_rotate() -> Duration {
    Duration::from_secs(10)
}
pub(crate) fn d_idle() -> Duration {
    Duration::from_secs(300)
}
pub(crate) fn d_forget() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn d_conns() -> usize {
    256
}

/// Parse `250ms`, `1s`, `1.5s`, `5m`, `2h`, `7d` (a bare number is seconds).
/// The one duration syntax of the config file and of every flag that takes
/// a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 250ms, 1s, 5m, 2h, 7d)"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {s:?} (use ms, s, m, h or d)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid duration {s:?}"))
}

pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Secs(u64),
    }
    match Raw::deserialize(d)? {
        Raw::Text(s) => parse_duration(&s).map_err(serde::de::Error::custom),
        Raw::Secs(n) => Ok(Duration::from_secs(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        for bad in [
            "5 fortnights",
            "",
            "-5m",
            "1e400d",
            "99999999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_tables_of_other_commands_are_checked() {
        let f = FileConfig::parse(
            "[aggregate]\nwarehouse = \"/srv/footfall\"\ngroup = \"g\"\nretention_days = 30\n\
             visit_timeout_minutes = 20\nmin_visitors = 5\nshared = true\n[tail]\ntimeout = \"3s\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(f.aggregate.warehouse, Some(PathBuf::from("/srv/footfall")));
        assert_eq!(f.aggregate.min_visitors, Some(5));
        assert!(f.aggregate.shared);
        assert_eq!(f.tail.timeout, Duration::from_secs(3));
        for (text, want) in [
            (
                "[aggregate]\nwarehous = \"x\"\n",
                "unknown field `warehous`",
            ),
            ("[tail]\ntopic = \"x\"\n", "unknown field `topic`"),
            ("[demo]\n", "unknown field `demo`"),
        ] {
            let e = FileConfig::parse(text, "t").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    /// The field names a derived `Deserialize` struct accepts, as serde
    /// lists them (renames applied): a deserializer that records them and
    /// fails before reading anything.
    fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        use serde::de::{Error, Visitor};
        struct Probe(std::cell::Cell<&'static [&'static str]>);
        impl<'de> Deserializer<'de> for &Probe {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0.set(fields);
                Err(Error::custom("probed"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let probe = Probe(std::cell::Cell::new(&[]));
        let _ = T::deserialize(&probe);
        let fields = probe.0.get();
        assert!(
            !fields.is_empty(),
            "{} is not a struct",
            std::any::type_name::<T>()
        );
        fields
    }

    /// Every table of the schema: where it sits in the example file, the
    /// heading of its section in docs/configuration.md, and its keys.
    fn schema() -> Vec<(&'static str, &'static str, &'static [&'static str])> {
        use footfall_parse::{privacy::PrivacyConfig, ParseConfig, RouteRuleConfig};
        vec![
            ("", "", fields_of::<FileConfig>()),
            ("kafka", "## `[kafka]`", fields_of::<KafkaConfig>()),
            (
                "kafka.topics",
                "## `[kafka]`",
                fields_of::<footfall_kafka::TopicsConfig>(),
            ),
            (
                "kafka.topics.visits",
                "## `[kafka]`",
                fields_of::<footfall_kafka::TopicOverrides>(),
            ),
            (
                "kafka.topics.dead_letter",
                "## `[kafka]`",
                fields_of::<footfall_kafka::TopicOverrides>(),
            ),
            ("ingest", "## `[ingest]`", fields_of::<IngestSection>()),
            ("http", "## `[http]`", fields_of::<HttpSection>()),
            ("log", "## `[log]`", fields_of::<LogConfig>()),
            ("keys", "## `[keys]`", fields_of::<KeysConfig>()),
            ("parse", "## `[parse]`", fields_of::<ParseConfig>()),
            (
                "parse.privacy",
                "## `[parse]`",
                fields_of::<PrivacyConfig>(),
            ),
            (
                "parse.route_rules",
                "## `[parse]`",
                fields_of::<RouteRuleConfig>(),
            ),
            (
                "source:file",
                "### `type = \"file\"`",
                fields_of::<FileSection>(),
            ),
            (
                "source:stdin",
                "### `type = \"stdin\"`",
                fields_of::<StdinSection>(),
            ),
            (
                "source:syslog",
                "### `type = \"syslog\"`",
                fields_of::<SyslogSection>(),
            ),
            (
                "aggregate",
                "## `[aggregate]`",
                fields_of::<AggregateConfig>(),
            ),
            ("tail", "## `[tail]`", fields_of::<TailConfig>()),
        ]
    }

    const DOCS: &str = include_str!("../../../../docs/configuration.md");
    const EXAMPLE: &str = include_str!("../../../../deploy/footfall.example.toml");

    /// The text under `heading`, to the next heading of its level or above
    /// (fenced code blocks, whose lines may start with `#`, skipped).
    fn section(heading: &str) -> String {
        let level = heading.split(' ').next().unwrap().len();
        let mut lines = DOCS.lines().skip_while(|l| *l != heading);
        assert!(
            lines.next().is_some(),
            "docs/configuration.md has no heading {heading}"
        );
        let mut fenced = false;
        let mut out = String::new();
        for line in lines {
            fenced ^= line.starts_with("```");
            let hashes = line.chars().take_while(|c| *c == '#').count();
            if !fenced && hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
                break;
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// The words inside the section's `code spans`.
    fn code_words(text: &str) -> std::collections::BTreeSet<&str> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .flat_map(|span| span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
            .filter(|w| !w.is_empty())
            .collect()
    }

    /// The example with its commented-out settings (`# key = ...`,
    /// `# [table]`) made live, so it holds every key.
    fn every_setting_of_the_example() -> String {
        let live = |rest: &str| {
            let rest = rest.trim_start();
            let key: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '"' | '.' | '-'))
                .collect();
            rest.starts_with('[')
                || (!key.is_empty() && rest[key.len()..].trim_start().starts_with('='))
        };
        EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if live(rest) => rest.trim_start(),
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The example's table at `path` (`source:file`: the sources of that type).
    fn example_tables<'a>(doc: &'a toml::Table, path: &str) -> Vec<&'a toml::Table> {
        if let Some(kind) = path.strip_prefix("source:") {
            let sources = doc["source"].as_array().expect("[[source]] tables");
            return sources
                .iter()
                .filter_map(toml::Value::as_table)
                .filter(|t| t.get("type").and_then(toml::Value::as_str) == Some(kind))
                .collect();
        }
        let mut tables = vec![doc];
        for part in path.split('.').filter(|p| !p.is_empty()) {
            tables = tables
                .into_iter()
                .filter_map(|t| t.get(part))
                .flat_map(|v| match v {
                    toml::Value::Array(a) => a.iter().filter_map(toml::Value::as_table).collect(),
                    v => v.as_table().into_iter().collect::<Vec<_>>(),
                })
                .collect();
        }
        tables
    }

    /// Every key the config file accepts is documented in its table's
    /// section of docs/configuration.md and set (or commented out) in
    /// deploy/footfall.example.toml; with those lines made live the example
    /// is still accepted key for key.
    #[test]
    fn every_key_is_documented_and_in_the_example() {
        let full = every_setting_of_the_example();
        FileConfig::parse(&full, "example, every setting live").unwrap();
        let doc: toml::Table = toml::from_str(&full).unwrap();
        let mut missing = Vec::new();
        for (path, heading, fields) in schema() {
            let tables = example_tables(&doc, path);
            for field in fields {
                let documented = if heading.is_empty() {
                    let t = if *field == "source" {
                        "[[source]]".into()
                    } else {
                        format!("[{field}]")
                    };
                    DOCS.contains(&format!("\n## `{t}`\n"))
                } else {
                    code_words(&section(heading)).contains(field)
                };
                if !documented {
                    missing.push(format!(
                        "docs/configuration.md, {heading}: `{field}` ({path})"
                    ));
                }
                if !tables.iter().any(|t| t.contains_key(*field)) {
                    missing.push(format!("deploy/footfall.example.toml, {path}: {field}"));
                }
            }
        }
        assert!(missing.is_empty(), "keys missing:\n{}", missing.join("\n"));
    }
}
