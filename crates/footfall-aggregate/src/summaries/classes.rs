//! The audience of a visitor-day: its requests of the date are profiled and
//! classified by the bot rules ([`crate::bots`]); every row of the
//! visitor-day carries that class. Polling requests are marked too: they
//! are never page views.

use super::rows::{flag, kind, Rows};
use crate::bots::{self, BotRules, Profile};
use crate::hash::FxHashMap;

/// One visitor-day's class, and which of its rows are repeated polling
/// requests.
pub(super) struct DayClass {
    /// The class code of every row of the visitor-day.
    pub class: u8,
    /// Per row of the group given to [`classify`], in its order.
    pub polling: Vec<bool>,
    /// The routes found polled, ascending.
    pub polled: Vec<u32>,
}

/// Classifies one visitor-day: `group` is its rows in time order
/// ([`Rows::order`]), the previous date's among them (they are not profiled).
pub(super) fn classify(rows: &Rows, group: &[u32], rules: &BotRules) -> DayClass {
    let in_day: Vec<usize> = (0..group.len())
        .filter(|&j| rows.in_day[group[j] as usize])
        .collect();
    let mut out = DayClass {
        class: bots::HUMAN,
        polling: vec![false; group.len()],
        polled: Vec::new(),
    };
    let polled = mark_polling(rows, group, &in_day, rules, &mut out);
    out.class = rules.classify(&profile(rows, group, &in_day, polled));
    out
}

/// Marks the repeated requests of each polled route of one visitor-day
/// (every one after the first); returns how many requests are polling.
fn mark_polling(
    rows: &Rows,
    group: &[u32],
    in_day: &[usize],
    rules: &BotRules,
    out: &mut DayClass,
) -> u32 {
    if rules.polling_min_requests == 0 || in_day.len() < rules.polling_min_requests as usize {
        return 0;
    }
    let mut by_route: FxHashMap<u32, Vec<usize>> = FxHashMap::default();
    for &j in in_day {
        by_route
            .entry(rows.route[group[j] as usize])
            .or_default()
            .push(j);
    }
    let mut polled = 0;
    for (&route, at) in &by_route {
        let times: Vec<i64> = at.iter().map(|&j| rows.ts[group[j] as usize]).collect();
        if rules.is_polling(&times) {
            polled += at.len() as u32;
            out.polled.push(route);
            for &j in &at[1..] {
                out.polling[j] = true;
            }
        }
    }
    out.polled.sort_unstable();
    polled
}

/// What one visitor-day did (`in_day`: the indexes in `group` of its rows
/// of the date, in time order).
fn profile(rows: &Rows, group: &[u32], in_day: &[usize], polling: u32) -> Profile {
    let mut p = Profile {
        requests: in_day.len() as u32,
        polling,
        ..Profile::default()
    };
    let mut non_assets = Vec::with_capacity(in_day.len());
    for &j in in_day {
        let i = group[j] as usize;
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
