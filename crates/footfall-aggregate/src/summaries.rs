//! Summary tables: one day's events (of every partition) in, one [`RecordBatch`] per [`Table`] out.
//!
//! [`summarize`] is pure: the same events give the same batches, whatever
//! their order, rows sorted by their key columns. A run gives it all of a
//! date's events at once, from every Kafka partition, so every distinct count
//! and every privacy threshold is exact for the day: a visitor whose events
//! sit in several partitions (the topic's partitions were increased) is one
//! visitor, and a value is folded into [`OTHER`] only when fewer than
//! [`SummaryOptions::min_visitors`] distinct visitors used it that day on that
//! site. Folded rows merge, so every count still adds up to the unfolded total.
//! What is folded: search terms ([`Table::SearchTermsDaily`]), referrer hosts
//! ([`Table::ReferrersDaily`]) and each UTM value of [`Table::CampaignsDaily`]
//! on its own.
//!
//! Visitor counts follow GoAccess: a visitor is a distinct `visitor_id` with at
//! least one request not answered 4xx. A visitor is a bot visitor when one of
//! those requests came from a bot user agent, a human visitor otherwise, so
//! `human_visitors + bot_visitors = visitors` in every row.
//!
//! The work is one sort of the day's rows by (site, visitor, time, Kafka
//! partition and offset) and one pass
//! over them; strings are interned once into integer codes, so the group-by
//! maps hash small integer tuples and allocate nothing per row.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use chrono::NaiveDate;

use crate::error::AggregateError;
use crate::hash::FxHashMap;
use crate::schema::{day_number, local_day, local_time_of_day, opt_str, Cols, DAY_US};
use crate::sessions::{Sessionizer, SummaryOptions};

/// The summary tables, each a directory of the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    TrafficDaily,
    TrafficHourly,
    PagesDaily,
    ClientsDaily,
    StatusDaily,
    SearchTermsDaily,
    ReferrersDaily,
    CampaignsDaily,
    TransitionsDaily,
    RoutesHourly,
    Visits,
}

impl Table {
    pub const ALL: [Table; 11] = [
        Table::TrafficDaily,
        Table::TrafficHourly,
        Table::PagesDaily,
        Table::ClientsDaily,
        Table::StatusDaily,
        Table::SearchTermsDaily,
        Table::ReferrersDaily,
        Table::CampaignsDaily,
        Table::TransitionsDaily,
        Table::RoutesHourly,
        Table::Visits,
    ];

    /// The table's directory name under the warehouse root.
    pub fn name(self) -> &'static str {
        match self {
            Table::TrafficDaily => "traffic_daily",
            Table::TrafficHourly => "traffic_hourly",
            Table::PagesDaily => "pages_daily",
            Table::ClientsDaily => "clients_daily",
            Table::StatusDaily => "status_daily",
            Table::SearchTermsDaily => "search_terms_daily",
            Table::ReferrersDaily => "referrers_daily",
            Table::CampaignsDaily => "campaigns_daily",
            Table::TransitionsDaily => "transitions_daily",
            Table::RoutesHourly => "routes_hourly",
            Table::Visits => "visits",
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The summary batches of one date (and partition), in [`Table::ALL`] order.
#[derive(Debug, Clone)]
pub struct Summaries {
    batches: Vec<RecordBatch>,
}

impl Summaries {
    /// The batch of one table (possibly with no rows).
    pub fn get(&self, table: Table) -> &RecordBatch {
        &self.batches[table as usize]
    }

    /// Every table with its batch.
    pub fn iter(&self) -> impl Iterator<Item = (Table, &RecordBatch)> {
        Table::ALL.into_iter().zip(self.batches.iter())
    }
}

/// The events columns [`summarize`] reads; a projection to these is enough.
pub const SUMMARY_COLUMNS: &[&str] = &[
    "ts",
    "tz_offset_s",
    "site",
    "host",
    "visitor_id",
    "method",
    "route",
    "status",
    "bytes",
    "duration_ms",
    "upstream",
    "referrer_host",
    "referrer_medium",
    "referrer_source",
    "search_terms",
    "site_search",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "browser",
    "browser_version",
    "os",
    "device",
    "is_bot",
    "bot_name",
    "is_pageview",
    "kafka_partition",
    "kafka_offset",
];

/// Names of the latency buckets (disjoint; every request falls in exactly one).
pub const LATENCY_COLUMNS: [&str; 9] = [
    "lat_le_10ms",
    "lat_le_50ms",
    "lat_le_100ms",
    "lat_le_250ms",
    "lat_le_500ms",
    "lat_le_1000ms",
    "lat_le_2500ms",
    "lat_gt_2500ms",
    "lat_unknown",
];

/// Names of the status-class counters (every request falls in exactly one).
pub const STATUS_COLUMNS: [&str; 6] = [
    "status_1xx",
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "status_other",
];

/// Label of the folded rare values (search terms, referrer hosts, campaign values).
pub const OTHER: &str = "(other)";
/// Pseudo page before a visit's first page view (`transitions_daily.from_route`).
pub const ENTRANCE: &str = "(entrance)";
/// Pseudo page after a visit's last page view (`transitions_daily.to_route`).
pub const EXIT: &str = "(exit)";

const CODE_OTHER: u32 = u32::MAX;
const CODE_ENTRANCE: u32 = u32::MAX - 1;
const CODE_EXIT: u32 = u32::MAX - 2;

#[inline]
fn latency_bucket(ms: Option<f64>) -> usize {
    match ms {
        None => 8,
        Some(ms) if ms.is_nan() => 8,
        Some(ms) if ms <= 10.0 => 0,
        Some(ms) if ms <= 50.0 => 1,
        Some(ms) if ms <= 100.0 => 2,
        Some(ms) if ms <= 250.0 => 3,
        Some(ms) if ms <= 500.0 => 4,
        Some(ms) if ms <= 1000.0 => 5,
        Some(ms) if ms <= 2500.0 => 6,
        Some(_) => 7,
    }
}

#[inline]
fn status_class(status: u16) -> usize {
    match status / 100 {
        c @ 1..=5 => c as usize - 1,
        _ => 5,
    }
}

/// String interner: code 0 is null, other codes index `values`.
struct Interner<'a> {
    map: FxHashMap<&'a str, u32>,
    values: Vec<&'a str>,
}

impl<'a> Interner<'a> {
    fn new() -> Self {
        Interner {
            map: FxHashMap::default(),
            values: vec![""],
        }
    }

    #[inline]
    fn code(&mut self, s: &'a str) -> u32 {
        if let Some(&c) = self.map.get(s) {
            return c;
        }
        let c = self.values.len() as u32;
        self.values.push(s);
        self.map.insert(s, c);
        c
    }

    /// Codes of `arr` at `rows`, with a one-entry cache for runs of equal values.
    fn column(&mut self, arr: &'a StringArray, rows: &[u32]) -> Vec<u32> {
        let mut out = Vec::with_capacity(rows.len());
        let mut last: (&'a str, u32) = ("", u32::MAX);
        for &r in rows {
            let r = r as usize;
            let code = match opt_str(arr, r) {
                None => 0,
                Some(s) if last.1 != u32::MAX && s == last.0 => last.1,
                Some(s) => {
                    let c = self.code(s);
                    last = (s, c);
                    c
                }
            };
            out.push(code);
        }
        out
    }

    #[inline]
    fn get(&self, code: u32) -> Option<&'a str> {
        match code {
            0 => None,
            CODE_OTHER => Some(OTHER),
            CODE_ENTRANCE => Some(ENTRANCE),
            CODE_EXIT => Some(EXIT),
            c => Some(self.values[c as usize]),
        }
    }
}

/// Counts distinct visitors of one group while rows arrive grouped by visitor.
#[derive(Default, Clone, Copy)]
struct Mark {
    run: u32,
    bot: bool,
}

impl Mark {
    /// Returns (new visitor, newly a bot visitor).
    #[inline]
    fn see(&mut self, run: u32, is_bot: bool) -> (bool, bool) {
        let new = self.run != run;
        if new {
            self.run = run;
            self.bot = false;
        }
        let new_bot = is_bot && !self.bot;
        if new_bot {
            self.bot = true;
        }
        (new, new_bot)
    }
}

#[derive(Default)]
struct Traffic {
    requests: i64,
    page_views: i64,
    visits: i64,
    visitors: i64,
    bot_visitors: i64,
    bounces: i64,
    visit_duration_us: i64,
    bytes: i64,
    bot_requests: i64,
    status: [i64; 6],
    latency: [i64; 9],
    mark: Mark,
}

#[derive(Default)]
struct Page {
    views: i64,
    visitors: i64,
    entries: i64,
    exits: i64,
    bounces: i64,
    time_us: i64,
    mark: Mark,
}

#[derive(Default)]
struct Client {
    requests: i64,
    page_views: i64,
    visitors: i64,
    mark: Mark,
}

#[derive(Default)]
struct Route {
    requests: i64,
    status_4xx: i64,
    status_5xx: i64,
    bytes: i64,
    latency: [i64; 9],
}

#[derive(Default)]
struct VisitCounts {
    visits: i64,
    visitors: i64,
    page_views: i64,
    bounces: i64,
    mark: Mark,
}

#[derive(Default)]
struct Searches {
    searches: i64,
    visitors: i64,
    mark: Mark,
}

/// A visit being built (positions index the in-scope rows).
struct OpenVisit {
    run: u32,
    site: u32,
    in_day: bool,
    first: u32,
    landing: Option<u32>,
    start_us: i64,
    end_us: i64,
    requests: i64,
    page_views: i64,
    entry: u32,
    last_page: u32,
    last_page_us: i64,
}

/// A finished visit that started on the summarised date.
struct Visit {
    run: u32,
    first: u32,
    landing: u32,
    start_us: i64,
    end_us: i64,
    requests: i64,
    page_views: i64,
    entry: u32,
    exit: u32,
}

impl Visit {
    fn bounce(&self) -> bool {
        self.page_views == 1
    }
}

/// The in-scope rows: decoded codes and values, indexed by scope position.
struct Rows<'a> {
    strings: Interner<'a>,
    in_day: Vec<bool>,
    ts: Vec<i64>,
    hour: Vec<u8>,
    site: Vec<u32>,
    visitor: Vec<u32>,
    host: Vec<u32>,
    method: Vec<u32>,
    route: Vec<u32>,
    upstream: Vec<u32>,
    ref_host: Vec<u32>,
    medium: Vec<u32>,
    source: Vec<u32>,
    search_terms: Vec<u32>,
    site_search: Vec<u32>,
    utm: [Vec<u32>; 5],
    browser: Vec<u32>,
    browser_version: Vec<u32>,
    os: Vec<u32>,
    device: Vec<u32>,
    bot_name: Vec<u32>,
    status: Vec<u16>,
    bytes: Vec<i64>,
    latency: Vec<u8>,
    is_bot: Vec<bool>,
    is_pageview: Vec<bool>,
    /// (Kafka partition, offset): unique per event, so orders are total
    /// whatever order the rows came in.
    message: Vec<(i32, i64)>,
}

impl<'a> Rows<'a> {
    fn load(
        batch: &'a RecordBatch,
        date: NaiveDate,
        opts: &SummaryOptions,
    ) -> Result<Self, AggregateError> {
        let c = Cols::new(batch);
        let ts = c.ts("ts")?;
        let tz = c.i32("tz_offset_s")?;
        let day = day_number(date);
        let tail_from = DAY_US - opts.timeout_us().min(DAY_US);
        let mut scope = Vec::with_capacity(batch.num_rows());
        let mut in_day = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let (t, off) = (ts.value(i), tz.value(i));
            let d = local_day(t, off);
            if d == day {
                scope.push(i as u32);
                in_day.push(true);
            } else if d == day - 1 && local_time_of_day(t, off) >= tail_from {
                scope.push(i as u32);
                in_day.push(false);
            }
        }
        let mut strings = Interner::new();
        let mut col = |name: &str| -> Result<Vec<u32>, AggregateError> {
            Ok(strings.column(c.str(name)?, &scope))
        };
        let site = col("site")?;
        let visitor = col("visitor_id")?;
        let host = col("host")?;
        let method = col("method")?;
        let route = col("route")?;
        let upstream = col("upstream")?;
        let ref_host = col("referrer_host")?;
        let medium = col("referrer_medium")?;
        let source = col("referrer_source")?;
        let search_terms = col("search_terms")?;
        let site_search = col("site_search")?;
        let utm = [
            col("utm_source")?,
            col("utm_medium")?,
            col("utm_campaign")?,
            col("utm_term")?,
            col("utm_content")?,
        ];
        let browser = col("browser")?;
        let browser_version = col("browser_version")?;
        let os = col("os")?;
        let device = col("device")?;
        let bot_name = col("bot_name")?;

        let status_a = c.u16("status")?;
        let bytes_a = c.u64("bytes")?;
        let dur = c.f64("duration_ms")?;
        let bot_a = c.bool("is_bot")?;
        let pv_a = c.bool("is_pageview")?;
        let kp = c.i32("kafka_partition")?;
        let ko = c.i64("kafka_offset")?;
        let n = scope.len();
        let (
            mut tsv,
            mut hour,
            mut status,
            mut bytes,
            mut latency,
            mut is_bot,
            mut is_pageview,
            mut message,
        ) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for &r in &scope {
            let r = r as usize;
            let t = ts.value(r);
            tsv.push(t);
            hour.push((local_time_of_day(t, tz.value(r)) / 3_600_000_000) as u8);
            status.push(status_a.value(r));
            bytes.push(if bytes_a.is_null(r) {
                0
            } else {
                bytes_a.value(r).min(i64::MAX as u64) as i64
            });
            latency.push(latency_bucket((!dur.is_null(r)).then(|| dur.value(r))) as u8);
            is_bot.push(bot_a.value(r));
            is_pageview.push(pv_a.value(r));
            message.push((kp.value(r), ko.value(r)));
        }
        Ok(Rows {
            strings,
            in_day,
            ts: tsv,
            hour,
            site,
            visitor,
            host,
            method,
            route,
            upstream,
            ref_host,
            medium,
            source,
            search_terms,
            site_search,
            utm,
            browser,
            browser_version,
            os,
            device,
            bot_name,
            status,
            bytes,
            latency,
            is_bot,
            is_pageview,
            message,
        })
    }

    #[inline]
    fn campaign(&self, i: usize) -> u64 {
        ((self.utm[0][i] as u64) << 32) | self.utm[2][i] as u64
    }

    #[inline]
    fn visitor_request(&self, i: usize) -> bool {
        !(400..500).contains(&self.status[i])
    }
}

/// Summarises the events of `date` (their local date, in their own offset).
///
/// `events` holds the date's events and, to continue visits across midnight,
/// may hold the previous day's: rows of the previous date in its last
/// `visit_timeout` only continue visits (a visit that started before midnight is
/// attributed to the previous date and is not counted here); every other row is
/// ignored. The batch needs the [`SUMMARY_COLUMNS`] (any order, more allowed).
pub fn summarize(
    events: &RecordBatch,
    date: NaiveDate,
    opts: &SummaryOptions,
) -> Result<Summaries, AggregateError> {
    let rows = Rows::load(events, date, opts)?;
    let n = rows.ts.len();

    // Order: (site, visitor, time, Kafka partition and offset): total and
    // deterministic, whatever partitions a visitor's events came from.
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        (
            rows.site[a],
            rows.visitor[a],
            rows.ts[a],
            rows.message[a],
            a,
        )
            .cmp(&(
                rows.site[b],
                rows.visitor[b],
                rows.ts[b],
                rows.message[b],
                b,
            ))
    });

    let mut traffic: FxHashMap<u32, Traffic> = FxHashMap::default();
    let mut hourly: FxHashMap<(u32, u8), Traffic> = FxHashMap::default();
    let mut pages: FxHashMap<(u32, u32), Page> = FxHashMap::default();
    let mut clients: FxHashMap<[u32; 7], Client> = FxHashMap::default();
    let mut statuses: FxHashMap<(u32, u16, u32), i64> = FxHashMap::default();
    let mut routes: FxHashMap<(u32, u8, [u32; 4]), Route> = FxHashMap::default();
    let mut transitions: FxHashMap<(u32, u32, u32), i64> = FxHashMap::default();
    // (run, site, kind, term) in visitor order: 0 = on-site, 1 = search-engine.
    let mut search_hits: Vec<(u32, u32, u8, u32)> = Vec::new();
    let mut visits: Vec<Visit> = Vec::new();

    let mut sessions = Sessionizer::new(opts.timeout_us());
    let mut run = 0u32;
    let mut prev: Option<(u32, u32)> = None;
    let mut open: Option<OpenVisit> = None;

    fn close(
        v: OpenVisit,
        visits: &mut Vec<Visit>,
        pages: &mut FxHashMap<(u32, u32), Page>,
        transitions: &mut FxHashMap<(u32, u32, u32), i64>,
    ) {
        if !v.in_day {
            return;
        }
        let site = v.site;
        if v.page_views > 0 {
            *transitions
                .entry((site, v.last_page, CODE_EXIT))
                .or_default() += 1;
            let p = pages.entry((site, v.last_page)).or_default();
            p.exits += 1;
            if v.page_views == 1 {
                p.bounces += 1;
            }
        }
        visits.push(Visit {
            run: v.run,
            first: v.first,
            landing: v.landing.unwrap_or(v.first),
            start_us: v.start_us,
            end_us: v.end_us,
            requests: v.requests,
            page_views: v.page_views,
            entry: v.entry,
            exit: if v.page_views > 0 { v.last_page } else { 0 },
        });
    }

    for &pos in &order {
        let i = pos as usize;
        let site = rows.site[i];
        let key = (site, rows.visitor[i]);
        if prev != Some(key) {
            if let Some(v) = open.take() {
                close(v, &mut visits, &mut pages, &mut transitions);
            }
            prev = Some(key);
            run += 1;
            sessions.reset();
        }
        let visitor_req = rows.visitor_request(i);
        let is_bot = rows.is_bot[i];
        let pv = rows.is_pageview[i];
        let route = rows.route[i];

        if rows.in_day[i] {
            let class = status_class(rows.status[i]);
            let lat = rows.latency[i] as usize;
            let bytes = rows.bytes[i];
            for t in [
                traffic.entry(site).or_default(),
                hourly.entry((site, rows.hour[i])).or_default(),
            ] {
                t.requests += 1;
                t.page_views += pv as i64;
                t.bytes += bytes;
                t.bot_requests += is_bot as i64;
                t.status[class] += 1;
                t.latency[lat] += 1;
                if visitor_req {
                    let (new, new_bot) = t.mark.see(run, is_bot);
                    t.visitors += new as i64;
                    t.bot_visitors += new_bot as i64;
                }
            }
            let ck = [
                site,
                rows.browser[i],
                rows.browser_version[i],
                rows.os[i],
                rows.device[i],
                is_bot as u32,
                rows.bot_name[i],
            ];
            let cl = clients.entry(ck).or_default();
            cl.requests += 1;
            cl.page_views += pv as i64;
            if visitor_req && cl.mark.see(run, false).0 {
                cl.visitors += 1;
            }
            *statuses.entry((site, rows.status[i], route)).or_default() += 1;
            let r = routes
                .entry((
                    site,
                    rows.hour[i],
                    [rows.host[i], rows.method[i], route, rows.upstream[i]],
                ))
                .or_default();
            r.requests += 1;
            r.status_4xx += (class == 3) as i64;
            r.status_5xx += (class == 4) as i64;
            r.bytes += bytes;
            r.latency[lat] += 1;
            if pv {
                let p = pages.entry((site, route)).or_default();
                p.views += 1;
                if p.mark.see(run, false).0 {
                    p.visitors += 1;
                }
            }
            if visitor_req {
                if rows.site_search[i] != 0 {
                    search_hits.push((run, site, 0, rows.site_search[i]));
                }
                if rows.search_terms[i] != 0 {
                    search_hits.push((run, site, 1, rows.search_terms[i]));
                }
            }
        }

        // Visits are made of visitor requests only.
        if !visitor_req {
            continue;
        }
        let ts = rows.ts[i];
        if sessions.next(ts, rows.campaign(i)) {
            if let Some(v) = open.take() {
                close(v, &mut visits, &mut pages, &mut transitions);
            }
            open = Some(OpenVisit {
                run,
                site,
                in_day: rows.in_day[i],
                first: pos,
                landing: None,
                start_us: ts,
                end_us: ts,
                requests: 0,
                page_views: 0,
                entry: 0,
                last_page: 0,
                last_page_us: ts,
            });
        }
        let v = open
            .as_mut()
            .expect("a visit is open after its first request");
        v.end_us = ts;
        v.requests += 1;
        if pv {
            if v.in_day {
                if v.page_views == 0 {
                    *transitions.entry((site, CODE_ENTRANCE, route)).or_default() += 1;
                    pages.entry((site, route)).or_default().entries += 1;
                } else {
                    *transitions.entry((site, v.last_page, route)).or_default() += 1;
                    pages.entry((site, v.last_page)).or_default().time_us += ts - v.last_page_us;
                }
            }
            if v.page_views == 0 {
                v.entry = route;
                v.landing = Some(pos);
            }
            v.page_views += 1;
            v.last_page = route;
            v.last_page_us = ts;
        }
    }
    if let Some(v) = open.take() {
        close(v, &mut visits, &mut pages, &mut transitions);
    }

    // Visit-level metrics.
    for v in &visits {
        let f = v.first as usize;
        let site = rows.site[f];
        for t in [
            traffic.entry(site).or_default(),
            hourly.entry((site, rows.hour[f])).or_default(),
        ] {
            t.visits += 1;
            t.bounces += v.bounce() as i64;
            t.visit_duration_us += v.end_us - v.start_us;
        }
    }

    let k = opts.min_visitors as i64;

    // Referrers: hosts seen from fewer than k visitors fold into (other).
    let mut host_visitors: FxHashMap<(u32, u32), (u32, i64)> = FxHashMap::default();
    for v in &visits {
        let l = v.landing as usize;
        let h = rows.ref_host[l];
        if h != 0 {
            let e = host_visitors.entry((rows.site[l], h)).or_default();
            if e.0 != v.run {
                e.0 = v.run;
                e.1 += 1;
            }
        }
    }
    // Campaigns: each UTM value seen from fewer than k visitors folds into (other).
    let mut utm_visitors: FxHashMap<(u32, usize, u32), (u32, i64)> = FxHashMap::default();
    for v in visits
        .iter()
        .filter(|v| rows.campaign(v.first as usize) != 0)
    {
        let f = v.first as usize;
        for (j, field) in rows.utm.iter().enumerate() {
            if field[f] != 0 {
                let e = utm_visitors.entry((rows.site[f], j, field[f])).or_default();
                if e.0 != v.run {
                    e.0 = v.run;
                    e.1 += 1;
                }
            }
        }
    }
    let utm = |f: usize, j: usize| -> u32 {
        let value = rows.utm[j][f];
        if value != 0 && utm_visitors[&(rows.site[f], j, value)].1 < k {
            CODE_OTHER
        } else {
            value
        }
    };
    let mut referrers: FxHashMap<[u32; 5], VisitCounts> = FxHashMap::default();
    let mut campaigns: FxHashMap<[u32; 6], VisitCounts> = FxHashMap::default();
    for v in &visits {
        let (l, f) = (v.landing as usize, v.first as usize);
        let site = rows.site[f];
        let mut host = rows.ref_host[l];
        if host != 0 && host_visitors[&(rows.site[l], host)].1 < k {
            host = CODE_OTHER;
        }
        let add = |c: &mut VisitCounts| {
            c.visits += 1;
            c.page_views += v.page_views;
            c.bounces += v.bounce() as i64;
            if c.mark.see(v.run, false).0 {
                c.visitors += 1;
            }
        };
        add(referrers
            .entry([site, rows.medium[l], rows.source[l], host, v.entry])
            .or_default());
        if rows.campaign(f) != 0 {
            add(campaigns
                .entry([site, utm(f, 0), utm(f, 1), utm(f, 2), utm(f, 3), utm(f, 4)])
                .or_default());
        }
    }

    // Search terms: terms seen from fewer than k visitors fold into (other).
    let mut term_visitors: FxHashMap<(u32, u8, u32), (u32, i64)> = FxHashMap::default();
    for &(run, site, kind, term) in &search_hits {
        let e = term_visitors.entry((site, kind, term)).or_default();
        if e.0 != run {
            e.0 = run;
            e.1 += 1;
        }
    }
    let mut searches: FxHashMap<(u32, u8, u32), Searches> = FxHashMap::default();
    for &(run, site, kind, term) in &search_hits {
        let term = if term_visitors[&(site, kind, term)].1 < k {
            CODE_OTHER
        } else {
            term
        };
        let s = searches.entry((site, kind, term)).or_default();
        s.searches += 1;
        if s.mark.see(run, false).0 {
            s.visitors += 1;
        }
    }

    let strings = &rows.strings;
    let s = |c: u32| strings.get(c);
    let batches = vec![
        traffic_batch(
            traffic
                .into_iter()
                .map(|(site, t)| ((s(site), 0), t))
                .collect(),
            false,
        )?,
        traffic_batch(
            hourly
                .into_iter()
                .map(|((site, h), t)| ((s(site), h), t))
                .collect(),
            true,
        )?,
        pages_batch(
            pages
                .into_iter()
                .map(|((site, route), p)| ([s(site), s(route)], p))
                .collect(),
        )?,
        clients_batch(clients.into_iter().collect(), strings)?,
        status_batch(
            statuses
                .into_iter()
                .map(|((site, st, route), n)| ((s(site), st, s(route)), n))
                .collect(),
        )?,
        search_batch(
            searches
                .into_iter()
                .map(|((site, kind, term), v)| {
                    (
                        [
                            s(site),
                            Some(if kind == 0 {
                                "on-site"
                            } else {
                                "search-engine"
                            }),
                            s(term),
                        ],
                        v,
                    )
                })
                .collect(),
        )?,
        referrers_batch(referrers.into_iter().map(|(k, v)| (k.map(s), v)).collect())?,
        campaigns_batch(campaigns.into_iter().map(|(k, v)| (k.map(s), v)).collect())?,
        transitions_batch(
            transitions
                .into_iter()
                .map(|((site, a, b), n)| ([s(site), s(a), s(b)], n))
                .collect(),
        )?,
        routes_batch(
            routes
                .into_iter()
                .map(|((site, h, [host, method, route, up]), r)| {
                    ((s(site), h, [s(host), s(method), s(route), s(up)]), r)
                })
                .collect(),
        )?,
        visits_batch(&visits, &rows)?,
    ];
    Ok(Summaries { batches })
}

fn strs<'a>(it: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(it.collect::<StringArray>())
}
fn i64s(it: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(it))
}
fn i32s(it: impl Iterator<Item = i32>) -> ArrayRef {
    Arc::new(Int32Array::from_iter_values(it))
}
fn f64s(it: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(it))
}
fn bools(it: impl Iterator<Item = bool>) -> ArrayRef {
    Arc::new(it.map(Some).collect::<BooleanArray>())
}
fn timestamps(it: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(it).with_timezone("UTC"))
}
fn seconds(us: i64) -> f64 {
    us as f64 / 1e6
}

type Columns = Vec<(&'static str, ArrayRef, bool)>;

fn batch(columns: Columns) -> Result<RecordBatch, AggregateError> {
    Ok(RecordBatch::try_from_iter_with_nullable(columns)?)
}

fn traffic_batch(
    mut rows: Vec<((Option<&str>, u8), Traffic)>,
    hourly: bool,
) -> Result<RecordBatch, AggregateError> {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut cols: Columns = vec![("site", strs(rows.iter().map(|r| r.0 .0)), false)];
    if hourly {
        cols.push(("hour", i32s(rows.iter().map(|r| r.0 .1 as i32)), false));
    }
    let t = |f: fn(&Traffic) -> i64| i64s(rows.iter().map(move |r| f(&r.1)));
    cols.extend([
        ("requests", t(|t| t.requests), false),
        ("page_views", t(|t| t.page_views), false),
        ("visits", t(|t| t.visits), false),
        ("visitors", t(|t| t.visitors), false),
        ("human_visitors", t(|t| t.visitors - t.bot_visitors), false),
        ("bot_visitors", t(|t| t.bot_visitors), false),
        ("bounces", t(|t| t.bounces), false),
        (
            "visit_duration_s",
            f64s(rows.iter().map(|r| seconds(r.1.visit_duration_us))),
            false,
        ),
        ("bytes", t(|t| t.bytes), false),
        ("bot_requests", t(|t| t.bot_requests), false),
    ]);
    for (j, name) in STATUS_COLUMNS.iter().enumerate() {
        cols.push((name, i64s(rows.iter().map(|r| r.1.status[j])), false));
    }
    for (j, name) in LATENCY_COLUMNS.iter().enumerate() {
        cols.push((name, i64s(rows.iter().map(|r| r.1.latency[j])), false));
    }
    batch(cols)
}

fn pages_batch(mut rows: Vec<([Option<&str>; 2], Page)>) -> Result<RecordBatch, AggregateError> {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let p = |f: fn(&Page) -> i64| i64s(rows.iter().map(move |r| f(&r.1)));
    batch(vec![
        ("site", strs(rows.iter().map(|r| r.0[0])), false),
        ("route", strs(rows.iter().map(|r| r.0[1])), false),
        ("views", p(|p| p.views), false),
        ("visitors", p(|p| p.visitors), false),
        ("entries", p(|p| p.entries), false),
        ("exits", p(|p| p.exits), false),
        ("bounces", p(|p| p.bounces), false),
        (
            "time_on_page_s",
            f64s(rows.iter().map(|r| seconds(r.1.time_us))),
            false,
        ),
    ])
}

fn clients_batch(
    rows: Vec<([u32; 7], Client)>,
    strings: &Interner<'_>,
) -> Result<RecordBatch, AggregateError> {
    let s = |c: u32| strings.get(c);
    let mut rows: Vec<_> = rows
        .into_iter()
        .map(|(k, c)| {
            (
                (
                    s(k[0]),
                    s(k[1]),
                    s(k[2]),
                    s(k[3]),
                    s(k[4]),
                    k[5] != 0,
                    s(k[6]),
                ),
                c,
            )
        })
        .collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let c = |f: fn(&Client) -> i64| i64s(rows.iter().map(move |r| f(&r.1)));
    batch(vec![
        ("site", strs(rows.iter().map(|r| r.0 .0)), false),
        ("browser", strs(rows.iter().map(|r| r.0 .1)), true),
        ("browser_version", strs(rows.iter().map(|r| r.0 .2)), true),
        ("os", strs(rows.iter().map(|r| r.0 .3)), true),
        ("device", strs(rows.iter().map(|r| r.0 .4)), false),
        ("is_bot", bools(rows.iter().map(|r| r.0 .5)), false),
        ("bot_name", strs(rows.iter().map(|r| r.0 .6)), true),
        ("requests", c(|c| c.requests), false),
        ("page_views", c(|c| c.page_views), false),
        ("visitors", c(|c| c.visitors), false),
    ])
}

type StatusKey<'a> = (Option<&'a str>, u16, Option<&'a str>);

fn status_batch(mut rows: Vec<(StatusKey<'_>, i64)>) -> Result<RecordBatch, AggregateError> {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    batch(vec![
        ("site", strs(rows.iter().map(|r| r.0 .0)), false),
        ("status", i32s(rows.iter().map(|r| r.0 .1 as i32)), false),
        ("route", strs(rows.iter().map(|r| r.0 .2)), false),
        ("requests", i64s(rows.iter().map(|r| r.1)), false),
    ])
}

fn search_batch(
    mut rows: Vec<([Option<&str>; 3], Searches)>,
) -> Result<RecordBatch, AggregateError> {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    batch(vec![
        ("site", strs(rows.iter().map(|r| r.0[0])), false),
        ("kind", strs(rows.iter().map(|r| r.0[1])), false),
        ("terms", strs(rows.iter().map(|r| r.0[2])), false),
        ("searches", i64s(rows.iter().map(|r| r.1.searches)), false),
        ("visitors", i64s(rows.iter().map(|r| r.1.visitors)), false),
    ])
}

fn referrers_batch(
    mut rows: Vec<([Option<&str>; 5], VisitCounts)>,
) -> Result<RecordBatch, AggregateError> {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    batch(vec![
        ("site", strs(rows.iter().map(|r| r.0[0])), false),
        ("medium", strs(rows.iter().map(|r| r.0[1])), false),
        ("source", strs(rows.iter().map(|r| r.0[2])), true),
        ("referrer_host", strs(rows.iter().map(|r| r.0[3])), true),
        ("landing_route", strs(rows.iter().map(|r| r.0[4])), true),
        ("visits", i64s(rows.iter().map(|r| r.1.visits)), false),
        ("visitors", i64s(rows.iter().map(|r| r.1.visitors)), false),
        ("bounces", i64s(rows.iter().map(|r| r.1.bounces)), false),
    ])
}

fn campaigns_batch(
    mut rows: Vec<([Option<&str>; 6], VisitCounts)>,
) -> Result<RecordBatch, AggregateError> {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let names = [
        "site",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
    ];
    let mut cols: Columns = names
        .iter()
        .enumerate()
        .map(|(j, name)| (*name, strs(rows.iter().map(|r| r.0[j])), j != 0))
        .collect();
    cols.extend([
        ("visits", i64s(rows.iter().map(|r| r.1.visits)), false),
        ("visitors", i64s(rows.iter().map(|r| r.1.visitors)), false),
        (
            "page_views",
            i64s(rows.iter().map(|r| r.1.page_views)),
            false,
        ),
        ("bounces", i64s(rows.iter().map(|r| r.1.bounces)), false),
    ]);
    batch(cols)
}

fn transitions_batch(
    mut rows: Vec<([Option<&str>; 3], i64)>,
) -> Result<RecordBatch, AggregateError> {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    batch(vec![
        ("site", strs(rows.iter().map(|r| r.0[0])), false),
        ("from_route", strs(rows.iter().map(|r| r.0[1])), false),
        ("to_route", strs(rows.iter().map(|r| r.0[2])), false),
        ("count", i64s(rows.iter().map(|r| r.1)), false),
    ])
}

type RouteKey<'a> = (Option<&'a str>, u8, [Option<&'a str>; 4]);

fn routes_batch(mut rows: Vec<(RouteKey<'_>, Route)>) -> Result<RecordBatch, AggregateError> {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut cols: Columns = vec![
        ("site", strs(rows.iter().map(|r| r.0 .0)), false),
        ("hour", i32s(rows.iter().map(|r| r.0 .1 as i32)), false),
        ("host", strs(rows.iter().map(|r| r.0 .2[0])), true),
        ("method", strs(rows.iter().map(|r| r.0 .2[1])), true),
        ("route", strs(rows.iter().map(|r| r.0 .2[2])), false),
        ("upstream", strs(rows.iter().map(|r| r.0 .2[3])), true),
        ("requests", i64s(rows.iter().map(|r| r.1.requests)), false),
        (
            "status_4xx",
            i64s(rows.iter().map(|r| r.1.status_4xx)),
            false,
        ),
        (
            "status_5xx",
            i64s(rows.iter().map(|r| r.1.status_5xx)),
            false,
        ),
        ("bytes", i64s(rows.iter().map(|r| r.1.bytes)), false),
    ];
    for (j, name) in LATENCY_COLUMNS.iter().enumerate() {
        cols.push((name, i64s(rows.iter().map(|r| r.1.latency[j])), false));
    }
    batch(cols)
}

fn visits_batch(visits: &[Visit], rows: &Rows<'_>) -> Result<RecordBatch, AggregateError> {
    let s = |c: u32| rows.strings.get(c);
    let mut order: Vec<&Visit> = visits.iter().collect();
    let key = |v: &Visit| {
        (
            s(rows.site[v.first as usize]),
            v.start_us,
            s(rows.visitor[v.first as usize]),
        )
    };
    order.sort_unstable_by(|a, b| {
        key(a)
            .cmp(&key(b))
            .then_with(|| rows.message[a.first as usize].cmp(&rows.message[b.first as usize]))
    });
    let first =
        |f: fn(&Rows<'_>, usize) -> u32| strs(order.iter().map(|v| s(f(rows, v.first as usize))));
    let landing =
        |f: fn(&Rows<'_>, usize) -> u32| strs(order.iter().map(|v| s(f(rows, v.landing as usize))));
    batch(vec![
        ("site", first(|r, i| r.site[i]), false),
        ("visitor_id", first(|r, i| r.visitor[i]), false),
        (
            "visit_start",
            timestamps(order.iter().map(|v| v.start_us)),
            false,
        ),
        (
            "visit_end",
            timestamps(order.iter().map(|v| v.end_us)),
            false,
        ),
        ("entry_route", strs(order.iter().map(|v| s(v.entry))), true),
        ("exit_route", strs(order.iter().map(|v| s(v.exit))), true),
        (
            "page_views",
            i64s(order.iter().map(|v| v.page_views)),
            false,
        ),
        ("requests", i64s(order.iter().map(|v| v.requests)), false),
        (
            "duration_s",
            f64s(order.iter().map(|v| seconds(v.end_us - v.start_us))),
            false,
        ),
        ("bounce", bools(order.iter().map(|v| v.bounce())), false),
        ("medium", landing(|r, i| r.medium[i]), false),
        ("source", landing(|r, i| r.source[i]), true),
        ("utm_source", first(|r, i| r.utm[0][i]), true),
        ("utm_campaign", first(|r, i| r.utm[2][i]), true),
        ("device", first(|r, i| r.device[i]), false),
        ("browser", first(|r, i| r.browser[i]), true),
        ("os", first(|r, i| r.os[i]), true),
        (
            "is_bot",
            bools(order.iter().map(|v| rows.is_bot[v.first as usize])),
            false,
        ),
    ])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::schema::{events_to_batch, KafkaEvent};
    use arrow::array::Array;
    use chrono::DateTime;
    use footfall_event::VisitEvent;

    /// A page view (or other request) by `visitor` at `ts` (`+02:00` local time).
    pub(crate) fn ev(
        visitor: &str,
        ts: &str,
        route: &str,
        status: u16,
        pageview: bool,
    ) -> VisitEvent {
        VisitEvent {
            v: 1,
            event_id: format!("{visitor}-{ts}-{route}"),
            ts: DateTime::parse_from_rfc3339(&format!("{ts}+02:00")).unwrap(),
            site: "s".into(),
            visitor_id: visitor.into(),
            method: Some("GET".into()),
            path: route.into(),
            route: route.into(),
            status,
            bytes: Some(100),
            referrer_medium: "direct".into(),
            browser: Some("Firefox".into()),
            browser_version: Some("38".into()),
            os: Some("Linux".into()),
            device: "desktop".into(),
            kind: if pageview {
                "page".into()
            } else {
                "static".into()
            },
            is_pageview: pageview,
            source: "test".into(),
            ..Default::default()
        }
    }

    pub(crate) fn bot(mut e: VisitEvent) -> VisitEvent {
        e.is_bot = true;
        e.device = "bot".into();
        e.browser = Some("Googlebot".into());
        e.browser_version = Some("2".into());
        e.os = Some("Other".into());
        e.bot_name = Some("Googlebot".into());
        e
    }

    /// The hand-made day of the module docs' scenario (2015-05-17, partition 0).
    pub(crate) fn scenario() -> Vec<KafkaEvent> {
        let mut a1 = ev("A", "2015-05-17T10:00:00", "/", 200, true);
        a1.bytes = Some(1000);
        a1.duration_ms = Some(5.0);
        a1.referrer_medium = "search".into();
        a1.referrer_source = Some("Google".into());
        a1.referrer_host = Some("www.google.com".into());
        a1.search_terms = Some("rust parquet".into());
        let mut a2 = ev("A", "2015-05-17T10:00:01", "/style.css", 200, false);
        a2.duration_ms = Some(60.0);
        let mut a3 = ev("A", "2015-05-17T10:02:00", "/docs", 200, true);
        a3.duration_ms = Some(120.0);
        let a4 = ev("A", "2015-05-17T10:05:00", "/missing", 404, false);
        let a5 = ev("A", "2015-05-17T10:40:00", "/docs", 200, true);
        let b1 = bot(ev("B", "2015-05-17T11:00:00", "/robots.txt", 200, false));
        let b2 = bot(ev("B", "2015-05-17T11:01:00", "/", 200, true));
        let mut c1 = ev("C", "2015-05-17T12:00:00", "/nope", 404, false);
        c1.bytes = None;
        c1.browser = Some("Chrome".into());
        let mut d1 = ev("D", "2015-05-17T13:00:00", "/", 200, true);
        d1.utm_source = Some("news".into());
        d1.utm_campaign = Some("spring".into());
        let mut d2 = ev("D", "2015-05-17T13:05:00", "/search", 200, true);
        d2.site_search = Some("shoes".into());
        let mut d3 = ev("D", "2015-05-17T13:10:00", "/", 200, true);
        d3.utm_source = Some("ads".into());
        d3.utm_campaign = Some("summer".into());
        let e0 = ev("E", "2015-05-16T10:00:00", "/old", 200, true);
        let e1 = ev("E", "2015-05-16T23:50:00", "/", 200, true);
        let e2 = ev("E", "2015-05-17T00:10:00", "/docs", 200, true);
        let e3 = ev("E", "2015-05-17T00:11:00", "/x", 500, false);
        let f0 = ev("F", "2015-05-15T23:59:00", "/", 200, true);
        let events = vec![
            f0, e0, e1, a1, a2, a3, a4, a5, b1, b2, c1, d1, d2, d3, e2, e3,
        ];
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| KafkaEvent {
                partition: 0,
                offset: i as i64,
                event,
            })
            .collect()
    }

    pub(crate) fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2015, 5, 17).unwrap()
    }

    fn i64s_of(b: &RecordBatch, name: &str) -> Vec<i64> {
        b.column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec()
    }
    fn f64s_of(b: &RecordBatch, name: &str) -> Vec<f64> {
        b.column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .values()
            .to_vec()
    }
    fn strs_of(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let a = b
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        a.iter().map(|v| v.map(str::to_string)).collect()
    }
    fn i32s_of(b: &RecordBatch, name: &str) -> Vec<i32> {
        b.column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .values()
            .to_vec()
    }
    /// Row index of the row whose string columns equal the given values (None = null).
    fn row(b: &RecordBatch, key: &[(&str, Option<&str>)]) -> usize {
        let cols: Vec<_> = key.iter().map(|(n, _)| strs_of(b, n)).collect();
        let hits: Vec<usize> = (0..b.num_rows())
            .filter(|&i| {
                key.iter()
                    .zip(&cols)
                    .all(|((_, v), c)| c[i].as_deref() == *v)
            })
            .collect();
        assert_eq!(hits.len(), 1, "rows matching {key:?}: {hits:?}");
        hits[0]
    }

    fn run(k: u32) -> Summaries {
        let batch = events_to_batch(&scenario()).unwrap();
        summarize(
            &batch,
            day(),
            &SummaryOptions {
                min_visitors: k,
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn traffic_daily_exact() {
        let s = run(3);
        let t = s.get(Table::TrafficDaily);
        assert_eq!(t.num_rows(), 1);
        let get = |n: &str| i64s_of(t, n)[0];
        assert_eq!(get("requests"), 13);
        assert_eq!(get("page_views"), 8);
        assert_eq!(get("visits"), 5);
        assert_eq!(
            get("visitors"),
            4,
            "C only had 4xx; E counts (non-4xx on the day)"
        );
        assert_eq!(get("human_visitors"), 3);
        assert_eq!(get("bot_visitors"), 1);
        assert_eq!(get("bounces"), 3);
        assert_eq!(f64s_of(t, "visit_duration_s")[0], 480.0);
        assert_eq!(get("bytes"), 2100);
        assert_eq!(get("bot_requests"), 2);
        let status: Vec<i64> = STATUS_COLUMNS.iter().map(|c| get(c)).collect();
        assert_eq!(status, vec![0, 10, 0, 2, 1, 0]);
        let lat: Vec<i64> = LATENCY_COLUMNS.iter().map(|c| get(c)).collect();
        assert_eq!(lat, vec![1, 0, 1, 1, 0, 0, 0, 0, 10]);
    }

    #[test]
    fn traffic_hourly_exact() {
        let s = run(3);
        let t = s.get(Table::TrafficHourly);
        assert_eq!(i32s_of(t, "hour"), vec![0, 10, 11, 12, 13]);
        assert_eq!(i64s_of(t, "requests"), vec![2, 5, 2, 1, 3]);
        assert_eq!(i64s_of(t, "visits"), vec![0, 2, 1, 0, 2]);
        assert_eq!(i64s_of(t, "visitors"), vec![1, 1, 1, 0, 1]);
        assert_eq!(i64s_of(t, "bot_visitors"), vec![0, 0, 1, 0, 0]);
        assert_eq!(i64s_of(t, "page_views").iter().sum::<i64>(), 8);
    }

    #[test]
    fn pages_daily_exact() {
        let s = run(3);
        let p = s.get(Table::PagesDaily);
        assert_eq!(
            strs_of(p, "route"),
            vec![
                Some("/".into()),
                Some("/docs".into()),
                Some("/search".into())
            ]
        );
        assert_eq!(i64s_of(p, "views"), vec![4, 3, 1]);
        assert_eq!(i64s_of(p, "visitors"), vec![3, 2, 1]);
        assert_eq!(i64s_of(p, "entries"), vec![4, 1, 0]);
        assert_eq!(i64s_of(p, "exits"), vec![2, 2, 1]);
        assert_eq!(i64s_of(p, "bounces"), vec![2, 1, 0]);
        assert_eq!(f64s_of(p, "time_on_page_s"), vec![420.0, 0.0, 0.0]);
    }

    #[test]
    fn transitions_exact() {
        let s = run(3);
        let t = s.get(Table::TransitionsDaily);
        let pairs: Vec<(String, String, i64)> = strs_of(t, "from_route")
            .into_iter()
            .zip(strs_of(t, "to_route"))
            .zip(i64s_of(t, "count"))
            .map(|((a, b), n)| (a.unwrap(), b.unwrap(), n))
            .collect();
        let expect = [
            ("(entrance)", "/", 4),
            ("(entrance)", "/docs", 1),
            ("/", "(exit)", 2),
            ("/", "/docs", 1),
            ("/", "/search", 1),
            ("/docs", "(exit)", 2),
            ("/search", "(exit)", 1),
        ];
        let expect: Vec<_> = expect
            .iter()
            .map(|(a, b, n)| (a.to_string(), b.to_string(), *n))
            .collect();
        assert_eq!(pairs, expect);
    }

    #[test]
    fn referrers_fold_rare_hosts() {
        let s = run(3);
        let r = s.get(Table::ReferrersDaily);
        assert_eq!(r.num_rows(), 3);
        let g = row(
            r,
            &[("medium", Some("search")), ("referrer_host", Some(OTHER))],
        );
        assert_eq!(strs_of(r, "source")[g].as_deref(), Some("Google"));
        assert_eq!(strs_of(r, "landing_route")[g].as_deref(), Some("/"));
        assert_eq!(
            (
                i64s_of(r, "visits")[g],
                i64s_of(r, "visitors")[g],
                i64s_of(r, "bounces")[g]
            ),
            (1, 1, 0)
        );
        let d = row(
            r,
            &[("medium", Some("direct")), ("landing_route", Some("/"))],
        );
        assert_eq!(
            (
                i64s_of(r, "visits")[d],
                i64s_of(r, "visitors")[d],
                i64s_of(r, "bounces")[d]
            ),
            (3, 2, 2)
        );
        assert_eq!(
            i64s_of(r, "visits").iter().sum::<i64>(),
            5,
            "every visit has a referrer row"
        );
        // With k = 1 the host is shown.
        let s1 = run(1);
        let r1 = s1.get(Table::ReferrersDaily);
        row(
            r1,
            &[
                ("medium", Some("search")),
                ("referrer_host", Some("www.google.com")),
            ],
        );
    }

    #[test]
    fn campaigns_and_search_terms() {
        let s1 = run(1);
        let c = s1.get(Table::CampaignsDaily);
        assert_eq!(
            strs_of(c, "utm_campaign"),
            vec![Some("summer".into()), Some("spring".into())]
        );
        assert_eq!(i64s_of(c, "visits"), vec![1, 1]);
        assert_eq!(i64s_of(c, "page_views"), vec![1, 2]);
        assert_eq!(i64s_of(c, "bounces"), vec![1, 0]);
        // With k = 3 each value (one visitor each) folds; the rows merge and still add up.
        let s = run(3);
        let c = s.get(Table::CampaignsDaily);
        assert_eq!(strs_of(c, "utm_source"), vec![Some(OTHER.into())]);
        assert_eq!(strs_of(c, "utm_campaign"), vec![Some(OTHER.into())]);
        assert_eq!(strs_of(c, "utm_medium"), vec![None]);
        assert_eq!(
            (
                i64s_of(c, "visits"),
                i64s_of(c, "visitors"),
                i64s_of(c, "page_views"),
                i64s_of(c, "bounces")
            ),
            (vec![2], vec![1], vec![3], vec![1])
        );
        let t = s.get(Table::SearchTermsDaily);
        assert_eq!(
            strs_of(t, "kind"),
            vec![Some("on-site".into()), Some("search-engine".into())]
        );
        assert_eq!(
            strs_of(t, "terms"),
            vec![Some(OTHER.into()), Some(OTHER.into())]
        );
        assert_eq!(i64s_of(t, "searches"), vec![1, 1]);
        let t1 = s1.get(Table::SearchTermsDaily);
        assert_eq!(
            strs_of(t1, "terms"),
            vec![Some("shoes".into()), Some("rust parquet".into())]
        );
        assert_eq!(i64s_of(t1, "visitors"), vec![1, 1]);
    }

    #[test]
    fn clients_status_routes_and_visits() {
        let s = run(3);
        let c = s.get(Table::ClientsDaily);
        let ff = row(c, &[("browser", Some("Firefox"))]);
        assert_eq!(
            (i64s_of(c, "requests")[ff], i64s_of(c, "visitors")[ff]),
            (10, 3)
        );
        let gb = row(c, &[("bot_name", Some("Googlebot"))]);
        assert_eq!(
            (i64s_of(c, "requests")[gb], i64s_of(c, "visitors")[gb]),
            (2, 1)
        );
        let ch = row(c, &[("browser", Some("Chrome"))]);
        assert_eq!(
            (i64s_of(c, "requests")[ch], i64s_of(c, "visitors")[ch]),
            (1, 0)
        );

        let st = s.get(Table::StatusDaily);
        assert_eq!(i64s_of(st, "requests").iter().sum::<i64>(), 13);
        let x = row(st, &[("route", Some("/x"))]);
        assert_eq!(i32s_of(st, "status")[x], 500);

        let r = s.get(Table::RoutesHourly);
        assert_eq!(i64s_of(r, "requests").iter().sum::<i64>(), 13);
        assert_eq!(i64s_of(r, "status_4xx").iter().sum::<i64>(), 2);
        assert_eq!(i64s_of(r, "status_5xx").iter().sum::<i64>(), 1);
        assert_eq!(i64s_of(r, "bytes").iter().sum::<i64>(), 2100);

        let v = s.get(Table::Visits);
        assert_eq!(v.num_rows(), 5);
        assert_eq!(
            strs_of(v, "visitor_id")
                .into_iter()
                .map(Option::unwrap)
                .collect::<Vec<_>>(),
            vec!["A", "A", "B", "D", "D"]
        );
        assert_eq!(i64s_of(v, "page_views"), vec![2, 1, 1, 2, 1]);
        assert_eq!(i64s_of(v, "requests"), vec![3, 1, 2, 2, 1]);
        assert_eq!(f64s_of(v, "duration_s"), vec![120.0, 0.0, 60.0, 300.0, 0.0]);
        assert_eq!(strs_of(v, "entry_route")[0].as_deref(), Some("/"));
        assert_eq!(strs_of(v, "exit_route")[0].as_deref(), Some("/docs"));
        assert_eq!(strs_of(v, "medium")[0].as_deref(), Some("search"));
        assert_eq!(strs_of(v, "utm_campaign")[3].as_deref(), Some("spring"));
        let bounce = v
            .column_by_name("bounce")
            .unwrap()
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap();
        assert_eq!(
            bounce.iter().map(Option::unwrap).collect::<Vec<_>>(),
            vec![false, true, true, false, true]
        );
        let start = v.column_by_name("visit_start").unwrap();
        assert_eq!(start.null_count(), 0);
    }

    #[test]
    fn a_longer_timeout_joins_visits() {
        let batch = events_to_batch(&scenario()).unwrap();
        let opts = SummaryOptions {
            visit_timeout: std::time::Duration::from_secs(3600),
            min_visitors: 3,
        };
        let s = summarize(&batch, day(), &opts).unwrap();
        // A's two visits merge; D's still split on the campaign change.
        assert_eq!(i64s_of(s.get(Table::TrafficDaily), "visits"), vec![4]);
    }

    #[test]
    fn splitting_by_visitor_is_additive() {
        // Summaries of two halves (by visitor) add up to the whole.
        let all = scenario();
        let (x, y): (Vec<_>, Vec<_>) = all
            .iter()
            .cloned()
            .partition(|e| e.event.visitor_id.as_str() < "C");
        let opts = SummaryOptions {
            min_visitors: 1,
            ..Default::default()
        };
        let whole = summarize(&events_to_batch(&all).unwrap(), day(), &opts).unwrap();
        let a = summarize(&events_to_batch(&x).unwrap(), day(), &opts).unwrap();
        let b = summarize(&events_to_batch(&y).unwrap(), day(), &opts).unwrap();
        for col in [
            "requests",
            "page_views",
            "visits",
            "visitors",
            "bot_visitors",
            "bounces",
            "bytes",
        ] {
            let w = i64s_of(whole.get(Table::TrafficDaily), col)[0];
            let parts = i64s_of(a.get(Table::TrafficDaily), col)[0]
                + i64s_of(b.get(Table::TrafficDaily), col)[0];
            assert_eq!(w, parts, "{col}");
        }
    }

    #[test]
    fn deterministic_regardless_of_input_order() {
        let mut events = scenario();
        let a = summarize(
            &events_to_batch(&events).unwrap(),
            day(),
            &SummaryOptions::default(),
        )
        .unwrap();
        events.reverse();
        let b = summarize(
            &events_to_batch(&events).unwrap(),
            day(),
            &SummaryOptions::default(),
        )
        .unwrap();
        for ((t, x), (_, y)) in a.iter().zip(b.iter()) {
            assert_eq!(x, y, "{t}");
        }
    }

    #[test]
    fn empty_input_gives_empty_tables() {
        let batch = RecordBatch::new_empty(crate::schema::events_schema());
        let s = summarize(&batch, day(), &SummaryOptions::default()).unwrap();
        assert!(s.iter().all(|(_, b)| b.num_rows() == 0));
    }
}
