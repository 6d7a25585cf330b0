//! W3C extended log files: Microsoft IIS (`w3c`) and Amazon CloudFront
//! web distributions (`cloudfront`), plus other W3C-shaped logs (IIS Advanced
//! Logging, Citrix NetScaler, Imperva Incapsula, Oracle Web Cache).
//!
//! The `#Fields:` directive names the columns; it may appear again anywhere
//! in a file (IIS writes it after every restart) and the latest one is kept in
//! [`FormatState::fields`]. Directive lines (`#Software:`, `#Version:`,
//! `#Date:`, `#Fields:` ...) are reported as `Header` rejects. Before any
//! `#Fields:` line the format's default layout applies.
//!
//! Fields are separated by runs of spaces or tabs (CloudFront: by single tabs);
//! a value may be `"quoted"` (IIS Advanced Logging, Incapsula), with `""`
//! standing for a quote inside it. The number of values must match the
//! number of fields. Field names are matched ASCII-case-insensitively:
//!
//! | field(s) | record |
//! |---|---|
//! | `date` + `time` (also `-utc`/`-local` variants) | `ts`, read as UTC |
//! | `c-ip` (else `c-dns`) | `client` |
//! | `cs-method` | `method` |
//! | `cs-uri-stem` + `cs-uri-query`, else `cs-uri` | `target` (`stem?query`) |
//! | `cs-version`, `cs-protocol-version` | `protocol` |
//! | `sc-status` | `status` (required) |
//! | `sc-bytes`, `bytes` | `bytes` |
//! | `time-taken` (IIS: ms, CloudFront: s), `TimeTakenMS` | `duration_ms` |
//! | `cs(Referer)`, `cs(Referrer)` | `referrer` |
//! | `cs(User-Agent)` | `user_agent` |
//! | `x-host-header`, else `cs-host` / `cs(Host)`, else the host in `cs-uri` | `host` |
//! | `cs(Cookie)` | `cookies` |
//! | `cs-username`, `c-auth-id` | `user` |
//! | `x-forwarded-for`, `cs(X-Forwarded-For)`, `s-xff` | `client`, only with [`W3cFormat::trust_forwarded_for`] |
//!
//! A layout without a `date` field (the FTP-style `time c-ip ...` logs, whose
//! date is only in the `#Date:` directive) is rejected as `BadTimestamp`.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};
use footfall_event::RejectKind;

use super::aws::{parse_u64_field, split_absolute_url, strip_port};
use super::fields::parse_status;
use super::{span_in, FormatState, LineFormat, Personal};
use crate::record::{dash_none, LineError, LineResult, RawRecord};
use crate::url::{percent_decode_cow, percent_decode_lossy};

/// IIS's default field selection (IIS 7 and later), used before any `#Fields:` line.
pub const IIS_DEFAULT_FIELDS: [&str; 15] = [
    "date",
    "time",
    "s-ip",
    "cs-method",
    "cs-uri-stem",
    "cs-uri-query",
    "s-port",
    "cs-username",
    "c-ip",
    "cs(User-Agent)",
    "cs(Referer)",
    "sc-status",
    "sc-substatus",
    "sc-win32-status",
    "time-taken",
];

/// IIS's default fields plus `sc-bytes cs-bytes` (before `time-taken`), as
/// commonly enabled; used before any `#Fields:` line when a line has 17 values.
pub const IIS_DEFAULT_FIELDS_WITH_BYTES: [&str; 17] = with_bytes(IIS_DEFAULT_FIELDS);

/// IIS's default fields with `sc-bytes cs-bytes` inserted before the last.
const fn with_bytes(fields: [&'static str; 15]) -> [&'static str; 17] {
    let mut out = [""; 17];
    let mut i = 0;
    while i < 14 {
        out[i] = fields[i];
        i += 1;
    }
    out[14] = "sc-bytes";
    out[15] = "cs-bytes";
    out[16] = fields[14];
    out
}

/// CloudFront's standard (legacy) log fields, in order. AWS only ever appends
/// fields, so before any `#Fields:` line a line with fewer values uses a
/// prefix of this list and values past its end are ignored.
pub const CLOUDFRONT_DEFAULT_FIELDS: [&str; 33] = [
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
];

/// Fewest values a header-less CloudFront line may have: through `sc-status`.
const CLOUDFRONT_MIN_VALUES: usize = 9;

/// Which W3C dialect a [`W3cFormat`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// IIS and other W3C writers: whitespace-separated, `time-taken` in
    /// milliseconds, spaces in unquoted user agents written as `+`.
    Iis,
    /// CloudFront: tab-separated, `time-taken` in seconds, user agent,
    /// referrer and cookies percent-encoded.
    CloudFront,
}

/// A W3C extended log format; see the [module docs](self) for the field mapping.
#[derive(Debug, Clone)]
pub struct W3cFormat {
    flavor: Flavor,
    trust_forwarded_for: bool,
}

impl W3cFormat {
    /// IIS / generic W3C extended logs (`w3c`).
    ///
    /// Default layout: [`IIS_DEFAULT_FIELDS`] (or [`IIS_DEFAULT_FIELDS_WITH_BYTES`]
    /// for 17-value lines). `time-taken` is milliseconds. In an unquoted user
    /// agent IIS writes spaces as `+`: the first `+` of a run becomes a space
    /// and any further ones stay (`;++http://` → `; +http://`). In an unquoted
    /// cookie header `;+` becomes `; `.
    pub fn w3c() -> Self {
        W3cFormat {
            flavor: Flavor::Iis,
            trust_forwarded_for: false,
        }
    }

    /// CloudFront web distribution standard logs (`cloudfront`).
    ///
    /// Default layout: [`CLOUDFRONT_DEFAULT_FIELDS`]. Values are tab-separated
    /// (lines without any tab are split on spaces). `time-taken` is seconds.
    /// User agent, referrer and cookies are percent-decoded once; a user agent
    /// that still contains `%20` and no space afterwards (older double-encoded
    /// logs) is decoded a second time. The host is `x-host-header` (the
    /// viewer's `Host`), falling back to `cs(Host)` (the distribution's domain).
    pub fn cloudfront() -> Self {
        W3cFormat {
            flavor: Flavor::CloudFront,
            trust_forwarded_for: false,
        }
    }

    /// Take the client from the first address of a logged `X-Forwarded-For`
    /// value when it is present (not `-`), instead of `c-ip`.
    ///
    /// Off by default: the header is set by whoever sends the request, so it
    /// is only meaningful when the server sits behind a proxy that overwrites
    /// it (IIS behind a load balancer). For CloudFront keep it off: `c-ip` is
    /// the viewer and `x-forwarded-for` is whatever the viewer sent.
    pub fn trust_forwarded_for(mut self, trust: bool) -> Self {
        self.trust_forwarded_for = trust;
        self
    }
}

impl LineFormat for W3cFormat {
    fn name(&self) -> &str {
        match self.flavor {
            Flavor::Iis => "w3c",
            Flavor::CloudFront => "cloudfront",
        }
    }

    fn parse<'a>(&self, line: &'a str, state: &mut FormatState) -> LineResult<'a> {
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        let line = line.trim_end_matches(['\r', '\n']);
        let content = line.trim_start();
        if content.trim_end().is_empty() {
            return Err(LineError::new(RejectKind::Empty, "empty line"));
        }
        if let Some(directive) = content.strip_prefix('#') {
            return Err(read_directive(directive, state));
        }

        let (split, values) = self.values_of(line);
        let layout = self.layout(values, split, state)?;
        let acc = collect(values, split, &layout)?;
        self.build(acc)
    }

    fn personal_spans(&self, line: &str, state: &FormatState) -> Vec<(Range<usize>, Personal)> {
        let (split, values) = self.values_of(line);
        if values.starts_with('#') {
            return Vec::new(); // a directive names fields, it holds no values
        }
        let Ok(layout) = self.layout(values, split, state) else {
            return Vec::new();
        };
        let mut spans = Vec::new();
        for (n, tok) in Values::new(values, split).enumerate() {
            let (Ok(tok), Some(name)) = (tok, layout.name(n)) else {
                break;
            };
            let personal = match role_of(name) {
                Role::ClientIp | Role::ClientDns => Personal::Client,
                Role::User => Personal::User,
                Role::Cookie => Personal::Cookie,
                _ => continue,
            };
            spans.push((span_in(line, tok.text), personal));
        }
        spans
    }
}

impl W3cFormat {
    /// How a line's values are separated, and the part of it that holds
    /// them (a slice of `line`).
    fn values_of<'a>(&self, line: &'a str) -> (Split, &'a str) {
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        let line = line.trim_end_matches(['\r', '\n']);
        let tabs =
            self.flavor == Flavor::CloudFront && memchr::memchr(b'\t', line.as_bytes()).is_some();
        match tabs {
            true => (Split::Tabs, line),
            false => (Split::Whitespace, line.trim_start()),
        }
    }

    /// The field names of a line's values: the `#Fields:` directive's, else
    /// the flavour's default.
    fn layout<'s>(
        &self,
        values: &str,
        split: Split,
        state: &'s FormatState,
    ) -> Result<Layout<'s>, LineError> {
        Ok(match &state.fields {
            Some(fields) => Layout::Header(fields),
            None => match self.flavor {
                Flavor::Iis => {
                    let n = count_values(values, split)?;
                    if n == IIS_DEFAULT_FIELDS_WITH_BYTES.len() {
                        Layout::Default(&IIS_DEFAULT_FIELDS_WITH_BYTES)
                    } else {
                        Layout::Default(&IIS_DEFAULT_FIELDS)
                    }
                }
                Flavor::CloudFront => Layout::Prefix(&CLOUDFRONT_DEFAULT_FIELDS),
            },
        })
    }
}

/// Handle a `#...` directive line: remember a `#Fields:` layout; every
/// directive is reported as a `Header` reject.
fn read_directive(directive: &str, state: &mut FormatState) -> LineError {
    let is_fields =
        directive.len() >= 7 && directive.as_bytes()[..7].eq_ignore_ascii_case(b"Fields:");
    if !is_fields {
        return LineError::new(RejectKind::Header, "W3C directive");
    }
    let names: Vec<String> = directive[7..]
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return LineError::new(RejectKind::Header, "empty #Fields: directive ignored");
    }
    let n = names.len();
    state.fields = Some(Arc::from(names));
    LineError::new(
        RejectKind::Header,
        format!("#Fields: directive ({n} fields)"),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    /// Runs of spaces/tabs separate values; values may be quoted.
    Whitespace,
    /// Each tab separates two values; no quoting.
    Tabs,
}

/// The field names a line is read against.
enum Layout<'s> {
    /// From a `#Fields:` directive: the value count must match.
    Header(&'s [String]),
    /// A built-in default: the value count must match.
    Default(&'static [&'static str]),
    /// A built-in default of which a line may carry a prefix, or extra values.
    Prefix(&'static [&'static str]),
}

impl Layout<'_> {
    fn name(&self, i: usize) -> Option<&str> {
        match self {
            Layout::Header(f) => f.get(i).map(String::as_str),
            Layout::Default(f) | Layout::Prefix(f) => f.get(i).copied(),
        }
    }
    fn len(&self) -> usize {
        match self {
            Layout::Header(f) => f.len(),
            Layout::Default(f) | Layout::Prefix(f) => f.len(),
        }
    }
}

/// One value of a line.
#[derive(Debug, Clone, Copy)]
struct Tok<'a> {
    text: &'a str,
    quoted: bool,
    /// Contains `""` standing for one quote.
    doubled: bool,
}

impl<'a> Tok<'a> {
    fn value(self) -> Option<Cow<'a, str>> {
        let text = dash_none(self.text)?;
        if self.doubled {
            Some(Cow::Owned(text.replace("\"\"", "\"")))
        } else {
            Some(Cow::Borrowed(text))
        }
    }
}

/// Iterator over the values of a line.
struct Values<'a> {
    rest: Option<&'a str>,
    split: Split,
}

impl<'a> Values<'a> {
    fn new(line: &'a str, split: Split) -> Self {
        Values {
            rest: Some(line),
            split,
        }
    }
}

impl<'a> Iterator for Values<'a> {
    type Item = Result<Tok<'a>, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest?;
        match self.split {
            Split::Tabs => {
                let (text, after) = match memchr::memchr(b'\t', rest.as_bytes()) {
                    Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                    None => (rest, None),
                };
                self.rest = after;
                Some(Ok(Tok {
                    text,
                    quoted: false,
                    doubled: false,
                }))
            }
            Split::Whitespace => {
                let s = rest.trim_start_matches([' ', '\t']);
                if s.is_empty() {
                    self.rest = None;
                    return None;
                }
                let b = s.as_bytes();
                if b[0] == b'"' {
                    let mut i = 1;
                    let mut doubled = false;
                    loop {
                        match memchr::memchr(b'"', &b[i..]) {
                            None => {
                                self.rest = None;
                                return Some(Err(LineError::malformed(
                                    "unterminated quoted value",
                                )));
                            }
                            Some(j) if b.get(i + j + 1) == Some(&b'"') => {
                                doubled = true;
                                i += j + 2;
                            }
                            Some(j) => {
                                let close = i + j;
                                let after = &s[close + 1..];
                                if !(after.is_empty() || after.starts_with([' ', '\t'])) {
                                    self.rest = None;
                                    return Some(Err(LineError::malformed(
                                        "text directly after a closing quote",
                                    )));
                                }
                                self.rest = Some(after);
                                return Some(Ok(Tok {
                                    text: &s[1..close],
                                    quoted: true,
                                    doubled,
                                }));
                            }
                        }
                    }
                }
                let end = s.find([' ', '\t']).unwrap_or(s.len());
                self.rest = Some(&s[end..]);
                Some(Ok(Tok {
                    text: &s[..end],
                    quoted: false,
                    doubled: false,
                }))
            }
        }
    }
}

fn count_values(line: &str, split: Split) -> Result<usize, LineError> {
    let mut n = 0;
    for v in Values::new(line, split) {
        v?;
        n += 1;
    }
    Ok(n)
}

/// What a field name means to footfall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Date,
    Time,
    ClientIp,
    ClientDns,
    Method,
    UriStem,
    UriQuery,
    Uri,
    Protocol,
    Status,
    Bytes,
    TimeTaken,
    TimeTakenMs,
    Referrer,
    UserAgent,
    HostHeader,
    Host,
    Cookie,
    User,
    ForwardedFor,
    Ignored,
}

fn role_of(name: &str) -> Role {
    let mut buf = [0u8; 32];
    let Some(dst) = buf.get_mut(..name.len()) else {
        return Role::Ignored;
    };
    dst.copy_from_slice(name.as_bytes());
    dst.make_ascii_lowercase();
    match &*dst {
        b"date" | b"date-utc" | b"date-local" => Role::Date,
        b"time" | b"time-utc" | b"time-local" => Role::Time,
        b"c-ip" => Role::ClientIp,
        b"c-dns" => Role::ClientDns,
        b"cs-method" => Role::Method,
        b"cs-uri-stem" => Role::UriStem,
        b"cs-uri-query" => Role::UriQuery,
        b"cs-uri" => Role::Uri,
        b"cs-version" | b"cs-protocol-version" => Role::Protocol,
        b"sc-status" => Role::Status,
        b"sc-bytes" | b"bytes" => Role::Bytes,
        b"time-taken" => Role::TimeTaken,
        b"timetakenms" => Role::TimeTakenMs,
        b"cs(referer)" | b"cs(referrer)" => Role::Referrer,
        b"cs(user-agent)" => Role::UserAgent,
        b"x-host-header" => Role::HostHeader,
        b"cs-host" | b"cs(host)" => Role::Host,
        b"cs(cookie)" => Role::Cookie,
        b"cs-username" | b"c-auth-id" => Role::User,
        b"x-forwarded-for" | b"cs(x-forwarded-for)" | b"s-xff" => Role::ForwardedFor,
        _ => Role::Ignored,
    }
}

/// The values of one line, by role.
#[derive(Default)]
struct Acc<'a> {
    date: Option<Tok<'a>>,
    time: Option<Tok<'a>>,
    client_ip: Option<Tok<'a>>,
    client_dns: Option<Tok<'a>>,
    method: Option<Tok<'a>>,
    stem: Option<Tok<'a>>,
    query: Option<Tok<'a>>,
    uri: Option<Tok<'a>>,
    protocol: Option<Tok<'a>>,
    status: Option<Tok<'a>>,
    bytes: Option<Tok<'a>>,
    time_taken: Option<Tok<'a>>,
    time_taken_ms: Option<Tok<'a>>,
    referrer: Option<Tok<'a>>,
    user_agent: Option<Tok<'a>>,
    host_header: Option<Tok<'a>>,
    host: Option<Tok<'a>>,
    cookie: Option<Tok<'a>>,
    user: Option<Tok<'a>>,
    forwarded_for: Option<Tok<'a>>,
}

fn collect<'a>(line: &'a str, split: Split, layout: &Layout<'_>) -> Result<Acc<'a>, LineError> {
    let mut acc = Acc::default();
    let mut n = 0;
    for tok in Values::new(line, split) {
        let tok = tok?;
        if let Some(name) = layout.name(n) {
            let slot = match role_of(name) {
                Role::Date => &mut acc.date,
                Role::Time => &mut acc.time,
                Role::ClientIp => &mut acc.client_ip,
                Role::ClientDns => &mut acc.client_dns,
                Role::Method => &mut acc.method,
                Role::UriStem => &mut acc.stem,
                Role::UriQuery => &mut acc.query,
                Role::Uri => &mut acc.uri,
                Role::Protocol => &mut acc.protocol,
                Role::Status => &mut acc.status,
                Role::Bytes => &mut acc.bytes,
                Role::TimeTaken => &mut acc.time_taken,
                Role::TimeTakenMs => &mut acc.time_taken_ms,
                Role::Referrer => &mut acc.referrer,
                Role::UserAgent => &mut acc.user_agent,
                Role::HostHeader => &mut acc.host_header,
                Role::Host => &mut acc.host,
                Role::Cookie => &mut acc.cookie,
                Role::User => &mut acc.user,
                Role::ForwardedFor => &mut acc.forwarded_for,
                Role::Ignored => {
                    n += 1;
                    continue;
                }
            };
            *slot = Some(tok);
        }
        n += 1;
    }
    let ok = match layout {
        Layout::Header(_) | Layout::Default(_) => n == layout.len(),
        Layout::Prefix(_) => n >= CLOUDFRONT_MIN_VALUES,
    };
    if !ok {
        return Err(LineError::malformed(format!(
            "{n} values, but the layout has {} fields",
            layout.len()
        )));
    }
    Ok(acc)
}

impl W3cFormat {
    fn build<'a>(&self, acc: Acc<'a>) -> LineResult<'a> {
        let cloudfront = self.flavor == Flavor::CloudFront;
        let ts = timestamp(acc.date, acc.time)?;
        let status = match acc.status {
            Some(t) => parse_status(t.text)?,
            None => return Err(LineError::new(RejectKind::BadStatus, "no sc-status field")),
        };
        let bytes = match acc.bytes {
            Some(t) => parse_u64_field(t.text, "sc-bytes")?,
            None => None,
        };
        let duration_ms = match (acc.time_taken_ms, acc.time_taken) {
            (Some(t), _) => parse_duration(t.text, 1.0)?,
            (None, Some(t)) => parse_duration(t.text, if cloudfront { 1000.0 } else { 1.0 })?,
            (None, None) => None,
        };

        let mut host = acc
            .host_header
            .and_then(Tok::value)
            .or_else(|| acc.host.and_then(Tok::value));
        let query = acc.query.and_then(Tok::value);
        let target = if let Some(stem) = acc.stem.and_then(Tok::value) {
            let (url_host, path) = split_cow_url(stem);
            if host.is_none() {
                host = url_host;
            }
            Some(join_query(path, query))
        } else if let Some(uri) = acc.uri.and_then(Tok::value) {
            let (url_host, path) = split_uri(uri);
            if host.is_none() {
                host = url_host;
            }
            Some(if path.contains('?') {
                path
            } else {
                join_query(path, query)
            })
        } else {
            None
        };

        let mut client = acc
            .client_ip
            .and_then(Tok::value)
            .or_else(|| acc.client_dns.and_then(Tok::value));
        if self.trust_forwarded_for {
            if let Some(first) = acc.forwarded_for.and_then(|t| first_forwarded(t.text)) {
                client = Some(Cow::Borrowed(first));
            }
        }

        let user_agent = acc.user_agent.and_then(|t| {
            let quoted = t.quoted;
            let v = t.value()?;
            Some(if cloudfront {
                decode_user_agent(v)
            } else if quoted {
                v
            } else {
                iis_plus_to_space(v)
            })
        });
        let referrer = acc.referrer.and_then(Tok::value).map(|v| {
            if cloudfront {
                percent_decode_cow(v, false)
            } else {
                v
            }
        });
        let cookies = acc.cookie.and_then(|t| {
            let quoted = t.quoted;
            let v = t.value()?;
            Some(if cloudfront {
                percent_decode_cow(v, false)
            } else if !quoted && v.contains(";+") {
                Cow::Owned(v.replace(";+", "; "))
            } else {
                v
            })
        });

        Ok(RawRecord {
            client,
            ts: Some(ts),
            method: acc.method.and_then(Tok::value),
            target,
            protocol: acc.protocol.and_then(Tok::value),
            status: Some(status),
            bytes,
            duration_ms,
            referrer,
            user_agent,
            host,
            upstream: None,
            cookies,
            session: None,
            user: acc.user.and_then(Tok::value),
        })
    }
}

/// `date` (`YYYY-MM-DD`) and `time` (`HH:MM:SS[.fff]`) as a UTC time.
fn timestamp(
    date: Option<Tok<'_>>,
    time: Option<Tok<'_>>,
) -> Result<DateTime<FixedOffset>, LineError> {
    let bad = |why: &'static str| LineError::new(RejectKind::BadTimestamp, why);
    let date = date.ok_or_else(|| bad("no date field"))?.text;
    let time = time.ok_or_else(|| bad("no time field"))?.text;
    let d = date.as_bytes();
    if d.len() != 10 || d[4] != b'-' || d[7] != b'-' {
        return Err(bad("date is not YYYY-MM-DD"));
    }
    let date = match (num(&d[0..4]), num(&d[5..7]), num(&d[8..10])) {
        (Some(y), Some(m), Some(dd)) => NaiveDate::from_ymd_opt(y as i32, m, dd),
        _ => None,
    }
    .ok_or_else(|| bad("invalid date"))?;
    let t = time.as_bytes();
    if t.len() < 8 || t[2] != b':' || t[5] != b':' {
        return Err(bad("time is not HH:MM:SS"));
    }
    let nanos = match &t[8..] {
        [] => Some(0),
        [b'.', frac @ ..] if !frac.is_empty() && frac.len() <= 9 => {
            num(frac).map(|f| f * 10u32.pow(9 - frac.len() as u32))
        }
        _ => None,
    };
    let time = match (num(&t[0..2]), num(&t[3..5]), num(&t[6..8]), nanos) {
        (Some(h), Some(m), Some(s), Some(ns)) if s < 60 => {
            NaiveTime::from_hms_nano_opt(h, m, s, ns)
        }
        _ => None,
    }
    .ok_or_else(|| bad("invalid time"))?;
    Ok(date.and_time(time).and_utc().fixed_offset())
}

fn num(b: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(c - b'0'))?;
    }
    Some(v)
}

fn parse_duration(s: &str, to_ms: f64) -> Result<Option<f64>, LineError> {
    let Some(s) = dash_none(s) else {
        return Ok(None);
    };
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v * to_ms)),
        _ => Err(LineError::new(
            RejectKind::BadNumber,
            "time-taken is not a non-negative number",
        )),
    }
}

/// `path` plus `?query` when there is a query.
fn join_query<'a>(path: Cow<'a, str>, query: Option<Cow<'a, str>>) -> Cow<'a, str> {
    match query {
        None => path,
        Some(q) => Cow::Owned(format!("{path}?{q}")),
    }
}

/// Split an absolute URL into host and origin-form target, keeping the borrow when possible.
fn split_cow_url(url: Cow<'_, str>) -> (Option<Cow<'_, str>>, Cow<'_, str>) {
    match url {
        Cow::Borrowed(u) => {
            let (host, target) = split_absolute_url(u);
            (host.map(Cow::Borrowed), target)
        }
        Cow::Owned(u) => {
            let (host, target) = split_absolute_url(&u);
            (
                host.map(|h| Cow::Owned(h.to_owned())),
                Cow::Owned(target.into_owned()),
            )
        }
    }
}

/// Split a `cs-uri` value: an origin-form target (`/a?b`), an absolute URL, or
/// (Incapsula) a scheme-less `host/path`.
fn split_uri(uri: Cow<'_, str>) -> (Option<Cow<'_, str>>, Cow<'_, str>) {
    if uri.starts_with('/') || uri.contains("://") {
        return split_cow_url(uri);
    }
    let Some(host_end) = uri.find('/') else {
        return (None, uri);
    };
    let host = &uri[..host_end];
    let looks_like_host = !host.is_empty()
        && host.contains(['.', ':'])
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !looks_like_host {
        return (None, uri);
    }
    match uri {
        Cow::Borrowed(u) => (
            Some(Cow::Borrowed(&u[..host_end])),
            Cow::Borrowed(&u[host_end..]),
        ),
        Cow::Owned(u) => (
            Some(Cow::Owned(u[..host_end].to_owned())),
            Cow::Owned(u[host_end..].to_owned()),
        ),
    }
}

/// The first address of an `X-Forwarded-For` list, without a port.
fn first_forwarded(xff: &str) -> Option<&str> {
    let first = dash_none(xff.split(',').next()?.trim())?;
    let single_colon = first.bytes().filter(|&b| b == b':').count() == 1;
    Some(if first.starts_with('[') || single_colon {
        strip_port(first)
    } else {
        first
    })
}

/// IIS writes spaces in the user agent as `+`: the first `+` of each run is a
/// space, the rest are literal (`;++http` was `; +http`).
fn iis_plus_to_space(ua: Cow<'_, str>) -> Cow<'_, str> {
    if !ua.contains('+') {
        return ua;
    }
    let mut out = String::with_capacity(ua.len());
    let mut prev_plus = false;
    for c in ua.chars() {
        if c == '+' {
            out.push(if prev_plus { '+' } else { ' ' });
            prev_plus = true;
        } else {
            out.push(c);
            prev_plus = false;
        }
    }
    Cow::Owned(out)
}

/// CloudFront user agent: decode once, twice for the older double-encoded form.
fn decode_user_agent(ua: Cow<'_, str>) -> Cow<'_, str> {
    let once = percent_decode_cow(ua, false);
    if once.contains("%20") && !once.contains(' ') {
        Cow::Owned(percent_decode_lossy(&once, false).into_owned())
    } else {
        once
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_case_insensitive() {
        assert_eq!(role_of("cs(User-Agent)"), Role::UserAgent);
        assert_eq!(role_of("CS(USER-AGENT)"), Role::UserAgent);
        assert_eq!(role_of("TimeTakenMS"), Role::TimeTakenMs);
        assert_eq!(
            role_of("a-very-long-field-name-that-exceeds-the-buffer"),
            Role::Ignored
        );
    }

    #[test]
    fn quoted_values() {
        let toks: Vec<_> = Values::new(r#"a "b ""c"" d"  -  """#, Split::Whitespace)
            .map(|t| t.unwrap())
            .collect();
        assert_eq!(toks.len(), 4);
        assert_eq!(toks[1].value().unwrap(), r#"b "c" d"#);
        assert_eq!(toks[2].value(), None);
        assert_eq!(toks[3].value(), None);
        assert!(Values::new(r#"a "b"#, Split::Whitespace).any(|t| t.is_err()));
        assert!(Values::new(r#""b"c"#, Split::Whitespace).any(|t| t.is_err()));
    }

    #[test]
    fn tab_values_keep_empty_fields() {
        let n = count_values("a\t\tb\t", Split::Tabs).unwrap();
        assert_eq!(n, 4);
    }

    #[test]
    fn plus_runs() {
        assert_eq!(
            iis_plus_to_space(Cow::Borrowed(
                "Mozilla/5.0+(compatible;+bingbot/2.0;++http://x)"
            )),
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://x)"
        );
    }

    #[test]
    fn percent() {
        // CloudFront escapes are decoded with `+` kept (it is not a space there).
        assert_eq!(percent_decode_lossy("a%20b+%2", false), "a b+%2");
        assert_eq!(percent_decode_lossy("%zz%41", false), "%zzA");
        assert_eq!(percent_decode_lossy("%FF", false), "\u{FFFD}");
        assert_eq!(
            decode_user_agent(Cow::Borrowed("Mozilla/5.0%2520(X)")),
            "Mozilla/5.0 (X)"
        );
        assert_eq!(decode_user_agent(Cow::Borrowed("A%20B%2520C")), "A B%20C");
    }

    #[test]
    fn uris() {
        let (h, t) = split_uri(Cow::Borrowed("www.example.com/page.php"));
        assert_eq!((h.as_deref(), &*t), (Some("www.example.com"), "/page.php"));
        let (h, t) = split_uri(Cow::Borrowed("/a?b"));
        assert_eq!((h.as_deref(), &*t), (None, "/a?b"));
        let (h, t) = split_uri(Cow::Borrowed("readme.txt"));
        assert_eq!((h.as_deref(), &*t), (None, "readme.txt"));
        let (h, t) = split_uri(Cow::Borrowed("docs/readme.txt"));
        assert_eq!((h.as_deref(), &*t), (None, "docs/readme.txt"));
    }

    #[test]
    fn forwarded() {
        assert_eq!(
            first_forwarded("203.0.113.9, 10.0.0.1"),
            Some("203.0.113.9")
        );
        assert_eq!(first_forwarded("203.0.113.9:4711"), Some("203.0.113.9"));
        assert_eq!(
            first_forwarded("2001:db8::1, 10.0.0.1"),
            Some("2001:db8::1")
        );
        assert_eq!(first_forwarded("-"), None);
    }
}
