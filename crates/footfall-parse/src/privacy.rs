//! Pseudonymisation at the source: keyed daily visitor ids, keyed event ids,
//! truncated networks, and a scrubber for the text of rejected lines.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;
use serde::{Deserialize, Serialize};

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

/// Truncate a client to its network: `203.0.113.77` → `203.0.113.0/24`,
/// `2001:db8:1:2::1` → `2001:db8:1::/48`, `pc7.dialup.example.net` → `*.example.net`.
pub fn truncate_client(client: &str, cfg: &PrivacyConfig) -> Option<String> {
    if cfg.drop_network {
        return None;
    }
    let c = client.trim_start_matches('[').trim_end_matches(']');
    // Strip an IPv6 zone id.
    let c = c.split('%').next().unwrap_or(c);
    match c.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => Some(net_v4(v4, cfg.ipv4_prefix.min(32))),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(net_v4(v4, cfg.ipv4_prefix.min(32))),
            None => Some(net_v6(v6, cfg.ipv6_prefix.min(128))),
        },
        Err(_) => Some(truncate_hostname(c)),
    }
}

fn net_v4(ip: Ipv4Addr, prefix: u8) -> String {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    let o = (u32::from(ip) & mask).to_be_bytes();
    let mut s = String::with_capacity(18);
    for (i, b) in o.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        push_u8(&mut s, *b);
    }
    s.push('/');
    push_u8(&mut s, prefix);
    s
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

fn net_v6(ip: Ipv6Addr, prefix: u8) -> String {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    format!("{}/{prefix}", Ipv6Addr::from(u128::from(ip) & mask))
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
    let keep = if tld.len() == 2
        && labels.len() >= 3
        && (sld.len() <= 3 || matches!(sld, "gouv" | "govt"))
    {
        3
    } else {
        2
    };
    if labels.len() <= keep {
        // The name is its own registrable domain: nothing below it to cut.
        return format!(
            "*.{}",
            labels[labels.len() - keep.min(labels.len())..].join(".")
        );
    }
    format!("*.{}", labels[labels.len() - keep..].join("."))
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
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

static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b").expect("static regex")
});
static IPV6: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:[0-9a-f]{1,4}:){2,7}(?::|[0-9a-f]{1,4})(?::[0-9a-f]{0,4})*")
        .expect("static regex")
});
static SECRET_KV: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(password|passwd|pwd|token|access_token|api_key|apikey|key|secret|session|sessionid|sid|jsessionid|phpsessid|auth|code|signature)=([^&;\s\x22]+)",
    )
    .expect("static regex")
});

/// Best-effort scrub of a rejected line before it is stored as a dead letter:
/// IPv4 addresses keep their /24, IPv6 addresses are cut to their first three
/// groups, and `name=value` pairs with a secret-looking name lose their value.
pub fn scrub_line(line: &str) -> Cow<'_, str> {
    let a = IPV4.replace_all(line, "$1.$2.$3.0");
    let b = match IPV6.replace_all(&a, |c: &regex::Captures<'_>| {
        let s = &c[0];
        let groups: Vec<&str> = s.split(':').filter(|g| !g.is_empty()).take(3).collect();
        format!("{}::", groups.join(":"))
    }) {
        Cow::Borrowed(_) => a,
        Cow::Owned(o) => Cow::Owned(o),
    };
    match SECRET_KV.replace_all(&b, "$1=REDACTED") {
        Cow::Borrowed(_) => b,
        Cow::Owned(o) => Cow::Owned(o),
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
    fn scrub() {
        let s = scrub_line(
            r#"10.1.2.3 - bob [x] "GET /a?token=abc&x=1 HTTP/1.1" 2001:db8:aa:bb::1 sid=123"#,
        );
        assert!(!s.contains("10.1.2.3") && s.contains("10.1.2.0"), "{s}");
        assert!(!s.contains("abc") && s.contains("token=REDACTED"), "{s}");
        assert!(
            !s.contains("2001:db8:aa:bb::1") && !s.contains("sid=123"),
            "{s}"
        );
    }
}
