//! Configuration: the validated runtime form of the config file and of
//! `footfall ingest`'s flags.
//!
//! The file's schema (every table and key, unknown ones refused) lives in
//! `config/file.rs`; this module checks its values and builds [`IngestConfig`], the
//! parsed form of the whole file that every command reads its table from:
//!
//! * `[kafka]`: brokers, security, topics ([`footfall_kafka::KafkaConfig`]);
//! * `[ingest]`: state directory, checkpoints, limits, health;
//! * `[http]`: the `/metrics` and `/health` listener;
//! * `[log]`: log format and level;
//! * `[keys]`: the keyring ([`footfall_keys::KeysConfig`]);
//! * `[parse]`: defaults for every source's `parse` table;
//! * `[[source]]`: one table per source (`type = "file"`, `"stdin"` or `"syslog"`);
//! * `[aggregate]`, `[tail]`: the settings of those commands ([`AggregateConfig`],
//!   [`TailConfig`]).
//!
//! `docs/configuration.md` documents every key; `deploy/footfall.example.toml`
//! is a commented example that names every one.

mod file;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use footfall_kafka::KafkaConfig;
use footfall_keys::KeysConfig;
use footfall_parse::ParseConfig;

use crate::error::ConfigError;
pub use crate::follow::StartAt;
use file::{d_forget, d_idle, d_poll, d_rotate, d_scan, FileConfig, HttpSection};
pub use file::{
    parse_duration, AggregateConfig, LogConfig, LogFormat, SyslogProtocol, TailConfig, TopicsMode,
    DEFAULT_HTTP_LISTEN,
};
use file::{FileSection, SourceSection, StdinSection};

/// Default state directory (relative to the working directory).
pub const DEFAULT_STATE_DIR: &str = ".state/ingest";

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
    /// `[aggregate]`, for `footfall aggregate` and `footfall check`.
    pub aggregate: AggregateConfig,
    /// `[tail]`, for `footfall tail`.
    pub tail: TailConfig,
}

/// One source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique name: metric label and checkpoint grouping.
    pub name: String,
    /// What it reads: files, standard input or a syslog listener.
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
        /// `udp` (one message per datagram) or `tcp` (octet counting or
        /// newline framing, detected per message).
        protocol: SyslogProtocol,
        /// Address to listen on.
        listen: SocketAddr,
        /// TCP connections accepted at once.
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
    /// How often open files are checked for new data.
    pub poll_interval: Duration,
    /// How often the patterns are expanded to find new, renamed or rotated files.
    pub scan_interval: Duration,
    /// A file no pattern matches any more is read to its end and closed
    /// after this long without growth (its last line then emitted even
    /// without a newline).
    pub rotate_wait: Duration,
    /// A matched file that has not grown for this long is closed (and
    /// reopened when it grows).
    pub close_idle: Duration,
    /// Checkpoints of files no scan has seen for this long are dropped.
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
///
/// `footfall ingest` applies `--brokers`, the environment and `-X` after
/// [`IngestConfig::from_cli`], through the Kafka surface every command shares;
/// `brokers` here is for library callers.
#[derive(Debug, Clone, Default)]
pub struct CliArgs {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// Bootstrap servers over the file's `kafka.brokers`.
    pub brokers: Option<String>,
    /// `--topic NAME` (events).
    pub topic: Option<String>,
    /// `--dlq-topic NAME` (default: the events topic followed by `.dlq`).
    pub dlq_topic: Option<String>,
    /// `--format NAME`: default format of every source.
    pub format: Option<String>,
    /// `--log-format STRING`: nginx `log_format` / Apache `LogFormat`.
    pub log_format: Option<String>,
    /// `--site NAME`.
    pub site: Option<String>,
    /// `--site-host HOST` (repeatable): the `[parse]` default `site_hosts`.
    pub site_hosts: Vec<String>,
    /// `--no-infer-site-host`: the `[parse]` default `infer_site_host = false`.
    pub no_infer_site_host: bool,
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
        build(read_file(path)?)
    }

    /// Validate config text (`origin` names it in errors).
    pub fn from_toml_str(text: &str) -> Result<IngestConfig, ConfigError> {
        build(FileConfig::parse(text, "<config>")?)
    }

    /// The configuration of `footfall ingest`: the config file (if any), then
    /// the flags, then the command-line inputs as extra sources.
    pub fn from_cli(args: &CliArgs) -> Result<IngestConfig, ConfigError> {
        let mut file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        args.apply_flags(&mut file);
        file.sources.extend(args.input_sources()?);
        let cfg = build(file)?;
        if cfg.sources.is_empty() {
            return Err(ConfigError::invalid("inputs", "nothing to read: give FILE..., `-` for standard input, or [[source]] tables in --config"));
        }
        Ok(cfg)
    }

    /// A configuration with every default and no sources (add them to
    /// `sources`; no metrics listener unless `http_listen` is set).
    pub fn new(kafka: KafkaConfig) -> Result<IngestConfig, ConfigError> {
        build(FileConfig {
            kafka,
            ..FileConfig::default()
        })
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

impl CliArgs {
    /// Put the flags over the file's tables.
    fn apply_flags(&self, file: &mut FileConfig) {
        if let Some(b) = &self.brokers {
            file.kafka.brokers = b.clone();
        }
        file.kafka
            .topics
            .rename(self.topic.as_deref(), self.dlq_topic.as_deref());
        if let Some(d) = &self.state_dir {
            file.ingest.state_dir = Some(d.clone());
        }
        if let Some(d) = &self.keyring {
            file.keys.dir = Some(d.clone());
        }
        if let Some(h) = &self.http_listen {
            file.http = Some(match h.as_str() {
                "off" => HttpSection {
                    enabled: false,
                    ..HttpSection::default()
                },
                listen => HttpSection {
                    enabled: true,
                    listen: listen.to_string(),
                },
            });
        }
        let parse = file.parse.get_or_insert_with(toml::Table::new);
        for (key, value) in [
            ("format", &self.format),
            ("log_format", &self.log_format),
            ("site", &self.site),
            ("timezone", &self.timezone),
        ] {
            if let Some(v) = value {
                parse.insert(key.into(), toml::Value::String(v.clone()));
            }
        }
        if !self.site_hosts.is_empty() {
            let hosts = self.site_hosts.iter().cloned().map(toml::Value::String);
            parse.insert("site_hosts".into(), toml::Value::Array(hosts.collect()));
        }
        if self.no_infer_site_host {
            parse.insert("infer_site_host".into(), toml::Value::Boolean(false));
        }
    }

    /// `FILE...` as one file source named `files`, `-` as a source named `stdin`.
    fn input_sources(&self) -> Result<Vec<SourceSection>, ConfigError> {
        let (stdin, files): (Vec<&String>, Vec<&String>) =
            self.inputs.iter().partition(|i| i.as_str() == "-");
        if stdin.len() > 1 {
            return Err(ConfigError::invalid(
                "inputs",
                "`-` (standard input) can be given once",
            ));
        }
        let mut sources = Vec::new();
        if !files.is_empty() {
            sources.push(SourceSection::File(FileSection {
                name: Some("files".into()),
                paths: files.into_iter().cloned().collect(),
                exclude: Vec::new(),
                start_at: self.start_at.unwrap_or_default(),
                follow: !self.once,
                poll_interval: d_poll(),
                scan_interval: d_scan(),
                rotate_wait: d_rotate(),
                close_idle: d_idle(),
                forget_after: d_forget(),
                parse: None,
            }));
        }
        if !stdin.is_empty() {
            sources.push(SourceSection::Stdin(StdinSection {
                name: Some("stdin".into()),
                parse: None,
            }));
        }
        Ok(sources)
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    FileConfig::parse(&text, &path.display().to_string())
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
    cfg.validate()
        .map_err(|e| ConfigError::invalid(field, e.to_string()))?;
    Ok(cfg)
}

/// Check every value of the file and build the runtime form.
fn build(file: FileConfig) -> Result<IngestConfig, ConfigError> {
    check_ingest(&file.ingest)?;
    file.kafka
        .validate()
        .map_err(|e| ConfigError::invalid("kafka", e.to_string()))?;
    file.keys
        .validate()
        .map_err(|(key, why)| ConfigError::invalid(key, why))?;
    if file.ingest.dead_letters {
        check_topics_differ(&file.kafka)?;
    }
    file.aggregate.validate()?;
    file.tail.validate()?;
    tracing_level_check(&file.log.level)?;
    let one_shot = file.sources.iter().all(SourceSection::is_finite);
    let http_listen = http_listen(file.http.as_ref(), one_shot)?;
    let sources = build_sources(file.sources, file.parse.unwrap_or_default(), &file.ingest)?;
    let i = file.ingest;
    Ok(IngestConfig {
        kafka: file.kafka,
        sources,
        state_dir: i
            .state_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
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
        aggregate: file.aggregate,
        tail: file.tail,
    })
}

/// `[ingest]`'s limits.
fn check_ingest(i: &file::IngestSection) -> Result<(), ConfigError> {
    let positive = [
        ("max_in_flight", i.max_in_flight == 0, "must be at least 1"),
        (
            "parse_threads",
            i.parse_threads == Some(0),
            "must be at least 1",
        ),
        (
            "read_chunk_bytes",
            i.read_chunk_bytes < 4096,
            "must be at least 4096",
        ),
        (
            "unreachable_timeout",
            i.unreachable_timeout.is_zero(),
            "must be positive",
        ),
        (
            "checkpoint_interval",
            i.checkpoint_interval.is_zero(),
            "must be positive",
        ),
    ];
    match positive.into_iter().find(|(_, bad, _)| *bad) {
        Some((key, _, why)) => Err(ConfigError::invalid(format!("ingest.{key}"), why)),
        None => Ok(()),
    }
}

/// Dead letters on the events topic would be read as events.
fn check_topics_differ(kafka: &KafkaConfig) -> Result<(), ConfigError> {
    let (v, d) = (kafka.topics.visits().name, kafka.topics.dead_letter().name);
    if v == d {
        return Err(ConfigError::invalid(
            "kafka.topics.dead_letter.name",
            format!("must differ from the events topic {v:?}"),
        ));
    }
    Ok(())
}

/// The listener `[http]` (or `--http-listen`) asks for; without either, a
/// service gets the default one and a run that ends by itself none, so a
/// backfill next to a running service does not fight it for the port.
fn http_listen(
    http: Option<&HttpSection>,
    one_shot: bool,
) -> Result<Option<SocketAddr>, ConfigError> {
    let default = HttpSection::default();
    let http = match http {
        Some(h) => h,
        None if one_shot => return Ok(None),
        None => &default,
    };
    if !http.enabled {
        return Ok(None);
    }
    http.listen
        .parse::<SocketAddr>()
        .map(Some)
        .map_err(|e| ConfigError::invalid("http.listen", format!("{:?}: {e}", http.listen)))
}

/// Every `[[source]]`, its `parse` table merged over `[parse]`.
fn build_sources(
    sections: Vec<SourceSection>,
    parse_defaults: toml::Table,
    ingest: &file::IngestSection,
) -> Result<Vec<SourceConfig>, ConfigError> {
    let mut sources: Vec<SourceConfig> = Vec::new();
    let mut stdin_seen = false;
    for (n, s) in sections.into_iter().enumerate() {
        let field = format!("source[{n}]");
        if matches!(s, SourceSection::Stdin(_)) {
            if stdin_seen {
                return Err(ConfigError::invalid(
                    field,
                    "standard input can be a source once",
                ));
            }
            stdin_seen = true;
        }
        let (name, kind, own) = source_kind(n, &field, s)?;
        check_source_name(&field, &name, &sources)?;
        let parse = parse_config(
            &parse_defaults,
            own.as_ref(),
            &format!("{field}.parse"),
            ingest.max_line_bytes,
        )?;
        sources.push(SourceConfig { name, kind, parse });
    }
    Ok(sources)
}

fn check_source_name(field: &str, name: &str, seen: &[SourceConfig]) -> Result<(), ConfigError> {
    if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            format!("{field}.name"),
            "must be 1 to 128 printable characters",
        ));
    }
    if seen.iter().any(|x| x.name == name) {
        return Err(ConfigError::invalid(
            format!("{field}.name"),
            format!("{name:?} is used by two sources"),
        ));
    }
    Ok(())
}

/// One source's name (or its default), what it reads, and its own `parse` table.
fn source_kind(
    n: usize,
    field: &str,
    s: SourceSection,
) -> Result<(String, SourceKind, Option<toml::Table>), ConfigError> {
    Ok(match s {
        SourceSection::File(f) => {
            let name = f.name.clone().unwrap_or_else(|| format!("files-{}", n + 1));
            let parse = f.parse.clone();
            (name, SourceKind::Files(file_options(field, f)?), parse)
        }
        SourceSection::Stdin(s) => (
            s.name.unwrap_or_else(|| "stdin".into()),
            SourceKind::Stdin,
            s.parse,
        ),
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
            let kind = SourceKind::Syslog {
                protocol: s.protocol,
                listen,
                max_connections: s.max_connections,
            };
            (
                s.name.unwrap_or_else(|| format!("syslog-{}", n + 1)),
                kind,
                s.parse,
            )
        }
    })
}

/// A file source's options, its globs and intervals checked.
fn file_options(field: &str, f: FileSection) -> Result<FileOptions, ConfigError> {
    if f.paths.is_empty() || f.paths.iter().any(|p| p.trim().is_empty()) {
        return Err(ConfigError::invalid(
            format!("{field}.paths"),
            "needs at least one non-empty path or glob",
        ));
    }
    for p in f.paths.iter().chain(f.exclude.iter()) {
        glob::Pattern::new(p)
            .map_err(|e| ConfigError::invalid(format!("{field}.paths"), format!("{p:?}: {e}")))?;
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
    Ok(FileOptions {
        paths: f.paths,
        exclude: f.exclude,
        start_at: f.start_at,
        follow: f.follow,
        poll_interval: f.poll_interval,
        scan_interval: f.scan_interval,
        rotate_wait: f.rotate_wait,
        close_idle: f.close_idle,
        forget_after: f.forget_after,
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
        warehouse = "/srv/footfall"
        group = "footfall-aggregate"

        [tail]
        timeout = "5s"
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
        assert_eq!(c.aggregate.warehouse, Some(PathBuf::from("/srv/footfall")));
        assert_eq!(c.tail.timeout, Duration::from_secs(5));
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
            ("[kafka.topics.visits]\nname = \"a\"\n[kafka.topics.dead_letter]\nname = \"a\"\n", "must differ"),
            ("[aggregate]\nretention_days = 0\n", "aggregate.retention_days"),
            ("[aggregate]\nwarehose = \"x\"\n", "unknown field `warehose`"),
            ("[tail]\ntimeout = \"0s\"\n", "tail.timeout"),
            ("[demo]\n", "unknown field `demo`"),
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
        assert_eq!(
            c.kafka.topics.dead_letter().name,
            "t.dlq",
            "the dead-letter topic follows --topic"
        );
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
    fn one_shot_runs_open_no_listener_unless_asked() {
        let default = Some(DEFAULT_HTTP_LISTEN.parse::<SocketAddr>().unwrap());
        let cli = |inputs: &[&str], once: bool, http: Option<&str>| CliArgs {
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            once,
            http_listen: http.map(String::from),
            ..CliArgs::default()
        };
        #[rustfmt::skip]
        let cases: &[(&str, CliArgs, Option<SocketAddr>)] = &[
            ("stdin", cli(&["-"], false, None), None),
            ("files read once", cli(&["/var/log/a.log"], true, None), None),
            ("files followed", cli(&["/var/log/a.log"], false, None), default),
            ("stdin with --http-listen", cli(&["-"], false, Some("127.0.0.1:9999")),
                Some("127.0.0.1:9999".parse().unwrap())),
            ("followed with --http-listen off", cli(&["/var/log/a.log"], false, Some("off")), None),
        ];
        for (name, args, want) in cases {
            let c = IngestConfig::from_cli(args).unwrap();
            assert_eq!(c.http_listen, *want, "{name}");
        }
        let file = |text: &str| IngestConfig::from_toml_str(text).unwrap().http_listen;
        let stdin = "[[source]]\ntype = \"stdin\"\n";
        assert_eq!(file(stdin), None, "a one-shot config without [http]");
        assert_eq!(
            file(&format!("{stdin}[http]\n")),
            default,
            "an [http] table asks for the listener"
        );
        let syslog =
            "[[source]]\ntype = \"syslog\"\nprotocol = \"udp\"\nlisten = \"127.0.0.1:5514\"\n";
        assert_eq!(file(syslog), default, "a service listens by default");
    }

    #[test]
    fn flags_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(
            &path,
            "[kafka.topics.visits]\nname = \"file.visits\"\n[parse]\nsite_hosts = [\"file.example\"]\n",
        )
        .unwrap();
        let from_file = IngestConfig::from_cli(&CliArgs {
            config: Some(path.clone()),
            inputs: vec!["-".into()],
            ..CliArgs::default()
        })
        .unwrap();
        assert_eq!(from_file.kafka.topics.dead_letter().name, "file.visits.dlq");
        assert_eq!(from_file.sources[0].parse.site_hosts, ["file.example"]);
        let flags = IngestConfig::from_cli(&CliArgs {
            config: Some(path),
            inputs: vec!["-".into()],
            dlq_topic: Some("errors".into()),
            site_hosts: vec!["a.example".into(), "b.example".into()],
            ..CliArgs::default()
        })
        .unwrap();
        assert_eq!(flags.kafka.topics.visits().name, "file.visits");
        assert_eq!(flags.kafka.topics.dead_letter().name, "errors");
        assert_eq!(
            flags.sources[0].parse.site_hosts,
            ["a.example", "b.example"]
        );
        assert!(from_file.sources[0].parse.infer_site_host, "on by default");
        let off = IngestConfig::from_cli(&CliArgs {
            inputs: vec!["-".into()],
            no_infer_site_host: true,
            ..CliArgs::default()
        })
        .unwrap();
        assert!(!off.sources[0].parse.infer_site_host);
        assert!(!off.sources[0].parse.infers_site_host());
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
