//! Pseudonymisation at the source: keyed daily visitor ids, keyed event ids,
//! truncated networks, the checks that refuse impossible privacy settings,
//! and the scrubber for the text of rejected lines ([`scrub_line`]).

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::NaiveDate;
use footfall_event::REDACTED;
use serde::{Deserialize, Serialize};

use crate::scrub::{self, IpAs};
use crate::url::UrlRules;

/// Supplies the keys behind every pseudonym.
///
/// `day_key` changes every calendar day, so visitor ids do not link across
/// days; a provider that destroys old day keys (footfall's keyring) answers
/// `None` for them, which makes old ids unlinkable even to the operator.
/// `id_key` is stable, so a re-read line gets the same `event_id`.
pub trait KeyProvider: Send + Sync {
    /// Key for event ids (stable).
    fn id_key(&self) -> [u8; 32];
    /// Key for visitor ids on `date`, or `None` when that day's key has been destroyed.
    fn day_key(&self, date: NaiveDate) -> Option<[u8; 32]>;
}

/// Keys derived from one fixed secret with BLAKE3's key derivation: nothing
/// rotates and nothing is destroyed. For the demo's public key, tests and
/// benchmarks; deployments use footfall's keyring (`footfall-keys`).
pub struct SecretKeys {
    master: [u8; 32],
}

/// A secret could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The secret has fewer than 16 bytes (the count given).
    #[error("the secret is too short ({0} bytes): use at least 16 bytes of random data")]
    TooShort(usize),
}

impl SecretKeys {
    /// Derive keys from secret bytes (at least 16; surrounding whitespace ignored).
    pub fn from_secret(secret: &[u8]) -> Result<Self, KeyError> {
        let s = secret.trim_ascii();
        if s.len() < 16 {
            return Err(KeyError::TooShort(s.len()));
        }
        Ok(SecretKeys {
            master: blake3::derive_key("footfall master key v1", s),
        })
    }
}

impl KeyProvider for SecretKeys {
    fn id_key(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("footfall event id key v1");
        h.update(&self.master);
        *h.finalize().as_bytes()
    }

    fn day_key(&self, date: NaiveDate) -> Option<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key("footfall visitor day key v1");
        h.update(&self.master);
        h.update(date.format("%Y-%m-%d").to_string().as_bytes());
        Some(*h.finalize().as_bytes())
    }
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeys")
            .field("master", &"***")
            .finish()
    }
}

/// How client addresses are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// IPv4 prefix length kept in `client_net` (default 24).
    pub ipv4_prefix: u8,
    /// IPv6 prefix length kept in `client_net` (default 48).
    pub ipv6_prefix: u8,
    /// Drop `client_net` entirely.
    pub drop_network: bool,
    /// Emit the raw client address in `client_ip`. Off by default: an explicit opt-in.
    pub emit_raw_ip: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            drop_network: false,
            emit_raw_ip: false,
        }
    }
}

impl PrivacyConfig {
    /// Refuses settings that cannot be honoured: a prefix longer than the
    /// address, or one that keeps whole addresses (`/32`, `/128`) without the
    /// explicit `emit_raw_ip` opt-in.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        prefix(
            "privacy.ipv4_prefix",
            self.ipv4_prefix,
            32,
            self.emit_raw_ip,
        )?;
        prefix(
            "privacy.ipv6_prefix",
            self.ipv6_prefix,
            128,
            self.emit_raw_ip,
        )
    }
}

fn prefix(key: &'static str, len: u8, bits: u8, raw_ok: bool) -> Result<(), InvalidSetting> {
    if len > bits {
        return Err(InvalidSetting::new(
            key,
            format!(
                "{len} is longer than the address ({bits} bits): use 0 to {} \
                 ({bits}, whole addresses, only with privacy.emit_raw_ip = true)",
                bits - 1
            ),
        ));
    }
    if len == bits && !raw_ok {
        return Err(InvalidSetting::new(
            key,
            format!(
                "{len} keeps whole client addresses; that needs the explicit opt-in \
                 privacy.emit_raw_ip = true (--emit-raw-ip), or use 0 to {}",
                bits - 1
            ),
        ));
    }
    Ok(())
}

/// A privacy setting that cannot be honoured. `Display` names the key and
/// says why; it never repeats a secret value (the values checked here are
/// prefix lengths and parameter names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct InvalidSetting {
    /// The setting, as written in `[parse]` (`privacy.ipv4_prefix`, `query_allow`).
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidSetting {
    /// The setting `key` is invalid for `reason`.
    pub fn new(key: &'static str, reason: impl Into<String>) -> Self {
        InvalidSetting {
            key,
            reason: reason.into(),
        }
    }
}

/// Truncate a client to its network: `203.0.113.77` → `203.0.113.0/24`,
/// `2001:db8:1:2::1` → `2001:db8:1::/48`, `pc7.dialup.example.net` → `*.example.net`.
pub fn truncate_client(client: &str, cfg: &PrivacyConfig) -> Option<String> {
    if cfg.drop_network {
        return None;
    }
    let bare = bare_host(client);
    match bare.parse() {
        Ok(ip) => network(ip, cfg).map(|(net, len)| cidr(net, len)),
        Err(_) => Some(truncate_hostname(bare)),
    }
}

/// The address an IP literal spells: plain, in brackets (`[2001:db8::1]`)
/// or with a zone id (`fe80::1%eth0`). `None` for host names and garbage.
pub fn ip_literal(s: &str) -> Option<IpAddr> {
    bare_host(s).parse().ok()
}

/// A host without IPv6 brackets and zone id.
fn bare_host(s: &str) -> &str {
    let s = s.trim_start_matches('[').trim_end_matches(']');
    s.split('%').next().unwrap_or(s)
}

/// The network `ip` is kept as: its first address and the prefix length
/// (IPv4-mapped IPv6 addresses count as IPv4); `None` when networks are
/// dropped. A prefix longer than the address (refused by
/// [`PrivacyConfig::validate`]) keeps the whole address.
pub fn network(ip: IpAddr, cfg: &PrivacyConfig) -> Option<(IpAddr, u8)> {
    if cfg.drop_network {
        return None;
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    Some(match ip {
        IpAddr::V4(v4) => {
            let len = cfg.ipv4_prefix.min(32);
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            (IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask)), len)
        }
        IpAddr::V6(v6) => {
            let len = cfg.ipv6_prefix.min(128);
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            (IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)), len)
        }
    })
}

/// `address/len`, IPv4 without `format!` (this runs for every new visitor).
fn cidr(net: IpAddr, len: u8) -> String {
    match net {
        IpAddr::V4(v4) => {
            let mut s = String::with_capacity(18);
            for (i, b) in v4.octets().iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                push_u8(&mut s, *b);
            }
            s.push('/');
            push_u8(&mut s, len);
            s
        }
        IpAddr::V6(v6) => format!("{v6}/{len}"),
    }
}

fn push_u8(s: &mut String, b: u8) {
    if b >= 100 {
        s.push((b'0' + b / 100) as char);
    }
    if b >= 10 {
        s.push((b'0' + (b / 10) % 10) as char);
    }
    s.push((b'0' + b % 10) as char);
}

/// Keep only the registrable part of a host name (`*.example.net`,
/// `*.example.co.uk`): enough for network-level routing questions, not a person.
fn truncate_hostname(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    if labels.len() < 2 {
        return "*".to_string();
    }
    let tld = labels[labels.len() - 1];
    let sld = labels[labels.len() - 2];
    // `isp.co.uk` is registrable under a country's second level, when a
    // host label is left below it; `host.sfu.ca` keeps `sfu.ca`, never the
    // whole client name.
    let keep = if tld.len() == 2
        && labels.len() >= 4
        && (sld.len() <= 3 || matches!(sld, "gouv" | "govt"))
    {
        3
    } else {
        2
    };
    format!("*.{}", labels[labels.len() - keep..].join("."))
}

/// Lower-case hex of bytes (the one hex encoder: ids, keys, fingerprints).
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// The `N` bytes written as exactly `2 * N` hex digits (either case), the
/// inverse of [`hex`]; `None` for anything else.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *byte = crate::url::hex_val(pair[0])? << 4 | crate::url::hex_val(pair[1])?;
    }
    Some(out)
}

/// Deterministic event id: a keyed hash of (source key, offset, line), 128-bit hex.
/// Keyed so that the id of a known line cannot be used to test guesses of its IP.
pub fn event_id(id_key: &[u8; 32], source_key: &[u8; 16], offset: u64, line: &[u8]) -> String {
    let mut scratch = Vec::new();
    event_id_hex(id_key, source_key, offset, line, &mut scratch)
        .as_str()
        .to_string()
}

/// A 128-bit id as 32 lower-case hex digits, held inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HexId([u8; 32]);

impl HexId {
    /// The 32 hex digits.
    pub fn as_str(&self) -> &str {
        debug_assert!(self.0.iter().all(u8::is_ascii_hexdigit));
        // SAFETY: only `hex16` builds a `HexId`, from hex digits: ASCII.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

/// [`event_id`] as hex bytes, using `scratch` to assemble the hashed input
/// (one-shot XXH3 over a contiguous buffer is several times cheaper than
/// streaming it; the digest is the same).
pub fn event_id_hex(
    id_key: &[u8; 32],
    source_key: &[u8; 16],
    offset: u64,
    line: &[u8],
    scratch: &mut Vec<u8>,
) -> HexId {
    scratch.clear();
    scratch.extend_from_slice(source_key);
    scratch.extend_from_slice(&offset.to_le_bytes());
    scratch.extend_from_slice(line);
    let digest = xxhash_rust::xxh3::xxh3_128(scratch).to_le_bytes();
    let out = blake3::keyed_hash(id_key, &digest);
    hex16(out.as_bytes()[..16].try_into().expect("16 bytes"))
}

fn hex16(bytes: &[u8; 16]) -> HexId {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
    HexId(out)
}

/// What identifies a visitor within a day.
#[derive(Debug, Clone, Copy)]
pub enum VisitorBasis<'a> {
    /// A session cookie's value.
    Cookie(&'a str),
    /// Client address and user agent (GoAccess's definition of a unique visitor).
    ClientAgent(&'a str, &'a str),
}

/// The visitor pseudonym: keyed with the day key, 64-bit hex.
pub fn visitor_id(day_key: &[u8; 32], site: &str, basis: VisitorBasis<'_>) -> String {
    let mut bytes = Vec::new();
    visitor_basis(site, basis, &mut bytes);
    visitor_id_of(day_key, &bytes)
}

/// Replace `out` with the bytes a visitor id is the keyed hash of: the site
/// and the basis, separated and tagged so no two inputs share them. Also a
/// complete key for caching ids under one day key.
pub fn visitor_basis(site: &str, basis: VisitorBasis<'_>, out: &mut Vec<u8>) {
    out.clear();
    append_visitor_basis(site, basis, out);
}

/// [`visitor_basis`], appended to what `out` holds.
pub fn append_visitor_basis(site: &str, basis: VisitorBasis<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(site.as_bytes());
    match basis {
        VisitorBasis::Cookie(c) => {
            out.extend_from_slice(b"\0c\0");
            out.extend_from_slice(c.as_bytes());
        }
        VisitorBasis::ClientAgent(ip, ua) => {
            out.extend_from_slice(b"\0i\0");
            out.extend_from_slice(ip.as_bytes());
            out.push(0);
            out.extend_from_slice(ua.as_bytes());
        }
    }
}

/// [`visitor_id`] of bytes built by [`visitor_basis`].
pub fn visitor_id_of(day_key: &[u8; 32], basis_bytes: &[u8]) -> String {
    hex(&blake3::keyed_hash(day_key, basis_bytes).as_bytes()[..8])
}

/// Find a cookie's value in a `Cookie` header (`a=1; sid=xyz`).
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k.trim() == name)
            .then(|| v.trim())
            .filter(|v| !v.is_empty() && *v != "-")
    })
}

/// Scrubs a rejected line before it is stored as a dead letter, so that it
/// holds no more than an event would, and still parses once its format is
/// fixed (the runbook has operators re-parse dead letters):
///
/// 1. URLs lose their user-info (`https://user:pass@host` → `https://host`),
///    and every query string (from a `?` to the next space, quote or
///    backslash) goes through the query policy and the detectors, as in
///    events ([`UrlRules::redact_query`]);
/// 2. in a line shaped like the CLF family (`… client ident user [dd/Mon/yyyy:…`)
///    the client is truncated (an address to the first address of its
///    network, a host name as in `client_net`: `*.example.net`) and ident and
///    user become `-`; in JSON, the values of the keys the JSON formats read
///    a user name from ([`USER_KEYS`]) become `-`;
/// 3. `name=value` pairs with a secret name, or the session cookie's, lose
///    their value;
/// 4. then the whole line goes through the content detectors
///    ([`crate::scrub`], seeing through `%XX` escapes), with every IP address
///    in any textual form (compressed, IPv4-mapped, bracketed, with a zone,
///    inside JSON strings) replaced by the first address of its network
///    under `rules.privacy` (`203.0.113.77` → `203.0.113.0`; `:ip` when
///    networks are dropped).
///
/// Times are left as they are (`10:00:00`, `[17/May/2015:10:05:03 +0000]`,
/// ISO 8601). Borrowed when nothing changed.
pub fn scrub_line<'a>(
    line: &'a str,
    rules: &UrlRules,
    session_cookie: Option<&str>,
) -> Cow<'a, str> {
    // The detectors go last, as they must see what the steps before wrote (a
    // truncated client name can spell an address); and as what they write
    // can, in garbage, give a step something to do (`http://::1//x@`), the
    // steps run until they settle.
    scrub::until_settled(line, |line| {
        let s = then(Cow::Borrowed(line), strip_userinfo);
        let s = then(s, |t| redact_queries(t, rules));
        let s = then(s, |t| clf_identity(t, &rules.privacy));
        let s = then(s, json_users);
        let s = then(s, |t| secret_pairs(t, rules, session_cookie));
        then(s, |t| scrub::encoded_pass(t, IpAs::Network(&rules.privacy)))
    })
}

/// `step` applied to `s`, keeping `s` when the step changes nothing.
fn then<'a>(s: Cow<'a, str>, step: impl FnOnce(&str) -> Cow<'_, str>) -> Cow<'a, str> {
    let changed = match step(&s) {
        Cow::Owned(o) => Some(o),
        Cow::Borrowed(_) => None,
    };
    changed.map_or(s, Cow::Owned)
}

/// `user:pass@` removed from the authority of every `scheme://` URL.
fn strip_userinfo(line: &str) -> Cow<'_, str> {
    let mut edits = Edits::new(line);
    for at in memchr::memchr_iter(b':', line.as_bytes()) {
        if !line[at..].starts_with("://") {
            continue;
        }
        let start = at + 3;
        let len = line[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\\'))
            .unwrap_or(line.len() - start);
        if let Some(userinfo) = line[start..start + len].rfind('@') {
            edits.replace(start, start + userinfo + 1, "");
        }
    }
    edits.finish()
}

/// Query strings in a line through the query policy.
fn redact_queries<'a>(line: &'a str, rules: &UrlRules) -> Cow<'a, str> {
    let mut edits = Edits::new(line);
    for q in memchr::memchr_iter(b'?', line.as_bytes()) {
        let start = q + 1;
        let len = line[start..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\\')
            .unwrap_or(line.len() - start);
        if let Cow::Owned(r) = rules.redact_query(&line[start..start + len]) {
            edits.replace(start, start + len, &r);
        }
    }
    edits.finish()
}

/// In a CLF-shaped line, the client truncated (an address to its network's
/// first address, a host name as in `client_net`) and the ident and user
/// fields replaced by `-`: the last three fields before the
/// bracketed time are client, ident and user (two: client and user, as in a
/// line that lost a field; one: the client).
fn clf_identity<'a>(line: &'a str, privacy: &PrivacyConfig) -> Cow<'a, str> {
    let Some(bracket) = clf_time_at(line) else {
        return Cow::Borrowed(line);
    };
    let fields: Vec<(usize, &str)> = line[..bracket]
        .split(' ')
        .scan(0, |at, f| {
            let start = *at;
            *at += f.len() + 1;
            Some((start, f))
        })
        .filter(|(_, f)| !f.is_empty())
        .collect();
    let n = fields.len();
    let client = n.saturating_sub(3).min(n.saturating_sub(1));
    let mut edits = Edits::new(line);
    for (i, &(at, field)) in fields.iter().enumerate().skip(client) {
        let new = if i > client {
            Cow::Borrowed("-")
        } else if let Some(ip) = ip_literal(field) {
            network(ip, privacy).map_or(Cow::Borrowed("-"), |(net, _)| Cow::Owned(net.to_string()))
        } else {
            truncate_client(field, privacy).map_or(Cow::Borrowed("-"), Cow::Owned)
        };
        if field != "-" && new != field {
            edits.replace(at, at + field.len(), &new);
        }
    }
    edits.finish()
}

/// Where `[dd/Mon/yyyy:` starts, after a space.
fn clf_time_at(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    memchr::memchr_iter(b'[', b).find(|&i| {
        let t = &b[i + 1..];
        i > 0
            && b[i - 1] == b' '
            && t.len() >= 12
            && t[..2].iter().all(u8::is_ascii_digit)
            && t[2] == b'/'
            && t[3..6].iter().all(u8::is_ascii_alphabetic)
            && t[6] == b'/'
            && t[7..11].iter().all(u8::is_ascii_digit)
            && t[11] == b':'
    })
}

/// The JSON keys the JSON formats read a remote user from: nginx JSON's
/// `remote_user` (its default mapping), Caddy's `user_id`, Traefik's
/// `ClientUsername`.
pub const USER_KEYS: &[&str] = &["remote_user", "user_id", "ClientUsername"];

/// String values of [`USER_KEYS`] in a JSON line replaced by `-`.
fn json_users(line: &str) -> Cow<'_, str> {
    if memchr::memchr(b'{', line.as_bytes()).is_none() {
        return Cow::Borrowed(line);
    }
    let mut edits = Edits::new(line);
    for key in USER_KEYS {
        let quoted = format!("\"{key}\"");
        for at in memchr::memmem::find_iter(line.as_bytes(), quoted.as_bytes()) {
            let rest = &line[at + quoted.len()..];
            let Some(value) = rest.trim_start().strip_prefix(':') else {
                continue;
            };
            let Some(body) = value.trim_start().strip_prefix('"') else {
                continue;
            };
            let start = line.len() - body.len();
            let len = json_string_len(body);
            if &line[start..start + len] != "-" && len > 0 {
                edits.replace(start, start + len, "-");
            }
        }
    }
    edits.finish()
}

/// Bytes of a JSON string's body up to its closing quote (or the end).
fn json_string_len(body: &str) -> usize {
    let b = body.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    b.len()
}

/// `name=value` pairs whose name is a secret parameter or the session
/// cookie lose their value (cookies and form fields logged outside a query).
fn secret_pairs<'a>(line: &'a str, rules: &UrlRules, session_cookie: Option<&str>) -> Cow<'a, str> {
    let b = line.as_bytes();
    let is_name =
        |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'[' | b']' | b'%');
    let mut edits = Edits::new(line);
    for eq in memchr::memchr_iter(b'=', b) {
        let name_len = b[..eq].iter().rev().take_while(|c| is_name(c)).count();
        let name = &line[eq - name_len..eq];
        let value_len = line[eq + 1..]
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | ';' | '"' | '\\' | ','))
            .unwrap_or(line.len() - eq - 1);
        let value = &line[eq + 1..eq + 1 + value_len];
        let secret = rules.is_secret_name(name) || session_cookie == Some(name);
        if secret && !value.is_empty() && value != REDACTED {
            edits.replace(eq + 1, eq + 1 + value_len, REDACTED);
        }
    }
    edits.finish()
}

/// Non-overlapping replacements of byte ranges of a text, made in order.
struct Edits<'a> {
    text: &'a str,
    out: Option<String>,
    copied: usize,
}

impl<'a> Edits<'a> {
    fn new(text: &'a str) -> Self {
        Edits {
            text,
            out: None,
            copied: 0,
        }
    }

    /// Replaces `text[start..end]`; ignored when it overlaps an earlier edit.
    fn replace(&mut self, start: usize, end: usize, with: &str) {
        if start < self.copied {
            return;
        }
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(self.text.len()));
        out.push_str(&self.text[self.copied..start]);
        out.push_str(with);
        self.copied = end;
    }

    fn finish(self) -> Cow<'a, str> {
        match self.out {
            Some(mut out) => {
                out.push_str(&self.text[self.copied..]);
                Cow::Owned(out)
            }
            None => Cow::Borrowed(self.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_table() {
        let cfg = PrivacyConfig::default();
        let cases = [
            ("ipv4", "203.0.113.77", Some("203.0.113.0/24")),
            ("ipv6", "2001:db8:1:2::1", Some("2001:db8:1::/48")),
            (
                "ipv6 bracketed",
                "[2001:db8:1:2::1]",
                Some("2001:db8:1::/48"),
            ),
            (
                "ipv4-mapped",
                "::ffff:198.51.100.9",
                Some("198.51.100.0/24"),
            ),
            ("loopback v6", "::1", Some("::/48")),
            ("hostname", "pc7.dialup.example.net", Some("*.example.net")),
            ("cc second level", "host.isp.co.uk", Some("*.isp.co.uk")),
            (
                "three labels under a country",
                "rs31-annex3.sfu.ca",
                Some("*.sfu.ca"),
            ),
            ("bare domain", "example.net", Some("*.example.net")),
            ("single label", "localhost", Some("*")),
        ];
        for (name, input, want) in cases {
            assert_eq!(truncate_client(input, &cfg).as_deref(), want, "{name}");
        }
        let drop = PrivacyConfig {
            drop_network: true,
            ..Default::default()
        };
        assert_eq!(truncate_client("203.0.113.77", &drop), None);
        let p16 = PrivacyConfig {
            ipv4_prefix: 16,
            ..Default::default()
        };
        assert_eq!(
            truncate_client("203.0.113.77", &p16).as_deref(),
            Some("203.0.0.0/16")
        );
    }

    #[test]
    fn ids_are_keyed_and_deterministic() {
        let k = SecretKeys::from_secret(b"0123456789abcdef0123").unwrap();
        let other = SecretKeys::from_secret(b"fedcba9876543210fedc").unwrap();
        let d1 = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let d2 = d1.succ_opt().unwrap();
        let v = |keys: &SecretKeys, d| {
            visitor_id(
                &keys.day_key(d).unwrap(),
                "s",
                VisitorBasis::ClientAgent("1.2.3.4", "UA"),
            )
        };
        assert_eq!(v(&k, d1), v(&k, d1));
        assert_ne!(v(&k, d1), v(&k, d2), "ids must not link across days");
        assert_ne!(v(&k, d1), v(&other, d1));
        assert_eq!(v(&k, d1).len(), 16);
        let e = |off| event_id(&k.id_key(), &[1; 16], off, b"line");
        assert_eq!(e(0), e(0));
        assert_ne!(e(0), e(1));
        assert_ne!(
            event_id(&k.id_key(), &[1; 16], 0, b"line"),
            event_id(&k.id_key(), &[1; 16], 0, b"linf")
        );
        // The id is XXH3-128 of (source key, offset, line), streamed or not, keyed through BLAKE3.
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&[1; 16]);
        h.update(&7u64.to_le_bytes());
        h.update(b"a line");
        let streamed = blake3::keyed_hash(&k.id_key(), &h.digest128().to_le_bytes());
        assert_eq!(
            event_id(&k.id_key(), &[1; 16], 7, b"a line"),
            hex(&streamed.as_bytes()[..16])
        );
        assert_eq!(e(0).len(), 32);
        assert!(SecretKeys::from_secret(b"short").is_err());
        assert!(!format!("{k:?}").contains("0123"));
    }

    #[test]
    fn cookies() {
        assert_eq!(cookie_value("a=1; sid=xyz; b=2", "sid"), Some("xyz"));
        assert_eq!(cookie_value("a=1; sid=", "sid"), None);
        assert_eq!(cookie_value("a=1", "sid"), None);
    }

    #[test]
    fn dead_letters_keep_their_shape_and_lose_what_is_personal() {
        let rules = UrlRules::default();
        let cases: &[(&str, &str, &str)] = &[
            (
                "combined, compressed IPv6 client, ident and user, e-mail, secret, IP referrer",
                r#"2001:db8::47 ident frank@example.org [17/May/2015:10:05:03 +0000] "GET /u/jane@example.org?cronKey=4f3a9c&page=2 HTTP/1.1" 200 512 "http://84.203.1.217:80/" "curl/8.0""#,
                r#"2001:db8:: - - [17/May/2015:10:05:03 +0000] "GET /u/:email?cronKey=REDACTED&page=2 HTTP/1.1" 200 512 "http://84.203.1.0:80/" "curl/8.0""#,
            ),
            (
                "link-local client with a zone",
                r#"fe80::1%eth0 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
                r#"fe80:: - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
            ),
            (
                "IPv4-mapped client",
                r#"::ffff:198.51.100.9 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
                r#"198.51.100.0 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
            ),
            (
                "bracketed with a port, full IPv6",
                "[2001:0db8:0000:0000:0000:0000:0000:0047]:443 x",
                "[2001:db8::]:443 x",
            ),
            (
                "virtual host first",
                r#"www.example.org:443 203.0.113.77 - bob [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
                r#"www.example.org:443 203.0.113.0 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
            ),
            (
                "host name client",
                r#"pc7.dialup.example.net - - [01/Aug/1995:00:00:01 -0400] "GET /a HTTP/1.0" 200 5"#,
                r#"*.example.net - - [01/Aug/1995:00:00:01 -0400] "GET /a HTTP/1.0" 200 5"#,
            ),
            (
                "a line that lost its ident field",
                r#"192.168.202.254 [20/Jul/2009:22:59:29 +0000] "GET /x HTTP/1.0" 404 46210 "-" "gPXE/0.9.7""#,
                r#"192.168.202.0 [20/Jul/2009:22:59:29 +0000] "GET /x HTTP/1.0" 404 46210 "-" "gPXE/0.9.7""#,
            ),
            (
                "nginx JSON",
                r#"{"remote_addr":"2001:db8::47","remote_user":"jane","time_local":"17/May/2015:10:05:03 +0000","request":"GET /?sessionToken=abc&q=x HTTP/1.1","status":"200"}"#,
                r#"{"remote_addr":"2001:db8::","remote_user":"-","time_local":"17/May/2015:10:05:03 +0000","request":"GET /?sessionToken=REDACTED&q=x HTTP/1.1","status":"200"}"#,
            ),
            (
                "W3C times and addresses",
                "2015-05-17 10:05:03 203.0.113.7 GET /a - 443 - 198.51.100.9 Mozilla/5.0 200",
                "2015-05-17 10:05:03 203.0.113.0 GET /a - 443 - 198.51.100.0 Mozilla/5.0 200",
            ),
            (
                "ISO time with offset",
                "2015-05-17T10:05:03.123+02:00 host=10.1.2.3",
                "2015-05-17T10:05:03.123+02:00 host=10.1.2.0",
            ),
            (
                "cookies and secrets outside a query",
                r#"10.1.2.3 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "sid=abc123; theme=dark" token=xyz"#,
                r#"10.1.2.0 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "sid=REDACTED; theme=dark" token=REDACTED"#,
            ),
            (
                "user-info in a referrer",
                r#"- - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "https://bob:hunter2@example.org/a" "x""#,
                r#"- - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "https://example.org/a" "x""#,
            ),
            (
                "nothing to scrub",
                r#"- - - [17/May/2015:10:05:03 +0000] "GET /about HTTP/1.1" 200 5"#,
                r#"- - - [17/May/2015:10:05:03 +0000] "GET /about HTTP/1.1" 200 5"#,
            ),
        ];
        for (name, line, want) in cases {
            let got = scrub_line(line, &rules, None);
            assert_eq!(got, *want, "{name}");
            assert_eq!(scrub_line(&got, &rules, None), got, "{name}: idempotent");
        }
    }

    #[test]
    fn dead_letters_follow_the_privacy_settings() {
        let line = r#"203.0.113.77 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 5 "sess=s3cr3t""#;
        let drop = UrlRules {
            privacy: PrivacyConfig {
                drop_network: true,
                ..Default::default()
            },
            ..UrlRules::default()
        };
        assert_eq!(
            scrub_line(line, &drop, Some("sess")),
            r#"- - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 5 "sess=REDACTED""#
        );
        let p16 = UrlRules {
            privacy: PrivacyConfig {
                ipv4_prefix: 16,
                ..Default::default()
            },
            ..UrlRules::default()
        };
        assert!(scrub_line(line, &p16, None).starts_with("203.0.0.0 - - "));
    }

    #[test]
    fn impossible_prefixes_are_refused_by_name() {
        let ok = PrivacyConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let v4 = |ipv4_prefix, emit_raw_ip| PrivacyConfig {
            ipv4_prefix,
            emit_raw_ip,
            ..Default::default()
        };
        let e = v4(40, false).validate().unwrap_err();
        assert_eq!(e.key, "privacy.ipv4_prefix");
        assert!(e.to_string().starts_with("privacy.ipv4_prefix: 40 "), "{e}");
        assert_eq!(
            v4(32, false).validate().unwrap_err().key,
            "privacy.ipv4_prefix"
        );
        assert_eq!(v4(32, true).validate(), Ok(()));
        assert_eq!(v4(0, false).validate(), Ok(()));
        let v6 = PrivacyConfig {
            ipv6_prefix: 129,
            ..Default::default()
        };
        assert_eq!(v6.validate().unwrap_err().key, "privacy.ipv6_prefix");
        // An unchecked configuration still never panics: whole addresses at most.
        assert_eq!(
            truncate_client("203.0.113.77", &v4(40, false)).as_deref(),
            Some("203.0.113.77/32")
        );
    }
}
