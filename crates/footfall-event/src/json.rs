//! The JSON form of a [`VisitEvent`] (and of its borrowed view [`EventRef`]), written directly.
//!
//! Serialising through serde costs more than parsing and enriching a line does
//! (a `fmt` round trip for the timestamp, a call per key), so events are
//! written by hand here. The bytes are exactly those `serde_json::to_vec`
//! produces for the same event (same field order, same skipped `None`s, same
//! escapes, same float formatting); a test holds the two together.

use chrono::{DateTime, Datelike, FixedOffset, Timelike};

use crate::{EventRef, VisitEvent};

/// What is wrong with a JSON payload that does not decode as `expected` (a
/// visit event, a dead letter), and where, without its content: serde_json's
/// own message can quote a value of the payload ("invalid type: string
/// \"alice@example.com\""), and this text goes to logs and terminals.
pub fn json_error(e: &serde_json::Error, expected: &str) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "invalid JSON".to_string(),
        Category::Data => format!("JSON that is not {expected}"),
        Category::Eof => "truncated JSON".to_string(),
        Category::Io => "unreadable JSON".to_string(),
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

impl VisitEvent {
    /// Append the event's JSON and a newline to `out`: the exact bytes `footfall parse`
    /// prints and `footfall ingest` produces (identical to `serde_json`'s output).
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        self.view().write_json_line(out);
    }
}

impl EventRef<'_> {
    /// Append the event's JSON and a newline to `out`: the exact bytes `footfall parse`
    /// prints and `footfall ingest` produces (identical to `serde_json`'s output
    /// for the owned [`VisitEvent`]).
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        out.reserve(768);
        out.extend_from_slice(b"{\"v\":");
        push_int(out, u64::from(self.v));
        out.extend_from_slice(b",\"event_id\":");
        push_str(out, self.event_id);
        out.extend_from_slice(b",\"ts\":\"");
        push_ts(out, &self.ts);
        out.extend_from_slice(b"\",\"site\":");
        push_str(out, self.site);
        opt_str(out, b",\"host\":", self.host);
        match self.pre.visitor {
            Some(json) => out.extend_from_slice(json),
            None => segment::visitor(out, self.visitor_id, self.client_net),
        }
        opt_str(out, b",\"client_ip\":", self.client_ip);
        opt_str(out, b",\"method\":", self.method);
        match self.pre.target {
            Some(json) => out.extend_from_slice(json),
            None => segment::target(out, self.path, self.query, self.route),
        }
        opt_str(out, b",\"protocol\":", self.protocol);
        out.extend_from_slice(b",\"status\":");
        push_int(out, u64::from(self.status));
        if let Some(b) = self.bytes {
            out.extend_from_slice(b",\"bytes\":");
            push_int(out, b);
        }
        if let Some(d) = self.duration_ms {
            out.extend_from_slice(b",\"duration_ms\":");
            push_f64(out, d);
        }
        opt_str(out, b",\"upstream\":", self.upstream);
        match self.pre.referrer {
            Some(json) => out.extend_from_slice(json),
            None => segment::referrer(
                out,
                self.referrer,
                self.referrer_host,
                self.referrer_medium,
                self.referrer_source.map(|x| &**x),
                self.search_terms,
            ),
        }
        match self.pre.campaign {
            Some(json) => out.extend_from_slice(json),
            None => segment::campaign(
                out,
                self.site_search,
                [
                    self.utm_source,
                    self.utm_medium,
                    self.utm_campaign,
                    self.utm_term,
                    self.utm_content,
                ],
            ),
        }
        match self.pre.agent {
            Some(json) => out.extend_from_slice(json),
            None => segment::agent(
                out,
                self.browser.map(|x| &**x),
                self.browser_version.map(|x| &**x),
                self.os.map(|x| &**x),
                self.device,
                self.is_bot,
                self.bot_name.map(|x| &**x),
            ),
        }
        out.extend_from_slice(b",\"kind\":");
        push_str(out, self.kind);
        out.extend_from_slice(if self.is_pageview {
            b",\"is_pageview\":true"
        } else {
            b",\"is_pageview\":false"
        });
        out.extend_from_slice(b",\"source\":");
        push_str(out, self.source);
        out.extend_from_slice(b",\"offset\":");
        push_int(out, self.offset);
        out.extend_from_slice(b"}\n");
    }
}

/// Writers of the field groups [`Prerendered`](crate::Prerendered) holds:
/// each appends its fields exactly as [`EventRef::write_json_line`] writes
/// them (each begins with the comma), so a group written once for a cached
/// value can be copied into every event that shares it.
pub mod segment {
    use super::{opt_str, push_str};

    /// `visitor_id` and `client_net`.
    pub fn visitor(out: &mut Vec<u8>, visitor_id: &str, client_net: Option<&str>) {
        out.extend_from_slice(b",\"visitor_id\":");
        push_str(out, visitor_id);
        opt_str(out, b",\"client_net\":", client_net);
    }

    /// `path`, `query` and `route`.
    pub fn target(out: &mut Vec<u8>, path: &str, query: Option<&str>, route: &str) {
        out.extend_from_slice(b",\"path\":");
        push_str(out, path);
        opt_str(out, b",\"query\":", query);
        out.extend_from_slice(b",\"route\":");
        push_str(out, route);
    }

    /// `referrer`, `referrer_host`, `referrer_medium`, `referrer_source` and
    /// `search_terms`.
    pub fn referrer(
        out: &mut Vec<u8>,
        referrer: Option<&str>,
        host: Option<&str>,
        medium: &str,
        source: Option<&str>,
        search_terms: Option<&str>,
    ) {
        opt_str(out, b",\"referrer\":", referrer);
        opt_str(out, b",\"referrer_host\":", host);
        out.extend_from_slice(b",\"referrer_medium\":");
        push_str(out, medium);
        opt_str(out, b",\"referrer_source\":", source);
        opt_str(out, b",\"search_terms\":", search_terms);
    }

    /// `site_search` and the five UTM fields (source, medium, campaign,
    /// term, content).
    pub fn campaign(out: &mut Vec<u8>, site_search: Option<&str>, utm: [Option<&str>; 5]) {
        opt_str(out, b",\"site_search\":", site_search);
        let [source, medium, campaign, term, content] = utm;
        opt_str(out, b",\"utm_source\":", source);
        opt_str(out, b",\"utm_medium\":", medium);
        opt_str(out, b",\"utm_campaign\":", campaign);
        opt_str(out, b",\"utm_term\":", term);
        opt_str(out, b",\"utm_content\":", content);
    }

    /// `browser`, `browser_version`, `os`, `device`, `is_bot` and `bot_name`.
    pub fn agent(
        out: &mut Vec<u8>,
        browser: Option<&str>,
        browser_version: Option<&str>,
        os: Option<&str>,
        device: &str,
        is_bot: bool,
        bot_name: Option<&str>,
    ) {
        opt_str(out, b",\"browser\":", browser);
        opt_str(out, b",\"browser_version\":", browser_version);
        opt_str(out, b",\"os\":", os);
        out.extend_from_slice(b",\"device\":");
        push_str(out, device);
        out.extend_from_slice(if is_bot {
            b",\"is_bot\":true"
        } else {
            b",\"is_bot\":false"
        });
        opt_str(out, b",\"bot_name\":", bot_name);
    }
}

#[inline]
fn opt_str(out: &mut Vec<u8>, key: &[u8], value: Option<&str>) {
    if let Some(v) = value {
        out.extend_from_slice(key);
        push_str(out, v);
    }
}

#[inline]
fn push_int(out: &mut Vec<u8>, n: u64) {
    // Small numbers (the schema version, statuses) as fixed-size appends,
    // which compile to plain stores rather than a call to `memcpy`.
    let d = |x: u64| b'0' + x as u8;
    match n {
        0..=9 => out.push(d(n)),
        10..=99 => out.extend_from_slice(&[d(n / 10), d(n % 10)]),
        100..=999 => out.extend_from_slice(&[d(n / 100), d(n / 10 % 10), d(n % 10)]),
        _ => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
    }
}

/// Floats are rare (formats with a duration): serde_json writes them, so its
/// exact form (shortest round trip, `null` when not finite) holds by construction.
fn push_f64(out: &mut Vec<u8>, d: f64) {
    serde_json::to_writer(out, &d).expect("a float always serialises");
}

/// serde_json's escape table: 0 = copy, else the escape letter (`u` = `\u00XX`).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any of the 8 bytes is a control character, `"` or `\`.
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (below_space | quote | backslash) & HIGH != 0
}

/// Length of the longest prefix made of 16-byte blocks without a control
/// character, `"` or `\\` (SSE2, which every x86-64 has).
#[cfg(target_arch = "x86_64")]
#[inline]
fn clean_prefix(bytes: &[u8]) -> usize {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let mut i = 0;
    // SAFETY: SSE2 is part of the x86-64 baseline; every load reads 16 bytes
    // inside `bytes` (i + 16 <= len), unaligned loads allowed.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let below = _mm_set1_epi8(0x1f);
        while i + 16 <= bytes.len() {
            let v = _mm_loadu_si128(bytes.as_ptr().add(i).cast());
            // v <= 0x1f  <=>  max(v, 0x1f) == 0x1f (unsigned).
            let ctl = _mm_cmpeq_epi8(_mm_max_epu8(v, below), below);
            let hit = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                ctl,
            );
            if _mm_movemask_epi8(hit) != 0 {
                break;
            }
            i += 16;
        }
    }
    i
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn clean_prefix(_: &[u8]) -> usize {
    0
}

/// Whether `bytes` holds no control character, `"` or `\\`: whole 16-byte
/// blocks, then one block ending at the last byte; short values as one or
/// two overlapping words.
#[inline]
fn is_clean(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n >= 16 {
        let i = clean_prefix(bytes);
        return i == n || (i + 16 > n && clean_prefix(&bytes[n - 16..]) == 16);
    }
    let word = |b: &[u8]| -> u64 {
        if b.len() >= 8 {
            u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
        } else if b.len() >= 4 {
            // Two overlapping halves; the overlap repeats bytes, which is harmless.
            let lo = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
            let hi = u32::from_le_bytes(b[b.len() - 4..].try_into().expect("4 bytes"));
            u64::from(lo) | (u64::from(hi) << 32)
        } else {
            // Pad with a letter: it needs no escape.
            let mut w = [b'a'; 8];
            w[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(w)
        }
    };
    if n > 8 {
        !word_needs_escape(word(bytes)) && !word_needs_escape(word(&bytes[n - 8..]))
    } else {
        !word_needs_escape(word(bytes))
    }
}

/// A JSON string literal, escaped as serde_json escapes it.
fn push_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if is_clean(bytes) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    // Fast path: skip whole blocks that need no escape (most values have none).
    let mut i = clean_prefix(bytes);
    while i + 8 <= bytes.len() {
        let w = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        if word_needs_escape(w) {
            break;
        }
        i += 8;
    }
    let mut start = 0;
    while i < bytes.len() {
        let esc = ESCAPE[bytes[i] as usize];
        if esc == 0 {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let c = bytes[i];
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(c >> 4) as usize],
                    HEX[(c & 0xf) as usize],
                ]);
            }
            e => out.extend_from_slice(&[b'\\', e]),
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[inline]
fn two(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
}

/// RFC 3339 as chrono's serde form writes it (`SecondsFormat::AutoSi`, `Z` for UTC).
fn push_ts(out: &mut Vec<u8>, ts: &DateTime<FixedOffset>) {
    let local = ts.naive_local();
    let offset = ts.offset().local_minus_utc();
    let nanos = local.nanosecond();
    if !(0..=9999).contains(&local.year()) || offset % 60 != 0 || nanos >= 1_000_000_000 {
        // Rare shapes: let chrono write them.
        let quoted = serde_json::to_vec(ts).expect("a timestamp always serialises");
        out.extend_from_slice(&quoted[1..quoted.len() - 1]);
        return;
    }
    // `yyyy-mm-ddThh:mm:ss`, assembled on the stack and appended at once.
    let y = local.year() as u32;
    let d = |n: u32| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    let [y0, y1] = d(y / 100);
    let [y2, y3] = d(y % 100);
    let [mo0, mo1] = d(local.month());
    let [d0, d1] = d(local.day());
    let [h0, h1] = d(local.hour());
    let [mi0, mi1] = d(local.minute());
    let [s0, s1] = d(local.second());
    out.extend_from_slice(&[
        y0, y1, y2, y3, b'-', mo0, mo1, b'-', d0, d1, b'T', h0, h1, b':', mi0, mi1, b':', s0, s1,
    ]);
    if nanos != 0 {
        let (digits, value) = if nanos.is_multiple_of(1_000_000) {
            (3, nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            (6, nanos / 1_000)
        } else {
            (9, nanos)
        };
        out.push(b'.');
        let mut buf = [b'0'; 9];
        let mut v = value;
        for slot in buf[..digits].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&buf[..digits]);
    }
    if offset == 0 {
        out.push(b'Z');
        return;
    }
    let (sign, abs) = if offset < 0 {
        (b'-', -offset)
    } else {
        (b'+', offset)
    };
    out.push(sign);
    two(out, (abs / 3600) as u32);
    out.push(b':');
    two(out, (abs / 60 % 60) as u32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Label, Shared, SCHEMA_VERSION};
    use chrono::TimeZone;

    fn same_as_serde(ev: &VisitEvent) {
        let mut ours = Vec::new();
        ev.write_json_line(&mut ours);
        let mut theirs = serde_json::to_vec(ev).unwrap();
        theirs.push(b'\n');
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    fn base() -> VisitEvent {
        VisitEvent {
            v: SCHEMA_VERSION,
            event_id: "00112233445566778899aabbccddeeff".into(),
            ts: DateTime::parse_from_rfc3339("2013-11-17T16:00:08-05:00").unwrap(),
            site: "example.org".into(),
            visitor_id: "0011223344556677".into(),
            path: "/".into(),
            route: "/".into(),
            status: 200,
            referrer_medium: Label::Borrowed("direct"),
            device: Label::Borrowed("desktop"),
            kind: Label::Borrowed("page"),
            source: "stdin".into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_field_set_matches_serde_json() {
        let s = |x: &str| Some(x.to_string());
        let ev = VisitEvent {
            host: s("www.example.org"),
            client_net: s("203.0.113.0/24"),
            client_ip: s("203.0.113.9"),
            method: s("GET"),
            query: s("a=1&b=\"2\""),
            protocol: s("HTTP/1.1"),
            bytes: Some(u64::MAX),
            duration_ms: Some(12.5),
            upstream: s("10.0.0.1:8080"),
            referrer: s("https://www.google.com/search?q=x"),
            referrer_host: s("www.google.com"),
            referrer_source: Some(Label::Borrowed("Google")),
            search_terms: s("x y"),
            site_search: s("shoes"),
            utm_source: s("news"),
            utm_medium: s("email"),
            utm_campaign: s("spring"),
            utm_term: s("t"),
            utm_content: s("c"),
            browser: Some(Shared::from("Firefox")),
            browser_version: Some(Shared::from("120")),
            os: Some(Shared::from("Linux")),
            is_bot: true,
            bot_name: Some(Shared::from("Googlebot")),
            is_pageview: true,
            offset: 987_654_321,
            ..base()
        };
        same_as_serde(&ev);
        same_as_serde(&base());
    }

    #[test]
    fn integers_match_serde_json() {
        for n in [
            0u64,
            1,
            9,
            10,
            42,
            99,
            100,
            404,
            999,
            1000,
            13_358,
            u64::MAX,
        ] {
            same_as_serde(&VisitEvent {
                bytes: Some(n),
                offset: n,
                status: u16::try_from(n).unwrap_or(599),
                ..base()
            });
        }
    }

    #[test]
    fn escapes_match_serde_json() {
        let mut all = String::new();
        for c in 0u32..0x80 {
            all.push(char::from_u32(c).unwrap());
        }
        all.push_str("é😀\u{2028}\u{7f}");
        for path in [
            all.as_str(),
            "\"",
            "\\",
            "0123456\"",
            "01234567\\x",
            "abcdefgh\u{1}",
            "abcdefghijklmnop\n",
            "",
        ] {
            same_as_serde(&VisitEvent {
                path: path.to_string(),
                ..base()
            });
        }
        // Every position relative to the 16-, 8- and 4-byte blocks of the fast paths.
        for len in (1..=18).chain([24, 31, 32, 33, 40]) {
            for pos in 0..len {
                for c in ['"', '\\', '\u{1}', '\u{1f}', '\u{7f}', ' ', 'é'] {
                    let mut v: Vec<char> = vec!['a'; len];
                    v[pos] = c;
                    same_as_serde(&VisitEvent {
                        path: v.into_iter().collect(),
                        ..base()
                    });
                }
            }
        }
    }

    #[test]
    fn timestamps_and_floats_match_serde_json() {
        let offsets = [
            0,
            3600,
            -5 * 3600,
            5 * 3600 + 30 * 60,
            -(9 * 3600 + 45 * 60),
            14 * 3600,
            37,
        ];
        let nanos = [
            0,
            1_000_000,
            120_000_000,
            5_000,
            123_456_000,
            1,
            999_999_999,
            1_500_000_000,
        ];
        for (i, off) in offsets.iter().enumerate() {
            let tz = FixedOffset::east_opt(*off).unwrap();
            for (j, n) in nanos.iter().enumerate() {
                for year in [1, 999, 1970, 2024, 9999, 10000, -5] {
                    let Some(d) = chrono::NaiveDate::from_ymd_opt(
                        year,
                        1 + (i as u32 % 12),
                        1 + (j as u32 * 3 % 28),
                    ) else {
                        continue;
                    };
                    let sec = if *n >= 1_000_000_000 {
                        59
                    } else {
                        (i * 7 + j) as u32 % 60
                    };
                    let Some(naive) = d.and_hms_nano_opt(23, 59, sec, *n) else {
                        continue;
                    };
                    let ts = tz.from_local_datetime(&naive).unwrap();
                    same_as_serde(&VisitEvent { ts, ..base() });
                }
            }
        }
        for d in [
            2011.0000000000002,
            0.1 + 0.2,
            1e-7,
            123456.789,
            0.0,
            -0.0,
            5e300,
            1e16,
            f64::NAN,
            f64::INFINITY,
        ] {
            same_as_serde(&VisitEvent {
                duration_ms: Some(d),
                ..base()
            });
        }
    }
}
