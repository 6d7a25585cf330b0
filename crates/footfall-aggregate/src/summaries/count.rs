//! The one pass over a day's rows in (site, visitor, time) order: request
//! counters of every table, keyed by the row's class (audience and bot
//! reason), and the visits (made of visitor requests only, see
//! [`crate::sessions`]).

use super::classes::Classes;
use super::rows::Rows;
use super::{SummaryOptions, CODE_ENTRANCE, CODE_EXIT};
use crate::hash::FxHashMap;
use crate::sessions::Sessionizer;

/// Counts distinct visitors of one group while rows arrive grouped by
/// visitor: `run` names the visitor (never the default, 0).
#[derive(Default, Clone, Copy)]
pub(super) struct Mark<T = u32>(T);

impl<T: PartialEq + Copy> Mark<T> {
    /// Whether `run` (a visitor) is new to the group.
    #[inline]
    pub(super) fn see(&mut self, run: T) -> bool {
        let new = self.0 != run;
        self.0 = run;
        new
    }
}

#[derive(Default, Clone)]
pub(super) struct Traffic {
    pub requests: i64,
    pub page_views: i64,
    pub visits: i64,
    pub visitors: i64,
    pub bounces: i64,
    pub visit_duration_us: i64,
    pub bytes: i64,
    pub status: [i64; 6],
    pub latency: [i64; 9],
    pub mark: Mark,
}

#[derive(Default, Clone)]
pub(super) struct Page {
    pub views: i64,
    pub visitors: i64,
    pub entries: i64,
    pub exits: i64,
    pub bounces: i64,
    pub time_us: i64,
    pub mark: Mark,
}

#[derive(Default, Clone)]
pub(super) struct Client {
    pub requests: i64,
    pub page_views: i64,
    pub visitors: i64,
    pub mark: Mark,
}

#[derive(Default, Clone)]
pub(super) struct Route {
    pub requests: i64,
    pub status_4xx: i64,
    pub status_5xx: i64,
    pub bytes: i64,
    pub latency: [i64; 9],
}

/// Calls the macro `$m` with each struct of counters and its fields, the one
/// list of them (the state's bytes and its arithmetic both go by it).
macro_rules! with_counters {
    ($m:ident) => {
        $m!(Traffic {
            requests,
            page_views,
            visits,
            visitors,
            bounces,
            visit_duration_us,
            bytes,
            status,
            latency
        });
        $m!(Page {
            views,
            visitors,
            entries,
            exits,
            bounces,
            time_us
        });
        $m!(Client {
            requests,
            page_views,
            visitors
        });
        $m!(Route {
            requests,
            status_4xx,
            status_5xx,
            bytes,
            latency
        });
    };
}
pub(super) use with_counters;

/// A visit being built (positions index the in-scope rows).
struct OpenVisit {
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

/// What the visit-level tables read of a visit's first request, and of its
/// landing page view (its first request when it has none): the visit holds
/// them, so that no row is needed once it is counted.
#[derive(Default, Clone, Copy)]
pub(super) struct Head {
    pub site: u32,
    pub visitor: u32,
    /// The class of the visitor-day.
    pub class: u8,
    /// The local hour of the first request.
    pub hour: u8,
    /// The first request's (Kafka partition, offset).
    pub message: (i32, i64),
    pub utm: [u32; 5],
    pub device: u32,
    pub browser: u32,
    pub os: u32,
    /// Of the landing page view.
    pub medium: u32,
    pub source: u32,
    pub ref_host: u32,
}

impl Head {
    fn of(rows: &Rows, first: usize, landing: usize, class: u8) -> Head {
        Head {
            site: rows.site[first],
            visitor: rows.visitor[first],
            class,
            hour: rows.hour[first],
            message: rows.message[first],
            utm: std::array::from_fn(|j| rows.utm[j][first]),
            device: rows.device[first],
            browser: rows.browser[first],
            os: rows.os[first],
            medium: rows.medium[landing],
            source: rows.source[landing],
            ref_host: rows.ref_host[landing],
        }
    }

    /// The visitor-day ([`super::rows::visitor_day`]).
    pub(super) fn visitor_day(&self) -> u64 {
        super::rows::visitor_day(self.site, self.visitor)
    }

    /// The campaign the visit started with ([`super::rows::campaign`]).
    pub(super) fn campaign(&self) -> u64 {
        super::rows::campaign(self.utm[0], self.utm[2])
    }
}

/// A finished visit that started on the summarised date.
#[derive(Default, Clone)]
pub(super) struct Visit {
    pub head: Head,
    pub start_us: i64,
    pub end_us: i64,
    pub requests: i64,
    pub page_views: i64,
    pub entry: u32,
    pub exit: u32,
}

impl Visit {
    pub(super) fn bounce(&self) -> bool {
        self.page_views == 1
    }
}

/// Site and class of a row: the leading key of every table.
pub(super) type SiteClass = (u32, u8);

/// Every counter of the pass.
#[derive(Default, Clone)]
pub(super) struct Tally {
    pub traffic: FxHashMap<SiteClass, Traffic>,
    pub hourly: FxHashMap<(SiteClass, u8), Traffic>,
    pub pages: FxHashMap<(SiteClass, u32), Page>,
    pub clients: FxHashMap<(SiteClass, [u32; 5]), Client>,
    pub statuses: FxHashMap<(SiteClass, u16, u32), i64>,
    pub routes: FxHashMap<(SiteClass, u8, [u32; 4]), Route>,
    pub transitions: FxHashMap<(SiteClass, u32, u32), i64>,
    /// (visitor-day, site and class, kind, term) grouped by visitor-day:
    /// kind 0 = on-site, 1 = search-engine.
    pub search_hits: Vec<(u64, SiteClass, u8, u32)>,
    pub visits: Vec<Visit>,
}

/// Status class index of [`super::STATUS_COLUMNS`].
#[inline]
fn status_class(status: u16) -> usize {
    match status / 100 {
        c @ 1..=5 => c as usize - 1,
        _ => 5,
    }
}

impl Tally {
    /// Runs the pass over `order` ([`Rows::order`]).
    pub(super) fn count(
        rows: &Rows,
        order: &[u32],
        classes: &Classes,
        opts: &SummaryOptions,
    ) -> Tally {
        let mut t = Tally::default();
        let mut sessions = Sessionizer::new(opts.timeout_us());
        let (mut run, mut prev, mut open) = (0u32, None, None::<OpenVisit>);
        for &pos in order {
            let i = pos as usize;
            let key = (rows.site[i], rows.visitor[i]);
            if prev != Some(key) {
                if let Some(v) = open.take() {
                    t.close(v, rows, classes);
                }
                prev = Some(key);
                run += 1;
                sessions.reset();
            }
            let pv = rows.is_pageview[i] && !classes.polling[i];
            if rows.in_day[i] {
                t.request(rows, i, run, (rows.site[i], classes.class[i]), pv);
            }
            // Visits are made of visitor requests only.
            if rows.visitor_request(i) {
                if sessions.next(rows.ts[i], rows.campaign(i)) {
                    if let Some(v) = open.take() {
                        t.close(v, rows, classes);
                    }
                    open = Some(OpenVisit::new(pos, rows));
                }
                let v = open
                    .as_mut()
                    .expect("a visit is open after its first request");
                t.visit_request(v, rows, pos, classes.class[i], pv);
            }
        }
        if let Some(v) = open.take() {
            t.close(v, rows, classes);
        }
        t.visit_totals();
        t
    }

    /// Counts one request of the date.
    fn request(&mut self, rows: &Rows, i: usize, run: u32, sc: SiteClass, pv: bool) {
        let class = status_class(rows.status[i]);
        let (lat, bytes, route) = (rows.latency[i] as usize, rows.bytes[i], rows.route[i]);
        let visitor_req = rows.visitor_request(i);
        for t in [
            self.traffic.entry(sc).or_default(),
            self.hourly.entry((sc, rows.hour[i])).or_default(),
        ] {
            t.requests += 1;
            t.page_views += pv as i64;
            t.bytes += bytes;
            t.status[class] += 1;
            t.latency[lat] += 1;
            t.visitors += (visitor_req && t.mark.see(run)) as i64;
        }
        let ck = [
            rows.browser[i],
            rows.browser_version[i],
            rows.os[i],
            rows.device[i],
            rows.bot_name[i],
        ];
        let cl = self.clients.entry((sc, ck)).or_default();
        cl.requests += 1;
        cl.page_views += pv as i64;
        cl.visitors += (visitor_req && cl.mark.see(run)) as i64;
        *self
            .statuses
            .entry((sc, rows.status[i], route))
            .or_default() += 1;
        let r = self
            .routes
            .entry((
                sc,
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
            let p = self.pages.entry((sc, route)).or_default();
            p.views += 1;
            p.visitors += p.mark.see(run) as i64;
        }
        if visitor_req {
            if rows.site_search[i] != 0 {
                self.search_hits
                    .push((rows.visitor_day(i), sc, 0, rows.site_search[i]));
            }
            if rows.search_terms[i] != 0 {
                self.search_hits
                    .push((rows.visitor_day(i), sc, 1, rows.search_terms[i]));
            }
        }
    }

    /// Adds one visitor request to its open visit (page flow of the date).
    fn visit_request(&mut self, v: &mut OpenVisit, rows: &Rows, pos: u32, c: u8, pv: bool) {
        let i = pos as usize;
        let (ts, route, sc) = (rows.ts[i], rows.route[i], (rows.site[i], c));
        v.end_us = ts;
        v.requests += 1;
        if !pv {
            return;
        }
        if v.in_day {
            if v.page_views == 0 {
                *self
                    .transitions
                    .entry((sc, CODE_ENTRANCE, route))
                    .or_default() += 1;
                self.pages.entry((sc, route)).or_default().entries += 1;
            } else {
                *self
                    .transitions
                    .entry((sc, v.last_page, route))
                    .or_default() += 1;
                self.pages.entry((sc, v.last_page)).or_default().time_us += ts - v.last_page_us;
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

    /// Ends a visit: its exit, and the visit itself when it started on the date.
    fn close(&mut self, v: OpenVisit, rows: &Rows, classes: &Classes) {
        if !v.in_day {
            return;
        }
        let f = v.first as usize;
        let sc = (rows.site[f], classes.class[f]);
        if v.page_views > 0 {
            *self
                .transitions
                .entry((sc, v.last_page, CODE_EXIT))
                .or_default() += 1;
            let p = self.pages.entry((sc, v.last_page)).or_default();
            p.exits += 1;
            p.bounces += (v.page_views == 1) as i64;
        }
        let landing = v.landing.unwrap_or(v.first) as usize;
        self.visits.push(Visit {
            head: Head::of(rows, f, landing, classes.class[f]),
            start_us: v.start_us,
            end_us: v.end_us,
            requests: v.requests,
            page_views: v.page_views,
            entry: v.entry,
            exit: if v.page_views > 0 { v.last_page } else { 0 },
        });
    }

    /// Visit-level traffic metrics.
    fn visit_totals(&mut self) {
        for v in &self.visits {
            let sc = (v.head.site, v.head.class);
            for t in [
                self.traffic.entry(sc).or_default(),
                self.hourly.entry((sc, v.head.hour)).or_default(),
            ] {
                t.visits += 1;
                t.bounces += v.bounce() as i64;
                t.visit_duration_us += v.end_us - v.start_us;
            }
        }
    }
}

impl OpenVisit {
    fn new(pos: u32, rows: &Rows) -> Self {
        let i = pos as usize;
        OpenVisit {
            in_day: rows.in_day[i],
            first: pos,
            landing: None,
            start_us: rows.ts[i],
            end_us: rows.ts[i],
            requests: 0,
            page_views: 0,
            entry: 0,
            last_page: 0,
            last_page_us: rows.ts[i],
        }
    }
}
