//! `footfall tail`: watch the live stream of visit events (or dead letters).
//!
//! The topic is read with an explicit partition assignment and explicit start
//! offsets, under a throwaway `group.id` (`footfall-tail-<pid>`) that never joins
//! a group and never commits, so tailing does not disturb the aggregator's
//! consumer group or anyone else's offsets.
//!
//! On a terminal the events are shown as aligned, coloured columns with a live
//! status line on stderr; when stdout is piped (or with `--json`) the matching
//! messages are written as JSON lines exactly as they were received. Messages
//! that do not decode are reported as warnings and skipped.
//!
//! Once the partitions are assigned, a line `footfall tail: tailing <topic>
//! from <start> (...)` is written to stderr: anything produced after it appears.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Local, TimeZone, Utc};
use console::{Alignment, Style};
use footfall_event::{Reject, RejectKind, VisitEvent, SCHEMA_VERSION};
use footfall_kafka::{KafkaConfig, DEAD_LETTER_TOPIC, VISITS_TOPIC};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::exit::{Failure, CONFIG, FAILURE, NO_INPUT, UNAVAILABLE};

/// Kafka header carrying the event schema version.
const SCHEMA_HEADER: &str = "footfall-schema";

/// Referrer media a visit event can carry (see `VisitEvent::referrer_medium`).
const MEDIA: [&str; 8] = [
    "direct",
    "internal",
    "search",
    "social",
    "email",
    "paid",
    "ai-assistant",
    "external",
];

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Without --from-beginning or --since, only events produced after tail has started are shown.
Filters combine with AND; the values of one filter combine with OR (--status 4xx,5xx).
On a terminal events are shown as columns; when stdout is piped they are written as JSON lines,
exactly as received. Exits 0 on Ctrl-C or after --limit matching events.")]
pub struct Args {
    #[command(flatten)]
    pub kafka: super::KafkaArgs,
    /// Topic to read [default: footfall.visits, or footfall.visits.dlq with --dlq].
    #[arg(long)]
    pub topic: Option<String>,
    /// Start at the oldest retained message instead of the end.
    #[arg(long, conflicts_with = "since")]
    pub from_beginning: bool,
    /// Start at messages produced since a moment: a duration ago (`90s`, `10m`, `2h`, `1d`)
    /// or an RFC 3339 time (`2025-05-17T10:00:00Z`). Uses the Kafka message timestamps.
    #[arg(long, value_parser = parse_since_now, value_name = "WHEN")]
    pub since: Option<DateTime<Utc>>,
    /// Only events of these sites (repeatable or comma-separated; case-insensitive).
    #[arg(long, value_delimiter = ',', value_name = "SITE")]
    pub site: Vec<String>,
    /// Only these statuses: a code (`404`), a class (`5xx`) or a range (`500-504`);
    /// repeatable or comma-separated (`4xx,5xx`).
    #[arg(long, value_delimiter = ',', value_parser = parse_status, value_name = "STATUS")]
    pub status: Vec<StatusMatch>,
    /// Only paths starting with this prefix (literal, case-sensitive; repeatable).
    #[arg(long, value_name = "PREFIX")]
    pub path_prefix: Vec<String>,
    /// Only these referrer media: direct, internal, search, social, email, paid, ai-assistant,
    /// external (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = parse_medium, value_name = "MEDIUM")]
    pub medium: Vec<String>,
    /// Only requests from bots and crawlers.
    #[arg(long, conflicts_with = "no_bots")]
    pub bots: bool,
    /// Leave out requests from bots and crawlers.
    #[arg(long)]
    pub no_bots: bool,
    /// Write JSON lines even when stdout is a terminal.
    #[arg(long)]
    pub json: bool,
    /// Tail the dead-letter topic (rejected log lines) instead of the visits topic.
    #[arg(long, conflicts_with_all = ["site", "status", "path_prefix", "medium", "bots", "no_bots"])]
    pub dlq: bool,
    /// With --dlq: only these reject kinds (malformed, bad_timestamp, bad_status, bad_number,
    /// bad_json, too_long, key_destroyed, empty, header; repeatable or comma-separated).
    #[arg(long, requires = "dlq", value_delimiter = ',', value_parser = parse_reject_kind, value_name = "KIND")]
    pub kind: Vec<RejectKind>,
    /// Exit after this many matching messages.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub limit: Option<u64>,
    /// How long to wait for Kafka when connecting (`10s`, `500ms`, `1m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

// ------------------------------------------------------------------ argument values

/// One `--status` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// Exactly this code.
    Code(u16),
    /// A class: `5` is `5xx`.
    Class(u16),
    /// An inclusive range.
    Range(u16, u16),
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(c) => status == c,
            StatusMatch::Class(c) => status / 100 == c && status >= 100,
            StatusMatch::Range(lo, hi) => (lo..=hi).contains(&status),
        }
    }
}

fn parse_status(s: &str) -> Result<StatusMatch, String> {
    let s = s.trim();
    let code = |t: &str| -> Result<u16, String> {
        match t.parse::<u16>() {
            Ok(n) if n == 0 || (100..=999).contains(&n) => Ok(n),
            _ => Err(format!(
                "`{t}` is not a status code (100-999, or 0 for none)"
            )),
        }
    };
    let b = s.as_bytes();
    if b.len() == 3 && b[0].is_ascii_digit() && b[0] != b'0' && b[1..].eq_ignore_ascii_case(b"xx") {
        return Ok(StatusMatch::Class(u16::from(b[0] - b'0')));
    }
    if let Some((lo, hi)) = s.split_once('-') {
        let (lo, hi) = (code(lo.trim())?, code(hi.trim())?);
        if lo > hi {
            return Err(format!("`{s}` is an empty range"));
        }
        return Ok(StatusMatch::Range(lo, hi));
    }
    code(s).map(StatusMatch::Code).map_err(|_| {
        format!("`{s}` is not a status: use a code (404), a class (5xx) or a range (500-504)")
    })
}

fn parse_medium(s: &str) -> Result<String, String> {
    let m = s.trim().to_ascii_lowercase();
    if MEDIA.contains(&m.as_str()) {
        Ok(m)
    } else {
        Err(format!(
            "`{s}` is not a referrer medium (one of: {})",
            MEDIA.join(", ")
        ))
    }
}

fn parse_reject_kind(s: &str) -> Result<RejectKind, String> {
    let k = s.trim().to_ascii_lowercase();
    RejectKind::ALL
        .iter()
        .copied()
        .find(|kind| kind.as_str() == k)
        .ok_or_else(|| {
            let all: Vec<&str> = RejectKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("`{s}` is not a reject kind (one of: {})", all.join(", "))
        })
}

/// `500ms`, `90s`, `10m`, `2h`, `1d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: use e.g. 90s, 10m, 2h, 1d"))?;
    let secs = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{s}` is not a duration: give a unit (ms, s, m, h, d), e.g. 10m"
            ))
        }
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{s}` is too long"))
}

/// `--since`: a duration before `now`, or an RFC 3339 time not in the future.
fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    let at = if s.starts_with(|c: char| c.is_ascii_digit())
        && s.len() <= 12
        && !s.contains(['-', ':'])
    {
        let ago = parse_duration(s)?;
        let ago = chrono::Duration::from_std(ago).map_err(|_| format!("`{s}` is too long"))?;
        now.checked_sub_signed(ago)
            .ok_or_else(|| format!("`{s}` is too long"))?
    } else {
        DateTime::parse_from_rfc3339(s)
            .map_err(|e| {
                format!("`{s}` is neither a duration (10m, 2h) nor an RFC 3339 time with an offset (2025-05-17T10:00:00Z): {e}")
            })?
            .with_timezone(&Utc)
    };
    if at > now {
        return Err(format!("`{s}` is in the future"));
    }
    Ok(at)
}

fn parse_since_now(s: &str) -> Result<DateTime<Utc>, String> {
    parse_since(s, Utc::now())
}

/// A `-X key=value` librdkafka property; the value of a sensitive key never prints.

// ------------------------------------------------------------------ filtering

/// Which bots to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BotFilter {
    #[default]
    Any,
    Only,
    Exclude,
}

/// Criteria on visit events: all must hold; an empty list holds for every event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VisitFilter {
    pub sites: Vec<String>,
    pub statuses: Vec<StatusMatch>,
    pub path_prefixes: Vec<String>,
    pub media: Vec<String>,
    pub bots: BotFilter,
}

impl VisitFilter {
    pub fn matches(&self, ev: &VisitEvent) -> bool {
        (self.sites.is_empty() || self.sites.iter().any(|s| s.eq_ignore_ascii_case(&ev.site)))
            && (self.statuses.is_empty() || self.statuses.iter().any(|m| m.matches(ev.status)))
            && (self.path_prefixes.is_empty()
                || self
                    .path_prefixes
                    .iter()
                    .any(|p| ev.path.starts_with(p.as_str())))
            && (self.media.is_empty()
                || self
                    .media
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(&ev.referrer_medium)))
            && match self.bots {
                BotFilter::Any => true,
                BotFilter::Only => ev.is_bot,
                BotFilter::Exclude => !ev.is_bot,
            }
    }
}

/// Criteria on dead letters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RejectFilter {
    pub kinds: Vec<RejectKind>,
}

impl RejectFilter {
    pub fn matches(&self, r: &Reject) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&r.kind)
    }
}

/// What is tailed, and which of it is shown.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Visits(VisitFilter),
    DeadLetters(RejectFilter),
}

impl Filter {
    pub fn from_args(args: &Args) -> Filter {
        if args.dlq {
            return Filter::DeadLetters(RejectFilter {
                kinds: args.kind.clone(),
            });
        }
        Filter::Visits(VisitFilter {
            sites: args
                .site
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            statuses: args.status.clone(),
            path_prefixes: args.path_prefix.clone(),
            media: args.medium.clone(),
            bots: match (args.bots, args.no_bots) {
                (true, _) => BotFilter::Only,
                (_, true) => BotFilter::Exclude,
                _ => BotFilter::Any,
            },
        })
    }
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Visit(Box<VisitEvent>),
    Reject(Box<Reject>),
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Show(Record),
    Hide,
    /// The message does not decode; the reason is for a warning.
    Malformed(String),
}

/// Decodes a message value and applies the filter. `schema` is the value of the
/// `footfall-schema` header, when present.
pub fn classify(filter: &Filter, payload: Option<&[u8]>, schema: Option<&[u8]>) -> Verdict {
    let payload = match payload {
        Some(p) if !p.iter().all(u8::is_ascii_whitespace) => p,
        _ => return Verdict::Malformed("empty message".into()),
    };
    let schema_note = || match schema {
        Some(v) if v != SCHEMA_VERSION.to_string().as_bytes() => {
            format!(
                " (header {SCHEMA_HEADER} is {}; this footfall reads {SCHEMA_VERSION})",
                String::from_utf8_lossy(v)
            )
        }
        _ => String::new(),
    };
    match filter {
        Filter::Visits(f) => match serde_json::from_slice::<VisitEvent>(payload) {
            Ok(ev) if f.matches(&ev) => Verdict::Show(Record::Visit(Box::new(ev))),
            Ok(_) => Verdict::Hide,
            Err(e) => Verdict::Malformed(format!("not a visit event: {e}{}", schema_note())),
        },
        Filter::DeadLetters(f) => match serde_json::from_slice::<Reject>(payload) {
            Ok(r) if f.matches(&r) => Verdict::Show(Record::Reject(Box::new(r))),
            Ok(_) => Verdict::Hide,
            Err(e) => Verdict::Malformed(format!("not a dead letter: {e}{}", schema_note())),
        },
    }
}

// ------------------------------------------------------------------ rendering

/// Appends a message value as one JSON line: as received, unless the producer
/// spread it over several lines, in which case it is compacted.
fn push_json_line(out: &mut Vec<u8>, payload: &[u8]) {
    let trimmed = payload.trim_ascii_end();
    if memchr::memchr(b'\n', trimmed).is_some() {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(trimmed) {
            serde_json::to_writer(&mut *out, &v).expect("a JSON value serialises");
            out.push(b'\n');
            return;
        }
    }
    out.extend_from_slice(trimmed);
    out.push(b'\n');
}

/// Makes text safe to put on a terminal: control characters and bidirectional
/// overrides are shown escaped instead of being interpreted.
fn sanitize(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            if (c as u32) < 0x100 {
                let _ = write!(out, "\\x{:02x}", c as u32);
            } else {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Column widths for the terminal view of visit events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub site: usize,
    pub path: usize,
    /// `medium/source`, when there is room.
    pub medium: Option<usize>,
    /// `device/browser`, when there is room.
    pub device: Option<usize>,
}

const TIME_W: usize = 14; // 05-17 10:05:03
const STATUS_W: usize = 3;
const METHOD_W: usize = 7;
const BOT_W: usize = 3;
const MIN_PATH_W: usize = 12;
const KIND_W: usize = 13; // bad_timestamp
const SOURCE_W: usize = 28;
const OFFSET_W: usize = 10;
const REASON_W: usize = 20;

impl Layout {
    /// The columns that fit `width` terminal cells; the path takes what is left.
    pub fn for_width(width: usize) -> Layout {
        let site = if width >= 90 { 16 } else { 12 };
        let (medium, device) = match width {
            w if w >= 120 => (Some(16), Some(20)),
            w if w >= 100 => (Some(16), None),
            _ => (None, None),
        };
        let fixed =
            TIME_W + site + STATUS_W + METHOD_W + BOT_W + medium.unwrap_or(0) + device.unwrap_or(0);
        let gaps = 5 + usize::from(medium.is_some()) + usize::from(device.is_some());
        let path = width.saturating_sub(fixed + gaps).max(MIN_PATH_W);
        Layout {
            site,
            path,
            medium,
            device,
        }
    }

    /// The header row.
    pub fn header(&self, color: bool) -> String {
        let mut cols = vec![
            pad("TIME", TIME_W),
            pad("SITE", self.site),
            pad("ST", STATUS_W),
            pad("METHOD", METHOD_W),
            pad("PATH", self.path),
        ];
        if let Some(w) = self.medium {
            cols.push(pad("MEDIUM/SOURCE", w));
        }
        if let Some(w) = self.device {
            cols.push(pad("DEVICE/BROWSER", w));
        }
        cols.push("BOT".into());
        let line = cols.join(" ");
        Style::new()
            .bold()
            .force_styling(color)
            .apply_to(line.trim_end())
            .to_string()
    }
}

/// `s` truncated (with `…`) or padded to exactly `w` cells.
fn pad(s: &str, w: usize) -> String {
    console::pad_str(&sanitize(s), w, Alignment::Left, Some("…")).into_owned()
}

fn status_style(status: u16) -> Style {
    match status {
        200..=299 => Style::new().green(),
        300..=399 => Style::new().cyan(),
        400..=499 => Style::new().yellow(),
        500..=599 => Style::new().red().bold(),
        _ => Style::new(),
    }
}

/// One visit event as a terminal line (no newline).
pub fn render_visit(ev: &VisitEvent, layout: &Layout, color: bool) -> String {
    let styled = |s: String, style: Style| style.force_styling(color).apply_to(s).to_string();
    let mut line = String::with_capacity(160);
    line.push_str(&styled(
        ev.ts.format("%m-%d %H:%M:%S").to_string(),
        Style::new().dim(),
    ));
    line.push(' ');
    line.push_str(&pad(&ev.site, layout.site));
    line.push(' ');
    let status = if ev.status == 0 {
        "-".to_string()
    } else {
        ev.status.to_string()
    };
    line.push_str(&styled(pad(&status, STATUS_W), status_style(ev.status)));
    line.push(' ');
    line.push_str(&pad(ev.method.as_deref().unwrap_or("-"), METHOD_W));
    line.push(' ');
    // The path, and the route template after it when it differs and fits.
    let path = sanitize(if ev.path.is_empty() { "-" } else { &ev.path });
    let route = sanitize(&ev.route);
    let path_w = console::measure_text_width(&path);
    let suffix = format!(" → {route}");
    if route != path
        && !ev.route.is_empty()
        && path_w + console::measure_text_width(&suffix) <= layout.path
    {
        line.push_str(&path);
        line.push_str(&styled(suffix.clone(), Style::new().dim()));
        line.push_str(&" ".repeat(layout.path - path_w - console::measure_text_width(&suffix)));
    } else {
        line.push_str(&pad(&path, layout.path));
    }
    if let Some(w) = layout.medium {
        let medium = match &ev.referrer_source {
            Some(src) => format!("{}/{}", ev.referrer_medium, src),
            None => ev.referrer_medium.to_string(),
        };
        line.push(' ');
        line.push_str(&pad(&medium, w));
    }
    if let Some(w) = layout.device {
        let agent = if ev.is_bot {
            ev.bot_name.as_deref().or(ev.browser.as_deref())
        } else {
            ev.browser.as_deref()
        };
        let device = match agent {
            Some(a) => format!("{}/{}", ev.device, a),
            None => ev.device.to_string(),
        };
        line.push(' ');
        line.push_str(&pad(&device, w));
    }
    if ev.is_bot {
        line.push(' ');
        line.push_str(&styled("bot".into(), Style::new().magenta()));
    }
    let end = line.trim_end().len();
    line.truncate(end);
    line
}

/// The header row of the dead-letter view.
pub fn reject_header(width: usize, color: bool) -> String {
    let used = TIME_W + KIND_W + SOURCE_W + OFFSET_W + REASON_W + 5;
    let line = [
        pad("TIME", TIME_W),
        pad("KIND", KIND_W),
        pad("SOURCE", SOURCE_W),
        format!("{:>OFFSET_W$}", "OFFSET"),
        pad("REASON", REASON_W),
        pad("LINE", width.saturating_sub(used).max(MIN_PATH_W)),
    ]
    .join(" ");
    Style::new()
        .bold()
        .force_styling(color)
        .apply_to(line.trim_end())
        .to_string()
}

/// One dead letter as a terminal line (no newline): time of the Kafka message,
/// kind, source, offset, reason and the (already scrubbed) line.
pub fn render_reject(r: &Reject, at: Option<DateTime<Local>>, width: usize, color: bool) -> String {
    let styled = |s: String, style: Style| style.force_styling(color).apply_to(s).to_string();
    let time = at.map_or_else(
        || "-".to_string(),
        |t| t.format("%m-%d %H:%M:%S").to_string(),
    );
    // Keep the end of a long source: the file name says more than the directory.
    let source: Vec<char> = sanitize(&r.source).chars().collect();
    let source: String = if source.len() > SOURCE_W {
        std::iter::once('…')
            .chain(source[source.len() - (SOURCE_W - 1)..].iter().copied())
            .collect()
    } else {
        source.into_iter().collect()
    };
    let mut line = String::with_capacity(200);
    line.push_str(&styled(pad(&time, TIME_W), Style::new().dim()));
    line.push(' ');
    line.push_str(&styled(pad(r.kind.as_str(), KIND_W), Style::new().yellow()));
    line.push(' ');
    line.push_str(&pad(&source, SOURCE_W));
    line.push(' ');
    let _ = write!(line, "{:>OFFSET_W$}", r.offset);
    line.push(' ');
    line.push_str(&styled(pad(&r.reason, REASON_W), Style::new().dim()));
    line.push(' ');
    let used = TIME_W + KIND_W + SOURCE_W + OFFSET_W + REASON_W + 5;
    let text = if r.truncated {
        format!("{}…", r.line)
    } else {
        r.line.clone()
    };
    line.push_str(&pad(&text, width.saturating_sub(used).max(MIN_PATH_W)));
    let end = line.trim_end().len();
    line.truncate(end);
    line
}

// ------------------------------------------------------------------ Kafka

/// Keeps librdkafka's own log lines off the screen (tail reports errors itself)
/// and remembers the last warning, which says why a broker cannot be reached.
#[derive(Default)]
struct TailContext {
    last_problem: Mutex<Option<String>>,
}

impl TailContext {
    fn take_problem(&self) -> Option<String> {
        self.last_problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl ClientContext for TailContext {
    fn log(&self, level: RDKafkaLogLevel, _fac: &str, message: &str) {
        if (level as i32) <= RDKafkaLogLevel::Warning as i32 {
            *self.last_problem.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(message.to_string());
        }
    }

    fn error(&self, _error: KafkaError, reason: &str) {
        *self.last_problem.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
    }
}

impl ConsumerContext for TailContext {}

/// Where to start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartAt {
    Latest,
    Beginning,
    Time(DateTime<Utc>),
}

impl std::fmt::Display for StartAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartAt::Latest => f.write_str("the latest offsets"),
            StartAt::Beginning => f.write_str("the beginning"),
            StartAt::Time(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

/// The Kafka settings of `footfall tail`: the shared ones, less what tail fixes.
fn tail_kafka(args: &Args) -> anyhow::Result<KafkaConfig> {
    let mut kafka = args.kafka.resolve()?;
    kafka.client_id = "footfall-tail".into();
    // A group id of its own that never joins (partitions are assigned, not
    // subscribed) and never commits: the aggregator's group is left alone.
    for fixed in ["group.id", "enable.auto.commit"] {
        if kafka.options.contains_key(fixed) {
            return Err(Failure::new(
                CONFIG,
                format!("{fixed} is fixed: tail never joins a consumer group nor commits offsets"),
            )
            .into());
        }
    }
    Ok(kafka)
}

fn consumer(kafka: &KafkaConfig) -> anyhow::Result<BaseConsumer<TailContext>> {
    // A group id of its own, never joined (partitions are assigned) nor committed.
    let group = format!("footfall-tail-{}", std::process::id());
    let mut config = kafka
        .consumer_config(&group)
        .map_err(|e| Failure::new(CONFIG, e.to_string()))?;
    config.set("enable.auto.offset.store", "false");
    config
        .create_with_context(TailContext::default())
        .map_err(|e| {
            Failure::new(
                CONFIG,
                footfall_kafka::KafkaError::from_rdkafka("cannot create the Kafka consumer", e)
                    .to_string(),
            )
            .with_hint("check the -X options and the [kafka] table")
            .into()
        })
}

fn unreachable(args: &Args, what: &str, e: &KafkaError, ctx: &TailContext) -> anyhow::Error {
    let mut message = format!(
        "cannot {what} from Kafka at {} within {:?}: {e}",
        args.kafka
            .brokers
            .as_deref()
            .unwrap_or("the configured brokers"),
        args.timeout
    );
    if let Some(problem) = ctx.take_problem() {
        let _ = write!(message, " (last problem: {problem})");
    }
    Failure::new(UNAVAILABLE, message)
        .with_hint("is the broker running? (deploy/kafka/local-kafka.sh status) Check --brokers and -X options")
        .into()
}

fn partitions(c: &BaseConsumer<TailContext>, args: &Args, topic: &str) -> anyhow::Result<Vec<i32>> {
    let md = c
        .fetch_metadata(Some(topic), args.timeout)
        .map_err(|e| unreachable(args, "read metadata", &e, c.context()))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| {
            Failure::new(UNAVAILABLE, format!("Kafka did not describe topic {topic}"))
        })?;
    if let Some(err) = t.error() {
        let code = RDKafkaErrorCode::from(err);
        if code == RDKafkaErrorCode::UnknownTopicOrPartition {
            return Err(Failure::new(
                NO_INPUT,
                format!(
                    "topic {topic} does not exist at {}",
                    args.kafka
                        .brokers
                        .as_deref()
                        .unwrap_or("the configured brokers")
                ),
            )
            .with_hint("check --topic, or create the topics with `footfall topics`")
            .into());
        }
        return Err(Failure::new(
            UNAVAILABLE,
            format!("cannot describe topic {topic}: {code}"),
        )
        .into());
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    if ids.is_empty() {
        return Err(Failure::new(NO_INPUT, format!("topic {topic} has no partitions")).into());
    }
    Ok(ids)
}

/// Per-partition offsets for a timestamp (milliseconds; -1 asks for the end).
/// `Offset::End` in the answer means no message is that recent.
fn offsets_for(
    c: &BaseConsumer<TailContext>,
    args: &Args,
    topic: &str,
    parts: &[i32],
    ts: Offset,
) -> anyhow::Result<Vec<(i32, Offset)>> {
    let mut tpl = TopicPartitionList::with_capacity(parts.len());
    for &p in parts {
        tpl.add_partition_offset(topic, p, ts)
            .context("building the offset query")?;
    }
    let found = c
        .offsets_for_times(tpl, args.timeout)
        .map_err(|e| unreachable(args, "look up offsets", &e, c.context()))?;
    let mut out = Vec::with_capacity(parts.len());
    for el in found.elements_for_topic(topic) {
        el.error().map_err(|e| {
            unreachable(
                args,
                &format!("look up offsets of partition {}", el.partition()),
                &e,
                c.context(),
            )
        })?;
        out.push((el.partition(), el.offset()));
    }
    Ok(out)
}

/// Explicit start offsets: resolved now, so that "from the latest offsets" means
/// exactly the messages produced after this call.
fn start_offsets(
    c: &BaseConsumer<TailContext>,
    args: &Args,
    topic: &str,
    parts: &[i32],
    start: StartAt,
) -> anyhow::Result<TopicPartitionList> {
    let resolved: Vec<(i32, Offset)> = match start {
        StartAt::Beginning => parts.iter().map(|&p| (p, Offset::Beginning)).collect(),
        StartAt::Latest => offsets_for(c, args, topic, parts, Offset::End)?,
        StartAt::Time(t) => {
            let mut found =
                offsets_for(c, args, topic, parts, Offset::Offset(t.timestamp_millis()))?;
            let past_end: Vec<i32> = found
                .iter()
                .filter(|(_, o)| !matches!(o, Offset::Offset(_)))
                .map(|(p, _)| *p)
                .collect();
            if !past_end.is_empty() {
                let ends = offsets_for(c, args, topic, &past_end, Offset::End)?;
                for (p, o) in ends {
                    if let Some(slot) = found.iter_mut().find(|(q, _)| *q == p) {
                        slot.1 = o;
                    }
                }
            }
            found
        }
    };
    let mut tpl = TopicPartitionList::with_capacity(resolved.len());
    for (p, o) in resolved {
        tpl.add_partition_offset(topic, p, o)
            .context("building the assignment")?;
    }
    Ok(tpl)
}

// ------------------------------------------------------------------ signals

/// The first SIGINT/SIGTERM sets `stop`; a second one ends the process at once.
fn watch_signals(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    #[cfg(unix)]
    let (mut int, mut term) = {
        use tokio::signal::unix::{signal, SignalKind};
        let _entered = runtime.enter();
        (
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        )
    };
    std::thread::Builder::new()
        .name("footfall-tail-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                #[cfg(unix)]
                {
                    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
                    stop.store(true, Ordering::SeqCst);
                    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
                }
                #[cfg(not(unix))]
                {
                    let _ = tokio::signal::ctrl_c().await;
                    stop.store(true, Ordering::SeqCst);
                    let _ = tokio::signal::ctrl_c().await;
                }
                std::process::exit(130);
            })
        })
        .context("starting the signal thread")?;
    Ok(())
}

// ------------------------------------------------------------------ the loop

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    seen: u64,
    matched: u64,
    malformed: u64,
}

/// The live status line on stderr (terminal only).
struct StatusLine {
    started: Instant,
    samples: VecDeque<(Instant, u64)>,
    drawn_at: Option<Instant>,
    problem: Option<(String, Instant)>,
}

const STATUS_EVERY: Duration = Duration::from_millis(250);

impl StatusLine {
    fn new(started: Instant) -> Self {
        StatusLine {
            started,
            samples: VecDeque::new(),
            drawn_at: None,
            problem: None,
        }
    }

    fn rate(&mut self, now: Instant, seen: u64) -> f64 {
        self.samples.push_back((now, seen));
        while self.samples.len() > 2
            && now.duration_since(self.samples[0].0) > Duration::from_secs(3)
        {
            self.samples.pop_front();
        }
        let (t0, s0) = self.samples[0];
        let dt = now.duration_since(t0).as_secs_f64();
        if dt < 0.5 {
            let total = now.duration_since(self.started).as_secs_f64();
            return if total > 0.0 {
                seen as f64 / total
            } else {
                0.0
            };
        }
        (seen - s0) as f64 / dt
    }

    fn clear(&mut self, err: &mut impl Write) {
        if self.drawn_at.is_some() {
            let _ = err.write_all(b"\r\x1b[2K");
            let _ = err.flush();
        }
    }

    fn draw(&mut self, err: &mut impl Write, topic: &str, stats: &Stats) {
        let now = Instant::now();
        let rate = self.rate(now, stats.seen);
        let mut text = format!(
            "{topic} · {} seen · {} matched · {rate:.1}/s · {}s",
            stats.seen,
            stats.matched,
            now.duration_since(self.started).as_secs()
        );
        if stats.malformed > 0 {
            let _ = write!(text, " · {} malformed", stats.malformed);
        }
        if let Some((p, at)) = &self.problem {
            if now.duration_since(*at) < Duration::from_secs(30) {
                let _ = write!(text, " · kafka: {p}");
            }
        }
        let width = console::Term::stderr()
            .size_checked()
            .map_or(100, |(_, w)| usize::from(w))
            .saturating_sub(1);
        let text = console::truncate_str(&text, width, "…");
        let _ = write!(
            err,
            "\r\x1b[2K{}",
            Style::new().dim().for_stderr().apply_to(text)
        );
        let _ = err.flush();
        self.drawn_at = Some(now);
    }
}

enum View {
    Json,
    Table {
        color: bool,
        width: usize,
        layout: Layout,
    },
}

struct Tail<'a> {
    topic: &'a str,
    filter: Filter,
    view: View,
    status: Option<StatusLine>,
    out: Vec<u8>,
    stats: Stats,
    limit: Option<u64>,
    /// The last Kafka error reported, and when, so a flapping broker does not flood the screen.
    last_error: Option<(String, Instant)>,
}

impl Tail<'_> {
    fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|n| self.stats.matched >= n)
    }

    fn on_message(&mut self, m: &BorrowedMessage<'_>) {
        self.stats.seen += 1;
        let schema = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == SCHEMA_HEADER)
                .and_then(|h| h.value)
        });
        match classify(&self.filter, m.payload(), schema) {
            Verdict::Hide => {}
            Verdict::Malformed(why) => {
                self.stats.malformed += 1;
                self.warn(&format!(
                    "{}[{}]@{}: {why}",
                    self.topic,
                    m.partition(),
                    m.offset()
                ));
            }
            Verdict::Show(record) => {
                self.stats.matched += 1;
                match &self.view {
                    View::Json => push_json_line(&mut self.out, m.payload().unwrap_or_default()),
                    View::Table {
                        color,
                        width,
                        layout,
                    } => {
                        let line = match &record {
                            Record::Visit(ev) => render_visit(ev, layout, *color),
                            Record::Reject(r) => {
                                let at = m
                                    .timestamp()
                                    .to_millis()
                                    .and_then(|ms| Local.timestamp_millis_opt(ms).single());
                                render_reject(r, at, *width, *color)
                            }
                        };
                        self.out.extend_from_slice(line.as_bytes());
                        self.out.push(b'\n');
                    }
                }
            }
        }
    }

    /// A warning: inline on the terminal view, on stderr otherwise (stdout stays JSON).
    fn warn(&mut self, text: &str) {
        let text = sanitize(text);
        match &self.view {
            View::Json => eprintln!("footfall tail: warning: {text}"),
            View::Table { color, .. } => {
                let line = Style::new()
                    .yellow()
                    .force_styling(*color)
                    .apply_to(format!("warning: {text}"));
                let _ = writeln!(self.out, "{line}");
            }
        }
    }

    fn on_error(&mut self, e: &KafkaError, ctx: &TailContext) -> anyhow::Result<()> {
        if let KafkaError::MessageConsumptionFatal(_) = e {
            return Err(Failure::new(FAILURE, format!("the Kafka consumer failed: {e}")).into());
        }
        let detail = ctx
            .take_problem()
            .map(|p| format!("{e} ({p})"))
            .unwrap_or_else(|| e.to_string());
        let now = Instant::now();
        if let Some(s) = &mut self.status {
            s.problem = Some((detail.clone(), now));
        }
        let repeat = self.last_error.as_ref().is_some_and(|(last, at)| {
            *last == e.to_string() && now.duration_since(*at) < Duration::from_secs(30)
        });
        if !repeat {
            self.last_error = Some((e.to_string(), now));
            self.warn(&format!("kafka: {detail}; still trying"));
        }
        Ok(())
    }

    /// Writes what has been rendered; false when stdout is closed (`| head`).
    fn flush(&mut self, stdout: &mut impl Write, stderr: &mut impl Write) -> anyhow::Result<bool> {
        if self.out.is_empty() {
            if let Some(s) = &mut self.status {
                if s.drawn_at.is_none_or(|t| t.elapsed() >= STATUS_EVERY) {
                    s.draw(stderr, self.topic, &self.stats);
                }
            }
            return Ok(true);
        }
        if let Some(s) = &mut self.status {
            s.clear(stderr);
        }
        let written = stdout.write_all(&self.out).and_then(|()| stdout.flush());
        self.out.clear();
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(false),
            Err(e) => return Err(e).context("writing to stdout"),
        }
        if let Some(s) = &mut self.status {
            s.draw(stderr, self.topic, &self.stats);
        }
        Ok(true)
    }
}

/// How long to keep draining immediately available messages before writing them.
const BATCH: Duration = Duration::from_millis(50);
/// How long one poll may block: also the reaction time to Ctrl-C.
const POLL: Duration = Duration::from_millis(100);

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let topic = args.topic.clone().unwrap_or_else(|| {
        if args.dlq {
            DEAD_LETTER_TOPIC
        } else {
            VISITS_TOPIC
        }
        .to_string()
    });
    if topic.trim().is_empty() {
        return Err(Failure::new(CONFIG, "--topic is empty").into());
    }
    let start = match (args.from_beginning, args.since) {
        (true, _) => StartAt::Beginning,
        (_, Some(t)) => StartAt::Time(t),
        _ => StartAt::Latest,
    };
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(Arc::clone(&stop))?;

    let kafka = tail_kafka(&args)?;
    let consumer = consumer(&kafka)?;
    let parts = partitions(&consumer, &args, &topic)?;
    let assignment = start_offsets(&consumer, &args, &topic, &parts, start)?;
    consumer.assign(&assignment).map_err(|e| {
        Failure::new(
            FAILURE,
            format!("cannot assign the partitions of {topic}: {e}"),
        )
    })?;

    let stdout_tty = io::stdout().is_terminal();
    let stderr_tty = io::stderr().is_terminal();
    let table = stdout_tty && !args.json;
    let width = || {
        console::Term::stdout()
            .size_checked()
            .map_or(120, |(_, w)| usize::from(w))
    };
    eprintln!(
        "footfall tail: tailing {topic} from {start} ({} partition{}){}",
        parts.len(),
        if parts.len() == 1 { "" } else { "s" },
        if stderr_tty { "; Ctrl-C to stop" } else { "" }
    );

    let mut tail = Tail {
        topic: &topic,
        filter: Filter::from_args(&args),
        view: if table {
            let w = width();
            View::Table {
                color: console::colors_enabled(),
                width: w,
                layout: Layout::for_width(w),
            }
        } else {
            View::Json
        },
        status: (table && stderr_tty).then(|| StatusLine::new(started)),
        out: Vec::with_capacity(64 * 1024),
        stats: Stats::default(),
        limit: args.limit,
        last_error: None,
    };
    if let View::Table {
        color,
        layout,
        width,
    } = &tail.view
    {
        let header = if args.dlq {
            reject_header(*width, *color)
        } else {
            layout.header(*color)
        };
        tail.out.extend_from_slice(header.as_bytes());
        tail.out.push(b'\n');
    }
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr();

    let mut open = true;
    while open && !tail.limit_reached() && !stop.load(Ordering::SeqCst) {
        if let View::Table {
            width: w, layout, ..
        } = &mut tail.view
        {
            let now = width();
            if now != *w {
                *w = now;
                *layout = Layout::for_width(now);
            }
        }
        let mut next = consumer.poll(POLL);
        let batch_until = Instant::now() + BATCH;
        while let Some(result) = next.take() {
            match result {
                Ok(m) => tail.on_message(&m),
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(e) => tail.on_error(&e, consumer.context())?,
            }
            if tail.limit_reached() || Instant::now() >= batch_until {
                break;
            }
            next = consumer.poll(Duration::ZERO);
        }
        open = tail.flush(&mut stdout, &mut stderr)?;
    }

    if let Some(s) = &mut tail.status {
        s.clear(&mut stderr);
    }
    let Stats {
        seen,
        matched,
        malformed,
    } = tail.stats;
    let mut summary = format!("footfall tail: {seen} seen, {matched} matched");
    if malformed > 0 {
        let _ = write!(summary, ", {malformed} malformed");
    }
    let _ = write!(summary, " in {:.1} s", started.elapsed().as_secs_f64());
    eprintln!("{summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(line: &str) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("tail").chain(line.split_whitespace())).map(|c| c.args)
    }

    fn event(patch: serde_json::Value) -> VisitEvent {
        let mut base = json!({
            "v": 1, "event_id": "00112233445566778899aabbccddeeff", "ts": "2025-05-17T10:05:03+02:00",
            "site": "example.org", "visitor_id": "0011223344556677", "status": 200, "method": "GET",
            "path": "/api/v1/users/42", "route": "/api/v1/users/:id", "referrer_medium": "search",
            "referrer_source": "Google", "browser": "Firefox", "os": "Linux", "device": "desktop",
            "is_bot": false, "kind": "page", "is_pageview": true, "source": "access.log", "offset": 0
        });
        for (k, v) in patch.as_object().expect("patch is an object") {
            base[k] = v.clone();
        }
        serde_json::from_value(base).expect("test event deserialises")
    }

    fn reject(kind: RejectKind) -> Reject {
        Reject {
            v: 1,
            event_id: "ff".repeat(16),
            source: "/var/log/nginx/access.log".into(),
            offset: 1234,
            kind,
            reason: "no status".into(),
            line: "1.2.3.0 - - [17/May/2025:10:05:03 +0000] \"GET / HTTP/1.1\" x -".into(),
            truncated: false,
        }
    }

    #[test]
    fn visit_filter_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, serde_json::Value, bool)] = &[
            ("no filter shows everything", "", json!({}), true),
            ("status class matches its members", "--status 5xx", json!({"status": 503}), true),
            ("status class is case-insensitive", "--status 5XX", json!({"status": 500}), true),
            ("status class excludes other classes", "--status 5xx", json!({"status": 404}), false),
            ("status class excludes a missing status", "--status 5xx", json!({"status": 0}), false),
            ("exact status matches", "--status 404", json!({"status": 404}), true),
            ("exact status excludes its neighbour", "--status 404", json!({"status": 403}), false),
            ("status 0 selects events without one", "--status 0", json!({"status": 0}), true),
            ("comma list is any-of", "--status 4xx,5xx", json!({"status": 418}), true),
            ("comma list excludes the rest", "--status 4xx,5xx", json!({"status": 200}), false),
            ("repeated --status is any-of", "--status 404 --status 5xx", json!({"status": 502}), true),
            ("range includes its upper bound", "--status 500-503", json!({"status": 503}), true),
            ("range excludes past its bound", "--status 500-503", json!({"status": 504}), false),
            ("site matches exactly", "--site example.org", json!({}), true),
            ("site ignores ASCII case", "--site Example.ORG", json!({}), true),
            ("site is not a substring match", "--site example", json!({}), false),
            ("another site is excluded", "--site shop.example", json!({}), false),
            ("several sites are any-of", "--site a.example,example.org", json!({}), true),
            ("path prefix matches", "--path-prefix /api", json!({"path": "/api/v1/x"}), true),
            ("path prefix is literal", "--path-prefix /api", json!({"path": "/apiary"}), true),
            ("path prefix is case-sensitive", "--path-prefix /API", json!({"path": "/api/v1"}), false),
            ("path prefix excludes other paths", "--path-prefix /api", json!({"path": "/static/a.css"}), false),
            ("several path prefixes are any-of", "--path-prefix /static --path-prefix /api", json!({}), true),
            ("medium matches", "--medium search", json!({}), true),
            ("medium ignores case", "--medium SEARCH", json!({}), true),
            ("another medium is excluded", "--medium social", json!({}), false),
            ("medium list is any-of", "--medium social,direct", json!({"referrer_medium": "direct"}), true),
            ("--bots shows bots", "--bots", json!({"is_bot": true, "device": "bot"}), true),
            ("--bots hides people", "--bots", json!({}), false),
            ("--no-bots hides bots", "--no-bots", json!({"is_bot": true}), false),
            ("--no-bots shows people", "--no-bots", json!({}), true),
            ("criteria combine with AND: all hold", "--status 5xx --site example.org --path-prefix /api --no-bots",
                json!({"status": 500}), true),
            ("criteria combine with AND: one fails", "--status 5xx --site example.org --path-prefix /api --no-bots",
                json!({"status": 500, "is_bot": true}), false),
        ];
        for (name, line, patch, expected) in cases {
            let a = args(line).unwrap_or_else(|e| panic!("{name}: {line}: {e}"));
            let Filter::Visits(f) = Filter::from_args(&a) else {
                panic!("{name}: not a visits filter")
            };
            assert_eq!(
                f.matches(&event(patch.clone())),
                *expected,
                "{name}: `{line}` on {patch}"
            );
        }
    }

    #[test]
    fn reject_filter_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, RejectKind, bool)] = &[
            ("no kind shows every dead letter", "--dlq", RejectKind::Malformed, true),
            ("kind matches", "--dlq --kind bad_status", RejectKind::BadStatus, true),
            ("kind ignores case", "--dlq --kind BAD_STATUS", RejectKind::BadStatus, true),
            ("other kinds are excluded", "--dlq --kind bad_status", RejectKind::Malformed, false),
            ("kind list is any-of", "--dlq --kind malformed,too_long", RejectKind::TooLong, true),
        ];
        for (name, line, kind, expected) in cases {
            let a = args(line).unwrap_or_else(|e| panic!("{name}: {line}: {e}"));
            let Filter::DeadLetters(f) = Filter::from_args(&a) else {
                panic!("{name}: not a dead-letter filter")
            };
            assert_eq!(f.matches(&reject(*kind)), *expected, "{name}");
        }
    }

    #[test]
    fn bad_command_lines_are_refused() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("unknown status word", "--status abc"),
            ("status code out of range", "--status 1000"),
            ("status class 0xx", "--status 0xx"),
            ("empty status range", "--status 504-500"),
            ("unknown medium", "--medium serach"),
            ("bots and no-bots together", "--bots --no-bots"),
            ("beginning and since together", "--from-beginning --since 10m"),
            ("since in the future", "--since 2999-01-01T00:00:00Z"),
            ("since without a unit", "--since 10"),
            ("visit filters with --dlq", "--dlq --status 5xx"),
            ("site filter with --dlq", "--dlq --site example.org"),
            ("--kind without --dlq", "--kind malformed"),
            ("unknown reject kind", "--dlq --kind weird"),
            ("zero limit", "--limit 0"),
            ("-X without a value", "-X fetch.wait.max.ms"),
            ("-X with an empty key", "-X =1"),
            ("-X bootstrap.servers", "-X bootstrap.servers=elsewhere:9092"),
            ("timeout without a unit", "--timeout 10"),
        ];
        for (name, line) in cases {
            assert!(args(line).is_err(), "{name}: `{line}` was accepted");
        }
    }

    #[test]
    fn defaults_and_accepted_values() {
        let a = args("--brokers k1:9092,k2:9092").unwrap();
        assert_eq!(a.kafka.brokers.as_deref(), Some("k1:9092,k2:9092"));
        assert_eq!(a.timeout, Duration::from_secs(10));
        assert!(a.topic.is_none() && !a.from_beginning && a.since.is_none() && a.limit.is_none());
        assert_eq!(
            Filter::from_args(&a),
            Filter::Visits(VisitFilter::default())
        );

        let a = args("-X security.protocol=ssl -X socket.timeout.ms=a=b --limit 2 --timeout 500ms")
            .unwrap();
        assert_eq!(
            a.kafka.options[0],
            crate::cmd::KafkaOption {
                key: "security.protocol".into(),
                value: footfall_kafka::OptionValue::Plain("ssl".into())
            }
        );
        assert_eq!(
            a.kafka.options[1].value.expose(),
            "a=b",
            "only the first = separates"
        );
        let secret = args("-X sasl.password=hunter2").unwrap();
        assert!(
            !format!("{secret:?}").contains("hunter2"),
            "a secret never shows in Debug"
        );
        let refused = tail_kafka(&secret).unwrap_err();
        assert_eq!(crate::exit::code_for(&refused), crate::exit::CONFIG);
        let text = format!("{refused:#}");
        assert!(
            text.contains("sasl.password") && !text.contains("hunter2"),
            "a secret on the command line is refused without echoing it: {text}"
        );
        let fixed = tail_kafka(&args("-X group.id=footfall-aggregate").unwrap()).unwrap_err();
        assert!(format!("{fixed}").contains("group.id is fixed"), "{fixed}");
        assert_eq!(a.limit, Some(2));
        assert_eq!(a.timeout, Duration::from_millis(500));
    }

    #[test]
    fn since_values() {
        let now = DateTime::parse_from_rfc3339("2025-05-17T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| {
            parse_since(s, now).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        };
        assert_eq!(at("10m").unwrap(), "2025-05-17T11:50:00Z");
        assert_eq!(at("2h").unwrap(), "2025-05-17T10:00:00Z");
        assert_eq!(at("90s").unwrap(), "2025-05-17T11:58:30Z");
        assert_eq!(at("1d").unwrap(), "2025-05-16T12:00:00Z");
        assert_eq!(
            at("2025-05-17T13:30:00+02:00").unwrap(),
            "2025-05-17T11:30:00Z"
        );
        assert_eq!(
            at("2025-05-17T12:00:00Z").unwrap(),
            "2025-05-17T12:00:00Z",
            "now itself is allowed"
        );
        for bad in [
            "",
            "10",
            "10x",
            "-5m",
            "2025-05-17",
            "2025-05-17T10:00:00",
            "2025-05-17T12:00:01Z",
        ] {
            assert!(at(bad).is_err(), "`{bad}` was accepted");
        }
    }

    #[test]
    fn status_values() {
        assert_eq!(parse_status("5xx"), Ok(StatusMatch::Class(5)));
        assert_eq!(parse_status(" 404 "), Ok(StatusMatch::Code(404)));
        assert_eq!(parse_status("500-599"), Ok(StatusMatch::Range(500, 599)));
        assert!(StatusMatch::Class(1).matches(101) && !StatusMatch::Class(1).matches(99));
    }

    #[test]
    fn classify_decodes_filters_and_reports_malformed_messages() {
        let five = Filter::Visits(VisitFilter {
            statuses: vec![StatusMatch::Class(5)],
            ..Default::default()
        });
        let ok = serde_json::to_vec(&event(json!({"status": 502}))).unwrap();
        let other = serde_json::to_vec(&event(json!({"status": 200}))).unwrap();
        assert!(
            matches!(classify(&five, Some(&ok), Some(b"1")), Verdict::Show(Record::Visit(e)) if e.status == 502)
        );
        assert_eq!(classify(&five, Some(&other), None), Verdict::Hide);

        let Verdict::Malformed(why) = classify(&five, Some(b"{\"status\": 500"), None) else {
            panic!("truncated JSON passed")
        };
        assert!(why.starts_with("not a visit event: "), "{why}");
        assert_eq!(
            classify(&five, None, None),
            Verdict::Malformed("empty message".into())
        );
        assert_eq!(
            classify(&five, Some(b" \n"), None),
            Verdict::Malformed("empty message".into())
        );
        let Verdict::Malformed(why) = classify(&five, Some(b"{\"v\":2}"), Some(b"2")) else {
            panic!("v2 passed")
        };
        assert!(
            why.contains("header footfall-schema is 2; this footfall reads 1"),
            "{why}"
        );

        // A dead letter on the visits topic, and a visit on the dead-letter topic, are malformed.
        let dead = serde_json::to_vec(&reject(RejectKind::Malformed)).unwrap();
        assert!(matches!(
            classify(&five, Some(&dead), None),
            Verdict::Malformed(_)
        ));
        let dlq = Filter::DeadLetters(RejectFilter::default());
        assert!(
            matches!(classify(&dlq, Some(&ok), None), Verdict::Malformed(w) if w.starts_with("not a dead letter"))
        );
        assert!(matches!(
            classify(&dlq, Some(&dead), None),
            Verdict::Show(_)
        ));
    }

    #[test]
    fn json_lines_are_passed_through() {
        let mut out = Vec::new();
        push_json_line(&mut out, br#"{"a": 1,  "b":[2]}"#);
        push_json_line(&mut out, b"{\"c\":3}\r\n");
        push_json_line(&mut out, b"{\n  \"d\": 4\n}\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\": 1,  \"b\":[2]}\n{\"c\":3}\n{\"d\":4}\n"
        );
    }

    #[test]
    fn terminal_text_is_sanitized() {
        assert_eq!(sanitize("/plain/ü"), "/plain/ü");
        assert_eq!(sanitize("/a\x1b[2Jb\u{7}"), "/a\\x1b[2Jb\\x07");
        assert_eq!(sanitize("x\u{202e}y"), "x\\u{202e}y");
        let line = render_visit(
            &event(json!({"path": "/\x1b]0;owned\x07"})),
            &Layout::for_width(120),
            false,
        );
        assert!(!line.contains('\x1b') && !line.contains('\x07'), "{line:?}");
    }

    #[test]
    fn layouts_fit_their_width() {
        for width in [60, 80, 99, 100, 119, 120, 160, 250] {
            let layout = Layout::for_width(width);
            assert_eq!(layout.medium.is_some(), width >= 100, "{width}");
            assert_eq!(layout.device.is_some(), width >= 120, "{width}");
            let header = layout.header(false);
            assert!(
                console::measure_text_width(&header) <= width.max(60),
                "{width}: header {header:?}"
            );
            let long = event(json!({
                "path": format!("/{}", "segment/".repeat(40)), "route": "/segment/*", "site": "a-very-long-site-name.example.org",
                "is_bot": true, "device": "bot", "bot_name": "Googlebot", "referrer_source": "A Very Long Search Engine Name"
            }));
            for color in [false, true] {
                let line = render_visit(&long, &layout, color);
                let shown = console::measure_text_width(&line);
                assert!(
                    shown <= width.max(60),
                    "{width} color={color}: {shown} cells: {line:?}"
                );
            }
        }
    }

    #[test]
    fn visit_rows_show_the_columns() {
        let layout = Layout::for_width(140);
        let plain = render_visit(&event(json!({"status": 503})), &layout, false);
        assert!(
            plain.starts_with("05-17 10:05:03 example.org "),
            "{plain:?}"
        );
        for part in [
            " 503 ",
            " GET ",
            "/api/v1/users/42 → /api/v1/users/:id",
            "search/Google",
            "desktop/Firefox",
        ] {
            assert!(plain.contains(part), "{part:?} missing from {plain:?}");
        }
        assert!(
            !plain.contains('\x1b') && !plain.ends_with("bot"),
            "{plain:?}"
        );
        let columns = |l: &str| l.find("GET").unwrap();
        let other = render_visit(
            &event(
                json!({"site": "x", "status": 0, "method": "DELETE", "path": "/", "route": "/"}),
            ),
            &layout,
            false,
        );
        assert_eq!(
            columns(&plain),
            other.find("DELETE").unwrap(),
            "columns align: {plain:?} / {other:?}"
        );
        assert!(
            other.contains(" -   DELETE "),
            "missing status shows as -: {other:?}"
        );

        let colored = render_visit(&event(json!({"status": 503})), &layout, true);
        assert!(colored.contains("31m"), "5xx is red: {colored:?}");
        assert_eq!(console::strip_ansi_codes(&colored), plain);

        let bot = render_visit(
            &event(json!({"is_bot": true, "device": "bot", "bot_name": "Googlebot"})),
            &layout,
            false,
        );
        assert!(
            bot.ends_with(" bot") && bot.contains("bot/Googlebot"),
            "{bot:?}"
        );
    }

    #[test]
    fn dead_letter_rows_show_kind_source_offset_and_line() {
        let at = Local.timestamp_millis_opt(1_747_476_303_000).single();
        let line = render_reject(&reject(RejectKind::BadStatus), at, 160, false);
        for part in [
            "bad_status",
            "/var/log/nginx/access.log",
            " 1234 ",
            "no status",
            "\"GET / HTTP/1.1\" x -",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line:?}");
        }
        let mut long = reject(RejectKind::TooLong);
        long.source = "/srv/www/a-very-long-directory-name/logs/access.log".into();
        long.line = "x".repeat(500);
        long.truncated = true;
        let line = render_reject(&long, None, 120, false);
        let header = reject_header(120, false);
        let column = |text: &str, part: &str| {
            text.find(part)
                .map(|i| console::measure_text_width(&text[..i]))
        };
        assert_eq!(
            column(&line, " 1234 "),
            column(&header, " OFFSET ").map(|c| c + 2),
            "{header:?} / {line:?}"
        );
        assert!(
            line.contains("…")
                && line.contains("name/logs/access.log")
                && !line.contains("/srv/www"),
            "{line:?}"
        );
        assert!(console::measure_text_width(&line) <= 120, "{line:?}");
    }
}
