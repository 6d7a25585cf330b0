//! JSON access logs, one object per line: Caddy (`caddy`), Traefik
//! (`traefik-json`) and nginx `log_format ... escape=json` with a configurable
//! key mapping (`nginx-json`).
//!
//! Text before the first `{` is skipped, so lines with a container-runtime
//! prefix (`caddy  | {...}` from `docker compose logs`) parse as they are.
//! Strings are borrowed from the line when they contain no JSON escapes.
//!
//! Rejections: an empty line is `Empty`, a line starting with `#` is
//! `Header`; a line that is not a JSON object is `BadJson`; a missing or
//! unparseable time is `BadTimestamp`; a missing status or one outside
//! `100..=999` is `BadStatus`; a size or duration that is not a number is
//! `BadNumber`. Caddy and Traefik also write non-request messages (startup,
//! configuration) to the same stream: objects without any of the access-entry
//! keys are reported as `Header`, like W3C comment lines: not requests, and not errors.
//!
//! Time values are recognised by shape: RFC 3339 / ISO 8601 (with or without
//! fraction; `Z`, `+hh:mm`, `+hhmm` or no offset; a space instead of the `T`
//! only without an offset), the Common Log Format time (`10/Oct/2000:13:55:36 -0700`, with
//! or without brackets), and epoch numbers (JSON numbers or numeric strings).
//! Epoch values are read as seconds below 10^11, milliseconds below 10^14,
//! microseconds below 10^17 and nanoseconds above, which covers every
//! `time_format` Caddy offers. Times without an offset are taken as UTC.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, FixedOffset};
use footfall_event::RejectKind;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::aws::line_body;
use super::fields::fill_request;
use super::time::{epoch_from_f64, parse_clf_time, parse_epoch, parse_iso8601};
use super::{FormatState, LineFormat};
use crate::record::{dash_none, LineError, LineResult, RawRecord};
use crate::url::hex_val;

mod caddy;
mod traefik;

use caddy::parse_caddy;
use traefik::parse_traefik;

/// A JSON-lines access-log format.
///
/// Construct with [`JsonFormat::caddy`], [`JsonFormat::traefik`] or
/// [`JsonFormat::nginx`].
#[derive(Debug, Clone)]
pub struct JsonFormat {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Caddy,
    Traefik,
    Mapped(Box<MappedKeys>),
}

impl JsonFormat {
    /// Caddy's structured access log (`caddy`).
    ///
    /// * `ts`: epoch seconds (float, Caddy's default) or any other
    ///   `time_format` (ISO 8601, epoch milli/nanoseconds, common log);
    /// * client: `request.client_ip`, else `request.remote_ip`, else
    ///   `request.remote_addr` without its port;
    /// * `request.method`, `request.uri` (target), `request.proto`, `request.host`;
    /// * `request.headers`: first `User-Agent` and `Referer` values; all
    ///   `Cookie` values joined with `; ` (Caddy logs `REDACTED` unless
    ///   credentials logging is on);
    /// * `status`, `size` (bytes), `user_id` (user);
    /// * `duration`: a float is seconds (the default `duration_format`), an
    ///   integer is nanoseconds (`duration_format nano`), a string is a Go
    ///   duration (`1.5ms`, `duration_format string`).
    ///
    /// Entries without a `request` object (Caddy's runtime messages) are `Header`.
    pub fn caddy() -> Self {
        JsonFormat { kind: Kind::Caddy }
    }

    /// Traefik's JSON access log (`traefik-json`).
    ///
    /// * time: `StartUTC`, else `StartLocal`, else `time`;
    /// * client: `ClientHost`, else `ClientAddr` without its port;
    /// * `RequestMethod`, `RequestPath` (target), `RequestProtocol`,
    ///   `RequestHost` (else `RequestAddr`) as host;
    /// * status: `DownstreamStatus` (what the client received), else `OriginStatus`;
    /// * bytes: `DownstreamContentSize`; duration: `Duration` (nanoseconds);
    /// * `request_Referer`, `request_User-Agent`, `request_Cookie` (header
    ///   fields, present when Traefik keeps them);
    /// * upstream: `ServiceAddr`, else the host of `ServiceURL`, else `ServiceName`;
    /// * user: `ClientUsername`.
    ///
    /// Objects with none of `RequestMethod`, `RequestPath`, `DownstreamStatus`
    /// and `OriginStatus` (Traefik's own log messages) are `Header`.
    pub fn traefik() -> Self {
        JsonFormat {
            kind: Kind::Traefik,
        }
    }

    /// JSON written by an nginx `log_format` (or any flat JSON object), read
    /// through `mapping`; [`JsonMapping::default`] knows nginx's variable names.
    ///
    /// Only top-level keys are looked up. Values may be JSON strings or
    /// numbers. Lines written by nginx without `escape=json`, whose `\xHH`
    /// escapes are not valid JSON, are accepted too: `\x22` and `\x5C` become
    /// `"` and `\`, other bytes are decoded as UTF-8 (invalid sequences replaced).
    pub fn nginx(mapping: JsonMapping) -> Self {
        JsonFormat {
            kind: Kind::Mapped(Box::new(MappedKeys::new(&mapping))),
        }
    }
}

impl LineFormat for JsonFormat {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Caddy => "caddy",
            Kind::Traefik => "traefik-json",
            Kind::Mapped(_) => "nginx-json",
        }
    }

    fn parse<'a>(&self, line: &'a str, _state: &mut FormatState) -> LineResult<'a> {
        let trimmed = line_body(line)?;
        let Some(start) = memchr::memchr(b'{', trimmed.as_bytes()) else {
            return Err(LineError::new(
                RejectKind::BadJson,
                "no JSON object on the line",
            ));
        };
        let json = &trimmed[start..];
        match &self.kind {
            Kind::Caddy => parse_caddy(json),
            Kind::Traefik => parse_traefik(json),
            Kind::Mapped(keys) => match parse_mapped(keys, json) {
                Err(e) if e.kind == RejectKind::BadJson && json.contains("\\x") => {
                    let fixed = nginx_hex_escapes_to_json(json);
                    parse_mapped(keys, &fixed).map(into_owned)
                }
                other => other,
            },
        }
    }
}

// ---------------------------------------------------------------------------
// Key mapping for nginx-style JSON.

/// Unit of a duration value in a mapped JSON log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurationUnit {
    /// Seconds, e.g. nginx `$request_time` (`0.002`).
    #[default]
    #[serde(alias = "s")]
    Seconds,
    /// Milliseconds.
    #[serde(rename = "ms", alias = "milliseconds")]
    Milliseconds,
    /// Microseconds, e.g. Apache `%D`.
    #[serde(rename = "us", alias = "microseconds")]
    Microseconds,
    /// Nanoseconds.
    #[serde(rename = "ns", alias = "nanoseconds")]
    Nanoseconds,
}

impl DurationUnit {
    fn to_ms(self, v: f64) -> f64 {
        match self {
            DurationUnit::Seconds => v * 1000.0,
            DurationUnit::Milliseconds => v,
            DurationUnit::Microseconds => v / 1000.0,
            DurationUnit::Nanoseconds => v / 1_000_000.0,
        }
    }
}

/// Which top-level JSON keys hold which field, for [`JsonFormat::nginx`].
///
/// Each field lists candidate keys, tried in order: the first one present
/// with a value other than `null` wins (a present `"-"` or `""` still wins
/// and means "no value"). The default covers nginx's variable names; a
/// configuration may override any subset of fields (unknown field names are
/// an error):
///
/// ```yaml
/// client: [ip]
/// time: [date]
/// uri: [path]
/// bytes: [length]
/// ```
///
/// The time value's format is recognised by its shape (see the module docs).
/// `request` is a whole request line (`GET /x HTTP/1.1`); `method`, `uri`
/// and `protocol`, when present, take precedence over its parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonMapping {
    /// Client address. Default: `remote_addr`.
    pub client: Vec<String>,
    /// Request time. Default: `time_iso8601`, `time_local`, `msec`, `@timestamp`, `timestamp`, `time`.
    pub time: Vec<String>,
    /// Whole request line. Default: `request`.
    pub request: Vec<String>,
    /// HTTP method. Default: `request_method`.
    pub method: Vec<String>,
    /// Request target (path and query). Default: `request_uri`.
    pub uri: Vec<String>,
    /// Protocol. Default: `server_protocol`.
    pub protocol: Vec<String>,
    /// HTTP status (required). Default: `status`.
    pub status: Vec<String>,
    /// Response bytes. Default: `body_bytes_sent`, `bytes_sent`.
    pub bytes: Vec<String>,
    /// Referrer. Default: `http_referer`.
    pub referrer: Vec<String>,
    /// User agent. Default: `http_user_agent`.
    pub user_agent: Vec<String>,
    /// Virtual host. Default: `host`, `http_host`, `server_name`, `server`.
    pub host: Vec<String>,
    /// Upstream address. Default: `upstream_addr`.
    pub upstream: Vec<String>,
    /// Request duration, in `duration_unit`. Default: `request_time`.
    pub duration: Vec<String>,
    /// Unit of `duration`. Default: seconds.
    pub duration_unit: DurationUnit,
    /// The raw `Cookie` header. Default: `http_cookie`.
    pub cookie: Vec<String>,
    /// The session cookie's value. Default: none.
    pub session: Vec<String>,
    /// Remote user. Default: `remote_user`.
    pub user: Vec<String>,
}

fn keys(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for JsonMapping {
    fn default() -> Self {
        JsonMapping {
            client: keys(&["remote_addr"]),
            time: keys(&[
                "time_iso8601",
                "time_local",
                "msec",
                "@timestamp",
                "timestamp",
                "time",
            ]),
            request: keys(&["request"]),
            method: keys(&["request_method"]),
            uri: keys(&["request_uri"]),
            protocol: keys(&["server_protocol"]),
            status: keys(&["status"]),
            bytes: keys(&["body_bytes_sent", "bytes_sent"]),
            referrer: keys(&["http_referer"]),
            user_agent: keys(&["http_user_agent"]),
            host: keys(&["host", "http_host", "server_name", "server"]),
            upstream: keys(&["upstream_addr"]),
            duration: keys(&["request_time"]),
            duration_unit: DurationUnit::Seconds,
            cookie: keys(&["http_cookie"]),
            session: Vec::new(),
            user: keys(&["remote_user"]),
        }
    }
}

/// Mapped fields, in slot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Client,
    Time,
    Request,
    Method,
    Uri,
    Protocol,
    Status,
    Bytes,
    Referrer,
    UserAgent,
    Host,
    Upstream,
    Duration,
    Cookie,
    Session,
    User,
}

const SLOTS: usize = 16;

/// A [`JsonMapping`] turned into a key → (slot, rank) index.
#[derive(Debug, Clone)]
struct MappedKeys {
    index: HashMap<Box<str>, Vec<(Slot, u8)>>,
    duration_unit: DurationUnit,
}

impl MappedKeys {
    fn new(m: &JsonMapping) -> Self {
        let mut index: HashMap<Box<str>, Vec<(Slot, u8)>> = HashMap::new();
        let lists: [(Slot, &Vec<String>); SLOTS] = [
            (Slot::Client, &m.client),
            (Slot::Time, &m.time),
            (Slot::Request, &m.request),
            (Slot::Method, &m.method),
            (Slot::Uri, &m.uri),
            (Slot::Protocol, &m.protocol),
            (Slot::Status, &m.status),
            (Slot::Bytes, &m.bytes),
            (Slot::Referrer, &m.referrer),
            (Slot::UserAgent, &m.user_agent),
            (Slot::Host, &m.host),
            (Slot::Upstream, &m.upstream),
            (Slot::Duration, &m.duration),
            (Slot::Cookie, &m.cookie),
            (Slot::Session, &m.session),
            (Slot::User, &m.user),
        ];
        for (slot, list) in lists {
            for (rank, key) in list.iter().enumerate() {
                let rank = u8::try_from(rank).unwrap_or(u8::MAX);
                let entry = index.entry(key.as_str().into()).or_default();
                if !entry.iter().any(|(s, _)| *s == slot) {
                    entry.push((slot, rank));
                }
            }
        }
        MappedKeys {
            index,
            duration_unit: m.duration_unit,
        }
    }
}

/// Values found for each slot, with the rank of the key that supplied them.
struct Found<'a> {
    vals: [Option<(u8, JVal<'a>)>; SLOTS],
}

impl<'a> Found<'a> {
    fn take(&mut self, slot: Slot) -> Option<JVal<'a>> {
        self.vals[slot as usize].take().map(|(_, v)| v)
    }
}

struct Collect<'m, 'f, 'a> {
    keys: &'m MappedKeys,
    found: &'f mut Found<'a>,
}

impl<'de> DeserializeSeed<'de> for Collect<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Collect<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<JStr<'de>>()? {
            match self.keys.index.get(&*key.0) {
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(targets) => {
                    let v: JVal<'de> = map.next_value()?;
                    if matches!(v, JVal::Null) {
                        continue;
                    }
                    for &(slot, rank) in targets {
                        let cur = &mut self.found.vals[slot as usize];
                        if cur.as_ref().is_none_or(|(r, _)| rank < *r) {
                            *cur = Some((rank, v.clone()));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn parse_mapped<'a>(keys: &MappedKeys, json: &'a str) -> LineResult<'a> {
    let mut found = Found {
        vals: Default::default(),
    };
    let mut de = serde_json::Deserializer::from_str(json);
    Collect {
        keys,
        found: &mut found,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(bad_json)?;

    let ts = match found.take(Slot::Time) {
        Some(v) => time_from_jval(&v)?,
        None => return Err(LineError::new(RejectKind::BadTimestamp, "no time key")),
    };
    let status = match found.take(Slot::Status) {
        Some(v) => status_from_jval(&v)?,
        None => return Err(LineError::new(RejectKind::BadStatus, "no status key")),
    };
    let mut rec = RawRecord {
        ts: Some(ts),
        status: Some(status),
        ..RawRecord::default()
    };
    if let Some(line) = found.take(Slot::Request).and_then(JVal::into_text) {
        fill_request(line, &mut rec);
    }
    if let Some(m) = found.take(Slot::Method).and_then(JVal::into_text) {
        rec.method = Some(m);
    }
    if let Some(u) = found.take(Slot::Uri).and_then(JVal::into_text) {
        rec.target = Some(u);
    }
    if let Some(p) = found.take(Slot::Protocol).and_then(JVal::into_text) {
        rec.protocol = Some(p);
    }
    rec.bytes = match found.take(Slot::Bytes) {
        Some(v) => v.to_u64().map_err(|()| bad_number("bytes"))?,
        None => None,
    };
    rec.duration_ms = match found.take(Slot::Duration) {
        Some(v) => v
            .to_f64()
            .map_err(|()| bad_number("duration"))?
            .map(|d| keys.duration_unit.to_ms(d)),
        None => None,
    };
    rec.client = found.take(Slot::Client).and_then(JVal::into_text);
    rec.referrer = found.take(Slot::Referrer).and_then(JVal::into_text);
    rec.user_agent = found.take(Slot::UserAgent).and_then(JVal::into_text);
    rec.host = found.take(Slot::Host).and_then(JVal::into_text);
    rec.upstream = found.take(Slot::Upstream).and_then(JVal::into_text);
    rec.cookies = found.take(Slot::Cookie).and_then(JVal::into_text);
    rec.session = found.take(Slot::Session).and_then(JVal::into_text);
    rec.user = found.take(Slot::User).and_then(JVal::into_text);
    Ok(rec)
}

/// Rewrite nginx's default escaping (`\xHH`) into valid JSON.
fn nginx_hex_escapes_to_json(s: &str) -> String {
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if b[i + 1] == b'x' && i + 3 < b.len() {
                if let (Some(h), Some(l)) = (hex_val(b[i + 2]), hex_val(b[i + 3])) {
                    let byte = (h << 4) | l;
                    match byte {
                        b'"' => out.extend_from_slice(b"\\\""),
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        0x00..=0x1F | 0x7F => {
                            out.extend_from_slice(format!("\\u{byte:04x}").as_bytes())
                        }
                        _ => out.push(byte),
                    }
                    i += 4;
                    continue;
                }
            }
            // Any other escape is copied with the character it escapes.
            out.push(b[i]);
            out.push(b[i + 1]);
            i += 2;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    // Bytes that are not UTF-8 stay `\xHH`, as a JSON string's `\\xHH`.
    super::template::utf8_or_hex_escaped(out, "\\\\x")
}

fn into_owned(r: RawRecord<'_>) -> RawRecord<'static> {
    fn own(c: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
        c.map(|c| Cow::Owned(c.into_owned()))
    }
    RawRecord {
        client: own(r.client),
        ts: r.ts,
        method: own(r.method),
        target: own(r.target),
        protocol: own(r.protocol),
        status: r.status,
        bytes: r.bytes,
        duration_ms: r.duration_ms,
        referrer: own(r.referrer),
        user_agent: own(r.user_agent),
        host: own(r.host),
        upstream: own(r.upstream),
        cookies: own(r.cookies),
        session: own(r.session),
        user: own(r.user),
    }
}

// ---------------------------------------------------------------------------
// JSON values, borrowed where possible.

/// A JSON string, borrowed from the input unless it contained escapes.
struct JStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = JStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// Any JSON value, keeping scalars (strings borrowed where possible) and
/// skipping the contents of objects and arrays.
#[derive(Debug, Clone, PartialEq)]
enum JVal<'a> {
    Str(Cow<'a, str>),
    U(u64),
    I(i64),
    F(f64),
    Bool(bool),
    Null,
    Compound,
}

impl<'de: 'a, 'a> Deserialize<'de> for JVal<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = JVal<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JVal::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JVal::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(JVal::Str(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(JVal::U(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(JVal::I(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(JVal::F(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(JVal::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JVal::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JVal::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                JVal::deserialize(d)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(JVal::Compound)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(JVal::Compound)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'a> JVal<'a> {
    /// The value as text: strings (`-` and empty are `None`) and numbers.
    fn into_text(self) -> Option<Cow<'a, str>> {
        match self {
            JVal::Str(Cow::Borrowed(s)) => dash_none(s).map(Cow::Borrowed),
            JVal::Str(Cow::Owned(s)) => dash_none(&s).is_some().then_some(Cow::Owned(s)),
            JVal::U(n) => Some(Cow::Owned(n.to_string())),
            JVal::I(n) => Some(Cow::Owned(n.to_string())),
            JVal::F(n) => Some(Cow::Owned(n.to_string())),
            JVal::Bool(_) | JVal::Null | JVal::Compound => None,
        }
    }

    /// The value as a non-negative integer: `Ok(None)` for `-`, empty and null.
    fn to_u64(&self) -> Result<Option<u64>, ()> {
        match self {
            JVal::U(n) => Ok(Some(*n)),
            JVal::I(n) => u64::try_from(*n).map(Some).map_err(|_| ()),
            JVal::F(f) if f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19 => {
                Ok(Some(*f as u64))
            }
            JVal::Str(s) => match dash_none(s.trim()) {
                None => Ok(None),
                Some(s) => s.parse().map(Some).map_err(|_| ()),
            },
            JVal::Null => Ok(None),
            _ => Err(()),
        }
    }

    /// The value as a finite non-negative number: `Ok(None)` for `-`, empty and null.
    fn to_f64(&self) -> Result<Option<f64>, ()> {
        let v = match self {
            JVal::U(n) => *n as f64,
            JVal::I(n) => *n as f64,
            JVal::F(f) => *f,
            JVal::Str(s) => match dash_none(s.trim()) {
                None => return Ok(None),
                Some(s) => s.parse().map_err(|_| ())?,
            },
            JVal::Null => return Ok(None),
            _ => return Err(()),
        };
        if v.is_finite() && v >= 0.0 {
            Ok(Some(v))
        } else {
            Err(())
        }
    }
}

fn bad_json(e: serde_json::Error) -> LineError {
    LineError::new(RejectKind::BadJson, format!("invalid JSON: {e}"))
}

fn bad_number(what: &'static str) -> LineError {
    LineError::new(
        RejectKind::BadNumber,
        format!("{what} is not a non-negative number"),
    )
}

fn status_from_jval(v: &JVal<'_>) -> Result<u16, LineError> {
    let bad = || LineError::new(RejectKind::BadStatus, "status is not a number in 100..=999");
    let n = match v {
        JVal::U(n) => *n,
        JVal::F(f) if f.fract() == 0.0 && *f >= 0.0 && *f < 1e6 => *f as u64,
        JVal::Str(s) => match dash_none(s.trim()) {
            None => return Err(LineError::new(RejectKind::BadStatus, "no status")),
            Some(s) => s.parse().map_err(|_| bad())?,
        },
        JVal::Null => return Err(LineError::new(RejectKind::BadStatus, "no status")),
        _ => return Err(bad()),
    };
    match u16::try_from(n) {
        Ok(s) if (100..=999).contains(&s) => Ok(s),
        _ => Err(bad()),
    }
}

fn time_from_jval(v: &JVal<'_>) -> Result<DateTime<FixedOffset>, LineError> {
    let ts = match v {
        JVal::U(n) => epoch_from_f64(*n as f64),
        JVal::I(n) => epoch_from_f64(*n as f64),
        JVal::F(f) => epoch_from_f64(*f),
        JVal::Str(s) => parse_time_text(s),
        _ => None,
    };
    ts.ok_or_else(|| LineError::new(RejectKind::BadTimestamp, "unparseable time"))
}

// ---------------------------------------------------------------------------
// Time values of unknown shape (epoch numbers are read by super::time).

/// Parse a time given as text in any of the shapes listed in the module docs.
fn parse_time_text(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    let b = s.as_bytes();
    if b.len() >= 3 && b[2] == b'/' {
        return parse_clf_time(s);
    }
    if !b.is_empty() && b.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
        return parse_epoch(s);
    }
    parse_iso8601(s)
}

#[cfg(test)]
mod tests;
