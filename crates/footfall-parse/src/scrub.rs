//! Content detectors: personal data and secrets recognised by what they look
//! like, wherever they stand, and replaced by a typed placeholder.
//!
//! Parameter names say little (`cronKey`, `wp_scrape_nonce` and `uid` are
//! secrets no name list foresaw), so every piece of a URL that leaves the
//! parser is also scrubbed by its content. [`find`] reports the findings in a
//! text; [`scrub_text`] and [`scrub_component`] replace each by its
//! [`Kind::placeholder`]; dead letters ([`crate::dead_letter::scrub_line`],
//! through [`scrub_encoded`]) replace addresses by their network instead
//! ([`IpAs::Network`]).
//!
//! | kind | placeholder | what is found |
//! |---|---|---|
//! | e-mail address | `:email` | `local@domain.tld` (`%40` too, in URL pieces); not `logo@2x.png`, not `pkg@1.2.3` |
//! | IP address | `:ip` | IPv4 `a.b.c.d` (but not a version `name-3.6.2.2`); IPv6 in every textual form (compressed, IPv4-mapped, with a zone `%eth0`, inside brackets) |
//! | UUID | `:uuid` | `8-4-4-4-12` hex digits |
//! | JWT | `:jwt` | `eyJ…` header of 16+ characters, payload and (possibly empty) signature, dot-separated |
//! | cloud key id | `:key` | AWS `AKIA`/`ASIA`/… + 16, Google `AIza` + 35, GitHub `ghp_` …, Slack `xox?-`, Stripe `sk_live_` … |
//! | hex token | `:hex` | 16 or more hex digits, with both a decimal digit and a letter |
//! | opaque token | `:token` | 20 or more base64/base64url characters with upper case, lower case and digits, few separators, that cut like camel case give a part per three characters or more (random; not `TWikiUpgradeTo01May2000`, not `LG-K8-2017-Dual-16GB-4G`) |
//! | phone number | `:phone` | `+` then 9 to 15 digits, with single separators (space, `-`, `.`, `/`, `+`, brackets) |
//! | payment card | `:card` | 13 to 19 digits starting with 3–6 that pass the Luhn check, whole or in groups of four |
//!
//! A finding stands on its own: a character next to it that could continue it
//! (a letter or digit next to an address, a hex digit next to a hash) means it
//! is part of something longer and is not one.
//!
//! # Contract
//!
//! * Total: any input, no panic. Findings never overlap and lie on character
//!   boundaries; where two detectors claim the same bytes, the earlier row of
//!   the table wins.
//! * Idempotent: a placeholder holds no digit, `@` or hex run, and a text is
//!   scrubbed until nothing is left to find, so scrubbing a scrubbed text
//!   changes nothing.
//! * Ordinary text is left alone: words, slugs, numbers of up to 12 digits,
//!   dates, times (`10:00:00`, `17/May/2015:10:05:03 +0000`), three-part
//!   versions, hashes shorter than 16 hex digits, file names.
//! * Cheap when there is nothing to find: texts under six bytes without a
//!   colon are let through at once, and one pass over the bytes of the others
//!   (their profile: `@`, colons, dots, digit runs, longest word and hex run)
//!   decides which detectors could match at all; for most paths none or one
//!   runs. The pipeline runs this only when its memo misses.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use memchr::{memchr, memchr_iter};

use crate::privacy::{self, PrivacyConfig};
use crate::url;

/// What a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An e-mail address (`local@domain.tld`, `%40` too in URL pieces).
    Email,
    /// An IP address, with the address it spells.
    Ip(IpAddr),
    /// A UUID: `8-4-4-4-12` hex digits.
    Uuid,
    /// A JSON Web Token: `eyJ…` header, payload and signature.
    Jwt,
    /// A cloud or SaaS credential id.
    Key,
    /// 16 or more hex digits, with both a decimal digit and a letter.
    Hex,
    /// A random-looking base64/base64url token of 20 or more characters.
    Token,
    /// An international phone number: `+` then 9 to 15 digits.
    Phone,
    /// A payment card number that passes the Luhn check.
    Card,
}

impl Kind {
    /// The placeholder that replaces a finding of this kind.
    pub const fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => ":email",
            Kind::Ip(_) => ":ip",
            Kind::Uuid => ":uuid",
            Kind::Jwt => ":jwt",
            Kind::Key => ":key",
            Kind::Hex => ":hex",
            Kind::Token => ":token",
            Kind::Phone => ":phone",
            Kind::Card => ":card",
        }
    }
}

/// One finding: what it is and where, as a byte range of the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub kind: Kind,
    /// Byte offset of its first byte.
    pub start: usize,
    /// Byte offset just past its last byte.
    pub end: usize,
}

/// What an IP address found in a text becomes.
#[derive(Debug, Clone, Copy)]
pub enum IpAs<'a> {
    /// `:ip`.
    Placeholder,
    /// The first address of its network under these prefix lengths
    /// (`203.0.113.77` → `203.0.113.0`), so a line stays parseable; `:ip`
    /// when networks are dropped.
    Network(&'a PrivacyConfig),
}

/// The findings in `text`, in order.
///
/// ```
/// use footfall_parse::scrub::{find, Kind};
/// let f = find(b"/u/jane@example.org/2001:db8::47");
/// assert_eq!(f[0].kind, Kind::Email);
/// assert!(matches!(f[1].kind, Kind::Ip(_)));
/// assert!(find(b"/blog/2015/05/17/hello-world.html").is_empty());
/// ```
pub fn find(text: &[u8]) -> Vec<Finding> {
    scan(text, true)
}

/// The kind of the one finding that covers all of `raw`, a piece of a URL
/// as logged (`%XX` escapes are seen through), if there is one: route
/// templates classify whole path segments this way.
pub fn whole(raw: &str) -> Option<Kind> {
    let decoded = match memchr(b'%', raw.as_bytes()) {
        Some(_) => Cow::Owned(url::percent_decode_mapped(raw).0),
        None => Cow::Borrowed(raw.as_bytes()),
    };
    match find(&decoded).as_slice() {
        [f] if f.start == 0 && f.end == decoded.len() => Some(f.kind),
        _ => None,
    }
}

/// Replaces every finding in plain text (a decoded search term, a campaign
/// value) by its placeholder. Borrowed when nothing was found.
///
/// ```
/// use footfall_parse::scrub::scrub_text;
/// assert_eq!(scrub_text("call +49 170 1234567 or jane@example.org"), "call :phone or :email");
/// assert!(matches!(scrub_text("red shoes 42"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn scrub_text(text: &str) -> Cow<'_, str> {
    if too_short(text) {
        return Cow::Borrowed(text);
    }
    until_settled(text, |t| plain(t, IpAs::Placeholder))
}

/// True for a text too short to hold a finding: every kind needs six bytes
/// or more but an IPv6 address (`::1`), which needs a colon. (A query's
/// names and values are mostly this short.)
fn too_short(text: &str) -> bool {
    text.len() < 6 && memchr(b':', text.as_bytes()).is_none()
}

/// One pass over text read as it is.
fn plain<'a>(text: &'a str, ip: IpAs<'_>) -> Cow<'a, str> {
    let findings = find(text.as_bytes());
    replace(text, &findings, |f| (f.start, f.end), ip)
}

/// Replaces every finding in a piece of a URL as logged (a path, a query
/// parameter's name or value, a fragment) by its placeholder; see
/// [`scrub_encoded`].
///
/// ```
/// use footfall_parse::scrub::scrub_component;
/// assert_eq!(scrub_component("/users/jane%40example.org/caf%C3%A9"), "/users/:email/caf%C3%A9");
/// ```
pub fn scrub_component(raw: &str) -> Cow<'_, str> {
    scrub_encoded(raw, IpAs::Placeholder)
}

/// Replaces every finding in text that may hold `%XX` escapes (URL pieces,
/// whole log lines), addresses as `ip` says. The detectors read the decoded
/// bytes, and the escapes a finding came from are replaced with it;
/// everything else keeps its encoding byte for byte. `+` is read as itself
/// (in a query it may stand for a space or for a literal `+`; both are
/// looked for). Borrowed when nothing was found.
pub fn scrub_encoded<'a>(raw: &'a str, ip: IpAs<'_>) -> Cow<'a, str> {
    until_settled(raw, |raw| encoded_pass(raw, ip))
}

/// One pass of [`scrub_encoded`], for callers that settle a larger chain of
/// steps themselves ([`crate::dead_letter::scrub_line`]).
pub(crate) fn encoded_pass<'a>(raw: &'a str, ip: IpAs<'_>) -> Cow<'a, str> {
    // Decoding only shortens a text.
    if too_short(raw) {
        return Cow::Borrowed(raw);
    }
    if memchr(b'%', raw.as_bytes()).is_none() {
        return plain(raw, ip);
    }
    let (decoded, origin) = url::percent_decode_mapped(raw);
    let findings = find(&decoded);
    replace(raw, &findings, |f| (origin[f.start], origin[f.end]), ip)
}

/// `pass` applied until it changes nothing. A replacement can complete a
/// neighbour (a token cut short by a hash next to it is whole once the hash
/// is a placeholder), so one pass is not always idempotent; a second pass,
/// which runs only when the first found something, settles real text.
/// Bounded, as every pass must be cheap.
pub(crate) fn until_settled<'a>(
    text: &'a str,
    pass: impl Fn(&str) -> Cow<'_, str>,
) -> Cow<'a, str> {
    let mut out = match pass(text) {
        Cow::Borrowed(_) => return Cow::Borrowed(text),
        Cow::Owned(o) => o,
    };
    for _ in 0..3 {
        match pass(&out) {
            Cow::Borrowed(_) => break,
            Cow::Owned(next) => out = next,
        }
    }
    Cow::Owned(out)
}

/// Writes `text` with each finding's span (in `text` coordinates, by `span`)
/// replaced. Borrowed when no replacement differs from what it replaces (an
/// address that already is its network's first address).
fn replace<'a>(
    text: &'a str,
    findings: &[Finding],
    span: impl Fn(&Finding) -> (usize, usize),
    ip: IpAs<'_>,
) -> Cow<'a, str> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    for f in findings {
        let (start, end) = span(f);
        let (start, end) = (floor_char(text, start), ceil_char(text, end));
        if start < copied {
            continue;
        }
        let with: Cow<'_, str> = match (f.kind, ip) {
            (Kind::Ip(addr), IpAs::Network(cfg)) => match privacy::network(addr, cfg) {
                Some((net, _)) => Cow::Owned(net.to_string()),
                None => Cow::Borrowed(f.kind.placeholder()),
            },
            (kind, _) => Cow::Borrowed(kind.placeholder()),
        };
        if with == text[start..end] {
            continue;
        }
        let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
        buf.push_str(&text[copied..start]);
        buf.push_str(&with);
        copied = end;
    }
    match out {
        Some(mut buf) => {
            buf.push_str(&text[copied..]);
            Cow::Owned(buf)
        }
        None => Cow::Borrowed(text),
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// What one pass over a text says about which detectors could match.
#[derive(Debug, Default, Clone, Copy)]
struct Profile {
    at: bool,
    colons: u32,
    dots: u32,
    digits: u32,
    /// Longest run of [`is_word`] bytes.
    longest_word: u32,
    /// Longest run of hex digits.
    longest_hex: u32,
    /// Most digits in a run of digit groups joined by single ` `, `-`, `+`.
    card_digits: u32,
    /// Most digits after a `+`, through digits and phone separators.
    phone_digits: u32,
}

/// Byte classes for [`Profile::of`]: one table lookup per byte.
const DIGIT: u8 = 1;
const HEX: u8 = 2;
const WORD: u8 = 4;
const AT: u8 = 8;
const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let mut k = 0;
        if b.is_ascii_digit() {
            k |= DIGIT;
        }
        if b.is_ascii_hexdigit() {
            k |= HEX;
        }
        if is_word(b) {
            k |= WORD;
        }
        if b == b'@' {
            k |= AT;
        }
        t[c] = k;
        c += 1;
    }
    t
};

impl Profile {
    /// One branch-free pass for the counts and runs; the digit runs of
    /// cards and phones only when there are digits enough for one.
    fn of(b: &[u8]) -> Profile {
        let (mut word, mut hex, mut longest_word, mut longest_hex) = (0u32, 0u32, 0, 0);
        let (mut digits, mut colons, mut dots, mut any) = (0u32, 0u32, 0u32, 0u8);
        for &c in b {
            let k = CLASSES[usize::from(c)];
            any |= k;
            word = (word + 1) * u32::from(k & WORD != 0);
            hex = (hex + 1) * u32::from(k & HEX != 0);
            longest_word = longest_word.max(word);
            longest_hex = longest_hex.max(hex);
            digits += u32::from(k & DIGIT);
            colons += u32::from(c == b':');
            dots += u32::from(c == b'.');
        }
        let mut p = Profile {
            at: any & AT != 0,
            colons,
            dots,
            digits,
            longest_word,
            longest_hex,
            ..Profile::default()
        };
        if digits >= 9 {
            (p.card_digits, p.phone_digits) = digit_runs(b);
        }
        p
    }
}

/// Most digits in a run of digit groups joined by single ` `, `-` or `+`,
/// and most digits after a `+` through digits and phone separators.
fn digit_runs(b: &[u8]) -> (u32, u32) {
    let (mut card, mut phone, mut most_card, mut most_phone) = (0, None::<u32>, 0, 0);
    let mut prev = 0u8;
    for &c in b {
        card = match c {
            b'0'..=b'9' => card + 1,
            b' ' | b'-' | b'+' if prev.is_ascii_digit() => card,
            _ => 0,
        };
        phone = match c {
            b'0'..=b'9' => phone.map(|n| n + 1),
            b'+' => phone.or(Some(0)),
            b' ' | b'-' | b'.' | b'(' | b')' | b'/' => phone,
            _ => None,
        };
        most_card = most_card.max(card);
        most_phone = most_phone.max(phone.unwrap_or(0));
        prev = c;
    }
    (most_card, most_phone)
}

/// The findings of every detector, in table order of precedence; with
/// `gated`, detectors the [`Profile`] rules out are skipped (which must not
/// change the result: see the tests).
fn scan(b: &[u8], gated: bool) -> Vec<Finding> {
    let p = Profile::of(b);
    let all = !gated;
    let mut hits = Hits(Vec::new());
    if all || p.at {
        emails(b, &mut hits);
    }
    if all || (p.longest_word >= 16 && p.dots >= 2) {
        jwts(b, &mut hits);
    }
    if all || p.longest_word >= 16 {
        keys(b, &mut hits);
    }
    if all || p.longest_word >= 36 {
        uuids(b, &mut hits);
    }
    if all || p.colons >= 2 {
        ipv6s(b, &mut hits);
    }
    if all || (p.dots >= 3 && p.digits >= 4) {
        ipv4s(b, &mut hits);
    }
    if all || p.phone_digits >= 9 {
        phones(b, &mut hits);
    }
    if all || p.card_digits >= 13 {
        cards(b, &mut hits);
    }
    if all || p.longest_hex >= 16 {
        hexes(b, &mut hits);
    }
    if all || p.longest_word >= 20 {
        tokens(b, &mut hits);
    }
    hits.0.sort_unstable_by_key(|f| f.start);
    hits.0
}

/// Findings so far; a new one that overlaps one of them is dropped.
struct Hits(Vec<Finding>);

impl Hits {
    fn free(&self, start: usize, end: usize) -> bool {
        self.0.iter().all(|h| end <= h.start || h.end <= start)
    }

    fn push(&mut self, kind: Kind, start: usize, end: usize) {
        if start < end && self.free(start, end) {
            self.0.push(Finding { kind, start, end });
        }
    }
}

#[inline]
fn is_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// Bytes of base64/base64url words: letters, digits, `-`, `_`, `+`.
#[inline]
const fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'+')
}

#[inline]
fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_')
}

/// Bytes from `b[from]` on that satisfy `pred`.
#[inline]
fn run(b: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> usize {
    b.get(from..)
        .map_or(0, |rest| rest.iter().take_while(|&&c| pred(c)).count())
}

/// True when `b[i]` exists and is a letter or digit (so a finding ending
/// before `i`, or starting after it, would be part of something longer).
#[inline]
fn alnum_at(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(|&c| is_alnum(c))
}

/// True when the byte before `i` is a letter or digit.
#[inline]
fn alnum_before(b: &[u8], i: usize) -> bool {
    i > 0 && is_alnum(b[i - 1])
}

// ---------------------------------------------------------------- e-mail

fn emails(b: &[u8], hits: &mut Hits) {
    let is_local =
        |c: u8| is_alnum(c) || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-' | b'\'') || c >= 0x80;
    let is_domain = |c: u8| is_alnum(c) || matches!(c, b'.' | b'-') || c >= 0x80;
    for at in memchr_iter(b'@', b) {
        let mut start = at - run_back(b, at, is_local);
        while start < at && b[start] == b'.' {
            start += 1;
        }
        let mut end = at + 1 + run(b, at + 1, is_domain);
        while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if start < at && is_mail_domain(&b[at + 1..end]) {
            hits.push(Kind::Email, start, end);
        }
    }
}

/// Bytes before `b[to]` that satisfy `pred`.
fn run_back(b: &[u8], to: usize, pred: impl Fn(u8) -> bool) -> usize {
    b[..to].iter().rev().take_while(|&&c| pred(c)).count()
}

/// A domain an address can be at: two or more non-empty labels, a top-level
/// label of letters (ASCII, `xn--` or non-ASCII; a single letter only when
/// no label is a number), at most one all-digit label (`jane@163.com`, not
/// `pkg@1.0.0-beta.js`), and not a retina asset suffix (`logo@2x.png`).
fn is_mail_domain(d: &[u8]) -> bool {
    let labels: Vec<&[u8]> = d.split(|&c| c == b'.').collect();
    let [head_labels @ .., tld] = labels.as_slice() else {
        return false;
    };
    if d.len() < 4 || head_labels.is_empty() || labels.iter().any(|l| l.is_empty()) {
        return false;
    }
    let numeric = labels
        .iter()
        .filter(|l| l.iter().all(u8::is_ascii_digit))
        .count();
    // One letter only in a name cut short (`arobin@shaw.c`), not `vue@2.x`.
    let tld_ok = (tld.len() >= 2 || numeric == 0)
        && (tld.iter().all(u8::is_ascii_alphabetic)
            || tld.iter().all(|&c| c >= 0x80)
            || (tld.starts_with(b"xn--") && tld.len() > 4));
    let head = &d[..d.len() - tld.len() - 1];
    let retina = matches!(head, [scale @ .., b'x'] if !scale.is_empty()
        && scale.iter().all(|&c| c.is_ascii_digit() || c == b'.'));
    tld_ok && numeric <= 1 && !retina
}

// ---------------------------------------------------------------- JWT, keys, UUIDs

fn jwts(b: &[u8], hits: &mut Hits) {
    for start in memchr_iter(b'e', b) {
        if !b[start..].starts_with(b"eyJ") || (start > 0 && is_b64url(b[start - 1])) {
            continue;
        }
        let header = start + run(b, start, is_b64url);
        if header - start < 16 || b.get(header) != Some(&b'.') {
            continue;
        }
        let payload = header + 1 + run(b, header + 1, is_b64url);
        if payload == header + 1 || b.get(payload) != Some(&b'.') {
            continue;
        }
        let end = payload + 1 + run(b, payload + 1, is_b64url);
        hits.push(Kind::Jwt, start, end);
    }
}

/// One credential id shape: its prefix, the characters after it, how many.
struct KeyShape {
    prefix: &'static [u8],
    body: fn(u8) -> bool,
    min: usize,
    max: usize,
}

const fn key(prefix: &'static [u8], body: fn(u8) -> bool, min: usize, max: usize) -> KeyShape {
    KeyShape {
        prefix,
        body,
        min,
        max,
    }
}

/// Credential ids by prefix (16 or more characters in all, as [`keys`] and
/// the profile's gate assume): AWS access key ids (`AKIA` long-term, `ASIA`
/// temporary, and the other unique-id prefixes), Google API keys, GitHub
/// tokens, Slack tokens, Stripe secret and restricted keys.
const KEYS: &[KeyShape] = &[
    key(b"AKIA", upper_digit, 16, 16),
    key(b"ASIA", upper_digit, 16, 16),
    key(b"AIDA", upper_digit, 16, 16),
    key(b"AROA", upper_digit, 16, 16),
    key(b"AGPA", upper_digit, 16, 16),
    key(b"ANPA", upper_digit, 16, 16),
    key(b"ANVA", upper_digit, 16, 16),
    key(b"AIPA", upper_digit, 16, 16),
    key(b"ABIA", upper_digit, 16, 16),
    key(b"ACCA", upper_digit, 16, 16),
    key(b"AIza", is_b64url, 35, 35),
    key(b"ghp_", is_alnum, 36, 36),
    key(b"gho_", is_alnum, 36, 36),
    key(b"ghu_", is_alnum, 36, 36),
    key(b"ghs_", is_alnum, 36, 36),
    key(b"ghr_", is_alnum, 36, 36),
    key(b"github_pat_", alnum_underscore, 22, 255),
    key(b"xoxb-", alnum_dash, 11, 255),
    key(b"xoxp-", alnum_dash, 11, 255),
    key(b"xoxa-", alnum_dash, 11, 255),
    key(b"xoxr-", alnum_dash, 11, 255),
    key(b"xoxs-", alnum_dash, 11, 255),
    key(b"xoxe-", alnum_dash, 11, 255),
    key(b"sk_live_", is_alnum, 16, 255),
    key(b"rk_live_", is_alnum, 16, 255),
    key(b"sk_test_", is_alnum, 16, 255),
    key(b"rk_test_", is_alnum, 16, 255),
];

fn upper_digit(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

fn alnum_underscore(c: u8) -> bool {
    is_alnum(c) || c == b'_'
}

fn alnum_dash(c: u8) -> bool {
    is_alnum(c) || c == b'-'
}

fn keys(b: &[u8], hits: &mut Hits) {
    for i in 0..b.len().saturating_sub(15) {
        // The first two bytes of some prefix in [`KEYS`].
        let start = matches!(
            (b[i], b[i + 1]),
            (b'A', b'K' | b'S' | b'I' | b'R' | b'G' | b'N' | b'B' | b'C')
                | (b'g', b'h')
                | (b'x', b'o')
                | (b's' | b'r', b'k')
        );
        if !start || alnum_before(b, i) {
            continue;
        }
        for shape in KEYS {
            if !b[i..].starts_with(shape.prefix) {
                continue;
            }
            let body = i + shape.prefix.len();
            let n = run(b, body, shape.body);
            if (shape.min..=shape.max).contains(&n) && !alnum_at(b, body + n) {
                hits.push(Kind::Key, i, body + n);
            }
        }
    }
}

fn uuids(b: &[u8], hits: &mut Hits) {
    let mut i = 0;
    while i + 36 <= b.len() {
        if !alnum_before(b, i) && is_uuid(&b[i..i + 36]) && !alnum_at(b, i + 36) {
            hits.push(Kind::Uuid, i, i + 36);
            i += 36;
        } else {
            i += 1;
        }
    }
}

/// `8-4-4-4-12` hex digits, either case.
pub(crate) fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

// ---------------------------------------------------------------- IP addresses

fn ipv6s(b: &[u8], hits: &mut Hits) {
    let is_v6 = |c: u8| c.is_ascii_hexdigit() || matches!(c, b':' | b'.');
    let mut from = 0;
    while let Some(n) = memchr(b':', &b[from..]) {
        let colon = from + n;
        let start = colon - run_back(b, colon, is_v6);
        let end = colon + run(b, colon, is_v6);
        from = end.max(colon + 1);
        if let Some((addr, end)) = ipv6_at(b, start, end) {
            hits.push(Kind::Ip(IpAddr::V6(addr)), start, end);
        }
    }
}

/// The IPv6 address spelled by the run `b[start..end]` of hex digits, colons
/// and dots, and where it ends (after a zone id such as `%eth0`).
fn ipv6_at(b: &[u8], start: usize, end: usize) -> Option<(Ipv6Addr, usize)> {
    // A letter or digit next to the run makes it part of a word (`std::vec`).
    if alnum_before(b, start) || alnum_at(b, end) {
        return None;
    }
    let mut text = &b[start..end];
    while let [rest @ .., b'.'] = text {
        text = rest;
    }
    if text.iter().filter(|&&c| c == b':').count() < 2 {
        return None;
    }
    let parse = |t: &[u8]| std::str::from_utf8(t).ok()?.parse::<Ipv6Addr>().ok();
    let (addr, len) = match (parse(text), text) {
        (Some(addr), _) => (addr, text.len()),
        // `…::1:` at the end of a sentence or before a port separator.
        (None, [rest @ .., x, b':']) if *x != b':' => {
            (parse(&text[..=rest.len()])?, rest.len() + 1)
        }
        (None, _) => return None,
    };
    if addr.is_unspecified() {
        return None;
    }
    let stop = start + len;
    // A zone id: `fe80::1%eth0`.
    let zone = if b.get(stop) == Some(&b'%') {
        run(b, stop + 1, |c| {
            alnum_underscore(c) || matches!(c, b'.' | b'-')
        })
    } else {
        0
    };
    Some((addr, if zone > 0 { stop + 1 + zone } else { stop }))
}

fn ipv4s(b: &[u8], hits: &mut Hits) {
    let is_dotted = |c: u8| c.is_ascii_digit() || c == b'.';
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || alnum_before(b, i) || (i > 0 && b[i - 1] == b'.') {
            i += 1;
            continue;
        }
        let end = i + run(b, i, is_dotted);
        let mut text = &b[i..end];
        while let [rest @ .., b'.'] = text {
            text = rest;
        }
        // Four single digits after a name (`ckeditor-3.6.2.2`) are a version.
        let version = text.len() == 7 && i > 0 && matches!(b[i - 1], b'-' | b'_');
        if !alnum_at(b, end) && !version {
            if let Some(addr) = ipv4(text) {
                hits.push(Kind::Ip(IpAddr::V4(addr)), i, i + text.len());
            }
        }
        i = end;
    }
}

/// Exactly four dot-separated decimal octets of 1 to 3 digits each.
fn ipv4(text: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split(|&c| c == b'.');
    for o in &mut octets {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 {
            return None;
        }
        let v = p.iter().fold(0u16, |v, &d| v * 10 + u16::from(d - b'0'));
        *o = u8::try_from(v).ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

// ---------------------------------------------------------------- phones, cards

fn phones(b: &[u8], hits: &mut Hits) {
    for plus in memchr_iter(b'+', b) {
        if alnum_before(b, plus) || looks_like_utc_offset(&b[plus + 1..]) {
            continue;
        }
        if let Some(end) = phone_end(b, plus + 1) {
            hits.push(Kind::Phone, plus, end);
        }
    }
}

/// Where a phone number whose digits start at `b[from]` ends: 9 to 15
/// digits with at most two separators in a row; the longest such prefix
/// that ends a digit group.
fn phone_end(b: &[u8], from: usize) -> Option<usize> {
    let (mut i, mut digits, mut seps, mut best) = (from, 0, 0, None);
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            digits += 1;
            seps = 0;
            i += 1;
            if digits > 15 {
                break;
            }
            if digits >= 9 && !b.get(i).is_some_and(u8::is_ascii_digit) && !alnum_at(b, i) {
                best = Some(i);
            }
        } else if matches!(c, b' ' | b'-' | b'.' | b'(' | b')' | b'/' | b'+') && seps < 2 {
            if digits == 0 {
                return None;
            }
            seps += 1;
            i += 1;
        } else {
            break;
        }
    }
    best
}

/// `+HHMM ` as in the time of a log line (`+0200 404 123456` is not a phone).
fn looks_like_utc_offset(after_plus: &[u8]) -> bool {
    match after_plus {
        [h1, h2, m1, m2, rest @ ..] if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) => {
            let hours = (h1 - b'0') * 10 + (h2 - b'0');
            let minutes = [m1, m2];
            hours <= 14
                && matches!(
                    minutes,
                    [b'0', b'0'] | [b'1', b'5'] | [b'3', b'0'] | [b'4', b'5']
                )
                && !rest.first().is_some_and(u8::is_ascii_digit)
        }
        _ => false,
    }
}

fn cards(b: &[u8], hits: &mut Hits) {
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || alnum_before(b, i) {
            i += 1;
            continue;
        }
        let (groups, n) = digit_groups(b, i);
        if let Some(end) = card_end(b, i, &groups[..n]) {
            hits.push(Kind::Card, i, end);
        }
        i = groups[n - 1].0;
    }
}

/// Groups of digits from `b[start]` (a digit) on, joined by one separator
/// (space, `-` or `+`, the same each time): (end of group, digits in group),
/// at most 8, and how many.
fn digit_groups(b: &[u8], start: usize) -> ([(usize, usize); 8], usize) {
    let mut groups = [(0, 0); 8];
    let (mut n, mut pos, mut sep) = (0, start, None);
    while n < groups.len() {
        let len = run(b, pos, |c| c.is_ascii_digit());
        pos += len;
        groups[n] = (pos, len);
        n += 1;
        match b.get(pos) {
            Some(&c @ (b' ' | b'-' | b'+'))
                if sep.is_none_or(|s| s == c) && b.get(pos + 1).is_some_and(u8::is_ascii_digit) =>
            {
                sep = Some(c);
                pos += 1;
            }
            _ => break,
        }
    }
    (groups, n)
}

/// The end of the longest run of leading `groups` that is a card number:
/// 13 to 19 digits, whole or grouped in fours (or 4-6-5, 4-6-4), starting
/// with 3 to 6, passing the Luhn check, not followed by a letter or digit.
fn card_end(b: &[u8], start: usize, groups: &[(usize, usize)]) -> Option<usize> {
    (1..=groups.len()).rev().find_map(|k| {
        let lens = groups[..k].iter().map(|g| g.1);
        let total: usize = lens.clone().sum();
        let end = groups[k - 1].0;
        let grouped = match groups[..k] {
            [_] => true,
            [(_, 4), (_, 6), (_, 4 | 5)] => true,
            [.., (_, last)] => lens.take(k - 1).all(|l| l == 4) && (1..=4).contains(&last),
            [] => false,
        };
        let digits = b[start..end].iter().filter(|c| c.is_ascii_digit());
        (grouped
            && (13..=19).contains(&total)
            && (b'3'..=b'6').contains(&b[start])
            && !alnum_at(b, end)
            && luhn(digits.map(|c| c - b'0')))
        .then_some(end)
    })
}

/// The Luhn checksum of decimal digits (most significant first) is valid.
fn luhn(digits: impl DoubleEndedIterator<Item = u8>) -> bool {
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d) << (i % 2);
            d / 10 + d % 10
        })
        .sum();
    sum.is_multiple_of(10)
}

// ---------------------------------------------------------------- hex and opaque tokens

fn hexes(b: &[u8], hits: &mut Hits) {
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_hexdigit() || alnum_before(b, i) {
            i += 1;
            continue;
        }
        let end = i + run(b, i, |c| c.is_ascii_hexdigit());
        if !alnum_at(b, end) && is_long_hex(&b[i..end]) {
            hits.push(Kind::Hex, i, end);
        }
        i = end;
    }
}

/// At least 16 hex digits, with a decimal digit and a letter among them
/// (all-digit runs are numbers, all-letter runs words).
pub(crate) fn is_long_hex(b: &[u8]) -> bool {
    b.len() >= 16
        && b.iter().all(u8::is_ascii_hexdigit)
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
}

fn tokens(b: &[u8], hits: &mut Hits) {
    let is_sep = |c: &u8| matches!(c, b'-' | b'_' | b'+');
    let mut i = 0;
    while i < b.len() {
        if !is_word(b[i]) {
            i += 1;
            continue;
        }
        let end = i + run(b, i, is_word);
        let word = &b[i..end];
        let lead = word.iter().take_while(|c| is_sep(c)).count();
        let trail = word[lead..].iter().rev().take_while(|c| is_sep(c)).count();
        let (start, stop) = (i + lead, end - trail);
        if is_secret_token(&b[start..stop]) {
            // Base64 padding belongs to the token.
            let padded = stop + run(b, stop, |c| c == b'=').min(2);
            if !alnum_at(b, padded) {
                hits.push(Kind::Token, start, padded);
            }
        }
        i = end;
    }
}

/// A base64/base64url-looking token: 20 or more characters of `[A-Za-z0-9_+-]`
/// with upper case, lower case and digits, at most one separator (`-`, `_`,
/// `+`) per ten characters, that splits into at least one part per three
/// characters when cut like camel case (a part is a digit run, or letters
/// starting at a capital: `TWiki|Upgrade|To|01|May|2000`). Random tokens
/// split about every other character and rarely hold a separator; names in
/// camel case with a number (`TWikiUpgradeTo01May2000`) and slugs of model
/// numbers (`LG-K8-2017-Dual-16GB-4G`) do not pass.
pub(crate) fn is_secret_token(b: &[u8]) -> bool {
    if b.len() < 20 {
        return false;
    }
    // 0 separator, 1 digit, 2 lower, 3 upper.
    let class = |c: u8| match c {
        b'0'..=b'9' => Some(1u8),
        b'a'..=b'z' => Some(2),
        b'A'..=b'Z' => Some(3),
        b'-' | b'_' | b'+' => Some(0),
        _ => None,
    };
    let (mut seen, mut parts, mut seps, mut prev) = (0u8, 0usize, 0usize, 0u8);
    for (i, &c) in b.iter().enumerate() {
        let Some(now) = class(c) else {
            return false;
        };
        let next = b.get(i + 1).and_then(|&n| class(n)).unwrap_or(0);
        let starts = match (prev, now) {
            (_, 0) => false,
            (0, _) => true,
            (1, 1) => false,
            (1, _) | (_, 1) => true,
            (2, 3) => true,
            // `HTMLParser`: the `P` starts `Parser`.
            (3, 3) => next == 2,
            _ => false,
        };
        seen |= 1 << now;
        parts += usize::from(starts);
        seps += usize::from(now == 0);
        prev = now;
    }
    seen & 0b1110 == 0b1110 && parts * 3 >= b.len() && seps * 10 <= b.len()
}

#[cfg(test)]
mod tests;
