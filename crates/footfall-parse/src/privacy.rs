//! Pseudonymisation at the source: keyed daily visitor ids, keyed event ids,
//! truncated networks and the checks that refuse impossible privacy settings.
//! Rejected lines are scrubbed by [`crate::dead_letter`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::NaiveDate;
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
