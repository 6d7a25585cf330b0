//! The footfall visit event: one pseudonymous record per HTTP request.
//!
//! Every access-log line that footfall reads becomes exactly one of two things:
//!
//! * a [`VisitEvent`]: the request, enriched (browser, OS, device, bot, referrer
//!   medium and source, search terms, UTM campaign, route template) and
//!   pseudonymised (a keyed daily [`VisitEvent::visitor_id`], a truncated
//!   [`VisitEvent::client_net`], secrets in URLs replaced by [`REDACTED`]);
//!   [`EventRef`] is the same event borrowed, as enrichment first produces it;
//! * a [`Reject`]: the line could not be parsed, with a [`RejectKind`] that is
//!   small enough to be a metric label, the source and the byte offset.
//!
//! Events are serialised as one JSON object per line; `docs/events.md` lists
//! every field. The JSON form is stable within a [`SCHEMA_VERSION`]; events of
//! older versions still deserialise (version 1 differs only in the
//! vocabulary of `kind`, which [`legacy_kind`] maps).
//!
//! ```
//! use footfall_event::{VisitEvent, SCHEMA_VERSION};
//! let json = r#"{"v":2,"event_id":"00112233445566778899aabbccddeeff","ts":"2015-05-17T10:05:03+00:00",
//!   "site":"example.org","visitor_id":"0011223344556677","status":200,"method":"GET","path":"/",
//!   "route":"/","referrer_medium":"direct","device":"desktop","is_bot":false,"kind":"page",
//!   "is_pageview":true,"source":"stdin","offset":0}"#;
//! let ev: VisitEvent = serde_json::from_str(json).unwrap();
//! assert_eq!(ev.v, SCHEMA_VERSION);
//! assert!(ev.is_visitor_request()); // not answered 4xx
//! ```

#![warn(missing_docs)]

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

mod json;
mod vocab;
pub use json::{json_error, segment};
pub use vocab::{
    legacy_kind, DEVICES, KINDS, LEGACY_KINDS, REFERRER_MEDIA, SCHEMA_HEADER, SOURCE_HEADER,
};

/// A string from a small, mostly static vocabulary (device class, medium, kind, source names).
pub type Label = Cow<'static, str>;
/// A string shared between many events (user-agent derived values come from a cache).
pub type Shared = Arc<str>;

/// Version of the event schema; carried in every event (`v`) and as a Kafka header.
///
/// A field removed or retyped, or a closed vocabulary whose values change
/// meaning, bumps it; an added field does not. Consumers read every version
/// up to this one and refuse newer ones.
///
/// * 1: `kind` was `page`, `static`, `redirect`, `error` or `other`
///   ([`LEGACY_KINDS`], mapped by [`legacy_kind`]).
/// * 2: `kind` is the kind of resource, whatever the status ([`KINDS`]);
///   `is_pageview` is a `page` answered 2xx or 304 to a GET or HEAD.
pub const SCHEMA_VERSION: u16 = 2;

/// The value that replaces a secret query parameter's value.
pub const REDACTED: &str = "REDACTED";

/// One HTTP request, enriched and pseudonymised.
///
/// Optional fields are `null` (or absent) when the log format does not carry the
/// information or the value was `-` in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct VisitEvent {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub v: u16,
    /// Deterministic id: 128-bit hash of source identity, byte offset and line content, hex.
    pub event_id: String,
    /// Request time with the offset the log used (or the configured timezone), RFC 3339.
    pub ts: DateTime<FixedOffset>,
    /// Site (configured per source), or the virtual host when the log carries one and no site is set.
    pub site: String,
    /// Virtual host / server name from the log, when the format carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Keyed, daily-rotating pseudonym of the visitor (64-bit hex).
    pub visitor_id: String,
    /// Truncated client network (`203.0.113.0/24`, `2001:db8:1::/48`) or a truncated
    /// host name (`*.example.net`); null when the operator drops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_net: Option<String>,
    /// Raw client address: only present when the operator explicitly opts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// HTTP method (`GET`, ...); null for an empty request line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path, percent-encoding kept as logged, secrets redacted. Empty request: `""`.
    pub path: String,
    /// Query string without `?`, secrets redacted; null when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Path template with ids collapsed (`/users/:id`), bounded cardinality.
    pub route: String,
    /// Protocol (`HTTP/1.1`, `HTTP/2.0`); null when the request line has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// HTTP status code (0 when the log had none).
    pub status: u16,
    /// Response body bytes; null when logged as `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Request duration in milliseconds, when the format carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// Upstream / backend that served the request, when the format carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Referrer URL, secrets redacted; null when `-` or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Lower-cased referrer host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_host: Option<String>,
    /// Referrer medium: `direct`, `internal`, `search`, `social`, `email`, `paid`,
    /// `ai-assistant` or `external`.
    pub referrer_medium: Label,
    /// Named source of the referrer (`Google`, `Facebook`, ...), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_source: Option<Label>,
    /// Search-engine terms carried by the referrer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_terms: Option<String>,
    /// On-site search terms from the request's own query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_search: Option<String>,
    /// `utm_source` from the request's query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_source: Option<String>,
    /// `utm_medium` from the request's query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_medium: Option<String>,
    /// `utm_campaign` from the request's query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_campaign: Option<String>,
    /// `utm_term` from the request's query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_term: Option<String>,
    /// `utm_content` from the request's query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_content: Option<String>,
    /// Browser family (uap-core), `Other` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<Shared>,
    /// Browser major version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<Shared>,
    /// Operating system family (uap-core), `Other` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Shared>,
    /// Device class: `desktop`, `mobile`, `tablet`, `bot` or `other`.
    pub device: Label,
    /// The user agent is a crawler, spider or other automated client.
    pub is_bot: bool,
    /// Bot name when `is_bot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_name: Option<Shared>,
    /// The kind of resource the path names, whatever the status: `page`,
    /// `asset`, `api`, `feed`, `download` or `other` ([`KINDS`]; events of
    /// schema version 1 carry [`LEGACY_KINDS`], see [`legacy_kind`]).
    pub kind: Label,
    /// A page view: `kind` is `page`, the status 2xx or 304, the method GET
    /// or HEAD (or not logged). Says nothing about bots: see `is_bot`.
    pub is_pageview: bool,
    /// Source identity (file path, `stdin`, `syslog:udp:...`).
    pub source: String,
    /// Byte offset of the line within its source.
    pub offset: u64,
}

impl VisitEvent {
    /// GoAccess's rule: a request answered 4xx does not make its client a visitor.
    pub fn is_visitor_request(&self) -> bool {
        !(400..500).contains(&self.status)
    }

    /// The calendar day of the event, in the event's own offset.
    pub fn local_date(&self) -> NaiveDate {
        self.ts.date_naive()
    }
}

/// A borrowed view of a [`VisitEvent`]: the same fields, nothing copied.
///
/// Enrichment produces this first; [`EventRef::write_json_line`] writes it out
/// (the hot path of `footfall parse` and `footfall ingest`), and
/// [`EventRef::to_event`] makes the owned event. Field meanings are those of
/// [`VisitEvent`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventRef<'a> {
    /// [`VisitEvent::v`].
    pub v: u16,
    /// [`VisitEvent::event_id`].
    pub event_id: &'a str,
    /// [`VisitEvent::ts`].
    pub ts: DateTime<FixedOffset>,
    /// [`VisitEvent::site`].
    pub site: &'a str,
    /// [`VisitEvent::host`].
    pub host: Option<&'a str>,
    /// [`VisitEvent::visitor_id`].
    pub visitor_id: &'a str,
    /// [`VisitEvent::client_net`].
    pub client_net: Option<&'a str>,
    /// [`VisitEvent::client_ip`].
    pub client_ip: Option<&'a str>,
    /// [`VisitEvent::method`].
    pub method: Option<&'a str>,
    /// [`VisitEvent::path`].
    pub path: &'a str,
    /// [`VisitEvent::query`].
    pub query: Option<&'a str>,
    /// [`VisitEvent::route`].
    pub route: &'a str,
    /// [`VisitEvent::protocol`].
    pub protocol: Option<&'a str>,
    /// [`VisitEvent::status`].
    pub status: u16,
    /// [`VisitEvent::bytes`].
    pub bytes: Option<u64>,
    /// [`VisitEvent::duration_ms`].
    pub duration_ms: Option<f64>,
    /// [`VisitEvent::upstream`].
    pub upstream: Option<&'a str>,
    /// [`VisitEvent::referrer`].
    pub referrer: Option<&'a str>,
    /// [`VisitEvent::referrer_host`].
    pub referrer_host: Option<&'a str>,
    /// [`VisitEvent::referrer_medium`].
    pub referrer_medium: &'a Label,
    /// [`VisitEvent::referrer_source`].
    pub referrer_source: Option<&'a Label>,
    /// [`VisitEvent::search_terms`].
    pub search_terms: Option<&'a str>,
    /// [`VisitEvent::site_search`].
    pub site_search: Option<&'a str>,
    /// [`VisitEvent::utm_source`].
    pub utm_source: Option<&'a str>,
    /// [`VisitEvent::utm_medium`].
    pub utm_medium: Option<&'a str>,
    /// [`VisitEvent::utm_campaign`].
    pub utm_campaign: Option<&'a str>,
    /// [`VisitEvent::utm_term`].
    pub utm_term: Option<&'a str>,
    /// [`VisitEvent::utm_content`].
    pub utm_content: Option<&'a str>,
    /// [`VisitEvent::browser`].
    pub browser: Option<&'a Shared>,
    /// [`VisitEvent::browser_version`].
    pub browser_version: Option<&'a Shared>,
    /// [`VisitEvent::os`].
    pub os: Option<&'a Shared>,
    /// [`VisitEvent::device`].
    pub device: &'a Label,
    /// [`VisitEvent::is_bot`].
    pub is_bot: bool,
    /// [`VisitEvent::bot_name`].
    pub bot_name: Option<&'a Shared>,
    /// [`VisitEvent::kind`].
    pub kind: &'a Label,
    /// [`VisitEvent::is_pageview`].
    pub is_pageview: bool,
    /// [`VisitEvent::source`].
    pub source: &'a str,
    /// [`VisitEvent::offset`].
    pub offset: u64,
    /// JSON already written for some field groups (see [`Prerendered`]).
    pub pre: Prerendered<'a>,
}

/// JSON of field groups of an [`EventRef`], written beforehand by the
/// [`segment`] writers from the same values as the view's fields, for values
/// cached and shared by many events (a request target, a referrer, a user
/// agent). [`EventRef::write_json_line`] copies a group that is present
/// instead of writing its fields again; an absent group is written from the
/// fields.
///
/// It is a cache, not data: any two compare equal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prerendered<'a> {
    /// [`segment::visitor`]: `visitor_id` and `client_net`.
    pub visitor: Option<&'a [u8]>,
    /// [`segment::target`]: `path`, `query`, `route`.
    pub target: Option<&'a [u8]>,
    /// [`segment::referrer`]: `referrer` to `search_terms`.
    pub referrer: Option<&'a [u8]>,
    /// [`segment::campaign`]: `site_search` and the UTM fields.
    pub campaign: Option<&'a [u8]>,
    /// [`segment::agent`]: `browser` to `bot_name`.
    pub agent: Option<&'a [u8]>,
}

impl PartialEq for Prerendered<'_> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl EventRef<'_> {
    /// The owned event.
    pub fn to_event(&self) -> VisitEvent {
        let s = |x: Option<&str>| x.map(str::to_string);
        VisitEvent {
            v: self.v,
            event_id: self.event_id.to_string(),
            ts: self.ts,
            site: self.site.to_string(),
            host: s(self.host),
            visitor_id: self.visitor_id.to_string(),
            client_net: s(self.client_net),
            client_ip: s(self.client_ip),
            method: s(self.method),
            path: self.path.to_string(),
            query: s(self.query),
            route: self.route.to_string(),
            protocol: s(self.protocol),
            status: self.status,
            bytes: self.bytes,
            duration_ms: self.duration_ms,
            upstream: s(self.upstream),
            referrer: s(self.referrer),
            referrer_host: s(self.referrer_host),
            referrer_medium: self.referrer_medium.clone(),
            referrer_source: self.referrer_source.cloned(),
            search_terms: s(self.search_terms),
            site_search: s(self.site_search),
            utm_source: s(self.utm_source),
            utm_medium: s(self.utm_medium),
            utm_campaign: s(self.utm_campaign),
            utm_term: s(self.utm_term),
            utm_content: s(self.utm_content),
            browser: self.browser.cloned(),
            browser_version: self.browser_version.cloned(),
            os: self.os.cloned(),
            device: self.device.clone(),
            is_bot: self.is_bot,
            bot_name: self.bot_name.cloned(),
            kind: self.kind.clone(),
            is_pageview: self.is_pageview,
            source: self.source.to_string(),
            offset: self.offset,
        }
    }
}

impl VisitEvent {
    /// The borrowed view of this event.
    pub fn view(&self) -> EventRef<'_> {
        EventRef {
            v: self.v,
            event_id: &self.event_id,
            ts: self.ts,
            site: &self.site,
            host: self.host.as_deref(),
            visitor_id: &self.visitor_id,
            client_net: self.client_net.as_deref(),
            client_ip: self.client_ip.as_deref(),
            method: self.method.as_deref(),
            path: &self.path,
            query: self.query.as_deref(),
            route: &self.route,
            protocol: self.protocol.as_deref(),
            status: self.status,
            bytes: self.bytes,
            duration_ms: self.duration_ms,
            upstream: self.upstream.as_deref(),
            referrer: self.referrer.as_deref(),
            referrer_host: self.referrer_host.as_deref(),
            referrer_medium: &self.referrer_medium,
            referrer_source: self.referrer_source.as_ref(),
            search_terms: self.search_terms.as_deref(),
            site_search: self.site_search.as_deref(),
            utm_source: self.utm_source.as_deref(),
            utm_medium: self.utm_medium.as_deref(),
            utm_campaign: self.utm_campaign.as_deref(),
            utm_term: self.utm_term.as_deref(),
            utm_content: self.utm_content.as_deref(),
            browser: self.browser.as_ref(),
            browser_version: self.browser_version.as_ref(),
            os: self.os.as_ref(),
            device: &self.device,
            is_bot: self.is_bot,
            bot_name: self.bot_name.as_ref(),
            kind: &self.kind,
            is_pageview: self.is_pageview,
            source: &self.source,
            offset: self.offset,
            pre: Prerendered::default(),
        }
    }
}

/// Why a line was rejected. Small and stable: usable as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// Empty or whitespace-only line.
    Empty,
    /// A header or comment line (`#Fields:` in W3C logs), not a request.
    Header,
    /// The line does not have the shape of the format (fields missing, quotes unbalanced).
    Malformed,
    /// The timestamp is missing or unparseable.
    BadTimestamp,
    /// The status code is missing or not a number in 100..=999.
    BadStatus,
    /// A numeric field (bytes, duration) is not a number.
    BadNumber,
    /// A JSON log line is not valid JSON or lacks required keys.
    BadJson,
    /// The line is longer than the configured maximum.
    TooLong,
    /// The key of the line's day has been destroyed (the keyring moved past
    /// it), so no visitor id can be given: the line is older than the
    /// keyring's horizon.
    KeyDestroyed,
    /// The line's time lies too far from the clock (in the future, or further
    /// in the past than configured): a wrong clock or a corrupt line.
    TimeOutOfRange,
}

impl RejectKind {
    /// Every reject kind.
    pub const ALL: [RejectKind; 10] = [
        RejectKind::Empty,
        RejectKind::Header,
        RejectKind::Malformed,
        RejectKind::BadTimestamp,
        RejectKind::BadStatus,
        RejectKind::BadNumber,
        RejectKind::BadJson,
        RejectKind::TooLong,
        RejectKind::KeyDestroyed,
        RejectKind::TimeOutOfRange,
    ];

    /// The label used in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::Empty => "empty",
            RejectKind::Header => "header",
            RejectKind::Malformed => "malformed",
            RejectKind::BadTimestamp => "bad_timestamp",
            RejectKind::BadStatus => "bad_status",
            RejectKind::BadNumber => "bad_number",
            RejectKind::BadJson => "bad_json",
            RejectKind::TooLong => "too_long",
            RejectKind::KeyDestroyed => "key_destroyed",
            RejectKind::TimeOutOfRange => "time_out_of_range",
        }
    }
}

impl std::fmt::Display for RejectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line that could not be parsed: what goes to the dead-letter topic.
///
/// The line is kept (truncated to a bound) so an operator can see what went
/// wrong; dead letters are an operational store with its own short retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub v: u16,
    /// Deterministic id, computed like [`VisitEvent::event_id`].
    pub event_id: String,
    /// Source identity.
    pub source: String,
    /// Byte offset of the line within its source.
    pub offset: u64,
    /// Why it was rejected.
    pub kind: RejectKind,
    /// Human-readable detail.
    pub reason: String,
    /// The line (lossy UTF-8), truncated to [`Reject::MAX_LINE`] bytes.
    pub line: String,
    /// Whether `line` was truncated.
    pub truncated: bool,
}

impl Reject {
    /// Bound on the bytes of the original line kept in a reject.
    pub const MAX_LINE: usize = 2048;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_round_trips_exactly() {
        let ts = DateTime::parse_from_rfc3339("2013-11-17T16:00:08-05:00").unwrap();
        for d in [2011.0000000000002, 0.1 + 0.2, 1e-7, 123456.789, 0.0, 5e300] {
            let ev = VisitEvent {
                v: SCHEMA_VERSION,
                event_id: "e".into(),
                ts,
                site: "s".into(),
                visitor_id: "v".into(),
                path: "/\"quoted\"\u{1}é".into(),
                route: "/".into(),
                status: 200,
                duration_ms: Some(d),
                referrer_medium: Label::Borrowed("direct"),
                device: Label::Borrowed("desktop"),
                kind: Label::Borrowed("page"),
                browser: Some(Shared::from("Firefox")),
                source: "stdin".into(),
                ..Default::default()
            };
            let mut out = Vec::new();
            ev.write_json_line(&mut out);
            assert_eq!(out.last(), Some(&b'\n'));
            let back: VisitEvent = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, ev, "{}", String::from_utf8_lossy(&out));
            assert_eq!(
                out,
                [serde_json::to_vec(&ev).unwrap(), b"\n".to_vec()].concat(),
                "same bytes as serde_json"
            );
        }
    }
}
