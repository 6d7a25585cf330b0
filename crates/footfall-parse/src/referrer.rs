//! Referrer classification: medium, named source and search terms.
//!
//! [`ReferrerClassifier::classify`] looks at the `Referer` of a request, the
//! site's own host names and the request's query string, and decides:
//!
//! * **medium**, one of [`Medium`]: `direct` (no referrer, `-` or empty),
//!   `internal` (the site itself, or a relative referrer), `search`, `social`,
//!   `email`, `ai-assistant`, `paid` or `external` (anything else);
//! * **source**, a readable name (`Google`, `Facebook`, `Gmail`, `ChatGPT`)
//!   when the referrer host is in the source table;
//! * **search terms**, from the search engine's query parameter (`q`, `p`,
//!   `text`, `wd`, ...), when the referrer still carries them. Most engines
//!   (Google among them) no longer send terms, so this is usually `None`.
//!
//! # Source table
//!
//! The built-in table (`data/referrers/sources.rs`) lists a few hundred host
//! patterns of the major search engines, social networks, webmail services,
//! AI assistants and ad networks. Hosts are matched by suffix: the classifier
//! tries the whole host, then drops leading labels one at a time
//! (`www.google.co.uk`, `google.co.uk`, `co.uk`, `uk`) with a hash lookup each,
//! so the most specific pattern wins (`mail.google.com` is Gmail, not Google
//! search). A pattern `brand.*` matches the brand under any top-level domain
//! or common second-level suffix (`google.de`, `google.co.uk`, `google.com.br`).
//! Sites can add their own sources with [`ReferrerClassifier::add_source`].
//!
//! Webmail hosts missing from the table are still recognised by their first
//! label (`mail.`, `webmail.`, `email.`, `owa.`), as medium `email` without
//! a source.
//!
//! # Paid traffic
//!
//! The medium is `paid` when the referrer is an ad-serving host (Google Ads,
//! DoubleClick, Taboola, ...), or the landing query carries an ad click id
//! ([`PAID_CLICK_IDS`]: `gclid`, `gbraid`, `wbraid`, `dclid`, `msclkid`, ...)
//! or a paid `utm_medium` (`cpc`, `ppc`, `paid*`, `display`, `banner`, ...;
//! see [`is_paid_utm_medium`]). The source stays that of the referrer, so a
//! Google Ads click is `paid` / `Google`.
//!
//! `fbclid` is **not** a paid signal: Facebook appends it to every outbound
//! link, organic posts included. Likewise Yandex's `yclid`.
//!
//! Internal navigation stays `internal` even when the URL still carries a
//! click id from the landing page.
//!
//! # Campaign-tagged traffic without a known referrer
//!
//! When the referrer is absent or unknown (`direct` or `external` without a
//! source) and the landing query has `utm_medium=email` (or `newsletter`,
//! `e-mail`), the medium is `email`; with `utm_medium=social` (or
//! `social-network`, `social-media`, `sm`), it is `social`. E-mail clients
//! rarely send a referrer, so this is how newsletters are recognised.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use footfall_event::Label;
use serde::{Deserialize, Serialize};

use crate::url::{clean_text, query_pairs, query_value, UrlParts};

/// How a visitor arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Medium {
    /// No referrer (typed URL, bookmark, app without referrer, privacy settings).
    Direct,
    /// A page of the same site.
    Internal,
    /// A web search engine.
    Search,
    /// A social network, forum or messenger.
    Social,
    /// A webmail client or an e-mail campaign.
    Email,
    /// An advertisement.
    Paid,
    /// A chat assistant (ChatGPT, Perplexity, Claude, ...).
    AiAssistant,
    /// Any other web site.
    External,
}

impl Medium {
    /// Every medium, in declaration order.
    pub const ALL: [Medium; 8] = [
        Medium::Direct,
        Medium::Internal,
        Medium::Search,
        Medium::Social,
        Medium::Email,
        Medium::Paid,
        Medium::AiAssistant,
        Medium::External,
    ];

    /// The label used in events: `direct`, `internal`, `search`, `social`,
    /// `email`, `paid`, `ai-assistant` or `external`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Medium::Direct => "direct",
            Medium::Internal => "internal",
            Medium::Search => "search",
            Medium::Social => "social",
            Medium::Email => "email",
            Medium::Paid => "paid",
            Medium::AiAssistant => "ai-assistant",
            Medium::External => "external",
        }
    }

    /// [`as_str`](Self::as_str) as an event [`Label`] (no allocation).
    pub const fn label(self) -> Label {
        Cow::Borrowed(self.as_str())
    }
}

impl fmt::Display for Medium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`Medium`] labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown referrer medium {0:?}")]
pub struct UnknownMedium(pub String);

impl FromStr for Medium {
    type Err = UnknownMedium;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Medium::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMedium(s.to_string()))
    }
}

/// The classification of one request's referrer.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferrerInfo {
    /// Lower-cased referrer host, without port or trailing dot (the package
    /// name for `android-app://` referrers); `None` for direct traffic and
    /// referrers without a host.
    pub host: Option<String>,
    /// The [`Medium`] label.
    pub medium: Label,
    /// Named source, when the host is in the source table.
    pub source: Option<Label>,
    /// Search terms carried by a search engine referrer: percent-decoded,
    /// whitespace collapsed, trimmed, at most [`crate::url::MAX_TEXT_CHARS`]
    /// characters.
    pub search_terms: Option<String>,
}

/// What a landing query says about how the visitor came: an ad click id,
/// and the kind of medium its `utm_medium` names. See
/// [`ReferrerClassifier::landing_medium`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LandingSignal {
    /// A non-empty ad click id (`gclid`, `fbclid`, ...) is present.
    pub click_id: bool,
    /// The medium `utm_medium` maps to, if any.
    pub utm_kind: Option<Medium>,
}

impl LandingSignal {
    /// The signal of a landing query (`None` or empty: no signal).
    pub fn of(landing_query: Option<&str>) -> Self {
        let Some(query) = landing_query.filter(|q| !q.is_empty()) else {
            return LandingSignal::default();
        };
        LandingSignal {
            click_id: query_pairs(query).any(|p| {
                p.value.is_some_and(|v| !v.is_empty())
                    && PAID_CLICK_IDS.iter().any(|id| p.name_is(id))
            }),
            utm_kind: query_value(query, "utm_medium")
                .and_then(clean_text)
                .and_then(|m| utm_medium_kind(&m)),
        }
    }
}

/// Ad click ids whose presence in the landing query makes the visit `paid`.
///
/// Google Ads (`gclid`, `gbraid`, `wbraid`, `gclsrc`), Display & Video 360
/// (`dclid`), Microsoft Advertising (`msclkid`), TikTok (`ttclid`), X/Twitter
/// (`twclid`), LinkedIn (`li_fat_id`), Reddit (`rdt_cid`), Snapchat (`sccid`).
pub const PAID_CLICK_IDS: &[&str] = &[
    "gclid",
    "gbraid",
    "wbraid",
    "gclsrc",
    "dclid",
    "msclkid",
    "ttclid",
    "twclid",
    "li_fat_id",
    "rdt_cid",
    "sccid",
];

/// True for a `utm_medium` value that denotes paid traffic (ASCII case ignored):
/// anything containing `cp` (`cpc`, `cpm`, `cpv`, `cpa`), starting with `paid`
/// (`paid`, `paidsearch`, `paid_social`), or one of `ppc`, `sem`,
/// `retargeting`, `display`, `banner`, `interstitial`, `expandable`.
pub fn is_paid_utm_medium(medium: &str) -> bool {
    let m = medium.trim().to_ascii_lowercase();
    m.contains("cp")
        || m.starts_with("paid")
        || matches!(
            m.as_str(),
            "ppc" | "sem" | "retargeting" | "display" | "banner" | "interstitial" | "expandable"
        )
}

fn utm_medium_kind(medium: &str) -> Option<Medium> {
    if is_paid_utm_medium(medium) {
        return Some(Medium::Paid);
    }
    let m = medium.trim().to_ascii_lowercase();
    match m.as_str() {
        "email" | "e-mail" | "e_mail" | "e mail" | "newsletter" => Some(Medium::Email),
        "social" | "social-network" | "social-media" | "sm" | "social network" | "social media" => {
            Some(Medium::Social)
        }
        _ => None,
    }
}

/// A source added from configuration.
///
/// ```
/// use footfall_parse::referrer::{Medium, ReferrerClassifier, SourceConfig};
/// let mut classifier = ReferrerClassifier::embedded();
/// classifier.add_source(&SourceConfig {
///     name: "Partner Portal".into(),
///     medium: Medium::Social,
///     hosts: vec!["portal.example.net".into()],
///     params: vec![],
/// }).unwrap();
/// let info = classifier.classify(Some("https://portal.example.net/x"), &[], None);
/// assert_eq!(info.medium, "social");
/// assert_eq!(info.source.as_deref(), Some("Partner Portal"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Readable name (`Partner Portal`).
    pub name: String,
    /// The medium of visits from this source.
    pub medium: Medium,
    /// Host patterns: `example.com`, `example.*` or `mail*.example.com`
    /// (see the [module documentation](self)).
    pub hosts: Vec<String>,
    /// Query parameters carrying search terms, in order of preference.
    #[serde(default)]
    pub params: Vec<String>,
}

/// A source configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferrerError {
    /// A host pattern is malformed.
    #[error("invalid referrer host pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern as configured.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The source has no name.
    #[error("referrer source without a name")]
    EmptyName,
}

/// One row of the built-in table (`data/referrers/sources.rs`).
struct SourceDef {
    medium: Medium,
    name: &'static str,
    hosts: &'static [&'static str],
    params: &'static [&'static str],
}

const EMBEDDED: &[SourceDef] = include!("../data/referrers/sources.rs");

#[derive(Debug, Clone)]
struct Entry {
    name: Label,
    medium: Medium,
    params: Vec<Cow<'static, str>>,
}

/// Classifies referrers; see the [module documentation](self).
///
/// Build once (the table is indexed on construction) and share; classifying
/// takes `&self`.
#[derive(Debug, Clone)]
pub struct ReferrerClassifier {
    entries: Vec<Entry>,
    /// Host suffix -> entry.
    exact: HashMap<Box<str>, usize>,
    /// `brand` of `brand.*` (may contain dots: `search.aol`) -> entry.
    any_tld: HashMap<Box<str>, usize>,
    /// Host suffix after the first label -> (first-label prefix, entry).
    label_prefix: HashMap<Box<str>, Vec<(Box<str>, usize)>>,
}

impl ReferrerClassifier {
    /// The classifier with the built-in source table.
    pub fn embedded() -> Self {
        let mut classifier = ReferrerClassifier::empty();
        for def in EMBEDDED {
            let entry = Entry {
                name: Cow::Borrowed(def.name),
                medium: def.medium,
                params: def.params.iter().map(|p| Cow::Borrowed(*p)).collect(),
            };
            classifier
                .insert(entry, def.hosts.iter().copied())
                .unwrap_or_else(|e| panic!("built-in referrer table: {e}"));
        }
        classifier
    }

    /// A classifier without any source: only `direct`, `internal`, `paid`
    /// (from the landing query), `email` (webmail host names, campaign tags)
    /// and `external`.
    pub fn empty() -> Self {
        ReferrerClassifier {
            entries: Vec::new(),
            exact: HashMap::new(),
            any_tld: HashMap::new(),
            label_prefix: HashMap::new(),
        }
    }

    /// Adds a source. Its host patterns replace any identical pattern already
    /// present (so configuration can override the built-in table).
    pub fn add_source(&mut self, source: &SourceConfig) -> Result<&mut Self, ReferrerError> {
        if source.name.trim().is_empty() {
            return Err(ReferrerError::EmptyName);
        }
        let hosts: Vec<String> = source
            .hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        for h in &hosts {
            validate_pattern(h)?;
        }
        let entry = Entry {
            name: Cow::Owned(source.name.clone()),
            medium: source.medium,
            params: source
                .params
                .iter()
                .map(|p| Cow::Owned(p.clone()))
                .collect(),
        };
        self.insert(entry, hosts.iter().map(String::as_str))?;
        Ok(self)
    }

    /// Number of host patterns indexed.
    pub fn pattern_count(&self) -> usize {
        self.exact.len()
            + self.any_tld.len()
            + self.label_prefix.values().map(Vec::len).sum::<usize>()
    }

    fn insert<'h>(
        &mut self,
        entry: Entry,
        hosts: impl Iterator<Item = &'h str>,
    ) -> Result<(), ReferrerError> {
        let idx = self.entries.len();
        self.entries.push(entry);
        for pattern in hosts {
            validate_pattern(pattern)?;
            if let Some(brand) = pattern.strip_suffix(".*") {
                self.any_tld.insert(brand.into(), idx);
            } else if let Some((first, rest)) = pattern
                .split_once('.')
                .filter(|(first, _)| first.ends_with('*'))
            {
                let prefix = &first[..first.len() - 1];
                let list = self.label_prefix.entry(rest.into()).or_default();
                list.retain(|(p, _)| &**p != prefix);
                list.push((prefix.into(), idx));
            } else {
                self.exact.insert(pattern.into(), idx);
            }
        }
        Ok(())
    }

    /// Classifies one request.
    ///
    /// * `referrer`: the `Referer` as logged (`None`, `""` and `"-"` mean none);
    /// * `site_hosts`: the site's own host names; a referrer host equal to one
    ///   of them, ignoring ASCII case, a port and a leading `www.` on either
    ///   side, is `internal`. May be empty;
    /// * `landing_query`: the request's query string (without `?`), for ad
    ///   click ids and UTM tags.
    ///
    /// ```
    /// use footfall_parse::referrer::ReferrerClassifier;
    /// let c = ReferrerClassifier::embedded();
    /// let info = c.classify(Some("https://www.google.co.uk/search?q=rust+logs"), &[], None);
    /// assert_eq!((info.medium.as_ref(), info.source.as_deref()), ("search", Some("Google")));
    /// assert_eq!(info.search_terms.as_deref(), Some("rust logs"));
    /// let info = c.classify(Some("https://www.google.com/"), &[], Some("gclid=abc"));
    /// assert_eq!((info.medium.as_ref(), info.source.as_deref()), ("paid", Some("Google")));
    /// let site = ["example.org".to_string()];
    /// assert_eq!(c.classify(Some("http://WWW.Example.org:80/a"), &site, None).medium, "internal");
    /// assert_eq!(c.classify(Some("-"), &site, None).medium, "direct");
    /// ```
    pub fn classify(
        &self,
        referrer: Option<&str>,
        site_hosts: &[String],
        landing_query: Option<&str>,
    ) -> ReferrerInfo {
        let mut info = self.classify_source(referrer, site_hosts);
        Self::apply_landing(&mut info, landing_query);
        info
    }

    /// The part of [`classify`](Self::classify) that depends on the referrer
    /// alone (and the site's hosts): what a cache can keep per referrer.
    pub fn classify_source(&self, referrer: Option<&str>, site_hosts: &[String]) -> ReferrerInfo {
        let referrer = referrer
            .map(str::trim)
            .filter(|r| !r.is_empty() && *r != "-");
        match referrer {
            None => ReferrerInfo {
                host: None,
                medium: Medium::Direct.label(),
                source: None,
                search_terms: None,
            },
            Some(r) => self.classify_referrer(r, site_hosts),
        }
    }

    /// The part of [`classify`](Self::classify) that depends on the landing
    /// query: ad click ids and `utm_medium` turn unknown or direct traffic
    /// into `paid`, `email`, `social`, ...; internal traffic stays internal.
    pub fn apply_landing(info: &mut ReferrerInfo, landing_query: Option<&str>) {
        if let Some(m) = Self::landing_medium(info, landing_query) {
            info.medium = m;
        }
    }

    /// The medium the landing query imposes on `info`, if it changes it
    /// (see [`apply_landing`](Self::apply_landing)).
    pub fn landing_medium(info: &ReferrerInfo, landing_query: Option<&str>) -> Option<Label> {
        Self::landing_medium_of(info, LandingSignal::of(landing_query))
    }

    /// [`landing_medium`](Self::landing_medium) from the landing query's
    /// [`LandingSignal`], worked out beforehand (it depends on the query alone,
    /// so it can be cached with the request target).
    pub fn landing_medium_of(info: &ReferrerInfo, signal: LandingSignal) -> Option<Label> {
        if info.medium == Medium::Internal.as_str() {
            return None;
        }
        let LandingSignal { click_id, utm_kind } = signal;
        if click_id || utm_kind == Some(Medium::Paid) {
            return Some(Medium::Paid.label());
        }
        let kind = utm_kind?;
        let unknown = info.medium == Medium::Direct.as_str()
            || (info.medium == Medium::External.as_str() && info.source.is_none());
        unknown.then(|| kind.label())
    }

    fn classify_referrer(&self, referrer: &str, site_hosts: &[String]) -> ReferrerInfo {
        // `www.example.com/path`: some proxies log referrers without a scheme.
        let parts = UrlParts::split_lenient(referrer);
        let host = match parts.host {
            Some(h) => h,
            None => {
                // A relative referrer (`/a`) can only name the site itself;
                // anything else without a host is some other place.
                let medium = if referrer.starts_with('/') {
                    Medium::Internal
                } else {
                    Medium::External
                };
                return ReferrerInfo {
                    host: None,
                    medium: medium.label(),
                    source: None,
                    search_terms: None,
                };
            }
        };
        let host = normalise_host(host);
        if host.is_empty() {
            return ReferrerInfo {
                host: None,
                medium: Medium::External.label(),
                source: None,
                search_terms: None,
            };
        }
        if site_hosts.iter().any(|site| same_site(&host, site)) {
            return ReferrerInfo {
                host: Some(host),
                medium: Medium::Internal.label(),
                source: None,
                search_terms: None,
            };
        }
        let entry = if parts
            .scheme
            .is_some_and(|s| s.eq_ignore_ascii_case("android-app"))
        {
            // Package names are reversed host names: only whole names are listed.
            self.exact.get(host.as_str()).map(|&i| &self.entries[i])
        } else {
            self.lookup(&host)
        };
        match entry {
            Some(entry) => {
                let search_terms = search_terms(&entry.params, parts.query, parts.fragment);
                ReferrerInfo {
                    host: Some(host),
                    medium: entry.medium.label(),
                    source: Some(entry.name.clone()),
                    search_terms,
                }
            }
            None => {
                let medium = if looks_like_webmail(&host) {
                    Medium::Email
                } else {
                    Medium::External
                };
                ReferrerInfo {
                    host: Some(host),
                    medium: medium.label(),
                    source: None,
                    search_terms: None,
                }
            }
        }
    }

    /// The most specific entry whose pattern matches `host` (lower-case).
    fn lookup(&self, host: &str) -> Option<&Entry> {
        let mut start = 0;
        loop {
            let suffix = &host[start..];
            if let Some(&i) = self.exact.get(suffix) {
                return Some(&self.entries[i]);
            }
            if let Some((first, rest)) = suffix.split_once('.') {
                if let Some(list) = self.label_prefix.get(rest) {
                    if let Some((_, i)) = list.iter().find(|(p, _)| first.starts_with(&**p)) {
                        return Some(&self.entries[*i]);
                    }
                }
            }
            if let Some(i) = self.any_tld_match(suffix) {
                return Some(&self.entries[i]);
            }
            start += suffix.find('.')? + 1;
        }
    }

    /// Matches `suffix` as `brand.<tld>` or `brand.<sld>.<cctld>`.
    fn any_tld_match(&self, suffix: &str) -> Option<usize> {
        if self.any_tld.is_empty() {
            return None;
        }
        let last_dot = suffix.rfind('.')?;
        let (head, tld) = (&suffix[..last_dot], &suffix[last_dot + 1..]);
        if is_tld(tld) {
            if let Some(&i) = self.any_tld.get(head) {
                return Some(i);
            }
        }
        if tld.len() == 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()) {
            if let Some(dot) = head.rfind('.') {
                if SECOND_LEVEL.contains(&&head[dot + 1..]) {
                    if let Some(&i) = self.any_tld.get(&head[..dot]) {
                        return Some(i);
                    }
                }
            }
        }
        None
    }
}

impl Default for ReferrerClassifier {
    /// The built-in table ([`ReferrerClassifier::embedded`]).
    fn default() -> Self {
        ReferrerClassifier::embedded()
    }
}

/// Second-level labels under which country-code registries sell names
/// (`co.uk`, `com.br`, `ne.jp`), for `brand.*` patterns.
const SECOND_LEVEL: &[&str] = &[
    "ac", "co", "com", "edu", "gen", "go", "gob", "gov", "gouv", "info", "ltd", "mil", "ne", "net",
    "nic", "nom", "or", "org", "plc", "sch", "web",
];

/// A top-level domain label: 2+ ASCII letters, or an IDN `xn--` label.
fn is_tld(label: &str) -> bool {
    (label.len() >= 2 && label.bytes().all(|b| b.is_ascii_alphabetic()))
        || (label.len() > 4
            && label.starts_with("xn--")
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

fn validate_pattern(pattern: &str) -> Result<(), ReferrerError> {
    let err = |reason| {
        Err(ReferrerError::Pattern {
            pattern: pattern.to_string(),
            reason,
        })
    };
    if pattern.is_empty() {
        return err("empty");
    }
    if pattern.bytes().any(|b| b.is_ascii_uppercase()) {
        return err("must be lower-case");
    }
    if pattern
        .bytes()
        .any(|b| matches!(b, b'/' | b':' | b'@' | b'?' | b'#') || b.is_ascii_whitespace())
    {
        return err("must be a host name, not a URL");
    }
    let body = pattern.strip_suffix(".*").unwrap_or(pattern);
    let labels: Vec<&str> = body.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return err("empty label");
    }
    for (i, label) in labels.iter().enumerate() {
        match label.find('*') {
            None => {}
            Some(p) if i == 0 && p == label.len() - 1 && labels.len() > 1 && !pattern.ends_with(".*") => {}
            Some(_) => return err("`*` is allowed only as the last label (`brand.*`) or at the end of the first label (`mail*.example.com`)"),
        }
    }
    if labels[0] == "*" {
        return err("the first label needs a prefix before `*`");
    }
    Ok(())
}

/// Lower-cases a host and drops a trailing dot.
fn normalise_host(host: &str) -> String {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.to_ascii_lowercase()
}

fn strip_www(host: &str) -> &str {
    match host.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("www.") => &host[4..],
        _ => host,
    }
}

/// `host` (lower-case) and the configured `site` name the same site.
fn same_site(host: &str, site: &str) -> bool {
    let site = site.trim();
    let site = site.strip_suffix('.').unwrap_or(site);
    let site = match site.rfind(':') {
        Some(c) if !site.ends_with(']') && site[c + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            &site[..c]
        }
        _ => site,
    };
    !site.is_empty() && strip_www(host).eq_ignore_ascii_case(strip_www(site))
}

/// A host not in the table whose first label names a webmail front end.
fn looks_like_webmail(host: &str) -> bool {
    let Some((first, rest)) = host.split_once('.') else {
        return false;
    };
    // At least three labels: `mail.example.com`, not `mail.ru`.
    rest.contains('.')
        && (matches!(
            first,
            "mail" | "email" | "owa" | "roundcube" | "squirrelmail"
        ) || first.starts_with("webmail"))
}

/// The first non-blank term among `params` (in order of preference) in the
/// referrer's query, then its fragment (`#q=` from older Google result pages).
/// Values that are URLs (`/url?q=https://...` redirects) are not terms.
fn search_terms(
    params: &[Cow<'static, str>],
    query: Option<&str>,
    fragment: Option<&str>,
) -> Option<String> {
    if params.is_empty() {
        return None;
    }
    [query, fragment].into_iter().flatten().find_map(|q| {
        params.iter().find_map(|param| {
            query_pairs(q)
                .filter(|p| p.name_is(param))
                .find_map(|p| p.value.and_then(clean_text))
                .filter(|t| !is_url_like(t))
        })
    })
}

fn is_url_like(text: &str) -> bool {
    let starts = |p: &str| {
        text.as_bytes()
            .get(..p.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(p.as_bytes()))
    };
    starts("http://") || starts("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_is_valid_and_unambiguous() {
        let mut seen = std::collections::HashSet::new();
        for def in EMBEDDED {
            assert!(!def.name.is_empty());
            assert!(!def.hosts.is_empty(), "{} has no hosts", def.name);
            for h in def.hosts {
                validate_pattern(h).unwrap();
                assert!(seen.insert(*h), "host pattern {h} listed twice");
            }
        }
        let c = ReferrerClassifier::embedded();
        assert_eq!(c.pattern_count(), seen.len());
        assert!(c.pattern_count() > 250, "{}", c.pattern_count());
    }

    #[test]
    fn patterns_are_validated() {
        for bad in [
            "",
            "Google.com",
            "http://x.com",
            "*.x.com",
            "a.*.com",
            "x*y.com",
            "*",
            "a..b",
            "x*.*",
        ] {
            assert!(validate_pattern(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["x.com", "x.*", "mail*.x.fr", "a.b.*", "com.example.app"] {
            validate_pattern(good).unwrap();
        }
    }

    #[test]
    fn lookup_specificity() {
        let c = ReferrerClassifier::embedded();
        let name = |h: &str| c.lookup(h).map(|e| e.name.to_string());
        assert_eq!(name("mail.google.com").as_deref(), Some("Gmail"));
        assert_eq!(name("www.google.com.br").as_deref(), Some("Google"));
        assert_eq!(name("google.evil.com"), None);
        assert_eq!(name("notgoogle.com"), None);
        assert_eq!(name("suche.gmx.net").as_deref(), Some("GMX"));
        assert_eq!(c.lookup("suche.gmx.net").unwrap().medium, Medium::Search);
        assert_eq!(
            c.lookup("lightmailer.gmx.co.uk").unwrap().medium,
            Medium::Email
        );
        assert_eq!(
            name("webmail1m.orange.fr").as_deref(),
            Some("Orange Webmail")
        );
        assert_eq!(name("orange.fr"), None);
        assert_eq!(name("search.yahoo.co.jp").as_deref(), Some("Yahoo! JAPAN"));
    }

    #[test]
    fn tlds() {
        assert!(is_tld("de"));
        assert!(is_tld("goog"));
        assert!(is_tld("xn--p1ai"));
        assert!(!is_tld("c0m"));
        assert!(!is_tld("x"));
    }

    #[test]
    fn url_like_terms() {
        assert!(is_url_like("HTTPS://example.org"));
        assert!(!is_url_like("лицо"));
        assert!(!is_url_like("http"));
    }

    #[test]
    fn medium_round_trip() {
        for m in Medium::ALL {
            assert_eq!(m.as_str().parse::<Medium>().unwrap(), m);
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.as_str())
            );
        }
        assert!("organic".parse::<Medium>().is_err());
    }
}
