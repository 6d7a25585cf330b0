//! Configuration: the TOML file (serde structs) and the validated runtime form.
//!
//! `docs/configuration.md` documents every field; `deploy/footfall.example.toml`
//! is a commented example. The file's sections:
//!
//! * `[kafka]`: brokers, security, topics ([`footfall_kafka::KafkaConfig`]);
//! * `[ingest]`: state directory, checkpoints, limits, health;
//! * `[http]`: the `/metrics` and `/health` listener;
//! * `[log]`: log format and level;
//! * `[parse]`: defaults for every source's `parse` table;
//! * `[[source]]`: one table per source (`type = "file"`, `"stdin"` or `"syslog"`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use footfall_kafka::KafkaConfig;
use footfall_keys::KeysConfig;
use footfall_parse::ParseConfig;
use serde::{Deserialize, Deserializer};

use crate::error::ConfigError;
pub use crate::follow::StartAt;

/// Top-level tables that belong to other footfall commands sharing the file;
/// they are left alone.
pub const OTHER_SECTIONS: &[&str] = &["aggregate", "tail", "demo"];

/// Default `/metrics` listener.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9464";
/// Default state directory (relative to the working directory).
pub const DEFAULT_STATE_DIR: &str = ".state/ingest";

// ---------------------------------------------------------------------------
// File form
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    kafka: KafkaConfig,
    #[serde(default)]
    ingest: IngestSection,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    keys: KeysConfig,
    #[serde(default)]
    parse: Option<toml::Table>,
    #[serde(default, rename = "source")]
    sources: Vec<SourceSection>,
}

/// `[ingest]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct IngestSection {
    state_dir: Option<PathBuf>,
    #[serde(deserialize_with = "de_duration")]
    checkpoint_interval: Duration,
    #[serde(deserialize_with = "de_duration")]
    shutdown_timeout: Duration,
    max_in_flight: usize,
    parse_threads: Option<usize>,
    read_chunk_bytes: usize,
    max_line_bytes: Option<usize>,
    dead_letters: bool,
    ensure_topics: TopicsMode,
    #[serde(deserialize_with = "de_duration")]
    unhealthy_after: Duration,
    #[serde(deserialize_with = "de_duration")]
    reminder_interval: Duration,
    #[serde(deserialize_with = "de_duration")]
    probe_interval: Duration,
    #[serde(deserialize_with = "de_duration")]
    unreachable_timeout: Duration,
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
struct HttpSection {
    enabled: bool,
    listen: String,
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
    #[default]
    Text,
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
    Udp,
    Tcp,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SourceSection {
    File(FileSection),
    Stdin(StdinSection),
    Syslog(SyslogSection),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSection {
    name: Option<String>,
    paths: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    start_at: StartAt,
    #[serde(default = "yes")]
    follow: bool,
    #[serde(default = "d_poll", deserialize_with = "de_duration")]
    poll_interval: Duration,
    #[serde(default = "d_scan", deserialize_with = "de_duration")]
    scan_interval: Duration,
    #[serde(default = "d_rotate", deserialize_with = "de_duration")]
    rotate_wait: Duration,
    #[serde(default = "d_idle", deserialize_with = "de_duration")]
    close_idle: Duration,
    #[serde(default = "d_forget", deserialize_with = "de_duration")]
    forget_after: Duration,
    #[serde(default)]
    parse: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StdinSection {
    name: Option<String>,
    #[serde(default)]
    parse: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyslogSection {
    name: Option<String>,
    protocol: SyslogProtocol,
    listen: String,
    #[serde(default = "d_conns")]
    max_connections: usize,
    #[serde(default)]
    parse: Option<toml::Table>,
}

fn yes() -> bool {
    true
}
fn d_poll() -> Duration {
    Duration::from_millis(250)
}
fn d_scan() -> Duration {
    Duration::from_secs(1)
}
fn d_rotate() -> Duration {
    Duration::from_secs(10)
}
fn d_idle() -> Duration {
    Duration::from_secs(300)
}
fn d_forget() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn d_conns() -> usize {
    256
}

/// Parse `250ms`, `1s`, `1.5s`, `5m`, `2h`, `7d` (a bare number is seconds).
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
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
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

// ---------------------------------------------------------------------------
// Runtime form
// ---------------------------------------------------------------------------

/// The validated configuration of the ingest service.
///
/// Build it with [`IngestConfig::from_toml_file`], [`IngestConfig::from_toml_str`]
/// or [`IngestConfig::from_cli`]; every field is public so callers and tests
/// can adjust it afterwards.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Kafka connection, security and topics (`[kafka]`).
    pub kafka: KafkaConfig,
    /// Sources, each with its own parse configuration.
    pub sources: Vec<SourceConfig>,
    /// Where checkpoints live (created when there are file sources).
    pub state_dir: PathBuf,
    /// How often checkpoints are written (also at shutdown).
    pub checkpoint_interval: Duration,
    /// After a shutdown request: how long to wait for Kafka to acknowledge what was read.
    pub shutdown_timeout: Duration,
    /// Messages handed to Kafka and not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// Batches of one source parsed at the same time, each on a thread of
    /// its own, handed on in order. Default: the number of CPU cores
    /// ([`default_parse_threads`]). Streams in a format with state from line
    /// to line (`w3c`, `cloudfront`) are parsed one batch at a time.
    pub parse_threads: usize,
    /// Bytes read from one file per poll.
    pub read_chunk_bytes: usize,
    /// Produce rejected lines to the dead-letter topic (else they are only counted).
    pub dead_letters: bool,
    /// Topic check at startup.
    pub ensure_topics: TopicsMode,
    /// `/metrics` and `/health` listener; `None` disables it.
    pub http_listen: Option<SocketAddr>,
    /// `/health` turns 503 after Kafka has been unreachable (or producing stuck) this long.
    pub unhealthy_after: Duration,
    /// While Kafka is unreachable, a reminder is logged this often.
    pub reminder_interval: Duration,
    /// How often Kafka's reachability is checked with a metadata request.
    pub probe_interval: Duration,
    /// A run that ends by itself (stdin, files read once) gives up (exit 69)
    /// once Kafka has been unreachable or not acknowledging this long. The
    /// service that follows files waits for Kafka without limit.
    pub unreachable_timeout: Duration,
    /// Logging.
    pub log: LogConfig,
    /// The keyring (`[keys]`): where it lives, how long day keys are kept.
    pub keys: KeysConfig,
}

/// One source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique name: metric label and checkpoint grouping.
    pub name: String,
    pub kind: SourceKind,
    /// How its lines are parsed.
    pub parse: ParseConfig,
}

/// What a source reads.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// Files by path or glob.
    Files(FileOptions),
    /// Standard input, read to its end.
    Stdin,
    /// A syslog listener.
    Syslog {
        protocol: SyslogProtocol,
        listen: SocketAddr,
        max_connections: usize,
    },
}

/// Options of a file source.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// Paths or glob patterns (`*`, `?`, `[...]`).
    pub paths: Vec<String>,
    /// Glob patterns of paths to skip.
    pub exclude: Vec<String>,
    /// Where to start in files found at the very first start (no checkpoints).
    pub start_at: StartAt,
    /// Keep following files (else read each once, to its end, and finish).
    pub follow: bool,
    pub poll_interval: Duration,
    pub scan_interval: Duration,
    pub rotate_wait: Duration,
    pub close_idle: Duration,
    pub forget_after: Duration,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            paths: Vec::new(),
            exclude: Vec::new(),
            start_at: StartAt::Beginning,
            follow: true,
            poll_interval: d_poll(),
            scan_interval: d_scan(),
            rotate_wait: d_rotate(),
            close_idle: d_idle(),
            forget_after: d_forget(),
        }
    }
}

/// Command-line settings of `footfall ingest`; each `Some` overrides the file.
#[derive(Debug, Clone, Default)]
pub struct CliArgs {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--brokers HOST:PORT[,...]`.
    pub brokers: Option<String>,
    /// `--topic NAME` (events).
    pub topic: Option<String>,
    /// `--dead-letter-topic NAME`.
    pub dead_letter_topic: Option<String>,
    /// `--format NAME`: default format of every source.
    pub format: Option<String>,
    /// `--log-format STRING`: nginx `log_format` / Apache `LogFormat`.
    pub log_format: Option<String>,
    /// `--site NAME`.
    pub site: Option<String>,
    /// `--timezone ZONE`.
    pub timezone: Option<String>,
    /// `FILE...` or `-`: paths/globs become one file source named `files`,
    /// `-` a stdin source named `stdin`.
    pub inputs: Vec<String>,
    /// `--state-dir DIR`.
    pub state_dir: Option<PathBuf>,
    /// `--http-listen ADDR` (`off` disables).
    pub http_listen: Option<String>,
    /// `--start-at beginning|end` for the command-line files.
    pub start_at: Option<StartAt>,
    /// `--once`: read the command-line files to their end and finish.
    pub once: bool,
    /// `--keyring DIR` (or `FOOTFALL_KEYRING`).
    pub keyring: Option<PathBuf>,
}

impl IngestConfig {
    /// Read and validate a config file.
    pub fn from_toml_file(path: &Path) -> Result<IngestConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let (file, parse) = parse_file(&text, &path.display().to_string())?;
        build(file, parse)
    }

    /// Validate config text (`origin` names it in errors).
    pub fn from_toml_str(text: &str) -> Result<IngestConfig, ConfigError> {
        let (file, parse) = parse_file(text, "<config>")?;
        build(file, parse)
    }

    /// The configuration of `footfall ingest`: the config file (if any), then
    /// the flags, then the command-line inputs as extra sources.
    pub fn from_cli(args: &CliArgs) -> Result<IngestConfig, ConfigError> {
        let (mut file, mut parse) = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                parse_file(&text, &path.display().to_string())?
            }
            None => (FileConfig::default(), toml::Table::new()),
        };
        if let Some(b) = &args.brokers {
            file.kafka.brokers = b.clone();
        }
        if let Some(t) = &args.topic {
            file.kafka.topics.visits.name = Some(t.clone());
        }
        if let Some(t) = &args.dead_letter_topic {
            file.kafka.topics.dead_letter.name = Some(t.clone());
        }
        if let Some(d) = &args.state_dir {
            file.ingest.state_dir = Some(d.clone());
        }
        if let Some(d) = &args.keyring {
            file.keys.dir = Some(d.clone());
        }
        if let Some(h) = &args.http_listen {
            if h == "off" {
                file.http.enabled = false;
            } else {
                file.http.enabled = true;
                file.http.listen = h.clone();
            }
        }
        for (key, value) in [
            ("format", &args.format),
            ("log_format", &args.log_format),
            ("site", &args.site),
            ("timezone", &args.timezone),
        ] {
            if let Some(v) = value {
                parse.insert(key.into(), toml::Value::String(v.clone()));
            }
        }
        let files: Vec<String> = args
            .inputs
            .iter()
            .filter(|i| i.as_str() != "-")
            .cloned()
            .collect();
        let stdin = args.inputs.iter().filter(|i| i.as_str() == "-").count();
        if stdin > 1 {
            return Err(ConfigError::invalid(
                "inputs",
                "`-` (standard input) can be given once",
            ));
        }
        if !files.is_empty() {
            file.sources.push(SourceSection::File(FileSection {
                name: Some("files".into()),
                paths: files,
                exclude: Vec::new(),
                start_at: args.start_at.unwrap_or_default(),
                follow: !args.once,
                poll_interval: d_poll(),
                scan_interval: d_scan(),
                rotate_wait: d_rotate(),
                close_idle: d_idle(),
                forget_after: d_forget(),
                parse: None,
            }));
        }
        if stdin == 1 {
            file.sources.push(SourceSection::Stdin(StdinSection {
                name: Some("stdin".into()),
                parse: None,
            }));
        }
        let cfg = build(file, parse)?;
        if cfg.sources.is_empty() {
            return Err(ConfigError::invalid("inputs", "nothing to read: give FILE..., `-` for standard input, or [[source]] tables in --config"));
        }
        Ok(cfg)
    }

    /// A configuration with every default and no sources (add them to `sources`).
    pub fn new(kafka: KafkaConfig) -> Result<IngestConfig, ConfigError> {
        build(
            FileConfig {
                kafka,
                ..FileConfig::default()
            },
            toml::Table::new(),
        )
    }

    /// Whether every source ends by itself (stdin, files read once): then
    /// [`crate::run`] returns once everything is read and acknowledged.
    pub fn is_finite(&self) -> bool {
        self.sources.iter().all(|s| match &s.kind {
            SourceKind::Files(f) => !f.follow,
            SourceKind::Stdin => true,
            SourceKind::Syslog { .. } => false,
        })
    }
}

fn parse_file(text: &str, origin: &str) -> Result<(FileConfig, toml::Table), ConfigError> {
    let syntax = |message: String| ConfigError::Syntax {
        path: origin.to_string(),
        message,
    };
    let mut table: toml::Table = toml::from_str(text).map_err(|e| syntax(e.to_string()))?;
    for other in OTHER_SECTIONS {
        table.remove(*other);
    }
    let file: FileConfig = table
        .try_into()
        .map_err(|e: toml::de::Error| syntax(e.to_string()))?;
    let parse = file.parse.clone().unwrap_or_default();
    Ok((file, parse))
}

/// Merge `over` into `base`, tables recursively.
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn parse_config(
    defaults: &toml::Table,
    own: Option<&toml::Table>,
    field: &str,
    max_line: Option<usize>,
) -> Result<ParseConfig, ConfigError> {
    let mut t = defaults.clone();
    if let Some(own) = own {
        merge(&mut t, own);
    }
    if let Some(n) = max_line {
        t.entry("max_line_bytes")
            .or_insert(toml::Value::Integer(n as i64));
    }
    // A log_format string implies the custom format.
    if t.contains_key("log_format") && !t.contains_key("format") {
        t.insert("format".into(), toml::Value::String("custom".into()));
    }
    let cfg: ParseConfig = toml::Value::Table(t)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::invalid(field, e.to_string()))?;
    Ok(cfg)
}

fn build(file: FileConfig, parse_defaults: toml::Table) -> Result<IngestConfig, ConfigError> {
    let i = file.ingest;
    if i.max_in_flight == 0 {
        return Err(ConfigError::invalid(
            "ingest.max_in_flight",
            "must be at least 1",
        ));
    }
    if i.parse_threads == Some(0) {
        return Err(ConfigError::invalid(
            "ingest.parse_threads",
            "must be at least 1",
        ));
    }
    if i.read_chunk_bytes < 4096 {
        return Err(ConfigError::invalid(
            "ingest.read_chunk_bytes",
            "must be at least 4096",
        ));
    }
    if i.unreachable_timeout.is_zero() {
        return Err(ConfigError::invalid(
            "ingest.unreachable_timeout",
            "must be positive",
        ));
    }
    if i.checkpoint_interval.is_zero() {
        return Err(ConfigError::invalid(
            "ingest.checkpoint_interval",
            "must be positive",
        ));
    }
    file.kafka
        .validate()
        .map_err(|e| ConfigError::invalid("kafka", e.to_string()))?;
    file.keys
        .validate()
        .map_err(|(key, why)| ConfigError::invalid(key, why))?;
    if i.dead_letters {
        let (v, d) = (
            file.kafka.topics.visits().name,
            file.kafka.topics.dead_letter().name,
        );
        if v == d {
            return Err(ConfigError::invalid(
                "kafka.topics.dead_letter.name",
                format!("must differ from the events topic {v:?}"),
            ));
        }
    }
    let http_listen = if file.http.enabled {
        Some(file.http.listen.parse::<SocketAddr>().map_err(|e| {
            ConfigError::invalid("http.listen", format!("{:?}: {e}", file.http.listen))
        })?)
    } else {
        None
    };
    tracing_level_check(&file.log.level)?;

    let mut sources = Vec::new();
    let mut stdin_seen = false;
    for (n, s) in file.sources.into_iter().enumerate() {
        let field = format!("source[{n}]");
        let (name, kind, own) = match s {
            SourceSection::File(f) => {
                if f.paths.is_empty() || f.paths.iter().any(|p| p.trim().is_empty()) {
                    return Err(ConfigError::invalid(
                        format!("{field}.paths"),
                        "needs at least one non-empty path or glob",
                    ));
                }
                for p in f.paths.iter().chain(f.exclude.iter()) {
                    glob::Pattern::new(p).map_err(|e| {
                        ConfigError::invalid(format!("{field}.paths"), format!("{p:?}: {e}"))
                    })?;
                }
                for (what, d) in [
                    ("poll_interval", f.poll_interval),
                    ("scan_interval", f.scan_interval),
                ] {
                    if d < Duration::from_millis(10) {
                        return Err(ConfigError::invalid(
                            format!("{field}.{what}"),
                            "must be at least 10ms",
                        ));
                    }
                }
                let opts = FileOptions {
                    paths: f.paths,
                    exclude: f.exclude,
                    start_at: f.start_at,
                    follow: f.follow,
                    poll_interval: f.poll_interval,
                    scan_interval: f.scan_interval,
                    rotate_wait: f.rotate_wait,
                    close_idle: f.close_idle,
                    forget_after: f.forget_after,
                };
                (
                    f.name.unwrap_or_else(|| format!("files-{}", n + 1)),
                    SourceKind::Files(opts),
                    f.parse,
                )
            }
            SourceSection::Stdin(s) => {
                if stdin_seen {
                    return Err(ConfigError::invalid(
                        field,
                        "standard input can be a source once",
                    ));
                }
                stdin_seen = true;
                (
                    s.name.unwrap_or_else(|| "stdin".into()),
                    SourceKind::Stdin,
                    s.parse,
                )
            }
            SourceSection::Syslog(s) => {
                let listen = s.listen.parse::<SocketAddr>().map_err(|e| {
                    ConfigError::invalid(format!("{field}.listen"), format!("{:?}: {e}", s.listen))
                })?;
                if s.max_connections == 0 {
                    return Err(ConfigError::invalid(
                        format!("{field}.max_connections"),
                        "must be at least 1",
                    ));
                }
                let name = s.name.unwrap_or_else(|| format!("syslog-{}", n + 1));
                (
                    name,
                    SourceKind::Syslog {
                        protocol: s.protocol,
                        listen,
                        max_connections: s.max_connections,
                    },
                    s.parse,
                )
            }
        };
        if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                format!("{field}.name"),
                "must be 1 to 128 printable characters",
            ));
        }
        if sources.iter().any(|x: &SourceConfig| x.name == name) {
            return Err(ConfigError::invalid(
                format!("{field}.name"),
                format!("{name:?} is used by two sources"),
            ));
        }
        let parse = parse_config(
            &parse_defaults,
            own.as_ref(),
            &format!("{field}.parse"),
            i.max_line_bytes,
        )?;
        sources.push(SourceConfig { name, kind, parse });
    }
    let state_dir = i
        .state_dir
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    Ok(IngestConfig {
        kafka: file.kafka,
        sources,
        state_dir,
        checkpoint_interval: i.checkpoint_interval,
        shutdown_timeout: i.shutdown_timeout,
        max_in_flight: i.max_in_flight,
        parse_threads: i.parse_threads.unwrap_or_else(default_parse_threads),
        read_chunk_bytes: i.read_chunk_bytes,
        dead_letters: i.dead_letters,
        ensure_topics: i.ensure_topics,
        http_listen,
        unhealthy_after: i.unhealthy_after,
        reminder_interval: i.reminder_interval,
        probe_interval: i.probe_interval,
        unreachable_timeout: i.unreachable_timeout,
        log: file.log,
        keys: file.keys,
    })
}

/// Default of `ingest.parse_threads`: the CPU cores available to the process
/// less one, at least one. librdkafka's broker thread, which builds and
/// compresses every request, keeps a core busy by itself at full speed
/// (measured on 2 cores: a second parse thread bought about 15 % throughput
/// for 50 MB more peak memory).
pub fn default_parse_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

fn tracing_level_check(level: &str) -> Result<(), ConfigError> {
    crate::parse_log_filter(level)
        .map(|_| ())
        .map_err(|e| ConfigError::invalid("log.level", e))
}

impl SourceConfig {
    /// The source name as shared string.
    pub fn name_arc(&self) -> Arc<str> {
        self.name.as_str().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters_are_checked() {
        for ok in [
            "info",
            "warn",
            "footfall_ingest=debug,info",
            "info,librdkafka=off",
            " debug ",
        ] {
            assert!(tracing_level_check(ok).is_ok(), "{ok}");
        }
        for bad in ["footfall_ingest=loud", "info,librdkafka=nope"] {
            let e = tracing_level_check(bad).unwrap_err().to_string();
            assert!(e.contains("log.level"), "{bad}: {e}");
        }
    }

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
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("").is_err());
    }

    const FULL: &str = r#"
        [kafka]
        brokers = "k1:9092,k2:9092"
        [kafka.topics.visits]
        name = "ev"
        [kafka.topics.dead_letter]
        name = "ev.dlq"

        [ingest]
        state_dir = "/var/lib/footfall/ingest"
        checkpoint_interval = "2s"
        max_in_flight = 1000
        parse_threads = 3

        [http]
        listen = "0.0.0.0:9999"

        [log]
        format = "json"

        [parse]
        format = "combined"
        timezone = "Europe/Berlin"

        [[source]]
        type = "file"
        name = "www"
        paths = ["/var/log/nginx/access.log*"]
        exclude = ["*.gz"]
        start_at = "end"
        [source.parse]
        site = "www.example.org"

        [[source]]
        type = "syslog"
        name = "edge"
        protocol = "udp"
        listen = "127.0.0.1:5514"
        [source.parse]
        format = "vcombined"

        [[source]]
        type = "stdin"

        [aggregate]
        anything = "belongs to another command"
    "#;

    #[test]
    fn full_file() {
        let c = IngestConfig::from_toml_str(FULL).unwrap();
        assert_eq!(c.kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(c.kafka.topics.visits().name, "ev");
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/footfall/ingest"));
        assert_eq!(c.checkpoint_interval, Duration::from_secs(2));
        assert_eq!(c.max_in_flight, 1000);
        assert_eq!(c.parse_threads, 3);
        assert_eq!(c.http_listen, Some("0.0.0.0:9999".parse().unwrap()));
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.sources.len(), 3);
        let www = &c.sources[0];
        assert_eq!(www.name, "www");
        assert_eq!(www.parse.format, "combined", "inherited from [parse]");
        assert_eq!(www.parse.site.as_deref(), Some("www.example.org"));
        assert_eq!(www.parse.timezone.as_deref(), Some("Europe/Berlin"));
        let SourceKind::Files(f) = &www.kind else {
            panic!()
        };
        assert_eq!(f.start_at, StartAt::End);
        assert_eq!(f.exclude, vec!["*.gz".to_string()]);
        assert_eq!(f.poll_interval, Duration::from_millis(250));
        let edge = &c.sources[1];
        assert_eq!(edge.parse.format, "vcombined", "source overrides [parse]");
        assert!(matches!(
            edge.kind,
            SourceKind::Syslog {
                protocol: SyslogProtocol::Udp,
                ..
            }
        ));
        assert_eq!(c.sources[2].name, "stdin");
        assert!(!c.is_finite());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("[ingest]\nmax_in_flight = 0\n", "ingest.max_in_flight"),
            ("[ingest]\nparse_threads = 0\n", "ingest.parse_threads"),
            ("[ingest]\nbogus = 1\n", "unknown field `bogus`"),
            ("[bogus]\n", "unknown field `bogus`"),
            ("[[source]]\ntype = \"file\"\npaths = []\n", "source[0].paths"),
            ("[[source]]\ntype = \"file\"\npaths = [\"a\"]\nlisten = \"x\"\n", "unknown field `listen`"),
            ("[[source]]\ntype = \"syslog\"\nprotocol = \"udp\"\nlisten = \"nope\"\n", "source[0].listen"),
            ("[[source]]\ntype = \"pipe\"\n", "unknown variant `pipe`"),
            ("[[source]]\ntype = \"stdin\"\n[source.parse]\nformat = \"combined\"\ncolour = 1\n", "unknown field `colour`"),
            ("[[source]]\ntype = \"stdin\"\n[[source]]\ntype = \"stdin\"\nname = \"x\"\n", "standard input"),
            ("[[source]]\ntype = \"stdin\"\nname = \"a\"\n[[source]]\ntype = \"file\"\nname = \"a\"\npaths = [\"x\"]\n", "used by two sources"),
            ("[http]\nlisten = \"localhost\"\n", "http.listen"),
            ("[ingest]\ncheckpoint_interval = \"soon\"\n", "invalid duration"),
            ("[kafka.topics.dead_letter]\nname = \"footfall.visits\"\n", "must differ"),
        ];
        for (text, want) in cases {
            let err = IngestConfig::from_toml_str(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn cli_common_case() {
        let args = CliArgs {
            brokers: Some("127.0.0.1:9092".into()),
            topic: Some("t".into()),
            format: Some("combined".into()),
            inputs: vec!["/var/log/a.log".into(), "-".into()],
            once: true,
            ..CliArgs::default()
        };
        let c = IngestConfig::from_cli(&args).unwrap();
        assert_eq!(c.kafka.topics.visits().name, "t");
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.sources[0].name, "files");
        assert_eq!(c.sources[0].parse.format, "combined");
        assert_eq!(c.sources[1].name, "stdin");
        assert!(c.is_finite());
        assert_eq!(c.http_listen, Some(DEFAULT_HTTP_LISTEN.parse().unwrap()));
        let off = IngestConfig::from_cli(&CliArgs {
            http_listen: Some("off".into()),
            inputs: vec!["-".into()],
            ..CliArgs::default()
        })
        .unwrap();
        assert_eq!(off.http_listen, None);
        assert_eq!(off.sources[0].parse.format, "auto");
        assert_eq!(
            off.parse_threads,
            default_parse_threads(),
            "one parse thread per core by default"
        );
        assert!(off.parse_threads >= 1);
    }

    #[test]
    fn the_example_file_is_valid() {
        let c = IngestConfig::from_toml_str(include_str!("../../../deploy/footfall.example.toml"))
            .unwrap();
        assert_eq!(c.sources.len(), 3);
        assert_eq!(c.sources[0].parse.site.as_deref(), Some("www.example.org"));
        assert_eq!(c.sources[1].parse.format, "vcombined");
        assert_eq!(
            c.sources[1].parse.timezone.as_deref(),
            Some("Europe/Berlin")
        );
        assert_eq!(c.ensure_topics, TopicsMode::Check);
        assert_eq!(
            c.kafka
                .options
                .get("message.timeout.ms")
                .map(|v| v.expose()),
            Some("300000")
        );
        for s in &c.sources {
            let keys: std::sync::Arc<dyn footfall_parse::KeyProvider> = std::sync::Arc::new(
                footfall_parse::SecretKeys::from_secret(b"example config test key").unwrap(),
            );
            crate::flow::SourceParser::new(
                s.name_arc(),
                &s.parse,
                &footfall_parse::Tables::embedded(),
                keys,
            )
            .unwrap();
        }
    }

    #[test]
    fn log_format_implies_custom() {
        let c = IngestConfig::from_toml_str("[[source]]\ntype = \"stdin\"\n[source.parse]\nlog_format = '$remote_addr [$time_local] \"$request\" $status'\n").unwrap();
        assert_eq!(c.sources[0].parse.format, "custom");
    }

    #[test]
    fn secrets_do_not_print() {
        let c = IngestConfig::from_toml_str(
            "[kafka]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"PLAIN\"\nsasl_username = \"u\"\nsasl_password = \"hunter2-secret\"\n",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
