//! Rare values folded into [`OTHER`](super::OTHER): referrer hosts, each UTM
//! value and search terms used by fewer than
//! [`SummaryOptions::min_visitors`](super::SummaryOptions::min_visitors)
//! distinct visitors that day on that site (every audience together), and the
//! visit-level tables built on them (referrers, campaigns, searches).

use super::count::{Mark, SiteClass, Tally, Visit};
use super::rows::Rows;
use super::CODE_OTHER;
use crate::hash::FxHashMap;

#[derive(Default)]
pub(super) struct VisitCounts {
    pub visits: i64,
    pub visitors: i64,
    pub page_views: i64,
    pub bounces: i64,
    pub mark: Mark<u64>,
}

impl VisitCounts {
    fn add(&mut self, v: &Visit, vd: u64) {
        self.visits += 1;
        self.page_views += v.page_views;
        self.bounces += v.bounce() as i64;
        self.visitors += self.mark.see(vd) as i64;
    }
}

#[derive(Default)]
pub(super) struct Searches {
    pub searches: i64,
    pub visitors: i64,
    pub mark: Mark<u64>,
}

/// Distinct visitors per key, counted while visitors arrive in order.
#[derive(Default)]
struct Distinct<K>(FxHashMap<K, (u64, i64)>);

impl<K: std::hash::Hash + Eq> Distinct<K> {
    fn see(&mut self, key: K, run: u64) {
        let e = self.0.entry(key).or_default();
        if e.0 != run {
            e.0 = run;
            e.1 += 1;
        }
    }

    fn rare(&self, key: &K, k: i64) -> bool {
        self.0.get(key).is_some_and(|e| e.1 < k)
    }
}

/// Referrers: (site and class, medium, source, host, landing route).
pub(super) type ReferrerKey = (SiteClass, [u32; 4]);
/// Campaigns: (site and class, the five UTM values).
pub(super) type CampaignKey = (SiteClass, [u32; 5]);
/// Searches: (site and class, kind, term).
pub(super) type SearchKey = (SiteClass, u8, u32);

/// The folded visit-level tables.
pub(super) struct Folded {
    pub referrers: FxHashMap<ReferrerKey, VisitCounts>,
    pub campaigns: FxHashMap<CampaignKey, VisitCounts>,
    pub searches: FxHashMap<SearchKey, Searches>,
}

/// Builds the referrer, campaign and search tables, folding rare values.
/// The visits and the search hits of `t` are grouped by visitor-day.
pub(super) fn fold(t: &Tally, rows: &Rows, class: &[u8], k: u32) -> Folded {
    let k = i64::from(k);
    let mut hosts = Distinct::default();
    let mut utms = Distinct::default();
    for v in &t.visits {
        let (l, f) = (v.landing as usize, v.first as usize);
        let vd = rows.visitor_day(f);
        if rows.ref_host[l] != 0 {
            hosts.see((rows.site[l], rows.ref_host[l]), vd);
        }
        if rows.campaign(f) != 0 {
            for (j, field) in rows.utm.iter().enumerate() {
                if field[f] != 0 {
                    utms.see((rows.site[f], j, field[f]), vd);
                }
            }
        }
    }
    let utm = |f: usize, j: usize| -> u32 {
        let value = rows.utm[j][f];
        match utms.rare(&(rows.site[f], j, value), k) {
            true => CODE_OTHER,
            false => value,
        }
    };
    let mut referrers: FxHashMap<ReferrerKey, VisitCounts> = FxHashMap::default();
    let mut campaigns: FxHashMap<CampaignKey, VisitCounts> = FxHashMap::default();
    for v in &t.visits {
        let (l, f) = (v.landing as usize, v.first as usize);
        let sc = (rows.site[f], class[f]);
        let mut host = rows.ref_host[l];
        if host != 0 && hosts.rare(&(rows.site[l], host), k) {
            host = CODE_OTHER;
        }
        let rk = [rows.medium[l], rows.source[l], host, v.entry];
        let vd = rows.visitor_day(f);
        referrers.entry((sc, rk)).or_default().add(v, vd);
        if rows.campaign(f) != 0 {
            let ck = [utm(f, 0), utm(f, 1), utm(f, 2), utm(f, 3), utm(f, 4)];
            campaigns.entry((sc, ck)).or_default().add(v, vd);
        }
    }
    Folded {
        referrers,
        campaigns,
        searches: searches(&t.search_hits, rows, k),
    }
}

/// Search terms: terms seen from fewer than k visitors fold into (other).
fn searches(
    hits: &[(u32, SiteClass, u8, u32)],
    rows: &Rows,
    k: i64,
) -> FxHashMap<SearchKey, Searches> {
    let mut terms = Distinct::default();
    for &(pos, (site, _), kind, term) in hits {
        terms.see((site, kind, term), rows.visitor_day(pos as usize));
    }
    let mut out: FxHashMap<SearchKey, Searches> = FxHashMap::default();
    for &(pos, sc, kind, term) in hits {
        let run = rows.visitor_day(pos as usize);
        let term = match terms.rare(&(sc.0, kind, term), k) {
            true => CODE_OTHER,
            false => term,
        };
        let s = out.entry((sc, kind, term)).or_default();
        s.searches += 1;
        s.visitors += s.mark.see(run) as i64;
    }
    out
}
