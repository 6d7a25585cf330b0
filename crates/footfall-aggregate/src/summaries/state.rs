//! A date's kept state, so that a run counts again only the visitor-days its
//! new events touch instead of the whole date.
//!
//! The state holds every in-scope row of the date (its own rows and the
//! previous date's last visit timeout, as [`super::summarize_batches`] reads
//! them) with their strings interned once, the rows' order, and the tally
//! of the *light* visitor-days: those with fewer than [`HOT_ROWS`] rows. [`DayState::update`] adds a run's new
//! rows, then
//!
//! * takes the tally of each touched light visitor-day out (counted again
//!   from its old rows: a light visitor-day is small) and puts its new tally
//!   in; every counter of every table adds up over visitor-days
//!   (`tests::every_table_is_additive_over_visitors`), visits and search
//!   hits are listed per visitor-day;
//! * counts every *hot* visitor-day anew from all its rows, and keeps it out
//!   of the light tally (once hot, always hot: rows only grow);
//! * folds and builds the tables from the light tally plus the hot tallies
//!   (put in for the tables, then taken out again), as the whole-date path
//!   does. Visits hold their own values (`count::Head`), so the tables need
//!   no row.
//!
//! So the summaries are exactly those of the whole date
//! (`tests::updates_give_the_summaries_of_the_whole_date`), whatever the
//! runs' cuts. A run's summary work is its touched light visitor-days, the
//! hot visitor-days, and folding and writing the tables.

use arrow::array::RecordBatch;
use chrono::NaiveDate;

use super::classes::classify;
use super::codec::{Codec, In, Out};
use super::count::{Client, Page, Route, Tally, Traffic};
use super::rows::Rows;
use super::{tables, Summaries, SummaryOptions};
use crate::error::AggregateError;
use crate::hash::{FxHashMap, FxHashSet};

/// Rows from which a visitor-day is hot: counted anew each run, never kept
/// in the light tally.
pub(crate) const HOT_ROWS: usize = 100;

/// A date's kept state (module docs).
#[derive(Default)]
pub(crate) struct DayState {
    rows: Rows,
    /// Every row position in [`Rows::key`] order.
    order: Vec<u32>,
    /// The tally of the light visitor-days (visits and hits in any order).
    light: Tally,
}

/// The rows of one update, each list in [`Rows::key`] order.
#[derive(Default)]
struct Plan {
    /// The old rows of the touched visitor-days that were light.
    light_old: Vec<u32>,
    /// Every row of the touched visitor-days that are light.
    light_new: Vec<u32>,
    /// Every row of the hot visitor-days.
    hot: Vec<u32>,
    /// The touched visitor-days ([`Rows::visitor_day`]).
    touched: FxHashSet<u64>,
}

impl DayState {
    /// Adds the in-scope rows of `batches` (read one at a time) and gives the
    /// date's summaries, with how many rows are of the date itself.
    pub(crate) fn update(
        &mut self,
        batches: impl IntoIterator<Item = Result<RecordBatch, AggregateError>>,
        date: NaiveDate,
        opts: &SummaryOptions,
    ) -> Result<(Summaries, u64), AggregateError> {
        self.update_with(batches, date, opts, HOT_ROWS)
    }

    fn update_with(
        &mut self,
        batches: impl IntoIterator<Item = Result<RecordBatch, AggregateError>>,
        date: NaiveDate,
        opts: &SummaryOptions,
        hot_rows: usize,
    ) -> Result<(Summaries, u64), AggregateError> {
        let before = self.rows.ts.len();
        for batch in batches {
            self.rows.append(&batch?, date, opts)?;
        }
        let started = std::time::Instant::now();
        let plan = self.plan(before, hot_rows);
        let old = self.count(&plan.light_old, opts);
        self.light.take_out(&old, &plan.touched);
        drop(old);
        let new = self.count(&plan.light_new, opts);
        self.light.put_in(new);
        // The hot visitor-days go in for the tables and out again.
        let mut hot = self.count(&plan.hot, opts);
        let hot_days = hot.visitor_days();
        self.light.add_maps(&hot, 1);
        self.light.visits.append(&mut hot.visits);
        self.light.search_hits.append(&mut hot.search_hits);
        self.light.group_by_visitor_day();
        let day_rows = self.rows.in_day.iter().filter(|&&d| d).count() as u64;
        let counted = started.elapsed();
        let summaries = tables(&self.light, &self.rows.strings, opts);
        self.light.take_out(&hot, &hot_days);
        let summaries = summaries?;
        tracing::debug!(
            %date,
            rows = self.rows.ts.len(),
            new = self.rows.ts.len() - before,
            light_counted = plan.light_old.len() + plan.light_new.len(),
            hot_counted = plan.hot.len(),
            counted_s = counted.as_secs_f64(),
            tables_s = (started.elapsed() - counted).as_secs_f64(),
            "day state updated"
        );
        Ok((summaries, day_rows))
    }

    /// Merges the rows from `before` on into the order and sorts the
    /// visitor-days out.
    fn plan(&mut self, before: usize, hot_rows: usize) -> Plan {
        let rows = &self.rows;
        let mut fresh: Vec<u32> = (before as u32..rows.ts.len() as u32).collect();
        fresh.sort_unstable_by_key(|&i| rows.key(i));
        let mut plan = Plan {
            touched: fresh
                .iter()
                .map(|&p| rows.visitor_day(p as usize))
                .collect(),
            ..Plan::default()
        };
        self.order = merged(&self.order, &fresh, |i| rows.key(i));
        for group in self
            .order
            .chunk_by(|&a, &b| rows.visitor_day(a as usize) == rows.visitor_day(b as usize))
        {
            let old = group.iter().filter(|&&p| (p as usize) < before);
            let old_len = old.clone().count();
            let touched = plan.touched.contains(&rows.visitor_day(group[0] as usize));
            if old_len >= hot_rows || (touched && group.len() >= hot_rows) {
                plan.hot.extend_from_slice(group);
            } else if touched {
                plan.light_new.extend_from_slice(group);
            }
            if touched && old_len > 0 && old_len < hot_rows {
                plan.light_old.extend(old);
            }
        }
        plan
    }

    /// The tally of the visitor-days of `order`.
    fn count(&self, order: &[u32], opts: &SummaryOptions) -> Tally {
        if order.is_empty() {
            return Tally::default();
        }
        let classes = classify(&self.rows, order, &opts.bots);
        Tally::count(&self.rows, order, &classes, opts)
    }
}

/// Two lists sorted by `key`, merged.
fn merged<K: Ord>(a: &[u32], b: &[u32], key: impl Fn(u32) -> K) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if key(a[i]) <= key(b[j]) {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Counters that add up over visitor-days.
trait Counts {
    /// Adds `o` times `sign` (1 or -1).
    fn add(&mut self, o: &Self, sign: i64);
    fn is_zero(&self) -> bool;
}

impl Counts for i64 {
    fn add(&mut self, o: &Self, sign: i64) {
        *self += sign * o;
    }
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

impl<const N: usize> Counts for [i64; N] {
    fn add(&mut self, o: &Self, sign: i64) {
        self.iter_mut().zip(o).for_each(|(a, b)| a.add(b, sign));
    }
    fn is_zero(&self) -> bool {
        self.iter().all(|v| *v == 0)
    }
}

/// Implements [`Counts`] for a struct of counters, field by field.
macro_rules! counts {
    ($t:ty { $($f:ident),* }) => {
        impl Counts for $t {
            fn add(&mut self, o: &Self, sign: i64) {
                $(self.$f.add(&o.$f, sign);)*
            }
            fn is_zero(&self) -> bool {
                true $(&& self.$f.is_zero())*
            }
        }
    };
}

super::count::with_counters!(counts);

/// Adds every entry of `from` (times `sign`) to `into`; with `sign` -1,
/// entries left at zero go (no whole-date tally has a zero entry).
fn add_map<K: std::hash::Hash + Eq + Clone, V: Counts + Default>(
    into: &mut FxHashMap<K, V>,
    from: &FxHashMap<K, V>,
    sign: i64,
) {
    for (k, v) in from {
        into.entry(k.clone()).or_default().add(v, sign);
    }
    if sign < 0 {
        into.retain(|_, v| !v.is_zero());
    }
}

impl Tally {
    /// Every counter map, with `sign`.
    fn add_maps(&mut self, o: &Tally, sign: i64) {
        add_map(&mut self.traffic, &o.traffic, sign);
        add_map(&mut self.hourly, &o.hourly, sign);
        add_map(&mut self.pages, &o.pages, sign);
        add_map(&mut self.clients, &o.clients, sign);
        add_map(&mut self.statuses, &o.statuses, sign);
        add_map(&mut self.routes, &o.routes, sign);
        add_map(&mut self.transitions, &o.transitions, sign);
    }

    /// Takes `old` (the tally of some visitor-days, `touched` among them)
    /// out: its counters, and the visits and hits of the touched.
    fn take_out(&mut self, old: &Tally, touched: &FxHashSet<u64>) {
        self.add_maps(old, -1);
        self.visits
            .retain(|v| !touched.contains(&v.head.visitor_day()));
        self.search_hits.retain(|h| !touched.contains(&h.0));
    }

    /// Puts `new` in: its counters, visits and hits.
    fn put_in(&mut self, mut new: Tally) {
        self.add_maps(&new, 1);
        self.visits.append(&mut new.visits);
        self.search_hits.append(&mut new.search_hits);
    }

    /// The visitor-days of the tally's visits and search hits.
    fn visitor_days(&self) -> FxHashSet<u64> {
        let visits = self.visits.iter().map(|v| v.head.visitor_day());
        visits.chain(self.search_hits.iter().map(|h| h.0)).collect()
    }

    /// Orders the visits and the hits by visitor-day, as folding needs.
    fn group_by_visitor_day(&mut self) {
        self.visits.sort_unstable_by_key(|v| v.head.visitor_day());
        self.search_hits.sort_unstable_by_key(|h| h.0);
    }
}

impl Codec for DayState {
    fn put(&self, out: &mut Out<'_>) {
        self.rows.put(out);
        self.order.put(out);
        self.light.put(out);
    }

    fn take(r: &mut In<'_>) -> Option<Self> {
        let s = DayState {
            rows: Codec::take(r)?,
            order: Codec::take(r)?,
            light: Codec::take(r)?,
        };
        s.is_whole().then_some(s)
    }
}

impl DayState {
    /// Writes the state (the bytes of `codec.rs`).
    pub(crate) fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut out = Out::new(w);
        self.put(&mut out);
        out.finish()
    }

    /// The state of [`DayState::write_to`], read from `len` bytes of `r`;
    /// `None` unless they are exactly one whole state.
    pub(crate) fn read_from(r: &mut dyn std::io::Read, len: u64) -> Option<Self> {
        let mut input = In::new(r, len);
        let s = DayState::take(&mut input)?;
        input.is_done().then_some(s)
    }

    /// What a state counted with `opts` depends on beyond its rows: the
    /// visit timeout, the bot rules and [`HOT_ROWS`]. A state counted with
    /// another fingerprint is not used.
    pub(crate) fn fingerprint(opts: &SummaryOptions) -> u64 {
        use std::hash::Hasher;
        let mut h = crate::hash::FxHasher::default();
        let rules = format!("{:?} {:?} {HOT_ROWS}", opts.visit_timeout, opts.bots);
        h.write(rules.as_bytes());
        h.finish()
    }

    /// Whether every row has its place in the order and every column is as
    /// long as the rest (what a decoded state must hold).
    fn is_whole(&self) -> bool {
        let n = self.rows.ts.len();
        self.rows.lengths().iter().all(|&len| len == n)
            && self.order.len() == n
            && self.order.iter().all(|&p| (p as usize) < n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{decoded, encoded};
    use super::super::tests::{bot, day, ev, scenario};
    use super::*;
    use crate::schema::{events_to_batch, KafkaEvent};

    fn batch(events: &[KafkaEvent]) -> RecordBatch {
        events_to_batch(events).unwrap()
    }

    fn whole(events: &[KafkaEvent], opts: &SummaryOptions) -> Summaries {
        super::super::summarize_batches([Ok(batch(events))], day(), opts)
            .unwrap()
            .0
    }

    fn assert_same(a: &Summaries, b: &Summaries, what: &str) {
        for ((table, x), (_, y)) in a.iter().zip(b.iter()) {
            assert_eq!(x, y, "{what}: {table}");
        }
    }

    /// Events of many visitor-days: light and hot ones, bots, searches,
    /// campaigns and the previous day's tail, in an order that puts many
    /// visitors' events in every cut.
    fn events() -> Vec<KafkaEvent> {
        let mut events: Vec<KafkaEvent> = scenario();
        let mut next = events.len() as i64;
        for i in 0..400 {
            let who = format!("v{}", i % 23);
            let minute = (i * 7) % 1440;
            let ts = format!(
                "2015-05-17T{:02}:{:02}:{:02}",
                minute / 60,
                minute % 60,
                i % 60
            );
            let route = ["/", "/docs", "/a.css", "/search", "/x"][i % 5];
            let mut e = ev(&who, &ts, route, [200, 200, 404, 304][i % 4], i % 5 != 2);
            if i % 11 == 0 {
                e.utm_source = Some(["news", "ads"][i % 2].into());
                e.utm_campaign = Some("spring".into());
            }
            if i % 9 == 0 {
                e.site_search = Some(["shoes", "hats", "socks"][i % 3].into());
            }
            if i % 13 == 0 {
                e.referrer_host = Some(format!("r{}.example", i % 4));
            }
            if i % 23 == 5 {
                e = bot(e);
            }
            events.push(KafkaEvent {
                partition: (i % 3) as i32,
                offset: next,
                event: e,
            });
            next += 1;
        }
        let late = ev("v1", "2015-05-16T23:55:00", "/", 200, true);
        events.push(KafkaEvent {
            partition: 0,
            offset: next,
            event: late,
        });
        events
    }

    #[test]
    fn updates_give_the_summaries_of_the_whole_date() {
        let events = events();
        let opts = SummaryOptions::default();
        let want = whole(&events, &opts);
        for hot_rows in [2, 10, 30, usize::MAX] {
            for cuts in [1, 2, 5, 17] {
                let mut state = DayState::default();
                let step = events.len().div_ceil(cuts);
                let mut got = None;
                for (i, part) in events.chunks(step).enumerate() {
                    let seen = &events[..(i * step + part.len())];
                    let (s, _) = state
                        .update_with([Ok(batch(part))], day(), &opts, hot_rows)
                        .unwrap();
                    assert_same(
                        &s,
                        &whole(seen, &opts),
                        &format!("hot {hot_rows}, cut {i} of {cuts}"),
                    );
                    got = Some(s);
                }
                assert_same(
                    &got.unwrap(),
                    &want,
                    &format!("hot {hot_rows}, {cuts} cuts"),
                );
            }
        }
    }

    #[test]
    fn a_state_reads_back_as_written_and_goes_on_as_before() {
        let events = events();
        let opts = SummaryOptions::default();
        let (a, b) = events.split_at(200);
        let mut state = DayState::default();
        state.update_with([Ok(batch(a))], day(), &opts, 10).unwrap();
        let bytes = encoded(&state);
        let mut back: DayState = decoded(&bytes).expect("decodes");
        let (s, n) = back.update_with([Ok(batch(b))], day(), &opts, 10).unwrap();
        assert_same(&s, &whole(&events, &opts), "after a round trip");
        let of_day = events
            .iter()
            .filter(|e| e.event.ts.date_naive() == day())
            .count();
        assert_eq!(n as usize, of_day);
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decoded::<DayState>(&bytes[..cut]).is_none(), "cut at {cut}");
        }
    }
}
