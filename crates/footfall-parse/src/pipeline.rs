//! The line pipeline: format parse, then enrichment and pseudonymisation.
//!
//! [`Pipeline`] holds what is compiled once per source configuration (format,
//! rules, keys); [`Worker`] adds the per-thread caches. Both are pure: bytes in,
//! an [`Outcome`] out.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use footfall_event::{Label, Reject, RejectKind, VisitEvent, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};

use crate::classify::classify_request;
use crate::formats::{self, FormatError, FormatState, LineFormat};
use crate::privacy::{self, KeyProvider, PrivacyConfig, VisitorBasis};
use crate::record::RawRecord;
use crate::referrer::ReferrerClassifier;
use crate::route::{RouteRuleConfig, RouteRules};
use crate::ua::{UaCache, UaClassifier};
use crate::url::{self, UrlRules};

/// Identity of a log source, used in `event_id` so a re-read of the same line
/// gets the same id. `name` is what events show in `source` (a path, `stdin`);
/// `key` is derived from the first line of the content ([`SourceRef::from_first_line`]),
/// so a renamed (rotated) file keeps its identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceRef {
    pub name: Arc<str>,
    pub key: [u8; 16],
}

impl SourceRef {
    /// Identity from the source's display name and its first line (up to 1 KiB, without the terminator).
    pub fn from_first_line(name: impl Into<Arc<str>>, first_line: &[u8]) -> Self {
        let first = &first_line[..first_line.len().min(1024)];
        let key = xxhash_rust::xxh3::xxh3_128(first).to_le_bytes();
        SourceRef { name: name.into(), key }
    }
}

/// What one line became.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Event(Box<VisitEvent>),
    Reject(Box<Reject>),
}

/// How lines of one source are parsed and enriched. Deserialised from the
/// `[source.parse]`-style sections of the config file and from CLI flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParseConfig {
    /// A preset name (`combined`, `common`, `vcombined`, `vcommon`, `w3c`,
    /// `cloudfront`, `elb`, `alb`, `s3`, `squid`, `caddy`, `traefik`,
    /// `traefik-json`, `nginx-json`), `custom` (with `log_format`) or `auto`.
    pub format: String,
    /// An nginx `log_format` or Apache `LogFormat` string; implies `format = "custom"`.
    pub log_format: Option<String>,
    /// Site name stamped on events; defaults to the logged virtual host, else `default`.
    pub site: Option<String>,
    /// Host names of the site itself: referrers from them are `internal`.
    /// Defaults to the site name and the request's own host.
    pub site_hosts: Vec<String>,
    /// IANA timezone (`Europe/Berlin`) for event times and calendar days;
    /// default: the offset each line carries.
    pub timezone: Option<String>,
    /// Name of the session cookie that identifies a visitor when logged.
    pub session_cookie: Option<String>,
    /// Lines longer than this are rejected as `too_long` (default 64 KiB).
    pub max_line_bytes: usize,
    /// Query parameters whose values are replaced by `REDACTED` (default list when absent).
    pub secret_params: Option<Vec<String>>,
    /// Query parameters carrying on-site search terms (default: q, s, search, query, keyword).
    pub site_search_params: Option<Vec<String>>,
    /// Extra route rules: regex on one path segment → placeholder.
    pub route_rules: Vec<RouteRuleConfig>,
    /// Client address handling.
    pub privacy: PrivacyConfig,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            format: "auto".to_string(),
            log_format: None,
            site: None,
            site_hosts: Vec::new(),
            timezone: None,
            session_cookie: None,
            max_line_bytes: 64 * 1024,
            secret_params: None,
            site_search_params: None,
            route_rules: Vec::new(),
            privacy: PrivacyConfig::default(),
        }
    }
}

/// A parse configuration is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("format \"auto\" must be resolved with Pipeline::detect_format before building a pipeline")]
    UnresolvedAuto,
    #[error("format \"custom\" needs a log_format string")]
    MissingTemplate,
    #[error("unknown timezone {0:?}")]
    Timezone(String),
    #[error("route rule {0:?}: {1}")]
    RouteRule(String, String),
}

/// The rule tables that are costly to build: build once, share between pipelines.
#[derive(Clone)]
pub struct Tables {
    pub ua: Arc<UaClassifier>,
    pub referrers: Arc<ReferrerClassifier>,
}

impl Tables {
    /// The tables compiled into footfall (uap-core, crawler-user-agents, referrer sources).
    pub fn embedded() -> Tables {
        Tables { ua: Arc::new(UaClassifier::embedded()), referrers: Arc::new(ReferrerClassifier::embedded()) }
    }
}

/// Everything needed to turn lines of one source into events. `Send + Sync`.
pub struct Pipeline {
    format: Arc<dyn LineFormat>,
    site: Option<String>,
    site_hosts: Vec<String>,
    tz: Option<chrono_tz::Tz>,
    session_cookie: Option<String>,
    max_line: usize,
    privacy: PrivacyConfig,
    url: UrlRules,
    routes: RouteRules,
    tables: Tables,
    keys: Arc<dyn KeyProvider>,
    id_key: [u8; 32],
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("format", &self.format.name()).field("site", &self.site).finish()
    }
}

impl Pipeline {
    /// Compile a configuration. `format = "auto"` must be resolved first ([`Pipeline::detect_format`]).
    pub fn new(cfg: &ParseConfig, tables: &Tables, keys: Arc<dyn KeyProvider>) -> Result<Pipeline, ConfigError> {
        let format = match (&cfg.log_format, cfg.format.as_str()) {
            (Some(t), _) => formats::custom(t)?,
            (None, "auto") => return Err(ConfigError::UnresolvedAuto),
            (None, "custom") => return Err(ConfigError::MissingTemplate),
            (None, name) => formats::preset(name)?,
        };
        let tz = match &cfg.timezone {
            Some(t) => Some(t.parse::<chrono_tz::Tz>().map_err(|_| ConfigError::Timezone(t.clone()))?),
            None => None,
        };
        let mut url = UrlRules::default();
        if let Some(p) = &cfg.secret_params {
            url.secret_params = p.clone();
        }
        if let Some(p) = &cfg.site_search_params {
            url.site_search_params = p.clone();
        }
        let mut routes = RouteRules::default();
        for r in &cfg.route_rules {
            routes
                .add_rule(&r.segment, &r.placeholder)
                .map_err(|e| ConfigError::RouteRule(r.segment.clone(), e.to_string()))?;
        }
        let mut site_hosts: Vec<String> = cfg.site_hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        if let Some(s) = &cfg.site {
            site_hosts.push(s.to_ascii_lowercase());
        }
        let id_key = keys.id_key();
        Ok(Pipeline {
            format,
            site: cfg.site.clone(),
            site_hosts,
            tz,
            session_cookie: cfg.session_cookie.clone(),
            max_line: cfg.max_line_bytes.max(256),
            privacy: cfg.privacy.clone(),
            url,
            routes,
            tables: tables.clone(),
            keys,
            id_key,
        })
    }

    /// Pick a preset from a source's first lines (`format = "auto"`).
    pub fn detect_format(sample_lines: &[&[u8]]) -> Option<&'static str> {
        let lines: Vec<Cow<'_, str>> = sample_lines.iter().map(|l| String::from_utf8_lossy(trim_eol(l))).collect();
        let refs: Vec<&str> = lines.iter().map(|c| c.as_ref()).collect();
        formats::detect(&refs)
    }

    /// The format's name.
    pub fn format_name(&self) -> &str {
        self.format.name()
    }

    /// Whether pseudonyms are keyed by a secret that vanishes with the process.
    pub fn keys_are_ephemeral(&self) -> bool {
        self.keys.is_ephemeral()
    }

    /// A worker with its own caches; one per thread.
    pub fn worker(self: &Arc<Self>) -> Worker {
        Worker { p: Arc::clone(self), ua: UaCache::new(Arc::clone(&self.tables.ua)), day: None }
    }
}

/// Strip a trailing `\n` / `\r\n`.
fn trim_eol(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// Per-thread state: the user-agent cache and the current day key.
pub struct Worker {
    p: Arc<Pipeline>,
    ua: UaCache,
    day: Option<(NaiveDate, [u8; 32])>,
}

impl Worker {
    /// Turn one line (without its terminator; a trailing `\r` is dropped) at
    /// `offset` of `src` into an event or a reject.
    pub fn process(&mut self, src: &SourceRef, state: &mut FormatState, offset: u64, line: &[u8]) -> Outcome {
        let line = trim_eol(line);
        let event_id = privacy::event_id(&self.p.id_key, &src.key, offset, line);
        if line.len() > self.p.max_line {
            return self.reject(src, offset, event_id, line, RejectKind::TooLong, format!("line is {} bytes, over the {} byte limit", line.len(), self.p.max_line).into());
        }
        // Valid UTF-8 (the common case) is borrowed; invalid bytes become U+FFFD.
        let text = match std::str::from_utf8(line) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(line),
        };
        let rec = match self.p.format.parse(&text, state) {
            Ok(r) => r,
            Err(e) => return self.reject(src, offset, event_id, line, e.kind, e.reason),
        };
        Outcome::Event(Box::new(self.enrich(rec, src, offset, event_id)))
    }

    fn reject(&self, src: &SourceRef, offset: u64, event_id: String, line: &[u8], kind: RejectKind, reason: Cow<'static, str>) -> Outcome {
        let truncated = line.len() > Reject::MAX_LINE;
        let mut cut = &line[..line.len().min(Reject::MAX_LINE)];
        // Cut on a UTF-8 boundary where possible.
        while truncated && !cut.is_empty() && std::str::from_utf8(cut).is_err() && line.len() - cut.len() < 4 {
            cut = &cut[..cut.len() - 1];
        }
        let text = String::from_utf8_lossy(cut);
        Outcome::Reject(Box::new(Reject {
            v: SCHEMA_VERSION,
            event_id,
            source: src.name.to_string(),
            offset,
            kind,
            reason: reason.into_owned(),
            line: privacy::scrub_line(&text).into_owned(),
            truncated,
        }))
    }

    fn day_key(&mut self, date: NaiveDate) -> [u8; 32] {
        match self.day {
            Some((d, k)) if d == date => k,
            _ => {
                let k = self.p.keys.day_key(date);
                self.day = Some((date, k));
                k
            }
        }
    }

    fn enrich(&mut self, rec: RawRecord<'_>, src: &SourceRef, offset: u64, event_id: String) -> VisitEvent {
        let p = Arc::clone(&self.p);
        let mut ts: DateTime<FixedOffset> = rec.ts.expect("formats reject lines without a time");
        if let Some(tz) = p.tz {
            ts = tz.from_utc_datetime(&ts.naive_utc()).fixed_offset();
        }
        let host = rec.host.as_deref().map(|h| h.to_ascii_lowercase());
        let site = p.site.clone().or_else(|| host.clone()).unwrap_or_else(|| "default".to_string());

        // Request target → path + query, secrets redacted.
        let target = rec.target.as_deref().unwrap_or("");
        let (raw_path, raw_query) = url::split_target(target);
        let path = p.url.redact_path(raw_path).into_owned();
        let query = raw_query.filter(|q| !q.is_empty()).map(|q| p.url.redact_query(q).into_owned());
        let route = p.routes.template(&path).into_owned();
        let site_search = raw_query.and_then(|q| p.url.site_search(q));
        let utm = raw_query.map(url::utm).unwrap_or_default();

        // Referrer.
        let referrer = rec.referrer.as_deref().map(|r| p.url.redact_url(r).into_owned());
        let ref_info = match &host {
            Some(h) if !p.site_hosts.contains(h) => {
                let mut hosts = p.site_hosts.clone();
                hosts.push(h.clone());
                p.tables.referrers.classify(rec.referrer.as_deref(), &hosts, raw_query)
            }
            _ => p.tables.referrers.classify(rec.referrer.as_deref(), &p.site_hosts, raw_query),
        };

        // Client: user agent, pseudonyms.
        let ua = rec.user_agent.as_deref().unwrap_or("");
        let ua_info = self.ua.get(ua);
        let client = rec.client.as_deref().unwrap_or("");
        let cookie = p.session_cookie.as_deref().and_then(|name| {
            rec.session.as_deref().filter(|v| !v.is_empty()).or_else(|| rec.cookies.as_deref().and_then(|c| privacy::cookie_value(c, name)))
        });
        let day_key = self.day_key(ts.date_naive());
        let basis = match cookie {
            Some(c) => VisitorBasis::Cookie(c),
            None => VisitorBasis::ClientAgent(client, ua),
        };
        let visitor_id = privacy::visitor_id(&day_key, &site, basis);
        let client_net = rec.client.as_deref().and_then(|c| privacy::truncate_client(c, &p.privacy));
        let client_ip = if p.privacy.emit_raw_ip { rec.client.as_deref().map(str::to_string) } else { None };

        let status = rec.status.unwrap_or(0);
        let kind: Label = classify_request(rec.method.as_deref(), &path, status);
        let is_pageview = kind == "page";

        VisitEvent {
            v: SCHEMA_VERSION,
            event_id,
            ts,
            site,
            host,
            visitor_id,
            client_net,
            client_ip,
            method: rec.method.map(Cow::into_owned),
            path,
            query,
            route,
            protocol: rec.protocol.map(Cow::into_owned),
            status,
            bytes: rec.bytes,
            // Microsecond resolution: unit conversions (s → ms) leave float noise otherwise.
            duration_ms: rec.duration_ms.map(|d| (d * 1000.0).round() / 1000.0),
            upstream: rec.upstream.map(Cow::into_owned),
            referrer,
            referrer_host: ref_info.host,
            referrer_medium: ref_info.medium,
            referrer_source: ref_info.source,
            search_terms: ref_info.search_terms,
            site_search,
            utm_source: utm.source,
            utm_medium: utm.medium,
            utm_campaign: utm.campaign,
            utm_term: utm.term,
            utm_content: utm.content,
            browser: ua_info.browser,
            browser_version: ua_info.browser_version,
            os: ua_info.os,
            device: ua_info.device,
            is_bot: ua_info.is_bot,
            bot_name: ua_info.bot_name,
            kind,
            is_pageview,
            source: src.name.to_string(),
            offset,
        }
    }
}
