//! A date's kept state, so that a run counts again only the visitor-days its
//! new events touch instead of the whole date.
//!
//! The state holds every in-scope row of the date (its own rows and the
//! previous date's last visit timeout, as [`super::summarize_batches`] reads
//! them) with their strings interned once, the rows' order, the tally of
//! every visitor-day, and the counts of the *hot* visitor-days: those of at
//! least [`HOT_ROWS`] rows ([`super::hot`]). [`DayState::update`] adds a
//! run's new rows, then
//!
//! * takes the old tally of each touched visitor-day out: a light one's
//!   counted again from its old rows (a light visitor-day is small), a hot
//!   one's as kept; every counter of every table adds up over visitor-days
//!   (`tests::every_table_is_additive_over_visitors`), visits and search
//!   hits are listed per visitor-day;
//! * puts each touched visitor-day's new tally in: a light one's counted from
//!   all its rows, a hot one's counted on from where its last count stopped
//!   (or anew when its class, its polled routes or a row before that point
//!   changed); once hot, always hot: rows only grow;
//! * folds and builds the tables from the tally, as the whole-date path
//!   does. Visits hold their own values (`count::Head`), so the tables need
//!   no row.
//!
//! So the summaries are exactly those of the whole date
//! (`tests::updates_give_the_summaries_of_the_whole_date`), whatever the
//! runs' cuts. A run's summary work is its touched light visitor-days, the
//! rows of its touched hot visitor-days' last visit timeout and its new
//! rows (classifying still reads all of a touched hot visitor-day's rows),
//! and folding and writing the tables.

use arrow::array::RecordBatch;
use chrono::NaiveDate;

use super::codec::{Codec, Extent, Grows, In, Out};
use super::count::{Client, Page, Route, Tally, Traffic};
use super::hot::Hot;
use super::rows::Rows;
use super::{tables, Summaries, SummaryOptions};
use crate::error::AggregateError;
use crate::hash::{FxHashMap, FxHashSet};

/// Rows from which a visitor-day is hot: counted on from where its last
/// count stopped ([`super::hot`]).
pub(crate) const HOT_ROWS: usize = 100;

/// A date's kept state (module docs).
#[derive(Default)]
pub(crate) struct DayState {
    rows: Rows,
    /// Every row position in [`Rows::key`] order.
    order: Vec<u32>,
    /// The tally of every visitor-day (visits and hits in any order).
    tally: Tally,
    /// The hot visitor-days by [`Rows::visitor_day`].
    hot: FxHashMap<u64, Hot>,
    /// How the last update counted (not kept).
    counted: Counted,
    /// How far the rows had grown when the state was read (not kept): a
    /// save appends the rows from there on.
    stored: Extent,
}

/// Rows an update counted.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    /// Of the touched light visitor-days: old rows (taken out) and all.
    pub light: usize,
    /// Of hot visitor-days counted on from where they stopped: all their
    /// rows, which are classified (only those from that point are counted).
    pub streamed: usize,
    /// Of hot visitor-days counted anew.
    pub recounted: usize,
}

/// The rows of one update, each list in [`Rows::key`] order.
#[derive(Default)]
struct Plan {
    /// The old rows of the touched visitor-days that were light.
    light_old: Vec<u32>,
    /// Every row of the touched visitor-days that are light.
    light_new: Vec<u32>,
    /// The touched visitor-days that are hot: their rows' range of the order.
    hot: Vec<std::ops::Range<usize>>,
    /// The touched visitor-days ([`Rows::visitor_day`]).
    touched: FxHashSet<u64>,
}

impl DayState {
    /// Adds the in-scope rows of `batches` (read one at a time) and counts
    /// what they touch; gives how many rows are of the date itself. The
    /// summaries are then [`DayState::summaries`].
    pub(crate) fn update(
        &mut self,
        batches: impl IntoIterator<Item = Result<RecordBatch, AggregateError>>,
        date: NaiveDate,
        opts: &SummaryOptions,
    ) -> Result<u64, AggregateError> {
        self.update_with(batches, date, opts, HOT_ROWS)
    }

    fn update_with(
        &mut self,
        batches: impl IntoIterator<Item = Result<RecordBatch, AggregateError>>,
        date: NaiveDate,
        opts: &SummaryOptions,
        hot_rows: usize,
    ) -> Result<u64, AggregateError> {
        let before = self.rows.ts.len();
        for batch in batches {
            self.rows.append(&batch?, date, opts)?;
        }
        let started = std::time::Instant::now();
        let plan = self.plan(before, hot_rows);
        self.take_out(&plan, before, opts);
        let new = Tally::count(&self.rows, &plan.light_new, opts);
        self.tally.put_in(new);
        self.count_hot(&plan, before, opts);
        self.tally.group_by_visitor_day();
        tracing::debug!(
            %date,
            rows = self.rows.ts.len(),
            new = self.rows.ts.len() - before,
            hot_days = self.hot.len(),
            counted = ?self.counted,
            counted_s = started.elapsed().as_secs_f64(),
            "day state updated"
        );
        Ok(self.rows.in_day.iter().filter(|&&d| d).count() as u64)
    }

    /// How many more rows (in every column) and strings fit without growing.
    #[cfg(test)]
    pub(crate) fn room(&self) -> (usize, usize) {
        let spare = |cap: usize, len: usize| cap - len;
        let r = &self.rows;
        let columns = [
            spare(r.ts.capacity(), r.ts.len()),
            spare(r.utm[4].capacity(), r.utm[4].len()),
            spare(r.message.capacity(), r.message.len()),
            spare(r.in_day.capacity(), r.in_day.len()),
        ];
        (columns.into_iter().min().unwrap_or(0), r.strings.room())
    }

    /// The date's summaries, from the tally as the last update left it.
    pub(crate) fn summaries(&self, opts: &SummaryOptions) -> Result<Summaries, AggregateError> {
        tables(&self.tally, &self.rows.strings, opts)
    }

    /// Takes the touched visitor-days' old tallies out: the light ones
    /// counted again from their old rows, the hot ones as kept.
    fn take_out(&mut self, plan: &Plan, before: usize, opts: &SummaryOptions) {
        let old = Tally::count(&self.rows, &plan.light_old, opts);
        self.tally.add_maps(&old, -1);
        for r in &plan.hot {
            let group = &self.order[r.clone()];
            let vd = self.rows.visitor_day(group[0] as usize);
            if let Some(h) = self.hot.get(&vd) {
                let old = h.whole(&self.rows, group, before as u32);
                self.tally.add_maps(&old, -1);
            }
        }
        self.tally.drop_days(&plan.touched);
        self.counted = Counted {
            light: plan.light_old.len() + plan.light_new.len(),
            ..Counted::default()
        };
    }

    /// Counts the touched hot visitor-days on (or anew) and puts them in.
    fn count_hot(&mut self, plan: &Plan, before: usize, opts: &SummaryOptions) {
        let DayState {
            rows,
            order,
            tally,
            hot,
            counted,
            ..
        } = self;
        for r in &plan.hot {
            let group = &order[r.clone()];
            let vd = rows.visitor_day(group[0] as usize);
            let on = hot
                .get_mut(&vd)
                .is_some_and(|h| h.update(rows, group, before as u32, opts));
            match on {
                true => counted.streamed += group.len(),
                false => {
                    hot.insert(vd, Hot::count(rows, group, opts));
                    counted.recounted += group.len();
                }
            }
            tally.put_in(hot[&vd].whole(rows, group, u32::MAX));
        }
    }

    /// Merges the rows from `before` on into the order and sorts the
    /// touched visitor-days out: the work grows with the new rows and the
    /// touched visitor-days, not with the order (found by binary search).
    fn plan(&mut self, before: usize, hot_rows: usize) -> Plan {
        let rows = &self.rows;
        let mut fresh: Vec<u32> = (before as u32..rows.ts.len() as u32).collect();
        fresh.sort_unstable_by_key(|&i| rows.key(i));
        self.order = merged(&self.order, &fresh, |i| rows.key(i));
        let mut plan = Plan::default();
        for new in rows.visitor_days(&fresh) {
            let range = rows.visitor_day_range(&self.order, new[0]);
            let group = &self.order[range.clone()];
            let vd = rows.visitor_day(new[0] as usize);
            plan.touched.insert(vd);
            let was_hot = self.hot.contains_key(&vd);
            if !was_hot {
                plan.light_old
                    .extend(group.iter().filter(|&&p| (p as usize) < before));
            }
            if was_hot || group.len() >= hot_rows {
                plan.hot.push(range);
            } else {
                plan.light_new.extend_from_slice(group);
            }
        }
        plan
    }
}

/// `a` and the few `b`, each sorted by `key`, merged: each of `b` put in
/// place by binary search and `a` copied in runs between them, so that
/// `key` is read O(|b| log |a|) times rather than for every element.
fn merged<K: Ord>(a: &[u32], b: &[u32], key: impl Fn(u32) -> K) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut from = 0;
    for &x in b {
        let k = key(x);
        let at = from + a[from..].partition_point(|&y| key(y) <= k);
        out.extend_from_slice(&a[from..at]);
        out.push(x);
        from = at;
    }
    out.extend_from_slice(&a[from..]);
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

/// Adds every entry of `from` (times `sign`) to `into`.
fn add_map<K: std::hash::Hash + Eq + Clone, V: Counts + Default>(
    into: &mut FxHashMap<K, V>,
    from: &FxHashMap<K, V>,
    sign: i64,
) {
    for (k, v) in from {
        into.entry(k.clone()).or_default().add(v, sign);
    }
}

/// Drops the entries left at zero (no whole-date tally has one).
fn drop_zeros<K, V: Counts>(map: &mut FxHashMap<K, V>) {
    map.retain(|_, v| !v.is_zero());
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

    /// Drops the entries at zero, and the visits and hits of `days`.
    fn drop_days(&mut self, days: &FxHashSet<u64>) {
        drop_zeros(&mut self.traffic);
        drop_zeros(&mut self.hourly);
        drop_zeros(&mut self.pages);
        drop_zeros(&mut self.clients);
        drop_zeros(&mut self.statuses);
        drop_zeros(&mut self.routes);
        drop_zeros(&mut self.transitions);
        self.visits
            .retain(|v| !days.contains(&v.head.visitor_day()));
        self.search_hits.retain(|h| !days.contains(&h.0));
    }

    /// Puts `new` in: its counters, visits and hits.
    fn put_in(&mut self, mut new: Tally) {
        self.add_maps(&new, 1);
        self.visits.append(&mut new.visits);
        self.search_hits.append(&mut new.search_hits);
    }

    /// Orders the visits and the hits by visitor-day, as folding needs. The
    /// kept ones are in order already and the new ones follow them: a stable
    /// sort finds that run and sorts and merges in only the new ones.
    fn group_by_visitor_day(&mut self) {
        self.visits.sort_by_key(|v| v.head.visitor_day());
        self.search_hits.sort_by_key(|h| h.0);
    }
}

/// A state's rows, read a segment at a time apart from the rest
/// ([`DayState::from_parts`]).
#[derive(Default)]
pub(crate) struct KeptRows {
    rows: Rows,
    /// Rows to make room for beyond those read (the run's new ones).
    extra: usize,
}

impl KeptRows {
    /// Rows to be read, with room for `extra` more.
    pub(crate) fn with_room(extra: usize) -> Self {
        KeptRows {
            rows: Rows::default(),
            extra,
        }
    }

    /// Adds the rows of one segment of [`DayState::write_rows`], read from
    /// exactly `len` bytes of `r`; `None` unless they are exactly that and
    /// start where the rows read so far end. Before the first, makes room
    /// for the whole state, whose size ([`DayState::size`]) and rows file's
    /// length are given.
    pub(crate) fn read_segment(
        &mut self,
        (size, file_len): ([u64; 2], u64),
        r: &mut dyn std::io::Read,
        len: u64,
    ) -> Option<()> {
        let mut input = In::new(r, len);
        let (rows, strings): (u64, u64) = Codec::take(&mut input)?;
        let at = self.rows.extent();
        (rows == at.rows as u64 && strings == at.strings as u64).then_some(())?;
        if at.rows == 0 {
            // The size is believed only as far as the file can hold it:
            // each row has its 8-byte time, each string its 4-byte length.
            // New rows bring a new string now and then (a new visitor or
            // path): room for one each.
            self.rows.reserve_for(Extent {
                rows: size[0].min(file_len / 8) as usize + self.extra,
                strings: size[1].min(file_len / 4) as usize + self.extra,
            });
        }
        self.rows.take_onto(&mut input)?;
        input.is_done().then_some(())
    }
}

/// A state's order, tally and hot visitor-days, read apart from its rows.
pub(crate) struct KeptRest {
    order: Vec<u32>,
    tally: Tally,
    hot: FxHashMap<u64, Hot>,
}

/// Writes a state's order, tally and hot visitor-days; gives the bytes
/// written up to the hot ones.
fn put_rest(out: &mut Out<'_>, order: &Vec<u32>, tally: &Tally, hot: &FxHashMap<u64, Hot>) -> u64 {
    order.put(out);
    tally.put(out);
    let before_hot = out.written();
    hot.put(out);
    before_hot
}

impl Codec for KeptRest {
    fn put(&self, out: &mut Out<'_>) {
        put_rest(out, &self.order, &self.tally, &self.hot);
    }

    fn take(r: &mut In<'_>) -> Option<Self> {
        let mut rest = KeptRest {
            order: Codec::take(r)?,
            tally: Codec::take(r)?,
            hot: Codec::take(r)?,
        };
        rest.hot.values_mut().for_each(Hot::restore_marks);
        Some(rest)
    }
}

impl Codec for DayState {
    /// The rows, then the rest, as [`DayState::write_rows`] and
    /// [`DayState::write_rest`] write them.
    fn put(&self, out: &mut Out<'_>) {
        self.rows.put(out);
        put_rest(out, &self.order, &self.tally, &self.hot);
    }

    fn take(r: &mut In<'_>) -> Option<Self> {
        let rows = KeptRows {
            rows: Codec::take(r)?,
            extra: 0,
        };
        DayState::from_parts(rows, Codec::take(r)?)
    }
}

/// `T` read from exactly `len` bytes of `r`.
fn read_whole<T: Codec>(r: &mut dyn std::io::Read, len: u64) -> Option<T> {
    let mut input = In::new(r, len);
    let t = T::take(&mut input)?;
    input.is_done().then_some(t)
}

impl DayState {
    /// Writes a segment of rows: where it starts (rows and strings, u64
    /// each), then the bytes of `codec.rs` of the rows added since the state
    /// was read when the segment `continues` the rows file it was read from,
    /// else of all of them.
    pub(crate) fn write_rows(
        &self,
        w: &mut dyn std::io::Write,
        continues: bool,
    ) -> std::io::Result<()> {
        let from = match continues {
            true => self.stored,
            false => Rows::default().extent(),
        };
        let mut out = Out::new(w);
        (from.rows as u64, from.strings as u64).put(&mut out);
        self.rows.put_after(from, &mut out);
        tracing::debug!(bytes = out.written(), continues, "day state rows written");
        out.finish()
    }

    /// Writes the order, the tally and the hot visitor-days.
    pub(crate) fn write_rest(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut out = Out::new(w);
        let tally = put_rest(&mut out, &self.order, &self.tally, &self.hot);
        tracing::debug!(
            order_and_tally = tally,
            hot = out.written() - tally,
            "day state written"
        );
        out.finish()
    }

    /// How far its rows have grown (rows, strings): what a reader of its rows
    /// makes room for ([`KeptRows::read_segment`]).
    pub(crate) fn size(&self) -> [u64; 2] {
        let e = self.rows.extent();
        [e.rows as u64, e.strings as u64]
    }

    /// The rest of [`DayState::write_rest`], read from `len` bytes of `r`;
    /// `None` unless it is exactly that.
    pub(crate) fn read_rest(r: &mut dyn std::io::Read, len: u64) -> Option<KeptRest> {
        read_whole(r, len)
    }

    /// The state of its two parts; `None` unless they are of one state.
    pub(crate) fn from_parts(rows: KeptRows, rest: KeptRest) -> Option<Self> {
        let s = DayState {
            stored: rows.rows.extent(),
            rows: rows.rows,
            order: rest.order,
            tally: rest.tally,
            hot: rest.hot,
            counted: Counted::default(),
        };
        s.is_whole().then_some(s)
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
            && self.hot.values().all(|h| h.fits(n))
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

    /// The summaries and the date's rows after `state` takes `events`.
    fn updated(
        state: &mut DayState,
        events: &[KafkaEvent],
        opts: &SummaryOptions,
        hot_rows: usize,
    ) -> (Summaries, u64) {
        let n = state
            .update_with([Ok(batch(events))], day(), opts, hot_rows)
            .unwrap();
        (state.summaries(opts).unwrap(), n)
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
                    let (s, _) = updated(&mut state, part, &opts, hot_rows);
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

    /// A time-ordered day of visitor-days that go hot: one that streams
    /// (visits, searches, assets), one whose class changes late (it fetches
    /// `/robots.txt`), one whose polled route stops being polled (its class,
    /// by its user agent, stays), and one with a row that comes hours late.
    fn hot_events() -> Vec<KafkaEvent> {
        let at = |s: i64| {
            format!(
                "2015-05-17T{:02}:{:02}:{:02}",
                s / 3600,
                s / 60 % 60,
                s % 60
            )
        };
        let mut timed = Vec::new();
        for i in 0..300i64 {
            let s = i * 200 + (i / 25) * 2000;
            let mut e = ev(
                "steady",
                &at(s),
                ["/", "/docs", "/a.css"][i as usize % 3],
                200,
                i % 3 != 2,
            );
            if i % 7 == 0 {
                e.site_search = Some(["shoes", "hats"][i as usize % 2].into());
            }
            timed.push((s, e));
            let route = if i == 250 { "/robots.txt" } else { "/" };
            timed.push((s + 7, ev("turns-bot", &at(s + 7), route, 200, true)));
            let (s, route) = match i % 2 {
                0 if i < 120 => (i * 200 + 3, "/feed"),
                0 => (i * 200 + 3 + (i * 37) % 150, "/feed"),
                _ => (i * 200 + 11, "/docs"),
            };
            timed.push((s, bot(ev("poller", &at(s), route, 200, true))));
            timed.push((s + 13, ev("late-row", &at(s + 13), "/", 200, true)));
        }
        timed.sort_by_key(|(s, _)| *s);
        let late = timed
            .iter()
            .position(|(s, e)| e.visitor_id == "late-row" && *s > 40_000)
            .unwrap();
        let row = timed.remove(late);
        timed.push(row);
        timed
            .into_iter()
            .enumerate()
            .map(|(i, (_, event))| KafkaEvent {
                partition: 0,
                offset: i as i64,
                event,
            })
            .collect()
    }

    #[test]
    fn hot_visitor_days_count_on_or_anew_as_the_whole_date_does() {
        let events = hot_events();
        let opts = SummaryOptions::default();
        for hot_rows in [5, 50] {
            for cuts in [1, 3, 8, 25] {
                let mut state = DayState::default();
                let step = events.len().div_ceil(cuts);
                let mut streamed = 0;
                for (i, part) in events.chunks(step).enumerate() {
                    let seen = &events[..(i * step + part.len())];
                    let (s, _) = updated(&mut state, part, &opts, hot_rows);
                    let what = format!("hot {hot_rows}, cut {i} of {cuts}");
                    assert_same(&s, &whole(seen, &opts), &what);
                    streamed += state.counted.streamed;
                    let bytes = encoded(&state);
                    state = decoded(&bytes).expect("decodes");
                }
                assert!(
                    cuts == 1 || streamed > 0,
                    "hot {hot_rows}, {cuts} cuts: some rows are counted on"
                );
            }
        }
    }

    /// A random day of `seed`: a few visitors, some of them heavy, with
    /// searches, campaigns and referrers; bots by user agent, visitors that
    /// turn bots (`/robots.txt`) at any time, fixed-interval polling, rows of
    /// the previous evening, errors. The rows arrive out of time order (each
    /// moved up to 40 minutes late) and each visitor's rows over several
    /// partitions, offsets in arrival order.
    fn random_day(seed: u64) -> Vec<KafkaEvent> {
        let mut rng = crate::testdata::Rng::new(seed);
        let mut timed = Vec::new();
        for v in 0..12 {
            let who = format!("r{v}");
            let rows = [3, 8, 40, 150][rng.below(4) as usize];
            let agent_bot = rng.pct(15);
            let start = rng.below(20 * 3600) as i64 - 1800;
            let mut times = random_times(&mut rng, start, rows);
            if rng.pct(25) {
                times.extend(polling_times(&mut rng, start, rows));
            }
            for (t, polled) in times {
                let route = match (polled, rng.below(60)) {
                    (true, _) => "/feed",
                    (_, 0) => "/robots.txt",
                    (_, n) => ["/", "/docs", "/a.css", "/search", "/x", "/y"][n as usize % 6],
                };
                let status = [200, 200, 200, 304, 404, 500][rng.below(6) as usize];
                let mut e = ev(&who, &stamp(t), route, status, !route.ends_with(".css"));
                if rng.pct(8) {
                    e.utm_source = Some(["news", "ads"][rng.below(2) as usize].into());
                    e.utm_campaign = Some("spring".into());
                }
                if rng.pct(8) {
                    e.site_search = Some(["shoes", "hats", "socks"][rng.below(3) as usize].into());
                }
                if rng.pct(6) {
                    e.referrer_host = Some(format!("r{}.example", rng.below(3)));
                }
                if agent_bot {
                    e = bot(e);
                }
                let arrives = t + if rng.pct(30) {
                    rng.below(2400) as i64
                } else {
                    0
                };
                timed.push((arrives, e));
            }
        }
        timed.sort_by_key(|(arrives, _)| *arrives);
        let mut next = [0i64; 3];
        timed
            .into_iter()
            .map(|(_, event)| {
                let partition = rng.below(3) as usize;
                next[partition] += 1;
                KafkaEvent {
                    partition: partition as i32,
                    offset: next[partition],
                    event,
                }
            })
            .collect()
    }

    /// `n` request times from `start` on, mostly minutes apart, some hours.
    fn random_times(rng: &mut crate::testdata::Rng, start: i64, n: usize) -> Vec<(i64, bool)> {
        let mut t = start;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let gap = if rng.pct(10) { 7200 } else { 400 };
            t += 1 + rng.below(gap) as i64;
            out.push((t, false));
        }
        out
    }

    /// `n` polls from `start` on at a fixed interval, which may stop being
    /// fixed part way (the route is then polled no more).
    fn polling_times(rng: &mut crate::testdata::Rng, start: i64, n: usize) -> Vec<(i64, bool)> {
        let every = 60 + rng.below(240) as i64;
        let stops = rng.below(2 * n as u64) as usize;
        (0..n)
            .map(|k| {
                let jitter = if k > stops {
                    rng.below(every as u64) as i64
                } else {
                    0
                };
                (start + k as i64 * every + jitter, true)
            })
            .collect()
    }

    /// `s` seconds after the midnight that starts [`day`] (local time),
    /// possibly before it.
    fn stamp(s: i64) -> String {
        let t = day().and_hms_opt(0, 0, 0).unwrap() + chrono::Duration::seconds(s);
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    }

    /// 24 random days (`FOOTFALL_RANDOM_DAYS=N` for more), each taken in
    /// random cuts, its state saved and read back after some of them.
    #[test]
    fn random_days_in_random_cuts_give_the_summaries_of_the_whole_date() {
        let opts = SummaryOptions::default();
        let seeds: u64 = std::env::var("FOOTFALL_RANDOM_DAYS").map_or(24, |n| n.parse().unwrap());
        let mut counted = Counted::default();
        for seed in 0..seeds {
            let events = random_day(seed);
            let mut rng = crate::testdata::Rng::new(seed + 1000);
            let hot_rows = [2, 5, 20, usize::MAX][rng.below(4) as usize];
            let (mut state, mut segments) = (DayState::default(), Vec::new());
            let mut seen = 0;
            while seen < events.len() {
                let n = (1 + rng.below(events.len() as u64 / 3)) as usize;
                let part = &events[seen..(seen + n).min(events.len())];
                seen += part.len();
                let (s, _) = updated(&mut state, part, &opts, hot_rows);
                let what = format!(
                    "seed {seed}, hot {hot_rows}, {seen} of {} rows",
                    events.len()
                );
                assert_same(&s, &whole(&events[..seen], &opts), &what);
                counted.light += state.counted.light;
                counted.streamed += state.counted.streamed;
                counted.recounted += state.counted.recounted;
                // Saved and read back as a run does, rows appended.
                if rng.pct(50) {
                    let (rows, rest) = saved(&state, !segments.is_empty());
                    segments.push(rows);
                    state = read_back(&segments, &rest, state.size()).expect("reads back");
                }
            }
        }
        let Counted {
            light,
            streamed,
            recounted,
        } = counted;
        assert!(light > 0 && streamed > 0 && recounted > 0, "{counted:?}");
    }

    /// A state's two parts as a save writes them: its rows segment (all
    /// rows, or those since it was read when `continues`) and the rest.
    fn saved(state: &DayState, continues: bool) -> (Vec<u8>, Vec<u8>) {
        let (mut rows, mut rest) = (Vec::new(), Vec::new());
        state.write_rows(&mut rows, continues).unwrap();
        state.write_rest(&mut rest).unwrap();
        (rows, rest)
    }

    /// The state of the rows `segments` and of `rest`, of `size`, read with
    /// room for 7 more rows.
    fn read_back(segments: &[Vec<u8>], rest: &[u8], size: [u64; 2]) -> Option<DayState> {
        let mut rows = KeptRows::with_room(7);
        let file_len = segments.iter().map(|s| s.len() as u64).sum();
        for s in segments {
            rows.read_segment((size, file_len), &mut &s[..], s.len() as u64)?;
        }
        let rest = DayState::read_rest(&mut &rest[..], rest.len() as u64)?;
        let state = DayState::from_parts(rows, rest)?;
        assert!(state.room().0 >= 7, "room for 7 more rows");
        Some(state)
    }

    #[test]
    fn a_save_appends_the_rows_added_since_the_state_was_read() {
        let events = events();
        let opts = SummaryOptions::default();
        let mut state = DayState::default();
        let mut segments = Vec::new();
        let step = events.len().div_ceil(4);
        for (i, part) in events.chunks(step).enumerate() {
            let seen = &events[..(i * step + part.len())];
            let (s, _) = updated(&mut state, part, &opts, 10);
            assert_same(&s, &whole(seen, &opts), &format!("cut {i}"));
            let (all, _) = saved(&state, false);
            let (rows, rest) = saved(&state, i > 0);
            // At most twice the new rows' share of all (each column of a
            // segment has a little overhead of its own).
            assert!(
                i == 0 || rows.len() < 2 * all.len() * part.len() / seen.len(),
                "cut {i}: {} bytes appended of {}",
                rows.len(),
                all.len()
            );
            segments.push(rows);
            let size = state.size();
            state = read_back(&segments, &rest, size).expect("reads back");
            let only_all = read_back(&[all], &rest, size).expect("one segment of all rows");
            assert_eq!(encoded(&state), encoded(&only_all), "cut {i}");
        }
        let rest = saved(&state, true).1;
        segments.swap(1, 2);
        assert!(
            read_back(&segments, &rest, state.size()).is_none(),
            "segments out of order"
        );
    }

    #[test]
    fn a_state_reads_back_as_written_and_goes_on_as_before() {
        let events = events();
        let opts = SummaryOptions::default();
        let (a, b) = events.split_at(200);
        let mut state = DayState::default();
        updated(&mut state, a, &opts, 10);
        let bytes = encoded(&state);
        let mut back: DayState = decoded(&bytes).expect("decodes");
        let (s, n) = updated(&mut back, b, &opts, 10);
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
