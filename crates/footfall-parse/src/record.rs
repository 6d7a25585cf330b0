//! The format-independent intermediate: the fields one log line carried.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset};
use footfall_event::RejectKind;

/// The fields of one access-log line, borrowed from the line where possible.
///
/// Every format parser produces this; enrichment turns it into a
/// [`footfall_event::VisitEvent`]. Fields the format does not carry stay `None`.
/// Values logged as `-` are `None`, never `Some("-")`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRecord<'a> {
    /// Client address or host name as logged (IPv4, IPv6, or a DNS name).
    pub client: Option<Cow<'a, str>>,
    /// Request time. `None` only transiently inside a parser; a record handed
    /// to enrichment always has it (parsers reject lines without a time).
    pub ts: Option<DateTime<FixedOffset>>,
    /// HTTP method.
    pub method: Option<Cow<'a, str>>,
    /// Request target as logged: path plus optional `?query` (or an absolute URL for proxies).
    pub target: Option<Cow<'a, str>>,
    /// Protocol, e.g. `HTTP/1.1`.
    pub protocol: Option<Cow<'a, str>>,
    /// HTTP status.
    pub status: Option<u16>,
    /// Response bytes.
    pub bytes: Option<u64>,
    /// Request duration in milliseconds.
    pub duration_ms: Option<f64>,
    /// Referrer URL.
    pub referrer: Option<Cow<'a, str>>,
    /// User agent.
    pub user_agent: Option<Cow<'a, str>>,
    /// Virtual host / server name.
    pub host: Option<Cow<'a, str>>,
    /// Upstream / backend address or name.
    pub upstream: Option<Cow<'a, str>>,
    /// The raw `Cookie` header, when logged (only used to find the session cookie; never emitted).
    pub cookies: Option<Cow<'a, str>>,
    /// The session cookie's value when the format logs it on its own (e.g. `$cookie_sid`); never emitted.
    pub session: Option<Cow<'a, str>>,
    /// Remote user name: parsed so it can be dropped; never emitted.
    pub user: Option<Cow<'a, str>>,
}

/// Why a format parser refused a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The dead-letter class of the refusal.
    pub kind: RejectKind,
    /// What was wrong, for people reading dead letters (no line content).
    pub reason: Cow<'static, str>,
}

impl LineError {
    /// A refusal of the given kind.
    pub fn new(kind: RejectKind, reason: impl Into<Cow<'static, str>>) -> Self {
        LineError {
            kind,
            reason: reason.into(),
        }
    }
    /// A `Malformed` refusal: the line is not in the format's layout.
    pub fn malformed(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectKind::Malformed, reason)
    }
}

/// Result of parsing one line with a format.
pub type LineResult<'a> = Result<RawRecord<'a>, LineError>;

/// `None` for the conventional "no value" markers: empty and `-`.
#[inline]
pub fn dash_none(s: &str) -> Option<&str> {
    if s.is_empty() || s == "-" {
        None
    } else {
        Some(s)
    }
}
