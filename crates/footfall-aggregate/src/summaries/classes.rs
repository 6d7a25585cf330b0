//! The audience of every row: each visitor-day's requests of the date are
//! profiled and classified by the bot rules ([`crate::bots`]); every row of
//! the visitor-day carries that class. Polling requests are marked too: they
//! are never page views.

use super::rows::{flag, kind, Rows};
use crate::bots::{self, BotRules, Profile};
use crate::hash::FxHashMap;

/// Per row (scope position): the class code of its visitor-day, and whether
/// it is a repeated polling request.
pub(super) struct Classes {
    pub class: Vec<u8>,
    pub polling: Vec<bool>,
}

/// Classifies every visitor-day of `rows`; `order` groups the rows by (site,
/// visitor) in time order ([`Rows::order`]).
pub(super) fn classify(rows: &Rows, order: &[u32], rules: &BotRules) -> Classes {
    let n = rows.ts.len();
    let mut out = Classes {
        class: vec![bots::HUMAN; n],
        polling: vec![false; n],
    };
    let mut start = 0;
    while start < order.len() {
        let first = order[start] as usize;
        let key = (rows.site[first], rows.visitor[first]);
        let end = start
            + order[start..]
                .iter()
                .position(|&p| (rows.site[p as usize], rows.visitor[p as usize]) != key)
                .unwrap_or(order.len() - start);
        let group: Vec<usize> = order[start..end]
            .iter()
            .map(|&p| p as usize)
            .filter(|&i| rows.in_day[i])
            .collect();
        let polled = mark_polling(rows, &group, rules, &mut out.polling);
        let class = rules.classify(&profile(rows, &group, polled));
        for &p in &order[start..end] {
            out.class[p as usize] = class;
        }
        start = end;
    }
    out
}

/// Marks the repeated requests of each polled route of one visitor-day
/// (every one after the first); returns how many requests are polling.
fn mark_polling(rows: &Rows, group: &[usize], rules: &BotRules, polling: &mut [bool]) -> u32 {
    if rules.polling_min_requests == 0 || group.len() < rules.polling_min_requests as usize {
        return 0;
    }
    let mut by_route: FxHashMap<u32, Vec<usize>> = FxHashMap::default();
    for &i in group {
        by_route.entry(rows.route[i]).or_default().push(i);
    }
    let mut polled = 0;
    for positions in by_route.values() {
        let times: Vec<i64> = positions.iter().map(|&i| rows.ts[i]).collect();
        if rules.is_polling(&times) {
            polled += positions.len() as u32;
            for &i in &positions[1..] {
                polling[i] = true;
            }
        }
    }
    polled
}

/// What one visitor-day did (`group`: its rows of the date, in time order).
fn profile(rows: &Rows, group: &[usize], polling: u32) -> Profile {
    let mut p = Profile {
        requests: group.len() as u32,
        polling,
        ..Profile::default()
    };
    let mut non_assets = Vec::with_capacity(group.len());
    for &i in group {
        let f = rows.flags[i];
        p.user_agent_bot |= rows.is_bot[i];
        p.referred |= rows.ref_host[i] != 0;
        p.robots_txt |= f & flag::ROBOTS_TXT != 0;
        p.login_posts += u32::from(f & flag::LOGIN_POST != 0);
        p.heads += u32::from(f & flag::HEAD != 0);
        p.status_4xx += u32::from((400..500).contains(&rows.status[i]));
        match rows.kind[i] {
            kind::PAGE => p.pages += 1,
            kind::ASSET => p.assets += 1,
            _ => {}
        }
        if rows.kind[i] != kind::ASSET {
            non_assets.push(rows.ts[i]);
        }
    }
    p.max_per_minute = bots::max_per_minute(&non_assets);
    p
}
