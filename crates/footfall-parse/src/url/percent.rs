//! Percent-decoding (`%XX`, and `+` as a space in query strings): the one
//! decoder every format and URL piece uses.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

/// Decodes `%XX` escapes (and `+` as a space when `plus_as_space`).
///
/// Malformed escapes (`%`, `%4`, `%zz`) are kept literally. A decoded byte
/// sequence that is not valid UTF-8 has each invalid sequence replaced by
/// U+FFFD. Borrowed when nothing was decoded.
///
/// ```
/// use footfall_parse::url::percent_decode_lossy;
/// assert_eq!(percent_decode_lossy("a%20b+c", true), "a b c");
/// assert_eq!(percent_decode_lossy("caf%C3%A9%FF", false), "café\u{FFFD}");
/// ```
pub fn percent_decode_lossy(s: &str, plus_as_space: bool) -> Cow<'_, str> {
    let bytes = s.as_bytes();
    let first = if plus_as_space {
        memchr2(b'%', b'+', bytes)
    } else {
        memchr(b'%', bytes)
    };
    let Some(first) = first else {
        return Cow::Borrowed(s);
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut changed = false;
    let mut i = first;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match decode_escape(bytes, i) {
                Some(b) => {
                    out.push(b);
                    changed = true;
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' if plus_as_space => {
                out.push(b' ');
                changed = true;
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// Decodes `%XX` escapes (not `+`) into bytes, with, for each decoded byte,
/// the offset in `s` it came from, plus `s.len()` at the end: decoded bytes
/// `i..j` came from `s[origin[i]..origin[j]]`. Malformed escapes are kept.
pub(crate) fn percent_decode_mapped(s: &str) -> (Vec<u8>, Vec<usize>) {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut origin = Vec::with_capacity(bytes.len() + 1);
    let mut i = 0;
    while i < bytes.len() {
        origin.push(i);
        let escaped = if bytes[i] == b'%' {
            decode_escape(bytes, i)
        } else {
            None
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    origin.push(bytes.len());
    (out, origin)
}

/// Value of the `%XX` escape at `bytes[i]`, if well-formed.
#[inline]
pub(super) fn decode_escape(bytes: &[u8], i: usize) -> Option<u8> {
    let hi = hex_val(*bytes.get(i + 1)?)?;
    let lo = hex_val(*bytes.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

/// The value of one hex digit.
#[inline]
pub(crate) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// [`percent_decode_lossy`] of a value that may already be owned: borrowed
/// values stay borrowed when nothing was decoded.
pub(crate) fn percent_decode_cow(v: Cow<'_, str>, plus_as_space: bool) -> Cow<'_, str> {
    match v {
        Cow::Borrowed(s) => percent_decode_lossy(s, plus_as_space),
        Cow::Owned(s) => match percent_decode_lossy(&s, plus_as_space) {
            Cow::Borrowed(_) => Cow::Owned(s),
            Cow::Owned(d) => Cow::Owned(d),
        },
    }
}
