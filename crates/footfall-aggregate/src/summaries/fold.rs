//! Rare values folded into [`OTHER`](super::OTHER): referrer hosts, each UTM
//! value and search terms used by fewer than
//! [`SummaryOptions::min_visitors`](super::SummaryOptions::min_visitors)
//! distinct visitors that day on that site (every audience together), and the
//! visit-level tables built on them (referrers, campaigns, searches).

use super::count::{Head, Mark, SiteClass, Tally, Visit};
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
pub(super) fn fold(t: &Tally, k: u32) -> Folded {
    let k = i64::from(k);
    let mut hosts = Distinct::default();
    let mut utms = Distinct::default();
    for v in &t.visits {
        let (h, vd) = (&v.head, v.head.visitor_day());
        if h.ref_host != 0 {
            hosts.see((h.site, h.ref_host), vd);
        }
        if h.campaign() != 0 {
            for (j, &value) in h.utm.iter().enumerate() {
                if value != 0 {
                    utms.see((h.site, j, value), vd);
                }
            }
        }
    }
    let utm = |h: &Head, j: usize| -> u32 {
        match utms.rare(&(h.site, j, h.utm[j]), k) {
            true => CODE_OTHER,
            false => h.utm[j],
        }
    };
    let mut referrers: FxHashMap<ReferrerKey, VisitCounts> = FxHashMap::default();
    let mut campaigns: FxHashMap<CampaignKey, VisitCounts> = FxHashMap::default();
    for v in &t.visits {
        let h = &v.head;
        let sc = (h.site, h.class);
        let mut host = h.ref_host;
        if host != 0 && hosts.rare(&(h.site, host), k) {
            host = CODE_OTHER;
        }
        let rk = [h.medium, h.source, host, v.entry];
        let vd = h.visitor_day();
        referrers.entry((sc, rk)).or_default().add(v, vd);
        if h.campaign() != 0 {
            let ck = [utm(h, 0), utm(h, 1), utm(h, 2), utm(h, 3), utm(h, 4)];
            campaigns.entry((sc, ck)).or_default().add(v, vd);
        }
    }
    Folded {
        referrers,
        campaigns,
        searches: searches(&t.search_hits, k),
    }
}

/// Search terms: terms seen from fewer than k visitors fold into (other).
fn searches(hits: &[(u64, SiteClass, u8, u32)], k: i64) -> FxHashMap<SearchKey, Searches> {
    let mut terms = Distinct::default();
    for &(vd, (site, _), kind, term) in hits {
        terms.see((site, kind, term), vd);
    }
    let mut out: FxHashMap<SearchKey, Searches> = FxHashMap::default();
    for &(vd, sc, kind, term) in hits {
        let term = match terms.rare(&(sc.0, kind, term), k) {
            true => CODE_OTHER,
            false => term,
        };
        let s = out.entry((sc, kind, term)).or_default();
        s.searches += 1;
        s.visitors += s.mark.see(vd) as i64;
    }
    out
}
