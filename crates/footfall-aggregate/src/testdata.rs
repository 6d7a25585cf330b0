//! Deterministic synthetic visit events for tests (unit and integration).
//!
//! Visitors browse a few sites in visits of several requests, with bots, 4xx
//! and 5xx answers, referrers with search terms, campaigns, latencies and visits
//! that cross midnight.

#![allow(dead_code)]

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone};
use footfall_event::VisitEvent;

/// A small xorshift generator: deterministic across platforms and runs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `pct` percent.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const PAGES: &[&str] = &[
    "/",
    "/docs",
    "/docs/:id",
    "/search",
    "/blog/:slug",
    "/about",
    "/pricing",
];
const ASSETS: &[&str] = &["/static/app.js", "/static/site.css", "/favicon.ico"];
const TERMS: &[&str] = &[
    "parquet",
    "kafka exactly once",
    "web analytics",
    "rare term",
];
const SITE_SEARCH: &[&str] = &["pricing", "docs", "login help"];

/// `visitors_per_day` visitors per site and day, each with one or two visits.
pub fn events(
    seed: u64,
    first_day: NaiveDate,
    days: u32,
    visitors_per_day: u32,
) -> Vec<VisitEvent> {
    let mut rng = Rng::new(seed);
    let sites: [(&str, i32); 2] = [("example.org", 2 * 3600), ("shop.example", 0)];
    let mut out = Vec::new();
    for day in 0..days {
        let date = first_day + Duration::days(day as i64);
        for (site, offset) in sites {
            let tz = FixedOffset::east_opt(offset).expect("valid offset");
            for v in 0..visitors_per_day {
                visitor_day(&mut rng, &mut out, date, site, tz, v);
            }
        }
    }
    out
}

/// Who a visitor is and what brought them, for every request of one visit.
struct Visit<'a> {
    site: &'a str,
    visitor: &'a str,
    /// The visit's number in the visitor's day.
    n: u64,
    is_bot: bool,
    /// (browser, os, device).
    agent: (&'static str, &'static str, &'static str),
    referral: Referral,
    /// (utm_source, utm_campaign).
    campaign: Option<(&'static str, &'static str)>,
}

/// The referrer of a visit's first request.
struct Referral {
    medium: &'static str,
    source: Option<&'static str>,
    host: Option<&'static str>,
    terms: Option<&'static str>,
}

impl Referral {
    fn pick(rng: &mut Rng) -> Self {
        let (medium, source, host, terms) = match rng.below(5) {
            0 => (
                "search",
                Some("Google"),
                Some("www.google.com"),
                Some(*rng.pick(TERMS)),
            ),
            1 => ("social", Some("Facebook"), Some("www.facebook.com"), None),
            2 => (
                "external",
                None,
                Some(if rng.pct(50) {
                    "blog.example.net"
                } else {
                    "rare.example.com"
                }),
                None,
            ),
            _ => ("direct", None, None, None),
        };
        Referral {
            medium,
            source,
            host,
            terms,
        }
    }
}

/// The `v`-th visitor of `site` on `date`: one or two visits, a few start
/// just before midnight.
fn visitor_day(
    rng: &mut Rng,
    out: &mut Vec<VisitEvent>,
    date: NaiveDate,
    site: &str,
    tz: FixedOffset,
    v: u32,
) {
    let visitor = format!("{:016x}", rng.next_u64());
    let is_bot = rng.pct(12);
    let agent = if is_bot {
        ("Googlebot", "Other", "bot")
    } else {
        *rng.pick(&[
            ("Firefox", "Linux", "desktop"),
            ("Chrome", "Android", "mobile"),
            ("Safari", "iOS", "tablet"),
        ])
    };
    // Start anywhere in the day; a few start just before midnight.
    let start_min = if v % 17 == 3 {
        23 * 60 + 45
    } else {
        rng.below(23 * 60) as i64
    };
    let midnight = tz
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
        .single()
        .expect("fixed offset");
    let mut t: DateTime<FixedOffset> =
        midnight + Duration::minutes(start_min) + Duration::seconds(rng.below(60) as i64);
    let visits = 1 + rng.below(2);
    for n in 0..visits {
        if n > 0 {
            t += Duration::minutes(31 + rng.below(90) as i64);
        }
        let referral = Referral::pick(rng);
        let campaign = rng
            .pct(20)
            .then(|| *rng.pick(&[("news", "spring"), ("ads", "summer")]));
        let visit = Visit {
            site,
            visitor: &visitor,
            n,
            is_bot,
            agent,
            referral,
            campaign,
        };
        let requests = 1 + rng.below(7);
        for r in 0..requests {
            if r > 0 {
                t += Duration::seconds(rng.below(600) as i64 + 1);
            }
            let e = request(rng, &visit, r, t, out.len() as u64 * 100);
            out.push(e);
        }
    }
}

/// The `r`-th request of a visit, at `t`; `offset` is its place in the log.
fn request(
    rng: &mut Rng,
    visit: &Visit<'_>,
    r: u64,
    t: DateTime<FixedOffset>,
    offset: u64,
) -> VisitEvent {
    let Visit {
        site,
        visitor,
        is_bot,
        ..
    } = *visit;
    let (browser, os, device) = visit.agent;
    let asset = r > 0 && rng.pct(30);
    let route = if asset {
        *rng.pick(ASSETS)
    } else {
        *rng.pick(PAGES)
    };
    let status = match rng.below(100) {
        0..=5 => 404,
        6..=7 => 500,
        8..=11 => 304,
        _ => 200,
    };
    let kind = if status >= 400 {
        "error"
    } else if asset {
        "static"
    } else if status == 200 {
        "page"
    } else {
        "other"
    };
    let first = r == 0;
    // Only the first request of a visit carries its referral and campaign.
    let referral = &visit.referral;
    let campaign = visit.campaign.filter(|_| first);
    let mut e = VisitEvent {
        v: footfall_event::SCHEMA_VERSION,
        event_id: format!("{visitor}-{}-{r}-{}", visit.n, t.timestamp()),
        ts: t,
        site: site.into(),
        host: Some(format!("www.{site}")),
        visitor_id: visitor.to_string(),
        client_net: Some("203.0.113.0/24".into()),
        method: Some(if rng.pct(5) { "POST" } else { "GET" }.into()),
        path: route.replace(":id", "42").replace(":slug", "hello"),
        route: route.into(),
        protocol: Some("HTTP/1.1".into()),
        status,
        bytes: if status == 304 {
            None
        } else {
            Some(200 + rng.below(50_000))
        },
        duration_ms: (!rng.pct(10)).then(|| (rng.below(4000) as f64) / 1.5),
        upstream: Some(if asset { "static" } else { "app" }.into()),
        referrer_medium: if first {
            referral.medium.into()
        } else {
            "internal".into()
        },
        referrer_source: referral
            .source
            .filter(|_| first)
            .map(|s| s.to_string().into()),
        referrer_host: if first {
            referral.host.map(str::to_string)
        } else {
            Some(format!("www.{site}"))
        },
        referrer: None,
        search_terms: referral.terms.filter(|_| first).map(str::to_string),
        site_search: (route == "/search").then(|| rng.pick(SITE_SEARCH).to_string()),
        utm_source: campaign.map(|c| c.0.to_string()),
        utm_medium: campaign.map(|_| "email".to_string()),
        utm_campaign: campaign.map(|c| c.1.to_string()),
        browser: Some(browser.into()),
        browser_version: Some(if is_bot { "2" } else { "100" }.into()),
        os: Some(os.into()),
        device: device.into(),
        is_bot,
        bot_name: is_bot.then(|| "Googlebot".into()),
        kind: kind.into(),
        is_pageview: kind == "page",
        source: format!("/var/log/{site}.log"),
        offset,
        ..Default::default()
    };
    if !first {
        e.referrer = Some(format!("https://www.{site}/"));
    }
    e
}

/// Partition of a visitor among `n` partitions (stands in for the producer's key hash).
pub fn partition_of(visitor: &str, n: i32) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in visitor.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % n as u32) as i32
}

/// A dead letter whose rejected line is `line`, as ingest writes one.
pub fn reject(line: &str) -> footfall_event::Reject {
    footfall_event::Reject {
        v: footfall_event::SCHEMA_VERSION,
        event_id: "e".into(),
        source: "access.log".into(),
        offset: 0,
        kind: footfall_event::RejectKind::Malformed,
        reason: "no request line".into(),
        line: line.into(),
        truncated: false,
    }
}
