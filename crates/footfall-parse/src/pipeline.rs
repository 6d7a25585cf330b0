//! The line pipeline: format parse, then enrichment and pseudonymisation.
//!
//! [`Pipeline`] holds what is compiled once per source configuration (format,
//! rules, keys); [`Worker`] adds the per-thread caches. Both are pure: bytes in,
//! an [`Outcome`] out.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use footfall_event::{
    segment, EventRef, Prerendered, Reject, RejectKind, VisitEvent, SCHEMA_VERSION,
};
use serde::{Deserialize, Serialize};

use crate::classify::{self, Kind, KindRuleConfig, KindRules};
use crate::dead_letter;
use crate::formats::{self, FormatError, FormatState, LineFormat};
use crate::memo::Memo;
use crate::privacy::{self, InvalidSetting, KeyProvider, PrivacyConfig, VisitorBasis};
use crate::record::RawRecord;
use crate::referrer::{LandingSignal, ReferrerClassifier, ReferrerInfo};
use crate::route::{RouteRuleConfig, RouteRules};
use crate::scrub::Kind as Finding;
use crate::search::normalized_terms;
use crate::ua::{UaCache, UaClassifier};
use crate::url::{self, QueryPolicy, UrlRules, Utm};
use crate::visitors::{self, VisitorTable};

/// Identity of a log source, used in `event_id` so a re-read of the same line
/// gets the same id. `name` is what events show in `source` (a path, `stdin`);
/// `key` is derived from the file's lineage and its first line
/// ([`SourceRef::from_first_line`]), so a file rotated in its directory keeps
/// its identity while two different logs never share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceRef {
    /// What events show in `source`: a path, `stdin`, `syslog:...`.
    pub name: Arc<str>,
    /// The identity hashed into every `event_id` of the source.
    pub key: [u8; 16],
}

impl SourceRef {
    /// The name of standard input as a source.
    pub const STDIN: &'static str = "stdin";

    /// Identity from the source's name and its first line (up to 1 KiB,
    /// without the terminator). For a file, `name` is its path and the key
    /// covers its [lineage](crate::lineage) (absolute directory, name without
    /// rotation suffixes) and the first line. For standard input
    /// ([`SourceRef::STDIN`]) the key covers the first line alone.
    pub fn from_first_line(name: impl Into<Arc<str>>, first_line: &[u8]) -> Self {
        let name = name.into();
        let first = &first_line[..first_line.len().min(1024)];
        let key = if &*name == Self::STDIN {
            xxhash_rust::xxh3::xxh3_128(first).to_le_bytes()
        } else {
            crate::lineage::file_key(std::path::Path::new(&*name), first)
        };
        SourceRef { name, key }
    }
}

/// What one line became.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The line's visit event.
    Event(Box<VisitEvent>),
    /// Why the line is not one, for the dead letters.
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
    /// Defaults to the site name and the request's own host (and, with
    /// `infer_site_host`, the host its referrers show).
    pub site_hosts: Vec<String>,
    /// Without `site_hosts`, the host referring most to the site's own paths
    /// in a source's first lines is the site's ([`crate::self_host`]; the
    /// front ends infer and log it). Default true.
    pub infer_site_host: bool,
    /// IANA timezone (`Europe/Berlin`) for event times and calendar days;
    /// default: the offset each line carries.
    pub timezone: Option<String>,
    /// Name of the session cookie that identifies a visitor when logged.
    pub session_cookie: Option<String>,
    /// Lines longer than this are rejected as `too_long` (default 64 KiB).
    pub max_line_bytes: usize,
    /// Lines timed more than this many hours after the clock are rejected as
    /// `time_out_of_range` (default 24).
    pub max_future_hours: u32,
    /// Lines timed more than this many days before the clock are rejected as
    /// `time_out_of_range` (default 7305, twenty years). Raise it to backfill older logs.
    pub max_past_days: u32,
    /// Which query values are kept: `allow` (the default: `utm_*`, the
    /// site-search parameters, [`url::DEFAULT_ALLOWED_PARAMS`] and
    /// `query_allow`; every other value becomes `REDACTED`) or `deny` (every
    /// value but those of `secret_params`).
    pub query_policy: QueryPolicy,
    /// Parameters whose values `allow` keeps, in addition to the defaults.
    pub query_allow: Vec<String>,
    /// Query parameters whose values are always replaced by `REDACTED`, under
    /// either policy (default list when absent).
    pub secret_params: Option<Vec<String>>,
    /// Query parameters carrying on-site search terms (default: q, s, search, query, keyword).
    pub site_search_params: Option<Vec<String>>,
    /// Extra route rules: regex on one path segment → placeholder.
    pub route_rules: Vec<RouteRuleConfig>,
    /// Operator rules for the event's `kind`, checked in order before the
    /// built-in ones ([`classify::default_kind`]).
    pub kind_rules: Vec<KindRuleConfig>,
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
            infer_site_host: true,
            timezone: None,
            session_cookie: None,
            max_line_bytes: 64 * 1024,
            max_future_hours: 24,
            max_past_days: 7305,
            query_policy: QueryPolicy::Allow,
            query_allow: Vec::new(),
            secret_params: None,
            site_search_params: None,
            route_rules: Vec::new(),
            kind_rules: Vec::new(),
            privacy: PrivacyConfig::default(),
        }
    }
}

impl ParseConfig {
    /// Refuses settings that cannot be honoured, naming the key (never a
    /// secret value): prefix lengths out of range or keeping whole addresses
    /// without `emit_raw_ip` ([`PrivacyConfig::validate`]), empty parameter
    /// names, `query_allow` under the deny policy, and a parameter listed as
    /// kept (`query_allow`, `site_search_params`) that is also a secret, and
    /// kind rules with an unknown kind or not exactly one path pattern.
    /// [`Pipeline::new`] checks this first; front ends call it before
    /// reading anything, so a bad setting is a configuration error at start.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.privacy.validate()?;
        KindRules::new(&self.kind_rules)?;
        let rules = self.url_rules();
        no_empty_names("query_allow", &self.query_allow)?;
        no_empty_names("secret_params", &rules.secret_params)?;
        no_empty_names("site_search_params", &rules.site_search_params)?;
        if self.query_policy == QueryPolicy::Deny && !self.query_allow.is_empty() {
            return Err(InvalidSetting::new(
                "query_allow",
                "is only used with query_policy = \"allow\"; remove it or the deny policy",
            ));
        }
        let kept = [
            ("query_allow", &self.query_allow),
            ("site_search_params", &rules.site_search_params),
        ];
        for (key, names) in kept {
            if let Some(name) = names.iter().find(|n| rules.is_secret_name(n)) {
                return Err(InvalidSetting::new(
                    key,
                    format!("{name:?} is also in secret_params, whose values are never kept; remove it from one of them"),
                ));
            }
        }
        Ok(())
    }

    /// The URL rules this configuration asks for.
    fn url_rules(&self) -> UrlRules {
        let mut url = UrlRules {
            query_policy: self.query_policy,
            privacy: self.privacy.clone(),
            ..UrlRules::default()
        };
        url.allowed_params.extend(self.query_allow.iter().cloned());
        if let Some(p) = &self.secret_params {
            url.secret_params = p.clone();
        }
        if let Some(p) = &self.site_search_params {
            url.site_search_params = p.clone();
        }
        url
    }
}

fn no_empty_names(key: &'static str, names: &[String]) -> Result<(), InvalidSetting> {
    match names.iter().any(|n| n.trim().is_empty()) {
        true => Err(InvalidSetting::new(key, "holds an empty parameter name")),
        false => Ok(()),
    }
}

/// A parse configuration is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting that cannot be honoured ([`ParseConfig::validate`]).
    #[error(transparent)]
    Setting(#[from] InvalidSetting),
    /// An unknown preset or a custom format string that does not compile.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// `format = "auto"` reached [`Pipeline::new`] unresolved.
    #[error(
        "format \"auto\" must be resolved with Pipeline::detect_format before building a pipeline"
    )]
    UnresolvedAuto,
    /// `format = "custom"` without a `log_format`.
    #[error("format \"custom\" needs a log_format string")]
    MissingTemplate,
    /// A `timezone` that is not an IANA zone name.
    #[error("unknown timezone {0:?}")]
    Timezone(String),
    /// A route rule whose segment regex does not compile (the regex, why).
    #[error("route rule {0:?}: {1}")]
    RouteRule(String, String),
}

/// The rule tables that are costly to build: build once, share between pipelines.
#[derive(Clone)]
pub struct Tables {
    /// User-agent rules: uap-core and crawler-user-agents.
    pub ua: Arc<UaClassifier>,
    /// Referrer sources and media.
    pub referrers: Arc<ReferrerClassifier>,
}

impl Tables {
    /// The tables compiled into footfall (uap-core, crawler-user-agents, referrer sources).
    pub fn embedded() -> Tables {
        Tables {
            ua: Arc::new(UaClassifier::embedded()),
            referrers: Arc::new(ReferrerClassifier::embedded()),
        }
    }
}

/// Everything needed to turn lines of one source into events. `Send + Sync`.
#[derive(Clone)]
pub struct Pipeline {
    pub(crate) format: Arc<dyn LineFormat>,
    site: Option<String>,
    pub(crate) site_hosts: Vec<String>,
    tz: Option<chrono_tz::Tz>,
    session_cookie: Option<String>,
    max_line: usize,
    /// How far lines may be timed after and before the clock.
    max_future: chrono::TimeDelta,
    max_past: chrono::TimeDelta,
    privacy: PrivacyConfig,
    url: UrlRules,
    routes: RouteRules,
    kinds: KindRules,
    pub(crate) tables: Tables,
    keys: Arc<dyn KeyProvider>,
    id_key: [u8; 32],
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("format", &self.format.name())
            .field("site", &self.site)
            .finish()
    }
}

impl Pipeline {
    /// Compile a configuration. `format = "auto"` must be resolved first ([`Pipeline::detect_format`]).
    pub fn new(
        cfg: &ParseConfig,
        tables: &Tables,
        keys: Arc<dyn KeyProvider>,
    ) -> Result<Pipeline, ConfigError> {
        cfg.validate()?;
        let format = match (&cfg.log_format, cfg.format.as_str()) {
            (Some(t), _) => formats::custom(t)?,
            (None, "auto") => return Err(ConfigError::UnresolvedAuto),
            (None, "custom") => return Err(ConfigError::MissingTemplate),
            (None, name) => formats::preset(name)?,
        };
        let tz = match &cfg.timezone {
            Some(t) => Some(
                t.parse::<chrono_tz::Tz>()
                    .map_err(|_| ConfigError::Timezone(t.clone()))?,
            ),
            None => None,
        };
        let url = cfg.url_rules();
        let mut routes = RouteRules::default();
        for r in &cfg.route_rules {
            routes
                .add_rule(&r.segment, &r.placeholder)
                .map_err(|e| ConfigError::RouteRule(r.segment.clone(), e.to_string()))?;
        }
        let mut site_hosts: Vec<String> = cfg
            .site_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
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
            max_future: chrono::TimeDelta::hours(i64::from(cfg.max_future_hours)),
            max_past: chrono::TimeDelta::days(i64::from(cfg.max_past_days)),
            privacy: cfg.privacy.clone(),
            url,
            routes,
            kinds: KindRules::new(&cfg.kind_rules)?,
            tables: tables.clone(),
            keys,
            id_key,
        })
    }

    /// Pick a preset from a source's first lines (`format = "auto"`).
    pub fn detect_format(sample_lines: &[&[u8]]) -> Option<&'static str> {
        let lines: Vec<Cow<'_, str>> = sample_lines
            .iter()
            .map(|l| String::from_utf8_lossy(trim_eol(l)))
            .collect();
        let refs: Vec<&str> = lines.iter().map(|c| c.as_ref()).collect();
        formats::detect(&refs)
    }

    /// The format's name.
    pub fn format_name(&self) -> &str {
        self.format.name()
    }

    /// Target phase: what a request target yields (cached per target by
    /// the worker): the path and query with secrets redacted, the route, the
    /// kind of resource, the site-search terms in one spelling, the UTM
    /// fields and what the query says about the medium.
    fn target_parts(&self, target: &str) -> TargetParts {
        let (raw_path, raw_query) = url::split_target(target);
        let path = self.url.redact_path(raw_path).into_owned();
        let route = self.routes.template_scrubbed(&path).into_owned();
        let kind = self.kinds.kind(&path);
        TargetParts::new(
            path,
            raw_query
                .filter(|q| !q.is_empty())
                .map(|q| self.url.redact_query(q).into_owned()),
            route,
            raw_query
                .and_then(|q| self.url.site_search(q))
                .and_then(normalized_terms),
            raw_query.map(url::utm).unwrap_or_default(),
            LandingSignal::of(raw_query),
            kind,
        )
    }

    /// What referrer `r` says on its own (cached per referrer and foreign
    /// host by the worker): medium, source, host as a network when it is an
    /// address, search terms in one spelling, the URL with secrets redacted.
    fn referrer_parts(&self, r: &str, foreign_host: Option<&str>) -> ReferrerParts {
        let mut info = match foreign_host {
            Some(h) => {
                let mut hosts = self.site_hosts.clone();
                hosts.push(h.to_string());
                self.tables.referrers.classify_source(Some(r), &hosts)
            }
            None => self
                .tables
                .referrers
                .classify_source(Some(r), &self.site_hosts),
        };
        info.host = info.host.map(|h| host_network(h, &self.privacy));
        info.search_terms = info.search_terms.and_then(normalized_terms);
        ReferrerParts::new(Some(self.url.redact_url(r).into_owned()), info)
    }

    /// A worker with its own caches; one per thread.
    pub fn worker(self: &Arc<Self>) -> Worker {
        Worker {
            p: Arc::clone(self),
            ua: UaCache::new(Arc::clone(&self.tables.ua)),
            day: None,
            targets: Memo::new(MEMO_ENTRIES, MEMO_KEY_BYTES, MEMO_KEY_LEN),
            referrers: Memo::new(MEMO_ENTRIES, MEMO_KEY_BYTES, MEMO_KEY_LEN),
            visitor_table: VisitorTable::new(VISITOR_MEMO_ENTRIES),
            visitors: Memo::new(VISITOR_MEMO_ENTRIES, MEMO_KEY_BYTES, MEMO_KEY_LEN),
            key: Vec::new(),
            basis: Vec::new(),
            direct: ReferrerParts::new(None, self.tables.referrers.classify_source(None, &[])),
            now: chrono::Utc::now(),
        }
    }
}

/// A referrer host that is an IP address as its network (`84.203.1.0/24`,
/// like `client_net`; `:ip` when networks are dropped); a host name as it is.
fn host_network(host: String, privacy: &PrivacyConfig) -> String {
    match privacy::ip_literal(&host) {
        Some(ip) => privacy::truncate_client(&host, privacy)
            .unwrap_or_else(|| Finding::Ip(ip).placeholder().to_string()),
        None => host,
    }
}

/// Strip a trailing `\n` / `\r\n`.
pub(crate) fn trim_eol(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// Bounds of each per-worker memo table: entries, total key bytes, longest key kept.
const MEMO_ENTRIES: usize = 16_384;
const MEMO_KEY_BYTES: usize = 2 << 20;
const MEMO_KEY_LEN: usize = 1024;
/// Visitors outnumber targets and referrers (a day of a busy site has tens of
/// thousands); their keys are short (site, client, user-agent token).
const VISITOR_MEMO_ENTRIES: usize = 65_536;

/// What a request target yields, whatever else the line says.
struct TargetParts {
    path: String,
    query: Option<String>,
    route: String,
    site_search: Option<String>,
    utm: Utm,
    /// The kind of resource the path names.
    kind: Kind,
    /// What the query says about the medium (see [`LandingSignal`]).
    landing: LandingSignal,
    /// The event JSON of `path` to `route` ([`segment::target`]), then that
    /// of `site_search` and the UTM fields ([`segment::campaign`]) from
    /// `campaign_at` on: one allocation, read by every event.
    json: Box<[u8]>,
    campaign_at: usize,
}

impl TargetParts {
    fn new(
        path: String,
        query: Option<String>,
        route: String,
        site_search: Option<String>,
        utm: Utm,
        landing: LandingSignal,
        kind: Kind,
    ) -> Self {
        let mut json = Vec::new();
        segment::target(&mut json, &path, query.as_deref(), &route);
        let campaign_at = json.len();
        segment::campaign(
            &mut json,
            site_search.as_deref(),
            [
                utm.source.as_deref(),
                utm.medium.as_deref(),
                utm.campaign.as_deref(),
                utm.term.as_deref(),
                utm.content.as_deref(),
            ],
        );
        TargetParts {
            kind,
            path,
            query,
            route,
            site_search,
            utm,
            landing,
            json: json.into_boxed_slice(),
            campaign_at,
        }
    }
}

/// What a referrer yields (for one set of site hosts).
struct ReferrerParts {
    referrer: Option<String>,
    info: ReferrerInfo,
    /// The event JSON of `referrer` to `search_terms` ([`segment::referrer`]),
    /// valid while the landing query does not change the medium.
    json: Box<[u8]>,
}

impl ReferrerParts {
    fn new(referrer: Option<String>, info: ReferrerInfo) -> Self {
        let mut json = Vec::new();
        segment::referrer(
            &mut json,
            referrer.as_deref(),
            info.host.as_deref(),
            &info.medium,
            info.source.as_deref(),
            info.search_terms.as_deref(),
        );
        ReferrerParts {
            referrer,
            info,
            json: json.into_boxed_slice(),
        }
    }
}

/// What a visitor's identity yields under the current day key.
struct VisitorParts {
    /// The visitor id, then the client network when there is one: one
    /// allocation, read by every event.
    text: Box<str>,
    id_len: usize,
    has_net: bool,
}

impl VisitorParts {
    fn new(id: &str, client_net: Option<&str>) -> Self {
        let mut text = String::with_capacity(id.len() + client_net.map_or(0, str::len));
        text.push_str(id);
        text.extend(client_net);
        VisitorParts {
            text: text.into_boxed_str(),
            id_len: id.len(),
            has_net: client_net.is_some(),
        }
    }

    fn id(&self) -> &str {
        &self.text[..self.id_len]
    }

    fn client_net(&self) -> Option<&str> {
        self.has_net.then(|| &self.text[self.id_len..])
    }
}

/// Per-thread state: the current day key and caches of what repeats in a log
/// stream (user agents, request targets, referrers, visitor pseudonyms).
/// Caching never changes a result: every cached value is a pure function of
/// its key under this pipeline's rules (visitor ids also of the day key, and
/// that memo is emptied when the day changes).
pub struct Worker {
    p: Arc<Pipeline>,
    ua: UaCache,
    day: Option<(NaiveDate, [u8; 32])>,
    targets: Memo<TargetParts>,
    referrers: Memo<ReferrerParts>,
    /// Visitors with short keys, inline ([`VisitorTable`]); the others in `visitors`.
    visitor_table: VisitorTable,
    visitors: Memo<VisitorParts>,
    /// Scratch buffer for composite memo keys and hashed input.
    key: Vec<u8>,
    /// Scratch buffer for the input of a visitor id.
    basis: Vec<u8>,
    /// The classification of a request without a referrer.
    direct: ReferrerParts,
    /// The clock, read when the worker was made and again before a line is
    /// found too far in the future.
    now: DateTime<chrono::Utc>,
}

impl Worker {
    /// Turn one line (without its terminator; a trailing `\r` is dropped) at
    /// `offset` of `src` into an event or a reject.
    pub fn process(
        &mut self,
        src: &SourceRef,
        state: &mut FormatState,
        offset: u64,
        line: &[u8],
    ) -> Outcome {
        match self.process_with(src, state, offset, line, |ev| ev.to_event()) {
            Ok(ev) => Outcome::Event(Box::new(ev)),
            Err(r) => Outcome::Reject(r),
        }
    }

    /// Like [`process`](Self::process), but hands the event to `sink` as a
    /// borrowed [`EventRef`] instead of building an owned one: the fast path
    /// for writing events out (`|ev| ev.write_json_line(&mut out)`).
    pub fn process_with<R>(
        &mut self,
        src: &SourceRef,
        state: &mut FormatState,
        offset: u64,
        line: &[u8],
        sink: impl FnOnce(&EventRef<'_>) -> R,
    ) -> Result<R, Box<Reject>> {
        let line = trim_eol(line);
        let id = privacy::event_id_hex(&self.p.id_key, &src.key, offset, line, &mut self.key);
        let event_id = id.as_str();
        if line.len() > self.p.max_line {
            return Err(self.reject(
                (src, state),
                offset,
                event_id,
                line,
                RejectKind::TooLong,
                format!(
                    "line is {} bytes, over the {} byte limit",
                    line.len(),
                    self.p.max_line
                )
                .into(),
            ));
        }
        // Valid UTF-8 (the common case) is borrowed; invalid bytes become U+FFFD.
        let text = match simdutf8::basic::from_utf8(line) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(line),
        };
        let rec = match self.p.format.parse(&text, state) {
            Ok(r) => r,
            Err(e) => {
                return Err(self.reject((src, state), offset, event_id, line, e.kind, e.reason))
            }
        };
        let mut ts: DateTime<FixedOffset> = rec.ts.expect("formats reject lines without a time");
        if let Some(tz) = self.p.tz {
            ts = tz.from_utc_datetime(&ts.naive_utc()).fixed_offset();
        }
        if let Some(reason) = self.out_of_range(&ts) {
            return Err(self.reject(
                (src, state),
                offset,
                event_id,
                line,
                RejectKind::TimeOutOfRange,
                reason.into(),
            ));
        }
        let date = ts.date_naive();
        let Some(day_key) = Self::day_key(
            &mut self.day,
            (&mut self.visitor_table, &mut self.visitors),
            &*self.p.keys,
            date,
        ) else {
            let reason =
                format!("the key of {date} has been destroyed (older than the keyring's horizon)");
            return Err(self.reject(
                (src, state),
                offset,
                event_id,
                line,
                RejectKind::KeyDestroyed,
                reason.into(),
            ));
        };
        Ok(self.enrich(rec, ts, day_key, src, offset, event_id, sink))
    }

    /// Why `ts` lies outside the window around the clock, if it does (a time
    /// in the future is checked against a fresh reading of the clock).
    fn out_of_range(&mut self, ts: &DateTime<FixedOffset>) -> Option<String> {
        let t = ts.with_timezone(&chrono::Utc);
        if t < self.now - self.p.max_past {
            return Some(format!(
                "{ts} is more than {} days before the clock (parse.max_past_days)",
                self.p.max_past.num_days()
            ));
        }
        if t > self.now + self.p.max_future {
            self.now = chrono::Utc::now();
            if t > self.now + self.p.max_future {
                return Some(format!(
                    "{ts} is more than {} hours after the clock (parse.max_future_hours)",
                    self.p.max_future.num_hours()
                ));
            }
        }
        None
    }

    fn reject(
        &self,
        (src, state): (&SourceRef, &FormatState),
        offset: u64,
        event_id: &str,
        line: &[u8],
        kind: RejectKind,
        reason: Cow<'static, str>,
    ) -> Box<Reject> {
        let truncated = line.len() > Reject::MAX_LINE;
        let mut cut = &line[..line.len().min(Reject::MAX_LINE)];
        // Cut on a UTF-8 boundary where possible.
        while truncated
            && !cut.is_empty()
            && std::str::from_utf8(cut).is_err()
            && line.len() - cut.len() < 4
        {
            cut = &cut[..cut.len() - 1];
        }
        let text = String::from_utf8_lossy(cut);
        // A reason can quote the line (a JSON parser's "invalid type: string
        // \"…\""): it is scrubbed like the line.
        let cookie = self.p.session_cookie.as_deref();
        let spans = self.p.format.personal_spans(&text, state);
        let line = dead_letter::scrub_rejected(&text, &spans, &self.p.url, cookie).into_owned();
        Box::new(Reject {
            v: SCHEMA_VERSION,
            event_id: event_id.to_string(),
            source: src.name.to_string(),
            offset,
            kind,
            reason: dead_letter::scrub_line(&reason, &self.p.url, cookie).into_owned(),
            line,
            truncated,
        })
    }

    /// The day key of `date` (`None` when destroyed); a new day empties the
    /// visitor memos, whose ids were keyed with the previous one. (Fields
    /// rather than `&mut self`, so the pipeline can stay borrowed meanwhile.)
    fn day_key(
        day: &mut Option<(NaiveDate, [u8; 32])>,
        visitors: (&mut VisitorTable, &mut Memo<VisitorParts>),
        keys: &dyn KeyProvider,
        date: NaiveDate,
    ) -> Option<[u8; 32]> {
        match *day {
            Some((d, k)) if d == date => Some(k),
            _ => {
                let k = keys.day_key(date)?;
                *day = Some((date, k));
                visitors.0.clear();
                visitors.1.clear();
                Some(k)
            }
        }
    }

    /// The event of a parsed line, handed to `sink`: the request target,
    /// referrer and visitor phases, each through its memo, then the event
    /// assembled from what they found.
    #[allow(clippy::too_many_arguments)]
    fn enrich<R>(
        &mut self,
        rec: RawRecord<'_>,
        ts: DateTime<FixedOffset>,
        day_key: [u8; 32],
        src: &SourceRef,
        offset: u64,
        event_id: &str,
        sink: impl FnOnce(&EventRef<'_>) -> R,
    ) -> R {
        // Borrowed, not cloned: an `Arc` clone per line is two atomic
        // operations on a counter every worker thread shares.
        let p: &Pipeline = &self.p;
        let host: Option<Cow<'_, str>> = rec.host.as_deref().map(|h| {
            if h.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(h.to_ascii_lowercase())
            } else {
                Cow::Borrowed(h)
            }
        });
        let site: &str = p.site.as_deref().or(host.as_deref()).unwrap_or("default");

        let target = rec.target.as_deref().unwrap_or("");
        let target_slot = self
            .targets
            .slot(target.as_bytes(), || p.target_parts(target));
        let referrer_slot = rec.referrer.as_deref().map(|r| {
            Self::referrer_slot(p, &mut self.referrers, &mut self.key, host.as_deref(), r)
        });
        let ua = rec.user_agent.as_deref().unwrap_or("");
        let (ua_info, ua_json, ua_token) = self.ua.lookup(ua);
        let caches = VisitorCaches {
            table: &mut self.visitor_table,
            memo: &mut self.visitors,
            key: &mut self.key,
            basis: &mut self.basis,
        };
        let who = Self::visitor(p, &rec, site, (ua, ua_token), &day_key, caches);

        // Every memo lookup is done: borrow the results.
        let t = self.targets.get(target_slot);
        let ref_parts = match referrer_slot {
            Some(i) => self.referrers.get(i),
            None => &self.direct,
        };
        let (referrer, ref_info) = (ref_parts.referrer.as_deref(), &ref_parts.info);
        let medium = ReferrerClassifier::landing_medium_of(ref_info, t.landing);
        let status = rec.status.unwrap_or(0);
        let kind = t.kind.label();
        sink(&EventRef {
            v: SCHEMA_VERSION,
            event_id,
            ts,
            site,
            host: host.as_deref(),
            visitor_id: who.id,
            client_net: who.client_net.as_deref(),
            client_ip: rec.client.as_deref().filter(|_| p.privacy.emit_raw_ip),
            method: rec.method.as_deref(),
            path: &t.path,
            query: t.query.as_deref(),
            route: &t.route,
            protocol: rec.protocol.as_deref(),
            status,
            bytes: rec.bytes,
            // Microsecond resolution: unit conversions (s → ms) leave float noise otherwise.
            duration_ms: rec.duration_ms.map(|d| (d * 1000.0).round() / 1000.0),
            upstream: rec.upstream.as_deref(),
            referrer,
            referrer_host: ref_info.host.as_deref(),
            referrer_medium: medium.as_ref().unwrap_or(&ref_info.medium),
            referrer_source: ref_info.source.as_ref(),
            search_terms: ref_info.search_terms.as_deref(),
            site_search: t.site_search.as_deref(),
            utm_source: t.utm.source.as_deref(),
            utm_medium: t.utm.medium.as_deref(),
            utm_campaign: t.utm.campaign.as_deref(),
            utm_term: t.utm.term.as_deref(),
            utm_content: t.utm.content.as_deref(),
            browser: ua_info.browser.as_ref(),
            browser_version: ua_info.browser_version.as_ref(),
            os: ua_info.os.as_ref(),
            device: &ua_info.device,
            is_bot: ua_info.is_bot,
            bot_name: ua_info.bot_name.as_ref(),
            is_pageview: classify::is_pageview(t.kind, rec.method.as_deref(), status),
            kind: &kind,
            source: &src.name,
            offset,
            pre: Prerendered {
                // Inline visitors are address-based, so their JSON holds the network.
                visitor: who.json,
                target: Some(&t.json[..t.campaign_at]),
                // The cached JSON holds the referrer's own medium.
                referrer: medium.is_none().then_some(&*ref_parts.json),
                campaign: Some(&t.json[t.campaign_at..]),
                agent: Some(ua_json),
            },
        })
    }

    /// Referrer phase: the memo slot of what referrer `r` says on its own,
    /// for the request's `host` (a host that is not one of the site hosts
    /// counts as one too). The landing query is applied later, per line.
    fn referrer_slot(
        p: &Pipeline,
        memo: &mut Memo<ReferrerParts>,
        key: &mut Vec<u8>,
        host: Option<&str>,
        r: &str,
    ) -> usize {
        let foreign_host = host.filter(|h| !p.site_hosts.iter().any(|s| s == h));
        key.clear();
        if let Some(h) = foreign_host {
            key.extend_from_slice(h.as_bytes());
        }
        key.push(0);
        key.extend_from_slice(r.as_bytes());
        memo.slot(key, || p.referrer_parts(r, foreign_host))
    }

    /// Visitor phase: the pseudonym and client network of the line's
    /// visitor (by session cookie, else by address and user agent), from
    /// the inline table, the memo, or hashed anew. `ua` is the user agent
    /// with its cache token.
    fn visitor<'w>(
        p: &Pipeline,
        rec: &RawRecord<'_>,
        site: &str,
        ua: (&str, Option<[u64; 2]>),
        day_key: &[u8; 32],
        caches: VisitorCaches<'w>,
    ) -> Who<'w> {
        let (ua, ua_token) = ua;
        let client = rec.client.as_deref().unwrap_or("");
        let cookie = p.session_cookie.as_deref().and_then(|name| {
            rec.session
                .as_deref()
                .filter(|v| !v.is_empty())
                .or_else(|| {
                    rec.cookies
                        .as_deref()
                        .and_then(|c| privacy::cookie_value(c, name))
                })
        });
        let basis = match cookie {
            Some(c) => VisitorBasis::Cookie(c),
            None => VisitorBasis::ClientAgent(client, ua),
        };
        let truncate = || {
            rec.client
                .as_deref()
                .and_then(|c| privacy::truncate_client(c, &p.privacy))
        };
        // The memo key: what the id is a hash of (with the user agent by its
        // cache token when it has one: shorter to hash and compare), plus
        // whether an address was logged (the cached network depends on it).
        let by_address = matches!(basis, VisitorBasis::ClientAgent(..));
        let key = caches.key;
        key.clear();
        let tokened = match (&basis, ua_token) {
            (VisitorBasis::ClientAgent(client, _), Some(token)) => {
                key.push(b't');
                key.extend_from_slice(&token[0].to_le_bytes());
                key.extend_from_slice(&token[1].to_le_bytes());
                key.extend_from_slice(site.as_bytes());
                key.push(0);
                key.extend_from_slice(client.as_bytes());
                true
            }
            _ => {
                key.push(b'b');
                privacy::append_visitor_basis(site, basis, key);
                false
            }
        };
        key.push(u8::from(rec.client.is_some()));
        let (key, scratch) = (&*key, caches.basis);
        // Token keys of a short, plain address go inline; the table refuses
        // the rest, which the general memo then takes.
        let inline = if tokened && key.len() <= visitors::KEY_CAP {
            caches.table.get_or_insert(key, || {
                privacy::visitor_basis(site, basis, scratch);
                (privacy::visitor_id_of(day_key, scratch), truncate())
            })
        } else {
            None
        };
        if let Some(v) = inline {
            return Who {
                id: v.id(),
                client_net: v.client_net().map(Cow::Borrowed),
                json: Some(v.json()),
            };
        }
        let slot = caches.memo.slot(key, || {
            // An untokened key holds the hashed bytes between its tag and flag.
            let hashed: &[u8] = if tokened {
                privacy::visitor_basis(site, basis, scratch);
                scratch
            } else {
                &key[1..key.len() - 1]
            };
            VisitorParts::new(
                &privacy::visitor_id_of(day_key, hashed),
                // The network is a function of the address: cached with address-based ids.
                if by_address { truncate() } else { None }.as_deref(),
            )
        });
        let v = caches.memo.get(slot);
        Who {
            id: v.id(),
            client_net: match by_address {
                true => v.client_net().map(Cow::Borrowed),
                false => truncate().map(Cow::Owned),
            },
            json: None,
        }
    }
}

/// The worker's visitor caches and scratch buffers, lent to
/// [`Worker::visitor`].
struct VisitorCaches<'w> {
    table: &'w mut VisitorTable,
    memo: &'w mut Memo<VisitorParts>,
    /// Scratch for the memo key.
    key: &'w mut Vec<u8>,
    /// Scratch for the hashed input.
    basis: &'w mut Vec<u8>,
}

/// A line's visitor, as [`Worker::visitor`] finds it.
struct Who<'w> {
    id: &'w str,
    /// Cached with an address-based id; made per line for a cookie-based one.
    client_net: Option<Cow<'w, str>>,
    /// The event JSON of `visitor_id` and `client_net`, when held inline.
    json: Option<&'w [u8]>,
}
