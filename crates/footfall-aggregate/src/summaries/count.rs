//! The one pass over a day's rows in (site, visitor, time) order: request
//! counters of every table, keyed by the row's class (audience and bot
//! reason), and the visits (made of visitor requests only, see
//! [`crate::sessions`]).

use super::classes::classify;
use super::rows::Rows;
use super::{SummaryOptions, CODE_ENTRANCE, CODE_EXIT};
use crate::hash::FxHashMap;
use crate::sessions::Sessionizer;

/// Counts distinct visitors of one group while rows arrive grouped by
/// visitor: `run` names the visitor (never the default, 0).
#[derive(Default, Clone, Copy)]
pub(super) struct Mark<T = u32>(T);

impl<T: PartialEq + Copy> Mark<T> {
    /// A mark that has seen `run`.
    pub(super) fn seen(run: T) -> Self {
        Mark(run)
    }

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
#[derive(Clone)]
pub(super) struct OpenVisit {
    pub in_day: bool,
    pub first: u32,
    pub landing: Option<u32>,
    pub start_us: i64,
    pub end_us: i64,
    pub requests: i64,
    pub page_views: i64,
    pub entry: u32,
    pub last_page: u32,
    pub last_page_us: i64,
}

/// What the visit-level tables read of a visit's first request, and of its
/// landing page view (its first request when it has none): the visit holds
/// them, so that no row is needed once it is counted.
#[derive(Default, Clone, Copy, PartialEq, Debug)]
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
#[derive(Default, Clone, PartialEq, Debug)]
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

/// Where the count pass stands within one visitor-day, between two of its
/// rows: its sessions and its open visit (whose positions index the rows,
/// which a day state keeps).
#[derive(Clone)]
pub(super) struct Cursor {
    pub sessions: Sessionizer,
    pub open: Option<OpenVisit>,
    /// The visitor-day's number in its tally's marks (never 0).
    pub run: u32,
}

impl Cursor {
    /// Before the first row of the visitor-day numbered `run`.
    pub(super) fn new(opts: &SummaryOptions, run: u32) -> Self {
        Cursor {
            sessions: Sessionizer::new(opts.timeout_us()),
            open: None,
            run,
        }
    }
}

impl Tally {
    /// Runs the pass over `order` ([`Rows::order`]), one visitor-day at a
    /// time.
    pub(super) fn count(rows: &Rows, order: &[u32], opts: &SummaryOptions) -> Tally {
        let mut t = Tally::default();
        for (n, group) in rows.visitor_days(order).enumerate() {
            let c = classify(rows, group, &opts.bots);
            let mut cursor = Cursor::new(opts, n as u32 + 1);
            t.go_on(&mut cursor, rows, group, &c.polling, c.class);
            t.finish(cursor, rows, c.class);
        }
        t
    }

    /// Counts rows of one visitor-day of class `class`: `group`, in time
    /// order after those `c` has passed, with `polling` per row of it.
    pub(super) fn go_on(
        &mut self,
        c: &mut Cursor,
        rows: &Rows,
        group: &[u32],
        polling: &[bool],
        class: u8,
    ) {
        for (&pos, &polled) in group.iter().zip(polling) {
            let i = pos as usize;
            let pv = rows.is_pageview[i] && !polled;
            if rows.in_day[i] {
                self.request(rows, i, c.run, (rows.site[i], class), pv);
            }
            // Visits are made of visitor requests only.
            if rows.visitor_request(i) {
                if c.sessions.next(rows.ts[i], rows.campaign(i)) {
                    if let Some(v) = c.open.take() {
                        self.close(v, rows, class);
                    }
                    c.open = Some(OpenVisit::new(pos, rows));
                }
                let v = c
                    .open
                    .as_mut()
                    .expect("a visit is open after its first request");
                self.visit_request(v, rows, pos, class, pv);
            }
        }
    }

    /// Marks every group with a visitor as seen by `run`, as the pass left
    /// them for the one visitor-day it counted (marks are not kept in the
    /// state's bytes).
    pub(super) fn mark_visitors(&mut self, run: u32) {
        let mark = |visitors: i64| match visitors > 0 {
            true => Mark::seen(run),
            false => Mark::default(),
        };
        self.traffic
            .values_mut()
            .for_each(|t| t.mark = mark(t.visitors));
        self.hourly
            .values_mut()
            .for_each(|t| t.mark = mark(t.visitors));
        self.clients
            .values_mut()
            .for_each(|c| c.mark = mark(c.visitors));
        self.pages
            .values_mut()
            .for_each(|p| p.mark = mark(p.visitors));
    }

    /// Ends a visitor-day's pass: closes its open visit.
    pub(super) fn finish(&mut self, c: Cursor, rows: &Rows, class: u8) {
        if let Some(v) = c.open {
            self.close(v, rows, class);
        }
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

    /// Ends a visit: its exit, and the visit itself (with its totals) when
    /// it started on the date.
    fn close(&mut self, v: OpenVisit, rows: &Rows, class: u8) {
        if !v.in_day {
            return;
        }
        let f = v.first as usize;
        let sc = (rows.site[f], class);
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
        let visit = Visit {
            head: Head::of(rows, f, landing, class),
            start_us: v.start_us,
            end_us: v.end_us,
            requests: v.requests,
            page_views: v.page_views,
            entry: v.entry,
            exit: if v.page_views > 0 { v.last_page } else { 0 },
        };
        for t in [
            self.traffic.entry(sc).or_default(),
            self.hourly.entry((sc, visit.head.hour)).or_default(),
        ] {
            t.visits += 1;
            t.bounces += visit.bounce() as i64;
            t.visit_duration_us += visit.end_us - visit.start_us;
        }
        self.visits.push(visit);
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
