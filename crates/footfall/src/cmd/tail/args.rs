//! `footfall tail`'s command line: the flags, and the parsers that turn
//! their values into typed settings (`--status 5xx`, `--since 10m`, ...).
//! A value that does not parse is a usage error (exit 2) naming what is
//! accepted; nothing here talks to Kafka.

use std::time::Duration;

use chrono::{DateTime, Utc};
use footfall_event::{RejectKind, REFERRER_MEDIA};
use footfall_kafka::KafkaConfig;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Without --from-beginning or --since, only events produced after tail has started are shown.
Filters combine with AND; the values of one filter combine with OR (--status 4xx,5xx).
On a terminal events are shown as columns; when stdout is piped they are written as JSON lines,
exactly as received. Exits 0 on Ctrl-C or after --limit matching events.")]
pub struct Args {
    #[command(flatten)]
    pub kafka: crate::cmd::KafkaArgs,
    /// The visits topic [default: the config's kafka.topics.visits.name, else footfall.visits].
    #[arg(long, value_name = "NAME")]
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
    /// With --dlq: the dead-letter topic [default: the config's kafka.topics.dead_letter.name,
    /// else the visits topic followed by .dlq].
    #[arg(long, requires = "dlq", value_name = "NAME")]
    pub dlq_topic: Option<String>,
    /// With --dlq: only these reject kinds (malformed, bad_timestamp, bad_status, bad_number,
    /// bad_json, too_long, key_destroyed, time_out_of_range, empty, header; repeatable or comma-separated).
    #[arg(long, requires = "dlq", value_delimiter = ',', value_parser = parse_reject_kind, value_name = "KIND")]
    pub kind: Vec<RejectKind>,
    /// Exit after this many matching messages.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub limit: Option<u64>,
    /// How long to wait for Kafka when connecting (`10s`, `500ms`, `1m`) [default: the config's
    /// tail.timeout, else 10s].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
}

impl Args {
    /// The topic to read: the visits topic, or with `--dlq` its dead-letter
    /// topic; flags beat the config's `[kafka.topics]`.
    pub fn topic_in(&self, kafka: &KafkaConfig) -> String {
        let mut topics = kafka.topics.clone();
        topics.rename(self.topic.as_deref(), self.dlq_topic.as_deref());
        if self.dlq {
            topics.dead_letter().name
        } else {
            topics.visits().name
        }
    }
}

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
    /// Whether an event's status is selected.
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
    if REFERRER_MEDIA.contains(&m.as_str()) {
        Ok(m)
    } else {
        Err(format!(
            "`{s}` is not a referrer medium (one of: {})",
            REFERRER_MEDIA.join(", ")
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

/// A duration in the config file's syntax (`500ms`, `90s`, `1.5m`, `2h`,
/// `1d`), but with its unit: on the command line a bare `10` could mean
/// seconds or minutes.
fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim().ends_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "`{s}` is not a duration: give a unit (ms, s, m, h, d), e.g. 10m"
        ));
    }
    footfall_ingest::config::parse_duration(s)
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// `footfall tail LINE`'s arguments.
    pub(in crate::cmd::tail) fn args(line: &str) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("tail").chain(line.split_whitespace())).map(|c| c.args)
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
            ("--dlq-topic without --dlq", "--dlq-topic x.dlq"),
            ("unknown reject kind", "--dlq --kind weird"),
            ("zero limit", "--limit 0"),
            ("-X without a value", "-X fetch.wait.max.ms"),
            ("-X with an empty key", "-X =1"),
            ("-X bootstrap.servers", "-X bootstrap.servers=elsewhere:9092"),
            ("timeout without a unit", "--timeout 10"),
            ("timeout with an unknown unit", "--timeout 10x"),
        ];
        for (name, line) in cases {
            assert!(args(line).is_err(), "{name}: `{line}` was accepted");
        }
    }

    #[test]
    fn defaults_and_accepted_values() {
        let a = args("--brokers k1:9092,k2:9092").unwrap();
        assert_eq!(a.kafka.brokers.as_deref(), Some("k1:9092,k2:9092"));
        assert_eq!(a.timeout, None, "the config's tail.timeout, else 10s");
        assert!(a.topic.is_none() && !a.from_beginning && a.since.is_none() && a.limit.is_none());

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
        assert_eq!(a.limit, Some(2));
        assert_eq!(a.timeout, Some(Duration::from_millis(500)));
        let secret = args("-X sasl.password=hunter2").unwrap();
        assert!(
            !format!("{secret:?}").contains("hunter2"),
            "a secret never shows in Debug"
        );
    }

    #[test]
    fn the_topic_read() {
        let kafka = |visits: Option<&str>, dlq: Option<&str>| {
            let mut k = KafkaConfig::default();
            k.topics.visits.name = visits.map(String::from);
            k.topics.dead_letter.name = dlq.map(String::from);
            k
        };
        #[rustfmt::skip]
        let cases: &[(&str, &str, KafkaConfig, &str)] = &[
            ("the default visits topic", "", kafka(None, None), "footfall.visits"),
            ("the default dead-letter topic", "--dlq", kafka(None, None), "footfall.visits.dlq"),
            ("--topic", "--topic shop", kafka(None, None), "shop"),
            ("--dlq follows --topic", "--topic shop --dlq", kafka(None, None), "shop.dlq"),
            ("--dlq follows the config's visits topic", "--dlq", kafka(Some("cfg"), None), "cfg.dlq"),
            ("the config's dead-letter topic", "--dlq", kafka(Some("cfg"), Some("errors")), "errors"),
            ("--dlq-topic beats the config", "--dlq --dlq-topic mine", kafka(Some("cfg"), Some("errors")), "mine"),
            ("--topic beats the config", "--topic flag", kafka(Some("cfg"), None), "flag"),
        ];
        for (name, line, k, want) in cases {
            assert_eq!(args(line).unwrap().topic_in(k), *want, "{name}");
        }
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
}
