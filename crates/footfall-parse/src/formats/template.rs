//! Template formats: nginx `log_format` and Apache `LogFormat` strings, and the
//! CLF-family presets built from them (`combined`, `common`, `vcombined`,
//! `vcommon`, `traefik`).
//!
//! A template is a sequence of literals and fields. Matching walks the line once:
//! a field ends where the next literal begins; a quoted field (`"$request"`)
//! ends at the first unescaped quote that is followed by the rest of the next
//! literal, so `\"` (Apache) and `\x22` (nginx) inside a user agent are fine and
//! a line whose last quote was cut off still parses. Text after the template
//! (an extra trailing field) is ignored.

use std::borrow::Cow;

use footfall_event::RejectKind;
use memchr::{memchr, memchr2_iter};

use super::clf::{self, Shape};
use super::fields::{fill_request, parse_status};
use super::time::{parse_clf_time, parse_epoch, parse_iso8601};
use super::{FormatState, LineFormat, Personal};
use crate::record::{dash_none, LineError, LineResult, RawRecord};
use crate::url::hex_val;

/// What a template field holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// Client address (`$remote_addr`, `%h`, `%a`).
    Client,
    /// Remote user name (`$remote_user`, `%u`).
    User,
    /// `10/Oct/2000:13:55:36 -0700`, with or without surrounding brackets.
    TimeClf,
    /// ISO 8601 time (`$time_iso8601`).
    TimeIso,
    /// Seconds since the epoch, with an optional fraction (`$msec`), read by
    /// [`time::parse_epoch`](super::time::parse_epoch).
    TimeEpoch,
    /// The request line: `METHOD target PROTOCOL`.
    Request,
    /// HTTP method (`$request_method`, `%m`).
    Method,
    /// Path plus query (`$request_uri`).
    Target,
    /// Path only (`$uri`, `%U`).
    Path,
    /// Query without `?` (`$args`).
    Query,
    /// Query with its `?` (`%q`), empty when none.
    QueryWithMark,
    /// Protocol (`$server_protocol`, `%H`).
    Protocol,
    /// HTTP status (`$status`, `%>s`).
    Status,
    /// Response bytes (`$body_bytes_sent`, `%B`, `%O`).
    Bytes,
    /// Apache `%b`: `-` means zero bytes.
    BytesClf,
    /// `Referer` header (`$http_referer`, `%{Referer}i`).
    Referrer,
    /// `User-Agent` header (`$http_user_agent`, `%{User-Agent}i`).
    UserAgent,
    /// Virtual host or server name (`$host`, `%v`, `%{Host}i`).
    Host,
    /// Upstream or backend address (`$upstream_addr`).
    Upstream,
    /// The whole `Cookie` header.
    Cookies,
    /// One named cookie (`$cookie_NAME`, `%{NAME}C`).
    Cookie(String),
    /// Duration in seconds (`$request_time`, `%T`).
    DurationSecs,
    /// Duration in milliseconds (`%{ms}T`).
    DurationMillis,
    /// Duration in microseconds (`%D`, `%{us}T`).
    DurationMicros,
    /// A duration written with a unit suffix, as Traefik does (`12ms`).
    DurationWithUnit,
    /// Anything footfall does not use.
    Ignore,
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Literal(Vec<u8>),
    Field { field: Field, quoted: bool },
}

/// A compiled template format.
#[derive(Debug, Clone)]
pub struct TemplateFormat {
    name: String,
    items: Vec<Item>,
    /// What each item needs to know about the ones after it, worked out once.
    plans: Vec<Plan>,
    /// The CLF layout this template is, if it is one: tried first ([`clf`]).
    clf: Option<Shape>,
}

/// How the field at the same index in `items` ends.
#[derive(Debug, Clone, Default)]
struct Plan {
    /// The literal right after the field (empty when none).
    next_lit: Vec<u8>,
    /// For a quoted field: that literal without its opening quote.
    rest: Vec<u8>,
    /// For a quoted field: no field follows and the rest is only spaces, so
    /// the first unescaped quote ends the field.
    first_quote_ends: bool,
}

/// A template string could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log format template: {0}")]
pub struct TemplateError(pub String);

/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`
pub const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent`
pub const COMMON: &str =
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent"#;
/// Combined with a leading `vhost:port`.
pub const VCOMBINED: &str = r#"$host:$server_port $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
/// Common with a leading `vhost:port`.
pub const VCOMMON: &str = r#"$host:$server_port $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent"#;
/// Traefik's CLF access log.
pub const TRAEFIK_CLF: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $traefik_requests "$traefik_router" "$traefik_server" $traefik_duration"#;

fn nginx_field(name: &str) -> Field {
    match name {
        "remote_addr" | "realip_remote_addr" | "binary_remote_addr" => Field::Client,
        "remote_user" => Field::User,
        "time_local" => Field::TimeClf,
        "time_iso8601" => Field::TimeIso,
        "msec" => Field::TimeEpoch,
        "request" => Field::Request,
        "request_method" => Field::Method,
        "request_uri" => Field::Target,
        "uri" | "document_uri" => Field::Path,
        "args" | "query_string" => Field::Query,
        "server_protocol" => Field::Protocol,
        "status" => Field::Status,
        "body_bytes_sent" | "bytes_sent" => Field::Bytes,
        "http_referer" | "http_referrer" => Field::Referrer,
        "http_user_agent" => Field::UserAgent,
        "host" | "http_host" | "server_name" => Field::Host,
        "upstream_addr" | "traefik_server" => Field::Upstream,
        "http_cookie" => Field::Cookies,
        "request_time" => Field::DurationSecs,
        "traefik_duration" => Field::DurationWithUnit,
        n if n.starts_with("cookie_") => Field::Cookie(n["cookie_".len()..].to_string()),
        _ => Field::Ignore,
    }
}

fn apache_field(directive: char, arg: Option<&str>) -> Result<Field, TemplateError> {
    let arg_lc = arg.map(|a| a.to_ascii_lowercase());
    Ok(match (directive, arg_lc.as_deref()) {
        ('h' | 'a', _) => Field::Client,
        ('l', _) => Field::Ignore,
        ('u', _) => Field::User,
        ('t', None) => Field::TimeClf,
        ('t', Some(_)) => Field::Ignore,
        ('r', _) => Field::Request,
        ('s', _) => Field::Status,
        ('b', _) => Field::BytesClf,
        ('B' | 'O', _) => Field::Bytes,
        ('i', Some("referer")) | ('i', Some("referrer")) => Field::Referrer,
        ('i', Some("user-agent")) => Field::UserAgent,
        ('i', Some("host")) => Field::Host,
        ('i', Some("cookie")) => Field::Cookies,
        ('C', Some(_)) => Field::Cookie(arg.unwrap_or_default().to_string()),
        ('D', _) => Field::DurationMicros,
        ('T', Some("ms")) => Field::DurationMillis,
        ('T', Some("us")) => Field::DurationMicros,
        ('T', _) => Field::DurationSecs,
        ('v' | 'V', _) => Field::Host,
        ('m', _) => Field::Method,
        ('U', _) => Field::Path,
        ('q', _) => Field::QueryWithMark,
        ('H', _) => Field::Protocol,
        (
            'e' | 'n' | 'o' | 'p' | 'P' | 'I' | 'S' | 'f' | 'X' | 'k' | 'L' | 'R' | 'A' | 'E' | 'M'
            | 'F',
            _,
        ) => Field::Ignore,
        ('i', _) => Field::Ignore,
        (c, _) => return Err(TemplateError(format!("unknown Apache directive %{c}"))),
    })
}

impl TemplateFormat {
    /// Compile an nginx `log_format` string (`$variable` fields).
    pub fn nginx(name: &str, template: &str) -> Result<Self, TemplateError> {
        let mut items = Vec::new();
        let mut lit = Vec::new();
        let b = template.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'$' {
                let braced = b.get(i + 1) == Some(&b'{');
                let start = if braced { i + 2 } else { i + 1 };
                let mut j = start;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j == start {
                    return Err(TemplateError(format!("empty variable name at byte {i}")));
                }
                let var = &template[start..j];
                if braced {
                    if b.get(j) != Some(&b'}') {
                        return Err(TemplateError(format!("unclosed ${{{var}")));
                    }
                    j += 1;
                }
                push_field(&mut items, &mut lit, nginx_field(var))?;
                i = j;
            } else {
                lit.push(b[i]);
                i += 1;
            }
        }
        Self::finish(name, items, lit)
    }

    /// Compile an Apache `LogFormat` string (`%h`, `%>s`, `%{Referer}i`, ...).
    pub fn apache(name: &str, template: &str) -> Result<Self, TemplateError> {
        let mut items = Vec::new();
        let mut lit = Vec::new();
        let chars: Vec<char> = template.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' && i + 1 < chars.len() {
                // Apache config escapes: \" \t \n
                let e = match chars[i + 1] {
                    't' => '\t',
                    'n' => '\n',
                    other => other,
                };
                let mut buf = [0u8; 4];
                lit.extend_from_slice(e.encode_utf8(&mut buf).as_bytes());
                i += 2;
                continue;
            }
            if c != '%' {
                let mut buf = [0u8; 4];
                lit.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 1;
                continue;
            }
            i += 1;
            if chars.get(i) == Some(&'%') {
                lit.push(b'%');
                i += 1;
                continue;
            }
            // Modifiers: status conditions (!200,304) and < >.
            while i < chars.len() && matches!(chars[i], '<' | '>' | '!' | ',' | '0'..='9') {
                i += 1;
            }
            let mut arg = None;
            if chars.get(i) == Some(&'{') {
                let close = chars[i..]
                    .iter()
                    .position(|&c| c == '}')
                    .ok_or_else(|| TemplateError("unclosed %{".into()))?;
                arg = Some(chars[i + 1..i + close].iter().collect::<String>());
                i += close + 1;
            }
            let d = *chars
                .get(i)
                .ok_or_else(|| TemplateError("template ends inside a directive".into()))?;
            i += 1;
            let field = apache_field(d, arg.as_deref())?;
            if d == 't' && arg.is_none() {
                // %t prints its own brackets.
                lit.push(b'[');
                push_field(&mut items, &mut lit, field)?;
                lit.push(b']');
            } else {
                push_field(&mut items, &mut lit, field)?;
            }
        }
        Self::finish(name, items, lit)
    }

    fn finish(name: &str, mut items: Vec<Item>, lit: Vec<u8>) -> Result<Self, TemplateError> {
        if !lit.is_empty() {
            items.push(Item::Literal(lit));
        }
        if !items.iter().any(|i| matches!(i, Item::Field { .. })) {
            return Err(TemplateError("template has no fields".into()));
        }
        let has = |f: fn(&Field) -> bool| {
            items
                .iter()
                .any(|i| matches!(i, Item::Field { field, .. } if f(field)))
        };
        if !has(|f| matches!(f, Field::TimeClf | Field::TimeIso | Field::TimeEpoch)) {
            return Err(TemplateError(
                "template has no time field ($time_local, %t, ...)".into(),
            ));
        }
        if !has(|f| matches!(f, Field::Status)) {
            return Err(TemplateError(
                "template has no status field ($status, %>s)".into(),
            ));
        }
        let plans = (0..items.len())
            .map(|idx| {
                let next_lit = match items.get(idx + 1) {
                    Some(Item::Literal(l)) => l.clone(),
                    _ => Vec::new(),
                };
                let last_field = !items[idx + 1..]
                    .iter()
                    .any(|i| matches!(i, Item::Field { .. }));
                let rest = next_lit.strip_prefix(b"\"").unwrap_or(&next_lit).to_vec();
                Plan {
                    first_quote_ends: last_field && rest.iter().all(|&c| c == b' '),
                    rest,
                    next_lit,
                }
            })
            .collect();
        let clf = clf_shape(&items);
        Ok(TemplateFormat {
            name: name.to_string(),
            items,
            plans,
            clf,
        })
    }
}

/// The CLF layout `items` spell, if any: `[host:port ]client - user [time]
/// "request" status bytes[ "referrer" "user agent"]`, as both the nginx and
/// the Apache presets compile (`%l` is the literal `-` in neither, so Apache's
/// `%h %l %u` is not one of them).
fn clf_shape(items: &[Item]) -> Option<Shape> {
    let field = |i: &Item, want: fn(&Field) -> bool, q: bool| matches!(i, Item::Field { field, quoted } if want(field) && *quoted == q);
    let lit = |i: &Item, l: &[u8]| matches!(i, Item::Literal(x) if x == l);
    let (vhost, rest) = match items {
        [h, c, p, s, rest @ ..]
            if field(h, |f| *f == Field::Host, false)
                && lit(c, b":")
                && field(p, |f| *f == Field::Ignore, false)
                && lit(s, b" ") =>
        {
            (true, rest)
        }
        _ => (false, items),
    };
    let (common, tail) = rest.split_at_checked(11)?;
    let wants: [&dyn Fn(&Item) -> bool; 11] = [
        &|i| field(i, |f| *f == Field::Client, false),
        &|i| lit(i, b" - "),
        &|i| field(i, |f| *f == Field::User, false),
        &|i| lit(i, b" ["),
        &|i| field(i, |f| *f == Field::TimeClf, false),
        &|i| lit(i, b"] \""),
        &|i| field(i, |f| *f == Field::Request, true),
        &|i| lit(i, b"\" "),
        &|i| field(i, |f| *f == Field::Status, false),
        &|i| lit(i, b" "),
        &|i| field(i, |f| matches!(f, Field::Bytes | Field::BytesClf), false),
    ];
    if !common.iter().zip(wants).all(|(i, want)| want(i)) {
        return None;
    }
    let combined = match tail {
        [] => false,
        [a, r, b, u, c]
            if lit(a, b" \"")
                && field(r, |f| *f == Field::Referrer, true)
                && lit(b, b"\" \"")
                && field(u, |f| *f == Field::UserAgent, true)
                && lit(c, b"\"") =>
        {
            true
        }
        _ => return None,
    };
    Some(Shape { vhost, combined })
}

fn push_field(items: &mut Vec<Item>, lit: &mut Vec<u8>, field: Field) -> Result<(), TemplateError> {
    let quoted = lit.last() == Some(&b'"');
    if lit.is_empty() {
        if let Some(Item::Field { .. }) = items.last() {
            return Err(TemplateError(
                "two fields with nothing between them cannot be split".into(),
            ));
        }
    } else {
        items.push(Item::Literal(std::mem::take(lit)));
    }
    items.push(Item::Field { field, quoted });
    Ok(())
}

/// Find the end of a quoted value starting at `from`: the first unescaped `"`
/// followed by `rest` (the remainder of the next literal after its leading quote).
/// Falls back to the first unescaped quote, then to the end of the line.
/// Also says whether the value holds a backslash (so needs [`unescape`]),
/// found in the same pass.
fn quoted_end(line: &[u8], from: usize, rest: &[u8], last: bool) -> (usize, bool) {
    let mut first = None;
    let mut first_backslash = usize::MAX;
    for q in memchr2_iter(b'"', b'\\', &line[from..]) {
        let at = from + q;
        if line[at] == b'\\' {
            first_backslash = first_backslash.min(at);
            continue;
        }
        // An odd number of backslashes before the quote escapes it.
        let mut bs = 0;
        while at > from + bs && line[at - 1 - bs] == b'\\' {
            bs += 1;
        }
        if bs % 2 == 1 {
            continue;
        }
        if first.is_none() {
            first = Some(at);
            if last {
                return (at, first_backslash < at);
            }
        }
        if has_prefix(&line[at + 1..], rest) {
            return (at, first_backslash < at);
        }
    }
    let end = first.unwrap_or(line.len());
    (end, first_backslash < end)
}

/// Undo Apache/nginx escaping in a logged value: `\"`, `\\`, `\xHH` (see
/// [`utf8_or_hex_escaped`] for bytes that are not UTF-8).
pub(crate) fn unescape(s: &str) -> Cow<'_, str> {
    if memchr(b'\\', s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'"' | b'\\' => {
                    out.push(b[i + 1]);
                    i += 2;
                    continue;
                }
                b'x' => {
                    let digit = |at: usize| b.get(at).copied().and_then(hex_val);
                    if let (Some(h), Some(l)) = (digit(i + 2), digit(i + 3)) {
                        out.push(h << 4 | l);
                        i += 4;
                        continue;
                    }
                }
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                b't' => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(utf8_or_hex_escaped(out, "\\x"))
}

/// `bytes` as text, with each byte of an invalid UTF-8 sequence written as
/// `{prefix}hh` (`\xe4`) instead of U+FFFD. nginx and Apache log a non-ASCII
/// byte as `\xHH`: bytes that form UTF-8 are decoded, and bytes that do not
/// (a host name in a legacy encoding) stay as they were logged, so nothing
/// is lost.
pub(crate) fn utf8_or_hex_escaped(bytes: Vec<u8>, prefix: &str) -> String {
    let bytes = match String::from_utf8(bytes) {
        Ok(s) => return s,
        Err(e) => e.into_bytes(),
    };
    let mut out = String::with_capacity(bytes.len() * 2);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(prefix);
            out.push_str(&crate::privacy::hex(&[*b]));
        }
    }
    out
}

fn parse_u64(s: &str) -> Result<u64, LineError> {
    s.parse::<u64>()
        .map_err(|_| LineError::new(RejectKind::BadNumber, "a byte count is not a number"))
}

fn parse_f64(s: &str) -> Result<f64, LineError> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(LineError::new(
            RejectKind::BadNumber,
            "a duration is not a number",
        )),
    }
}

fn parse_duration_with_unit(s: &str) -> Result<f64, LineError> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let v = parse_f64(&s[..split])?;
    Ok(match &s[split..] {
        "" | "ms" => v,
        "s" => v * 1000.0,
        "us" | "µs" => v / 1000.0,
        "ns" => v / 1_000_000.0,
        _ => {
            return Err(LineError::new(
                RejectKind::BadNumber,
                "a duration has an unknown unit",
            ))
        }
    })
}

impl LineFormat for TemplateFormat {
    fn name(&self) -> &str {
        &self.name
    }

    fn personal_spans(
        &self,
        line: &str,
        _state: &FormatState,
    ) -> Vec<(std::ops::Range<usize>, Personal)> {
        TemplateFormat::personal_spans(self, line)
    }

    fn parse<'a>(&self, line: &'a str, state: &mut FormatState) -> LineResult<'a> {
        if let Some(rec) = self
            .clf
            .and_then(|shape| clf::parse(shape, line, &mut state.clf_day))
        {
            return Ok(rec);
        }
        self.parse_template(line)
    }
}

impl TemplateFormat {
    /// The general parser: walks the template's items over the line.
    fn parse_template<'a>(&self, line: &'a str) -> LineResult<'a> {
        if line.trim().is_empty() {
            return Err(LineError::new(RejectKind::Empty, "empty line"));
        }
        let mut rec = RawRecord::default();
        let mut path: Option<Cow<'a, str>> = None;
        let mut query: Option<Cow<'a, str>> = None;
        self.walk(line, |field, span, escaped, _| {
            let raw = &line[span];
            let val: Cow<'a, str> = if escaped {
                unescape(raw)
            } else {
                Cow::Borrowed(raw)
            };
            self.assign(field, val, &mut rec, &mut path, &mut query)
        })?;
        if rec.target.is_none() {
            if let Some(p) = path {
                rec.target = Some(match query {
                    Some(q) if !q.is_empty() => Cow::Owned(format!("{p}?{q}")),
                    _ => p,
                });
            }
        }
        if rec.ts.is_none() {
            return Err(LineError::new(RejectKind::BadTimestamp, "no time"));
        }
        if rec.status.is_none() {
            return Err(LineError::new(RejectKind::BadStatus, "no status"));
        }
        Ok(rec)
    }

    /// Walks the template's items over the line, handing each field's span,
    /// whether it holds escapes and the literal the template has after it to
    /// `field`, in order; stops at the first literal the line lacks, or the
    /// first error of `field`.
    #[inline]
    fn walk(
        &self,
        line: &str,
        mut field: impl FnMut(&Field, std::ops::Range<usize>, bool, &[u8]) -> Result<(), LineError>,
    ) -> Result<(), LineError> {
        let b = line.as_bytes();
        let mut pos = 0usize;
        let n = self.items.len();
        for (idx, (item, plan)) in self.items.iter().zip(&self.plans).enumerate() {
            match item {
                Item::Literal(l) => {
                    if has_prefix(&b[pos..], l) {
                        pos += l.len();
                    } else if pos >= b.len() && idx == n - 1 {
                        // The line was cut off inside the template's last literal (a final quote): accept.
                    } else {
                        pos = match_lenient(b, pos, l)
                            .ok_or_else(|| LineError::malformed(expected_msg(l)))?;
                    }
                }
                Item::Field { field: f, quoted } => {
                    let next_lit = &plan.next_lit[..];
                    let (end, escaped) = if *quoted {
                        quoted_end(b, pos, &plan.rest, plan.first_quote_ends)
                    } else if next_lit.is_empty() {
                        (find_byte(b' ', b, pos).unwrap_or(b.len()), false)
                    } else {
                        match find_byte(next_lit[0], b, pos) {
                            Some(i) => (i, false),
                            None => {
                                return Err(LineError::malformed(
                                    "a field is not followed by what the format expects",
                                ))
                            }
                        }
                    };
                    field(f, pos..end, escaped, next_lit)?;
                    pos = end;
                }
            }
        }
        Ok(())
    }

    /// The spans of `line` that hold a client, a user name or cookies, as
    /// far as the line follows the template (a rejected line's dead letter
    /// loses them: [`crate::dead_letter::scrub_rejected`]).
    /// A field's span counts only when the literal after it follows it too,
    /// so that a line in another format gives none.
    pub fn personal_spans(&self, line: &str) -> Vec<(std::ops::Range<usize>, Personal)> {
        let mut spans = Vec::new();
        // A line that stops following the template keeps the spans before.
        let _ = self.walk(line, |field, span, _, next_lit| {
            let personal = match field {
                Field::Client => Some(Personal::Client),
                Field::User => Some(Personal::User),
                Field::Cookies | Field::Cookie(_) => Some(Personal::Cookie),
                _ => None,
            };
            let followed =
                next_lit.is_empty() || match_lenient(line.as_bytes(), span.end, next_lit).is_some();
            if let Some(p) = personal.filter(|_| followed && !span.is_empty()) {
                spans.push((span, p));
            }
            Ok(())
        });
        spans
    }
}

/// Whether `b` starts with `prefix`, compared inline (template literals are
/// a few bytes: a call to `memcmp` costs more than the comparison).
#[inline]
fn has_prefix(b: &[u8], prefix: &[u8]) -> bool {
    b.len() >= prefix.len() && b.iter().zip(prefix).all(|(x, y)| x == y)
}

/// Position of the first `needle` in `b` from `from`. Unquoted fields are
/// short (an address, a status, a byte count): the first bytes are scanned
/// directly, longer values with `memchr`.
#[inline]
pub(crate) fn find_byte(needle: u8, b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let hay = &b[from..];
    let head = hay.len().min(24);
    // Eight bytes at a time: a zero byte of `word ^ needle` is a match, and
    // the lowest flagged byte is the first match (flags above it may be false).
    let mut i = 0;
    while i + 8 <= head {
        let w = u64::from_le_bytes(hay[i..i + 8].try_into().expect("8 bytes"))
            ^ (ONES * u64::from(needle));
        let found = w.wrapping_sub(ONES) & !w & HIGH;
        if found != 0 {
            return Some(from + i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if let Some(j) = hay[i..head].iter().position(|&c| c == needle) {
        return Some(from + i + j);
    }
    memchr(needle, &hay[head..]).map(|j| from + head + j)
}

/// Match a literal allowing runs of spaces where it has one at either end
/// (some servers pad fields). Returns the position after the literal.
fn match_lenient(b: &[u8], pos: usize, l: &[u8]) -> Option<usize> {
    let core = trim_spaces(l);
    let mut p = pos;
    if l.first() == Some(&b' ') {
        if b.get(p) != Some(&b' ') {
            return None;
        }
        while b.get(p) == Some(&b' ') {
            p += 1;
        }
    }
    if !b[p..].starts_with(core) {
        return None;
    }
    p += core.len();
    if !core.is_empty() && l.len() > core.len() && l.last() == Some(&b' ') {
        if b.get(p) != Some(&b' ') {
            return None;
        }
        while b.get(p) == Some(&b' ') {
            p += 1;
        }
    }
    Some(p)
}

fn trim_spaces(l: &[u8]) -> &[u8] {
    let s = l.iter().position(|&c| c != b' ').unwrap_or(l.len());
    let e = l.iter().rposition(|&c| c != b' ').map_or(s, |e| e + 1);
    &l[s..e]
}

fn expected_msg(l: &[u8]) -> String {
    format!("expected {:?}", String::from_utf8_lossy(l))
}

impl TemplateFormat {
    fn assign<'a>(
        &self,
        field: &Field,
        val: Cow<'a, str>,
        rec: &mut RawRecord<'a>,
        path: &mut Option<Cow<'a, str>>,
        query: &mut Option<Cow<'a, str>>,
    ) -> Result<(), LineError> {
        let present = dash_none(&val).is_some();
        match field {
            Field::Request => fill_request(val, rec),
            Field::TimeClf => {
                let s = val.trim_start_matches('[').trim_end_matches(']');
                rec.ts = Some(parse_clf_time(s).ok_or_else(|| {
                    LineError::new(
                        RejectKind::BadTimestamp,
                        "the time is not dd/Mon/yyyy:HH:MM:SS +zzzz",
                    )
                })?);
            }
            Field::TimeIso => {
                rec.ts = Some(parse_iso8601(&val).ok_or_else(|| {
                    LineError::new(RejectKind::BadTimestamp, "the time is not ISO 8601")
                })?)
            }
            Field::TimeEpoch => {
                rec.ts = Some(parse_epoch(&val).ok_or_else(|| {
                    LineError::new(RejectKind::BadTimestamp, "the time is not epoch seconds")
                })?)
            }
            Field::Status => rec.status = Some(parse_status(&val)?),
            Field::Bytes | Field::BytesClf if present => rec.bytes = Some(parse_u64(&val)?),
            Field::DurationSecs if present => rec.duration_ms = Some(parse_f64(&val)? * 1000.0),
            Field::DurationMillis if present => rec.duration_ms = Some(parse_f64(&val)?),
            Field::DurationMicros if present => rec.duration_ms = Some(parse_f64(&val)? / 1000.0),
            Field::DurationWithUnit if present => {
                rec.duration_ms = Some(parse_duration_with_unit(&val)?)
            }
            _ if !present => {}
            Field::Client => rec.client = Some(val),
            Field::User => rec.user = Some(val),
            Field::Method => rec.method = Some(val),
            Field::Target => rec.target = Some(val),
            Field::Path => *path = Some(val),
            Field::Query => *query = Some(val),
            Field::QueryWithMark => {
                *query = Some(match val {
                    Cow::Borrowed(b) => Cow::Borrowed(b.strip_prefix('?').unwrap_or(b)),
                    Cow::Owned(o) => Cow::Owned(o.strip_prefix('?').unwrap_or(&o).to_string()),
                })
            }
            Field::Protocol => rec.protocol = Some(val),
            Field::Referrer => rec.referrer = Some(val),
            Field::UserAgent => rec.user_agent = Some(val),
            Field::Host => rec.host = Some(val),
            Field::Upstream => rec.upstream = Some(val),
            Field::Cookies => rec.cookies = Some(val),
            Field::Cookie(_) => rec.session = Some(val),
            Field::Bytes
            | Field::BytesClf
            | Field::DurationSecs
            | Field::DurationMillis
            | Field::DurationMicros
            | Field::DurationWithUnit
            | Field::Ignore => {}
        }
        Ok(())
    }

    /// Names of the cookies this template logs on their own (`$cookie_NAME`).
    pub fn logged_cookies(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Field {
                    field: Field::Cookie(n),
                    ..
                } => Some(n.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
