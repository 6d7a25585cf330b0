//! Squid's native access log (`squid`).
//!
//! ```text
//! 1286536309.450     92 192.0.2.68 TCP_MISS/200 1464 GET http://www.example.com/a? - HIER_DIRECT/203.0.113.5 text/html
//! time.millis   elapsed remotehost code/status bytes method URL rfc931 peerstatus/peerhost type
//! ```
//!
//! Fields are separated by one or more spaces (Squid pads `elapsed`). Empty
//! lines are `Empty`; lines starting with `#` are `Header` (comments).

use std::borrow::Cow;
use std::ops::Range;

use footfall_event::RejectKind;

use super::aws::{line_body, parse_u64_field, split_absolute_url, strip_port};
use super::fields::parse_status;
use super::time::parse_epoch;
use super::{span_in, FormatState, LineFormat, Personal};
use crate::record::{dash_none, LineError, LineResult, RawRecord};

/// Squid native access-log format.
///
/// * `ts`: the epoch time (`seconds.millis`), UTC;
/// * `duration_ms`: `elapsed` (milliseconds);
/// * `status`: the number after the `/` of `code/status` (`TCP_MISS/200`);
///   Squid writes `000` when no reply was sent, which is rejected as `BadStatus`;
/// * `bytes`: the bytes delivered to the client;
/// * the URL: an absolute URL (`http://host/path?q`) gives `host` and the
///   origin-form `target` (`/path?q`); for `CONNECT` the target stays in
///   authority form (`host:443`) and `host` is its host part; any other URL
///   (`error:invalid-request`) is kept as the target;
/// * `user`: `rfc931` (the ident/authenticated user);
/// * `upstream`: the peer host of `peerstatus/peerhost` (`HIER_DIRECT/203.0.113.5`).
///
/// Only the first seven fields are required; anything after the content type
/// (e.g. headers logged with `log_mime_hdrs`) is ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Squid;

impl LineFormat for Squid {
    fn name(&self) -> &str {
        "squid"
    }

    /// `remotehost` and `rfc931` (the ident or authenticated user).
    fn personal_spans(&self, line: &str, _state: &FormatState) -> Vec<(Range<usize>, Personal)> {
        let Ok(body) = line_body(line) else {
            return Vec::new();
        };
        let fields: Vec<&str> = body.split_ascii_whitespace().take(8).collect();
        [(2, Personal::Client), (7, Personal::User)]
            .into_iter()
            .filter_map(|(i, personal)| Some((span_in(line, fields.get(i)?), personal)))
            .collect()
    }

    fn parse<'a>(&self, line: &'a str, _state: &mut FormatState) -> LineResult<'a> {
        let mut it = line_body(line)?.split_ascii_whitespace();
        let mut f: [&'a str; 9] = [""; 9];
        let mut n = 0;
        for slot in f.iter_mut() {
            match it.next() {
                Some(tok) => {
                    *slot = tok;
                    n += 1;
                }
                None => break,
            }
        }
        if n < 7 {
            return Err(LineError::malformed(format!(
                "squid line has {n} fields, at least 7 expected"
            )));
        }
        // Seconds (ten integer digits last until 2286), never the milli/micro forms.
        let int_digits = f[0].split('.').next().map_or(0, str::len);
        let ts = (int_digits <= 10)
            .then(|| parse_epoch(f[0]))
            .flatten()
            .ok_or_else(|| LineError::new(RejectKind::BadTimestamp, "time is not epoch seconds"))?;
        let status = match f[3].rsplit_once('/') {
            Some((_, s)) => parse_status(s)?,
            None => {
                return Err(LineError::new(
                    RejectKind::BadStatus,
                    "no /status in result code",
                ))
            }
        };
        let duration_ms = parse_u64_field(f[1], "elapsed")?.map(|ms| ms as f64);
        let bytes = parse_u64_field(f[4], "bytes")?;
        let method = dash_none(f[5]);
        let (host, target) = match dash_none(f[6]) {
            None => (None, None),
            Some(url) if method == Some("CONNECT") => {
                (Some(strip_port(url)), Some(Cow::Borrowed(url)))
            }
            Some(url) => {
                let (host, target) = split_absolute_url(url);
                (host, Some(target))
            }
        };
        let upstream = f[8]
            .split_once('/')
            .and_then(|(_, peer)| dash_none(peer))
            .map(Cow::Borrowed);
        Ok(RawRecord {
            client: dash_none(f[2]).map(Cow::Borrowed),
            ts: Some(ts),
            method: method.map(Cow::Borrowed),
            target,
            status: Some(status),
            bytes,
            duration_ms,
            host: host.map(Cow::Borrowed),
            upstream,
            user: dash_none(f[7]).map(Cow::Borrowed),
            ..RawRecord::default()
        })
    }
}
