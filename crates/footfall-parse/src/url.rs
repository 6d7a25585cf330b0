//! URL pieces: request targets, query parameters, percent-decoding, the
//! query policy, on-site search terms and UTM campaign parameters.
//!
//! What leaves the parser of a URL is decided here ([`UrlRules`]):
//!
//! * **query values** by name, under the [`QueryPolicy`]: by default only
//!   the values analysis needs are kept (`utm_*`, the site-search parameters
//!   and [`DEFAULT_ALLOWED_PARAMS`]), every other value becomes [`REDACTED`]
//!   with its name kept; a value of a [secret](UrlRules::secret_params) name
//!   always does;
//! * **by content**, everything kept (path, parameter names and kept values,
//!   fragment, the text of search terms and campaign values) goes through
//!   the detectors of [`crate::scrub`];
//! * a URL's user-info is removed, and an IP-literal host (a referrer from an
//!   address) becomes the first address of its network.
//!
//! Everything here runs on a memo miss of the pipeline, so the common case
//! is cheap: no regular expressions, and a borrowed [`Cow`] whenever the
//! input does not need to change.
//!
//! Query strings are treated the way browsers build them
//! (`application/x-www-form-urlencoded`): pairs separated by `&`, name and
//! value separated by the first `=`, `+` meaning a space. Empty pairs (`a=1&&b=2`)
//! are skipped when reading and kept byte-for-byte when rewriting.

use std::borrow::Cow;
use std::net::IpAddr;

use footfall_event::REDACTED;
use memchr::{memchr, memchr2};
use serde::{Deserialize, Serialize};

use crate::privacy::{self, PrivacyConfig};
use crate::scrub::{scrub_component, Kind};

mod parts;
mod percent;

pub use parts::UrlParts;
use percent::decode_escape;
pub use percent::percent_decode_lossy;
pub(crate) use percent::{hex_val, percent_decode_cow, percent_decode_mapped};

/// Longest on-site search, search-engine term or UTM value kept, in characters.
///
/// Longer values are cut on a character boundary. Real search terms are far
/// shorter; the bound keeps scanners and junk from inflating events.
pub const MAX_TEXT_CHARS: usize = 200;

/// Which query values are kept ([`UrlRules::query_policy`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryPolicy {
    /// Keep the values of `utm_*`, the site-search parameters and the
    /// allowed parameters; every other value becomes [`REDACTED`].
    #[default]
    Allow,
    /// Keep every value except those of the secret parameters (a deny-list:
    /// any secret the list does not name passes, unless a detector finds it).
    Deny,
}

/// Parameters whose values the allow policy keeps besides `utm_*` and the
/// site-search parameters: pagination, sorting, language and view type,
/// which say how a page was looked at, not who looked.
pub const DEFAULT_ALLOWED_PARAMS: &[&str] = &[
    "page",
    "p",
    "per_page",
    "page_size",
    "limit",
    "offset",
    "start",
    "sort",
    "sort_by",
    "order",
    "order_by",
    "dir",
    "lang",
    "locale",
    "view",
    "format",
];

/// What of a URL is kept: the query policy and its parameter names, and the
/// networks IP-literal hosts are cut to.
///
/// Parameter names are compared ASCII-case-insensitively after percent-decoding
/// the name (`pass%77ord`, `PASSWORD` and `password` are the same parameter).
/// A bracketed name such as `user[password]` (Rails/PHP nested forms) also
/// matches on its innermost key, and a name behind an HTML-escaped separator
/// (`a=1&amp;password=x`) is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRules {
    /// Allow-list (default) or deny-list.
    pub query_policy: QueryPolicy,
    /// Parameters kept under [`QueryPolicy::Allow`] besides `utm_*` and
    /// [`site_search_params`](Self::site_search_params) (default
    /// [`DEFAULT_ALLOWED_PARAMS`]).
    pub allowed_params: Vec<String>,
    /// Parameters whose values are always replaced by [`REDACTED`], in paths
    /// (`;jsessionid=`), queries and referrers, under either policy.
    pub secret_params: Vec<String>,
    /// Parameters that carry the site's own search terms (`?q=`, WordPress `?s=`).
    pub site_search_params: Vec<String>,
    /// The prefix lengths an IP-literal host is cut to (`http://84.203.1.217/`
    /// → `http://84.203.1.0/`).
    pub privacy: PrivacyConfig,
}

impl Default for UrlRules {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        UrlRules {
            query_policy: QueryPolicy::Allow,
            allowed_params: s(DEFAULT_ALLOWED_PARAMS),
            secret_params: s(&[
                "password",
                "passwd",
                "pwd",
                "token",
                "access_token",
                "api_key",
                "apikey",
                "key",
                "secret",
                "session",
                "sessionid",
                "sid",
                "jsessionid",
                "phpsessid",
                "auth",
                "code",
                "signature",
            ]),
            site_search_params: s(&["q", "s", "search", "query", "keyword"]),
            privacy: PrivacyConfig::default(),
        }
    }
}

/// UTM campaign parameters of a landing URL, percent-decoded and trimmed.
///
/// A parameter that is absent, or present with an empty value, is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Utm {
    /// `utm_source`: the referrer of the campaign (`newsletter`, `google`).
    pub source: Option<String>,
    /// `utm_medium`: the marketing medium (`email`, `cpc`).
    pub medium: Option<String>,
    /// `utm_campaign`: the campaign name.
    pub campaign: Option<String>,
    /// `utm_term`: paid search keywords.
    pub term: Option<String>,
    /// `utm_content`: the ad or link variant.
    pub content: Option<String>,
}

impl Utm {
    /// True when no UTM parameter was present.
    pub fn is_empty(&self) -> bool {
        self.source.is_none()
            && self.medium.is_none()
            && self.campaign.is_none()
            && self.term.is_none()
            && self.content.is_none()
    }
}

impl UrlRules {
    /// True when `raw_name` (as it appears in a URL, possibly percent-encoded)
    /// names a secret parameter.
    pub fn is_secret_name(&self, raw_name: &str) -> bool {
        name_in(raw_name, &self.secret_params)
    }

    /// True when the policy keeps the value of the parameter `raw_name` (as it
    /// appears in a URL, possibly percent-encoded).
    pub fn keeps(&self, raw_name: &str) -> bool {
        self.keeps_in(
            raw_name,
            &Names::new(&self.secret_params),
            &Names::new(&self.allowed_params),
            &Names::new(&self.site_search_params),
        )
    }

    fn keeps_in(&self, name: &str, secrets: &Names, allowed: &Names, search: &Names) -> bool {
        !secrets.contains(name)
            && match self.query_policy {
                QueryPolicy::Deny => true,
                QueryPolicy::Allow => {
                    is_utm_name(name) || search.contains(name) || allowed.contains(name)
                }
            }
    }

    /// The query (without the leading `?`) as it may leave the parser: every
    /// value the [policy](Self::query_policy) does not keep is replaced by
    /// [`REDACTED`], and the names and kept values go through the content
    /// detectors ([`scrub_component`]).
    ///
    /// Order, separators (including `&&`) and everything else are kept
    /// byte-for-byte. A pair without `=` or with an empty value carries no
    /// value and is left alone (but for its name's findings). Borrowed when
    /// nothing changed.
    ///
    /// ```
    /// use footfall_parse::url::{QueryPolicy, UrlRules};
    /// let rules = UrlRules::default();
    /// assert_eq!(rules.redact_query("page=2&q=jane%40example.org&cronKey=4f3a"), "page=2&q=:email&cronKey=REDACTED");
    /// let deny = UrlRules { query_policy: QueryPolicy::Deny, ..UrlRules::default() };
    /// assert_eq!(deny.redact_query("a=1&Pass%77ord=hunter2&b"), "a=1&Pass%77ord=REDACTED&b");
    /// ```
    pub fn redact_query<'a>(&self, query: &'a str) -> Cow<'a, str> {
        let (secrets, allowed, search) = (
            Names::new(&self.secret_params),
            Names::new(&self.allowed_params),
            Names::new(&self.site_search_params),
        );
        let mut out: Option<String> = None;
        let mut copied = 0;
        for pair in query_pairs(query) {
            let at = offset_in(query, pair.name);
            splice(
                query,
                &mut out,
                &mut copied,
                at,
                pair.name,
                scrub_component(pair.name),
            );
            let Some(value) = pair.value else { continue };
            if value.is_empty() || value == REDACTED {
                continue;
            }
            let at = offset_in(query, value);
            if self.keeps_in(pair.name, &secrets, &allowed, &search) {
                let kept = scrub_component(value);
                splice(query, &mut out, &mut copied, at, value, kept);
            } else {
                put(query, &mut out, &mut copied, at, value, REDACTED);
            }
        }
        finish(query, out, copied)
    }

    /// The path as it may leave the parser: the values of secret path
    /// parameters replaced by [`REDACTED`] (`/cart;jsessionid=ABC` →
    /// `/cart;jsessionid=REDACTED`), then the content detectors' findings by
    /// their placeholders (`/users/jane@example.org` → `/users/:email`).
    ///
    /// `path` should not contain the query; anything after `?` or `#` is
    /// left untouched. Borrowed when nothing changed.
    pub fn redact_path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        let params = self.redact_path_params(path);
        let end = memchr2(b'?', b'#', params.as_bytes()).unwrap_or(params.len());
        let scrubbed = match scrub_component(&params[..end]) {
            Cow::Owned(head) => head + &params[end..],
            Cow::Borrowed(_) => return params,
        };
        Cow::Owned(scrubbed)
    }

    fn redact_path_params<'a>(&self, path: &'a str) -> Cow<'a, str> {
        let end = memchr2(b'?', b'#', path.as_bytes()).unwrap_or(path.len());
        let scan = &path[..end];
        let Some(first) = memchr(b';', scan.as_bytes()) else {
            return Cow::Borrowed(path);
        };
        let bytes = scan.as_bytes();
        let secrets = Names::new(&self.secret_params);
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut i = first;
        while i < bytes.len() {
            // `i` is at a ';' that starts a parameter running to the next ';' or '/'.
            let start = i + 1;
            let stop = memchr2(b';', b'/', &bytes[start..]).map_or(bytes.len(), |n| start + n);
            let param = &scan[start..stop];
            if let Some(eq) = memchr(b'=', param.as_bytes()) {
                let (name, value) = (&param[..eq], &param[eq + 1..]);
                if !value.is_empty() && value != REDACTED && secrets.contains(name) {
                    let vstart = start + eq + 1;
                    let buf = out.get_or_insert_with(|| String::with_capacity(path.len()));
                    buf.push_str(&path[copied..vstart]);
                    buf.push_str(REDACTED);
                    copied = stop;
                }
            }
            i = match memchr(b';', &bytes[stop..]) {
                Some(n) => stop + n,
                None => break,
            };
        }
        finish(path, out, copied)
    }

    /// Redacts a full URL such as a referrer.
    ///
    /// * userinfo (`user:pass@`) is removed from the authority;
    /// * an IP-literal host becomes the first address of its network under
    ///   [`privacy`](Self::privacy) (`:ip` when networks are dropped);
    /// * the path as in [`redact_path`](Self::redact_path);
    /// * the query as in [`redact_query`](Self::redact_query);
    /// * the fragment is treated as a query (`#access_token=...`, the OAuth
    ///   implicit flow); a fragment route with its own query (`#/reset?token=...`)
    ///   has its route treated as a path and its query as a query.
    ///
    /// A reference without a scheme is read as [`UrlParts::split_lenient`]
    /// does (`www.example.com/a`); relative references and strings that are
    /// not URLs go through the same path/query/fragment steps. Borrowed when
    /// nothing changed.
    pub fn redact_url<'a>(&self, url: &'a str) -> Cow<'a, str> {
        let parts = UrlParts::split_lenient(url);
        let mut out: Option<String> = None;
        let mut copied = 0;

        if let Some(userinfo) = parts.userinfo {
            let start = offset_in(url, userinfo);
            let buf = out.get_or_insert_with(|| String::with_capacity(url.len()));
            buf.push_str(&url[..start]);
            copied = start + userinfo.len() + 1; // the '@'
        }
        if let Some(host) = parts.host {
            let network = self.ip_host(host).map_or(Cow::Borrowed(host), Cow::Owned);
            splice(
                url,
                &mut out,
                &mut copied,
                offset_in(url, host),
                host,
                network,
            );
        }
        let path_start = offset_in(url, parts.path);
        splice(
            url,
            &mut out,
            &mut copied,
            path_start,
            parts.path,
            self.redact_path(parts.path),
        );
        if let Some(query) = parts.query {
            let start = offset_in(url, query);
            splice(
                url,
                &mut out,
                &mut copied,
                start,
                query,
                self.redact_query(query),
            );
        }
        if let Some(fragment) = parts.fragment {
            let start = offset_in(url, fragment);
            let redacted = match memchr(b'?', fragment.as_bytes()) {
                Some(q) => {
                    let (route, fquery) = (&fragment[..q], &fragment[q + 1..]);
                    match (self.redact_path(route), self.redact_query(fquery)) {
                        (Cow::Borrowed(_), Cow::Borrowed(_)) => Cow::Borrowed(fragment),
                        (r, fq) => Cow::Owned(format!("{r}?{fq}")),
                    }
                }
                None => self.redact_query(fragment),
            };
            splice(url, &mut out, &mut copied, start, fragment, redacted);
        }
        finish(url, out, copied)
    }

    /// An IP-literal host (`84.203.1.217`, `[2001:db8::1]`) as the first
    /// address of its network (`84.203.1.0`, `[2001:db8::]`; an IPv4-mapped
    /// one as IPv4), or `:ip` when networks are dropped; `None` for a host
    /// name and for a host that already is such an address.
    fn ip_host(&self, host: &str) -> Option<String> {
        let ip = privacy::ip_literal(host)?;
        let net = match privacy::network(ip, &self.privacy) {
            Some((net @ IpAddr::V6(_), _)) => format!("[{net}]"),
            Some((net, _)) => net.to_string(),
            None => Kind::Ip(ip).placeholder().to_string(),
        };
        (net != host).then_some(net)
    }

    /// The site's own search terms in a request query (without `?`).
    ///
    /// The first parameter, in query order, that is one of
    /// [`site_search_params`](Self::site_search_params), is not a secret, and has
    /// a non-blank value wins. The value is percent-decoded (`+` as space,
    /// invalid UTF-8 as U+FFFD), control characters become spaces, runs of
    /// whitespace collapse to one space, the ends are trimmed and the result is
    /// cut to [`MAX_TEXT_CHARS`] characters. Case is kept.
    ///
    /// ```
    /// use footfall_parse::url::UrlRules;
    /// let rules = UrlRules::default();
    /// assert_eq!(rules.site_search("page=2&s=+Rust%20%20Logs+").as_deref(), Some("Rust Logs"));
    /// ```
    pub fn site_search(&self, query: &str) -> Option<String> {
        let (search, secrets) = (
            Names::new(&self.site_search_params),
            Names::new(&self.secret_params),
        );
        query_pairs(query)
            .filter(|p| search.contains(p.name) && !secrets.contains(p.name))
            .find_map(|p| p.value.and_then(clean_text))
    }
}

/// Reads the UTM parameters of a landing query (without `?`).
///
/// Names are matched ASCII-case-insensitively (`UTM_Source` is accepted); the
/// first non-blank occurrence of each wins; values are cleaned like
/// [`UrlRules::site_search`] terms.
pub fn utm(query: &str) -> Utm {
    let mut utm = Utm::default();
    if !contains_ascii_ci(query, "utm_") {
        return utm;
    }
    for pair in query_pairs(query) {
        let Some(value) = pair.value else { continue };
        let slot = if name_eq(pair.name, "utm_source") {
            &mut utm.source
        } else if name_eq(pair.name, "utm_medium") {
            &mut utm.medium
        } else if name_eq(pair.name, "utm_campaign") {
            &mut utm.campaign
        } else if name_eq(pair.name, "utm_term") {
            &mut utm.term
        } else if name_eq(pair.name, "utm_content") {
            &mut utm.content
        } else {
            continue;
        };
        if slot.is_none() {
            *slot = clean_text(value);
        }
    }
    utm
}

/// Splits a request target into its path and query (without `?`).
///
/// The fragment, if a client sent one, is dropped. An absolute-form target
/// (`http://example.org/a?b`, as sent to proxies) yields its path (`/`
/// when empty); an authority-form target (`CONNECT example.org:443`) or
/// asterisk-form (`*`) is returned as the path unchanged.
///
/// ```
/// use footfall_parse::url::split_target;
/// assert_eq!(split_target("/search?q=x#top"), ("/search", Some("q=x")));
/// assert_eq!(split_target("http://example.org?x=1"), ("/", Some("x=1")));
/// assert_eq!(split_target("/a?"), ("/a", Some("")));
/// ```
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    let without_fragment = match memchr(b'#', target.as_bytes()) {
        Some(n) => &target[..n],
        None => target,
    };
    if !without_fragment.starts_with('/') {
        if let Some(parts) = UrlParts::split_absolute(without_fragment) {
            let path = if parts.path.is_empty() {
                "/"
            } else {
                parts.path
            };
            return (path, parts.query);
        }
    }
    match memchr(b'?', without_fragment.as_bytes()) {
        Some(n) => (&without_fragment[..n], Some(&without_fragment[n + 1..])),
        None => (without_fragment, None),
    }
}

/// One `name[=value]` pair of a query string, still percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryPair<'a> {
    /// The name as it appears in the URL (may be empty: `=x`).
    pub name: &'a str,
    /// The value after the first `=`, or `None` when the pair has no `=`.
    pub value: Option<&'a str>,
}

impl<'a> QueryPair<'a> {
    /// The percent-decoded name (`+` as space).
    pub fn decoded_name(&self) -> Cow<'a, str> {
        percent_decode_lossy(self.name, true)
    }

    /// The percent-decoded value (`+` as space); `None` without `=`.
    pub fn decoded_value(&self) -> Option<Cow<'a, str>> {
        self.value.map(|v| percent_decode_lossy(v, true))
    }

    /// True when the decoded name equals `name`, ignoring ASCII case. Does not allocate.
    pub fn name_is(&self, name: &str) -> bool {
        name_eq(self.name, name)
    }
}

/// Iterator over the pairs of a query string; see [`query_pairs`].
#[derive(Debug, Clone)]
pub struct QueryPairs<'a> {
    rest: &'a str,
}

impl<'a> Iterator for QueryPairs<'a> {
    type Item = QueryPair<'a>;

    fn next(&mut self) -> Option<QueryPair<'a>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (segment, rest) = match memchr(b'&', self.rest.as_bytes()) {
                Some(n) => (&self.rest[..n], &self.rest[n + 1..]),
                None => (self.rest, ""),
            };
            self.rest = rest;
            if segment.is_empty() {
                continue;
            }
            return Some(match memchr(b'=', segment.as_bytes()) {
                Some(eq) => QueryPair {
                    name: &segment[..eq],
                    value: Some(&segment[eq + 1..]),
                },
                None => QueryPair {
                    name: segment,
                    value: None,
                },
            });
        }
    }
}

/// Iterates the `&`-separated pairs of a query string (without `?`), skipping
/// empty pairs. Borrows from `query`; nothing is decoded or allocated.
///
/// ```
/// use footfall_parse::url::query_pairs;
/// let pairs: Vec<_> = query_pairs("a=1&&flag&b=x=y").map(|p| (p.name, p.value)).collect();
/// assert_eq!(pairs, [("a", Some("1")), ("flag", None), ("b", Some("x=y"))]);
/// ```
pub fn query_pairs(query: &str) -> QueryPairs<'_> {
    QueryPairs { rest: query }
}

/// The first value of parameter `name` (matched like [`QueryPair::name_is`]),
/// still percent-encoded; `Some("")` for `name=` and for a bare `name`.
pub fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query_pairs(query)
        .find(|p| p.name_is(name))
        .map(|p| p.value.unwrap_or(""))
}

/// Compares a raw (percent-encoded, `+` for space) name with `want`,
/// ASCII-case-insensitively, decoding on the fly without allocating.
pub(crate) fn name_eq(raw: &str, want: &str) -> bool {
    let (raw, want) = (raw.as_bytes(), want.as_bytes());
    // Decoding never lengthens a name, and shortens it only through escapes.
    if raw.len() < want.len() {
        return false;
    }
    if raw.len() == want.len() {
        return raw
            .iter()
            .enumerate()
            .zip(want)
            .all(|((i, &r), w)| match r {
                b'%' => decode_escape(raw, i).is_none() && *w == b'%',
                b'+' => *w == b' ',
                r => r.eq_ignore_ascii_case(w),
            });
    }
    if memchr(b'%', raw).is_none() {
        return false;
    }
    let (mut i, mut j) = (0, 0);
    while i < raw.len() {
        let (b, step) = match raw[i] {
            b'%' => match decode_escape(raw, i) {
                Some(b) => (b, 3),
                None => (b'%', 1),
            },
            b'+' => (b' ', 1),
            b => (b, 1),
        };
        match want.get(j) {
            Some(w) if w.eq_ignore_ascii_case(&b) => {}
            _ => return false,
        }
        i += step;
        j += 1;
    }
    j == want.len()
}

/// True when the raw name starts with `utm_` (ASCII case ignored, after
/// percent-decoding and an `amp;` left by an HTML-escaped separator).
fn is_utm_name(raw: &str) -> bool {
    let raw = strip_amp(raw);
    let decoded = if memchr(b'%', raw.as_bytes()).is_some() {
        percent_decode_lossy(raw, true)
    } else {
        Cow::Borrowed(raw)
    };
    decoded
        .as_bytes()
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"utm_"))
}

/// `raw` without a leading `amp;` (`a=1&amp;token=x`: a link HTML-escaped
/// once too often).
fn strip_amp(raw: &str) -> &str {
    match raw.as_bytes().get(..4) {
        Some(p) if p.eq_ignore_ascii_case(b"amp;") => &raw[4..],
        _ => raw,
    }
}

/// A name list prepared for matching many names in one call: the lengths of
/// the listed names let most non-matching plain names be rejected at once.
struct Names<'n> {
    names: &'n [String],
    /// Bit `n` set when a listed name is `n` bytes long (bit 63: 63 or more).
    lengths: u64,
}

impl<'n> Names<'n> {
    fn new(names: &'n [String]) -> Self {
        Names {
            names,
            lengths: names.iter().fold(0, |m, n| m | length_bit(n.len())),
        }
    }

    fn contains(&self, raw: &str) -> bool {
        // Only escapes and `+` change how a name reads, only a `]` makes it
        // bracketed and only a `;` can end an `amp;` prefix: any other name
        // is one of the list exactly when it equals one, so it is compared
        // at once (names are short: a byte loop beats `memchr` here).
        if !raw.bytes().any(|b| matches!(b, b'%' | b']' | b';' | b'+')) {
            return self.lengths & length_bit(raw.len()) != 0
                && self
                    .names
                    .iter()
                    .any(|n| n.len() == raw.len() && n.eq_ignore_ascii_case(raw));
        }
        name_in(raw, self.names)
    }
}

#[inline]
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// True when the raw name, or the innermost key of a bracketed name
/// (`user[password]`, `user%5Bpassword%5D`), is one of `names`. A leading
/// `amp;` (from an HTML-escaped `&amp;` separator) is ignored.
fn name_in(raw: &str, names: &[String]) -> bool {
    let raw = strip_amp(raw);
    let hit = if memchr(b'%', raw.as_bytes()).is_some() {
        names.iter().any(|n| name_eq(raw, n))
    } else if memchr(b'+', raw.as_bytes()).is_some() {
        names
            .iter()
            .any(|n| n.len() == raw.len() && name_eq(raw, n))
    } else {
        names.iter().any(|n| n.eq_ignore_ascii_case(raw))
    };
    if hit {
        return true;
    }
    let bytes = raw.as_bytes();
    let bracketed = bytes.last() == Some(&b']')
        || (bytes.len() >= 3 && bytes[bytes.len() - 3..].eq_ignore_ascii_case(b"%5D"));
    if !bracketed {
        return false;
    }
    let decoded = percent_decode_lossy(raw, true);
    let Some(inner) = decoded.strip_suffix(']') else {
        return false;
    };
    let Some(open) = inner.rfind('[') else {
        return false;
    };
    let key = &inner[open + 1..];
    names.iter().any(|n| key.eq_ignore_ascii_case(n))
}

/// A value as text that may leave the parser: the content detectors'
/// findings replaced by their placeholders ([`scrub_component`]), then
/// percent-decoded and tidied as human-entered text: control characters
/// become spaces, whitespace runs collapse to one space, ends are trimmed,
/// and the result is cut to [`MAX_TEXT_CHARS`] characters. `None` when
/// nothing is left.
///
/// ```
/// use footfall_parse::url::clean_text;
/// assert_eq!(clean_text("mail%20jane%40example.org+now").as_deref(), Some("mail :email now"));
/// ```
pub fn clean_text(raw: &str) -> Option<String> {
    let scrubbed = scrub_component(raw);
    let decoded = percent_decode_lossy(&scrubbed, true);
    let mut out = String::with_capacity(decoded.len().min(MAX_TEXT_CHARS * 4));
    let mut chars = 0;
    let mut pending_space = false;
    for c in decoded.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            if chars + 1 >= MAX_TEXT_CHARS {
                break;
            }
            out.push(' ');
            chars += 1;
            pending_space = false;
        }
        if chars >= MAX_TEXT_CHARS {
            break;
        }
        out.push(c);
        chars += 1;
    }
    (!out.is_empty()).then_some(out)
}

/// ASCII-case-insensitive substring test.
fn contains_ascii_ci(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Byte offset of `part` within `whole`; `part` must be a subslice of `whole`.
#[inline]
fn offset_in(whole: &str, part: &str) -> usize {
    let offset = part.as_ptr() as usize - whole.as_ptr() as usize;
    debug_assert!(offset + part.len() <= whole.len());
    offset
}

/// Writes `replacement` for `whole[start..start + original.len()]` into `out`
/// when it differs (is owned), allocating `out` on the first change.
fn splice(
    whole: &str,
    out: &mut Option<String>,
    copied: &mut usize,
    start: usize,
    original: &str,
    replacement: Cow<'_, str>,
) {
    if let Cow::Owned(replacement) = replacement {
        put(whole, out, copied, start, original, &replacement);
    }
}

/// Writes `replacement` for `whole[start..start + original.len()]` into `out`,
/// allocating `out` on the first change.
fn put(
    whole: &str,
    out: &mut Option<String>,
    copied: &mut usize,
    start: usize,
    original: &str,
    replacement: &str,
) {
    let buf = out.get_or_insert_with(|| String::with_capacity(whole.len()));
    buf.push_str(&whole[*copied..start]);
    buf.push_str(replacement);
    *copied = start + original.len();
}

/// Completes a lazily built rewrite of `input`.
fn finish(input: &str, out: Option<String>, copied: usize) -> Cow<'_, str> {
    match out {
        Some(mut buf) => {
            buf.push_str(&input[copied..]);
            Cow::Owned(buf)
        }
        None => Cow::Borrowed(input),
    }
}

#[cfg(test)]
mod tests;
