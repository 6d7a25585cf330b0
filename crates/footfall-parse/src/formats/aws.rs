//! Amazon Web Services access logs: Classic Load Balancer ([`Elb`]),
//! Application Load Balancer ([`Alb`]) and S3 server access logs ([`S3`]).
//!
//! All three are space-separated, with `"quoted"` fields (a `\"` inside them
//! is an escaped quote) and, for S3, a `[bracketed]` time. Fields AWS appended
//! to a layout over the years are optional; fields after the last one read
//! are ignored, so lines from newer layouts still parse.
//!
//! Empty lines are `Empty`; lines starting with `#` are `Header` (comments).
//!
//! The helpers for absolute URLs, `ip:port` addresses and counts are shared
//! with the other formats ([`super::squid`], [`super::w3c`], [`super::json`]);
//! the status and the request line are read by the formats' shared `fields` module.

use std::borrow::Cow;
use std::ops::Range;

use chrono::{DateTime, FixedOffset};
use footfall_event::RejectKind;

use super::fields::{fill_request, parse_status};
use super::time::parse_clf_time;
use super::{span_in, FormatState, LineFormat, Personal};
use crate::record::{dash_none, LineError, LineResult, RawRecord};

/// Classic Elastic Load Balancer access log (`elb`).
///
/// Layout: `timestamp elb client:port backend:port request_processing_time
/// backend_processing_time response_processing_time elb_status_code
/// backend_status_code received_bytes sent_bytes "request" "user_agent"
/// ssl_cipher ssl_protocol`.
///
/// * `client` is the client address without its port (IPv4 or IPv6);
/// * `upstream` is `backend:port`;
/// * `duration_ms` is the sum of the three processing times (seconds), absent
///   when any of them is `-1` (the load balancer could not measure it);
/// * `status` is `elb_status_code`, `bytes` is `sent_bytes`;
/// * the request line `GET http://host:80/path?x HTTP/1.1` gives `method`,
///   `target` (`/path?x`), `protocol` and `host` (without the port).
///
/// TCP-listener lines (request `- - -`, status `-`) are rejected as `BadStatus`:
/// they are connections, not HTTP requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Elb;

/// Application Load Balancer access log (`alb`).
///
/// Layout: `type time elb client:port target:port request_processing_time
/// target_processing_time response_processing_time elb_status_code
/// target_status_code received_bytes sent_bytes "request" "user_agent"
/// ssl_cipher ssl_protocol target_group_arn "trace_id" "domain_name" ...`,
/// where `type` is one of `http`, `https`, `h2`, `grpcs`, `ws`, `wss`.
///
/// Mapped like [`Elb`]; in addition `upstream` is `target:port` and `host` is
/// `domain_name` (the TLS SNI name) when logged, otherwise the host of the
/// request URL.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alb;

/// Amazon S3 server access log (`s3`).
///
/// Layout: `bucket_owner bucket [time] remote_ip requester request_id
/// operation key "request_uri" http_status error_code bytes_sent object_size
/// total_time turn_around_time "referrer" "user_agent" version_id host_id ...`.
///
/// * `host` is the bucket;
/// * `user` is the requester (an IAM identity, `-` when anonymous);
/// * `bytes` is `bytes_sent` (`-` when nothing was sent);
/// * `duration_ms` is `total_time` (milliseconds);
/// * when `request_uri` is `-`, the method comes from the operation
///   (`REST.GET.OBJECT` → `GET`) and the target from the key.
#[derive(Debug, Clone, Copy, Default)]
pub struct S3;

impl LineFormat for Elb {
    fn name(&self) -> &str {
        "elb"
    }

    fn parse<'a>(&self, line: &'a str, _state: &mut FormatState) -> LineResult<'a> {
        let line = line_body(line)?;
        let mut f: [Option<Tok<'a>>; 15] = Default::default();
        let n = read_fields(line, &mut f, false)?;
        if n < 12 {
            return Err(LineError::malformed(format!(
                "ELB line has {n} fields, at least 12 expected"
            )));
        }
        let get = |i: usize| f[i].as_ref().map(|t| t.text).unwrap_or("");
        let mut rec = RawRecord {
            ts: Some(parse_iso_ts(get(0))?),
            client: dash_none(get(2)).map(|c| Cow::Borrowed(strip_port(c))),
            upstream: dash_none(get(3)).map(Cow::Borrowed),
            ..RawRecord::default()
        };
        rec.status = Some(parse_status(get(7))?);
        rec.bytes = parse_u64_field(get(10), "sent_bytes")?;
        rec.duration_ms = sum_processing_times([get(4), get(5), get(6)])?;
        apply_request(&mut rec, f[11].take());
        rec.user_agent = f[12].take().and_then(Tok::into_value);
        Ok(rec)
    }
}

impl LineFormat for Alb {
    fn name(&self) -> &str {
        "alb"
    }

    fn parse<'a>(&self, line: &'a str, _state: &mut FormatState) -> LineResult<'a> {
        let line = line_body(line)?;
        let mut f: [Option<Tok<'a>>; 19] = Default::default();
        let n = read_fields(line, &mut f, false)?;
        if n < 13 {
            return Err(LineError::malformed(format!(
                "ALB line has {n} fields, at least 13 expected"
            )));
        }
        let get = |i: usize| f[i].as_ref().map(|t| t.text).unwrap_or("");
        if !matches!(get(0), "http" | "https" | "h2" | "grpcs" | "ws" | "wss") {
            return Err(LineError::malformed(
                "ALB line does not start with a request type",
            ));
        }
        let mut rec = RawRecord {
            ts: Some(parse_iso_ts(get(1))?),
            client: dash_none(get(3)).map(|c| Cow::Borrowed(strip_port(c))),
            upstream: dash_none(get(4)).map(Cow::Borrowed),
            ..RawRecord::default()
        };
        rec.status = Some(parse_status(get(8))?);
        rec.bytes = parse_u64_field(get(11), "sent_bytes")?;
        rec.duration_ms = sum_processing_times([get(5), get(6), get(7)])?;
        apply_request(&mut rec, f[12].take());
        rec.user_agent = f[13].take().and_then(Tok::into_value);
        if let Some(domain) = f[18].take().and_then(Tok::into_value) {
            rec.host = Some(domain);
        }
        Ok(rec)
    }
}

impl LineFormat for S3 {
    fn name(&self) -> &str {
        "s3"
    }

    fn parse<'a>(&self, line: &'a str, _state: &mut FormatState) -> LineResult<'a> {
        let line = line_body(line)?;
        let mut f: [Option<Tok<'a>>; 17] = Default::default();
        let n = read_fields(line, &mut f, true)?;
        if n < 10 {
            return Err(LineError::malformed(format!(
                "S3 line has {n} fields, at least 10 expected"
            )));
        }
        let get = |i: usize| f[i].as_ref().map(|t| t.text).unwrap_or("");
        let time = match &f[2] {
            Some(t) if t.kind == TokKind::Bracketed => t.text,
            _ => {
                return Err(LineError::new(
                    RejectKind::BadTimestamp,
                    "S3 time is not [bracketed]",
                ))
            }
        };
        let ts = parse_clf_time(time)
            .ok_or_else(|| LineError::new(RejectKind::BadTimestamp, "unparseable S3 time"))?;
        let mut rec = RawRecord {
            ts: Some(ts),
            host: dash_none(get(1)).map(Cow::Borrowed),
            client: dash_none(get(3)).map(Cow::Borrowed),
            user: dash_none(get(4)).map(Cow::Borrowed),
            ..RawRecord::default()
        };
        rec.status = Some(parse_status(get(9))?);
        rec.bytes = parse_u64_field(get(11), "bytes_sent")?;
        rec.duration_ms = parse_u64_field(get(13), "total_time")?.map(|ms| ms as f64);
        let operation = get(6);
        let key = dash_none(get(7));
        apply_request(&mut rec, f[8].take());
        if rec.method.is_none() {
            // `REST.GET.OBJECT`, `WEBSITE.HEAD.OBJECT`: the middle part is the HTTP method.
            rec.method = operation
                .split('.')
                .nth(1)
                .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()))
                .map(Cow::Borrowed);
        }
        if rec.target.is_none() {
            rec.target = key.map(|k| Cow::Owned(format!("/{k}")));
        }
        rec.referrer = f[15].take().and_then(Tok::into_value);
        rec.user_agent = f[16].take().and_then(Tok::into_value);
        Ok(rec)
    }

    /// The remote IP and the requester (an account, or an IAM user's ARN).
    fn personal_spans(&self, line: &str, _state: &FormatState) -> Vec<(Range<usize>, Personal)> {
        let Ok(body) = line_body(line) else {
            return Vec::new();
        };
        let mut f: [Option<Tok<'_>>; 17] = Default::default();
        if read_fields(body, &mut f, true).is_err() {
            return Vec::new();
        }
        [(3, Personal::Client), (4, Personal::User)]
            .into_iter()
            .filter_map(|(i, personal)| Some((span_in(line, f[i].as_ref()?.text), personal)))
            .collect()
    }
}

/// The line without its trailing `\r`/whitespace; `Empty` when nothing is
/// left, `Header` for a `#` comment line (AWS never writes one, but annotated
/// copies of logs have them).
pub(crate) fn line_body(line: &str) -> Result<&str, LineError> {
    let line = line.trim_end();
    let content = line.trim_start();
    if content.is_empty() {
        return Err(LineError::new(RejectKind::Empty, "empty line"));
    }
    if content.starts_with('#') {
        return Err(LineError::new(RejectKind::Header, "comment line"));
    }
    Ok(line)
}

/// How a field was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokKind {
    Bare,
    Quoted,
    Bracketed,
}

/// One field of a space-separated AWS log line, delimiters removed.
#[derive(Debug, Clone)]
struct Tok<'a> {
    text: &'a str,
    kind: TokKind,
    /// The quoted text contains backslash escapes (`\"`, `\\`).
    escaped: bool,
}

impl<'a> Tok<'a> {
    /// The field's value: `None` for `-` and empty, escapes resolved.
    fn into_value(self) -> Option<Cow<'a, str>> {
        let text = dash_none(self.text)?;
        if self.escaped {
            Some(Cow::Owned(unescape_backslashes(text)))
        } else {
            Some(Cow::Borrowed(text))
        }
    }
}

/// Resolve `\"` and `\\`; other backslashes are kept as logged.
fn unescape_backslashes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Split `line` into fields, filling `out` from the start. Returns how many
/// fields were read (at most `out.len()`); the rest of the line is not examined.
/// `[bracketed]` fields are recognised only when `brackets` is set (S3), so an
/// `[ipv6]:port` address stays one plain field elsewhere.
fn read_fields<'a>(
    line: &'a str,
    out: &mut [Option<Tok<'a>>],
    brackets: bool,
) -> Result<usize, LineError> {
    let mut rest = line;
    let mut n = 0;
    while n < out.len() {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        let (tok, after) = next_field(rest, brackets)?;
        out[n] = Some(tok);
        n += 1;
        rest = after;
    }
    Ok(n)
}

/// Read one field from the start of `s` (which does not start with a space).
fn next_field(s: &str, brackets: bool) -> Result<(Tok<'_>, &str), LineError> {
    let b = s.as_bytes();
    let (tok, end) = match b[0] {
        b'"' => {
            let mut i = 1;
            let mut escaped = false;
            loop {
                match memchr::memchr2(b'"', b'\\', &b[i..]) {
                    None => return Err(LineError::malformed("unterminated quoted field")),
                    Some(j) if b[i + j] == b'\\' => {
                        escaped = true;
                        i += j + 2;
                        if i > b.len() {
                            return Err(LineError::malformed("unterminated quoted field"));
                        }
                    }
                    Some(j) => {
                        let close = i + j;
                        let tok = Tok {
                            text: &s[1..close],
                            kind: TokKind::Quoted,
                            escaped,
                        };
                        break (tok, close + 1);
                    }
                }
            }
        }
        b'[' if brackets => match memchr::memchr(b']', b) {
            None => return Err(LineError::malformed("unterminated [bracketed] field")),
            Some(close) => {
                let tok = Tok {
                    text: &s[1..close],
                    kind: TokKind::Bracketed,
                    escaped: false,
                };
                (tok, close + 1)
            }
        },
        _ => {
            let end = memchr::memchr(b' ', b).unwrap_or(b.len());
            (
                Tok {
                    text: &s[..end],
                    kind: TokKind::Bare,
                    escaped: false,
                },
                end,
            )
        }
    };
    let after = &s[end..];
    if !after.is_empty() && !after.starts_with(' ') {
        return Err(LineError::malformed(
            "text directly after a closing quote or bracket",
        ));
    }
    Ok((tok, after))
}

/// ISO 8601 / RFC 3339 timestamp as AWS writes it (`2015-05-13T23:39:43.945958Z`).
fn parse_iso_ts(s: &str) -> Result<DateTime<FixedOffset>, LineError> {
    DateTime::parse_from_rfc3339(s)
        .map_err(|_| LineError::new(RejectKind::BadTimestamp, "unparseable ISO 8601 timestamp"))
}

/// Sum of ELB/ALB processing times (seconds) in milliseconds; `None` when any is `-1` or `-`.
fn sum_processing_times(parts: [&str; 3]) -> Result<Option<f64>, LineError> {
    let mut total = 0.0;
    for p in parts {
        if dash_none(p).is_none() {
            return Ok(None);
        }
        let v: f64 = p
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| {
                LineError::new(RejectKind::BadNumber, "processing time is not a number")
            })?;
        if v < 0.0 {
            return Ok(None);
        }
        total += v;
    }
    Ok(Some(total * 1000.0))
}

/// Fill `method`, `target`, `protocol` and (for absolute URLs) `host` from a quoted request line.
fn apply_request<'a>(rec: &mut RawRecord<'a>, tok: Option<Tok<'a>>) {
    let Some(line) = tok.and_then(Tok::into_value) else {
        return;
    };
    fill_request(line, rec);
    let (host, target) = match rec.target.take() {
        None => return,
        Some(Cow::Borrowed(t)) => {
            let (host, target) = split_absolute_url(t);
            (host.map(Cow::Borrowed), target)
        }
        Some(Cow::Owned(t)) => {
            let (host, target) = split_absolute_url(&t);
            (
                host.map(|h| Cow::Owned(h.to_owned())),
                Cow::Owned(target.into_owned()),
            )
        }
    };
    if rec.host.is_none() {
        rec.host = host;
    }
    rec.target = Some(target);
}

/// For an absolute URL (`scheme://host[:port]/path?q`), return the host (port
/// and user info removed, IPv6 brackets removed) and the origin-form target
/// (`/path?q`, `/` when the URL has no path). Other targets are returned as given.
pub(crate) fn split_absolute_url(target: &str) -> (Option<&str>, Cow<'_, str>) {
    let Some(sep) = target.find("://") else {
        return (None, Cow::Borrowed(target));
    };
    let scheme = &target[..sep];
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return (None, Cow::Borrowed(target));
    }
    let after = &target[sep + 3..];
    let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..auth_end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = strip_port(host_port);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let path = &after[auth_end..];
    let target = if path.starts_with('/') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("/{path}"))
    };
    (dash_none(host), target)
}

/// Remove a `:port` suffix from `host:port`, `ipv4:port`, `[ipv6]:port` or
/// `ipv6:port` (AWS writes client addresses with a port, always).
///
/// An address without a port is returned unchanged, except that an unbracketed
/// IPv6 address whose last group is all digits is read as having a port: only
/// use this on fields documented to carry one.
pub(crate) fn strip_port(addr: &str) -> &str {
    if let Some(inner) = addr.strip_prefix('[') {
        return match inner.find(']') {
            Some(end) => &inner[..end],
            None => addr,
        };
    }
    match addr.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        _ => addr,
    }
}

/// Parse an unsigned count; `-` and empty are `None`, anything else non-numeric is `BadNumber`.
pub(crate) fn parse_u64_field(s: &str, what: &'static str) -> Result<Option<u64>, LineError> {
    let Some(s) = dash_none(s.trim()) else {
        return Ok(None);
    };
    s.parse::<u64>().map(Some).map_err(|_| {
        LineError::new(
            RejectKind::BadNumber,
            format!("{what} is not a non-negative integer"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_urls() {
        assert_eq!(
            split_absolute_url("https://www.example.com:443/p/i.html?x=1"),
            (Some("www.example.com"), Cow::Borrowed("/p/i.html?x=1"))
        );
        assert_eq!(
            split_absolute_url("http://[2001:db8::1]:80"),
            (Some("2001:db8::1"), Cow::Borrowed("/"))
        );
        assert_eq!(
            split_absolute_url("http://u:p@h?q"),
            (Some("h"), Cow::<str>::Owned("/?q".into()))
        );
        assert_eq!(
            split_absolute_url("/plain"),
            (None, Cow::Borrowed("/plain"))
        );
        assert_eq!(
            split_absolute_url("a b://x"),
            (None, Cow::Borrowed("a b://x"))
        );
    }

    #[test]
    fn ports() {
        assert_eq!(strip_port("1.2.3.4:2817"), "1.2.3.4");
        assert_eq!(strip_port("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(strip_port("2001:db8::1:443"), "2001:db8::1");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1"), "[::1");
    }

    #[test]
    fn quoted_escapes() {
        let mut f: [Option<Tok<'_>>; 3] = Default::default();
        let n = read_fields(r#"a "b \"c\" d" [e f]"#, &mut f, true).unwrap();
        assert_eq!(n, 3);
        assert_eq!(f[1].clone().unwrap().into_value().unwrap(), r#"b "c" d"#);
        assert_eq!(f[2].as_ref().unwrap().kind, TokKind::Bracketed);
        assert!(read_fields(r#"a "b"c"#, &mut f, true).is_err());
        assert!(read_fields(r#"a "b\"#, &mut f, true).is_err());
        let n = read_fields("[::1]:80 x", &mut f, false).unwrap();
        assert_eq!((n, f[0].as_ref().unwrap().text), (2, "[::1]:80"));
    }
}
