//! A direct parser for the CLF family's usual layout: `combined`, `common`,
//! `vcombined` and `vcommon` as nginx and Apache write them.
//!
//! [`TemplateFormat`](super::TemplateFormat) recognises these layouts when it
//! is compiled and tries [`parse`] first. It walks the line with fixed steps
//! instead of interpreting the template, and handles only well-formed lines:
//! single spaces between fields, no backslash inside a quoted field, and each
//! quoted field closed where the layout expects it. Anything else (padding,
//! escapes, a quote inside a user agent, a cut-off line, a bad number) makes
//! it return `None`, and the template parser takes the line as before. So a
//! line it accepts gives exactly the record the template parser would give:
//! the test `fast_path_agrees_with_the_template_parser` checks that on every
//! fixture line and on generated variants of them.

use std::borrow::Cow;

use memchr::memchr2;

use super::fields::{fill_request, parse_status};
use super::template::find_byte;
use super::time::{parse_clf_time_with, ClfDay};
use crate::record::{dash_none, RawRecord};

/// Which of the CLF layouts a template is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// A leading `host:port ` (the `v` presets).
    pub vhost: bool,
    /// `"referrer" "user agent"` after the byte count (the `combined` presets).
    pub combined: bool,
}

/// The field or `None` for `-` and empty, borrowed from the line.
#[inline]
fn value(line: &str, from: usize, to: usize) -> Option<Cow<'_, str>> {
    dash_none(&line[from..to]).map(Cow::Borrowed)
}

/// The end of a quoted value that starts at `from`: the first quote, when no
/// backslash comes before it and `after` follows it. `None` otherwise (the
/// template parser then decides).
#[inline]
fn quoted<const N: usize>(b: &[u8], from: usize, after: [u8; N]) -> Option<usize> {
    let at = from + memchr2(b'"', b'\\', &b[from..])?;
    (b[at] == b'"' && starts_with(&b[at + 1..], after)).then_some(at)
}

/// `b.starts_with(prefix)` without a call to `memcmp`, which costs more than
/// comparing these few bytes.
#[inline]
fn starts_with<const N: usize>(b: &[u8], prefix: [u8; N]) -> bool {
    b.get(..N)
        .is_some_and(|head| head.iter().zip(prefix).all(|(x, y)| *x == y))
}

/// Parse one line of the given layout, or `None` when it is not plainly in
/// that layout (see the module docs).
pub(crate) fn parse<'a>(shape: Shape, line: &'a str, day: &mut ClfDay) -> Option<RawRecord<'a>> {
    let b = line.as_bytes();
    let mut rec = RawRecord::default();
    let mut pos = 0;
    if shape.vhost {
        let colon = find_byte(b':', b, 0)?;
        rec.host = value(line, 0, colon);
        let space = find_byte(b' ', b, colon + 1)?;
        pos = space + 1;
    }
    // `client - user [time] "request" status bytes`
    let end = find_byte(b' ', b, pos)?;
    rec.client = value(line, pos, end);
    if !starts_with(&b[end..], *b" - ") {
        return None;
    }
    pos = end + 3;
    let end = find_byte(b' ', b, pos)?;
    rec.user = value(line, pos, end);
    if !starts_with(&b[end..], *b" [") {
        return None;
    }
    pos = end + 2;
    let end = find_byte(b']', b, pos)?;
    let time = line[pos..end].trim_start_matches('[');
    rec.ts = Some(parse_clf_time_with(time, day)?);
    if !starts_with(&b[end..], *b"] \"") {
        return None;
    }
    pos = end + 3;
    let end = quoted(b, pos, *b" ")?;
    fill_request(Cow::Borrowed(&line[pos..end]), &mut rec);
    pos = end + 2;
    let end = find_byte(b' ', b, pos)?;
    rec.status = Some(parse_status(&line[pos..end]).ok()?);
    pos = end + 1;
    let end = if shape.combined {
        find_byte(b' ', b, pos)?
    } else {
        find_byte(b' ', b, pos).unwrap_or(b.len())
    };
    if let Some(bytes) = dash_none(&line[pos..end]) {
        rec.bytes = Some(bytes.parse().ok()?);
    }
    if !shape.combined {
        return Some(rec);
    }
    // ` "referrer" "user agent"`, then anything.
    if !starts_with(&b[end..], *b" \"") {
        return None;
    }
    pos = end + 2;
    let end = quoted(b, pos, *b" \"")?;
    rec.referrer = value(line, pos, end);
    pos = end + 3;
    let end = quoted(b, pos, [])?;
    rec.user_agent = value(line, pos, end);
    Some(rec)
}
