//! Hot visitor-days (at least [`super::state::HOT_ROWS`] rows) counted on as
//! their rows come, rather than anew from all of them in every run.
//!
//! A [`Hot`] holds the count pass over one visitor-day stopped before the
//! rows of its last visit timeout (`at`, `cursor`): `at` has counted the
//! rows whose key (time, Kafka partition and offset) is below `from`, and
//! the polling flags of the rows from `from` on are kept. [`Hot::whole`]
//! finishes the pass over those rows, which gives the visitor-day's tally
//! exactly as counting every row anew does. [`Hot::update`] goes on from
//! `from` over the rows from there, old and new, as long as
//!
//! * no new row comes before `from` (a log is not in time order within a
//!   visitor-day: Apache writes a request's start time when it ends; but a
//!   row that comes a visit timeout later than a later one is rare),
//! * the visitor-day keeps its class, and
//! * the same routes are polled (the class and the polling flags look at
//!   every row of the day: a change re-labels rows already counted).
//!
//! Otherwise it gives `false`, and the visitor-day is counted anew
//! ([`Hot::count`]; `tests::updates_give_the_summaries_of_the_whole_date`
//! in `state.rs` goes through both). Classifying still reads every row of
//! the visitor-day; counting reads the rows from `from` on.

use super::classes::classify;
use super::count::{Cursor, Tally};
use super::rows::Rows;
use super::SummaryOptions;

/// A row's place within its visitor-day: time, Kafka partition and offset.
pub(super) type Key = (i64, (i32, i64));

/// The mark number of a hot visitor-day's own tally.
const RUN: u32 = 1;

/// A hot visitor-day's counts (module docs).
#[derive(Clone)]
pub(super) struct Hot {
    pub class: u8,
    /// The routes found polled, ascending.
    pub polled: Vec<u32>,
    /// The tally of the rows before `from`, open visit not closed.
    pub at: Tally,
    pub cursor: Cursor,
    pub from: Key,
    /// Whether each row from `from` on is polling, in time order.
    pub tail_polling: Vec<bool>,
}

fn key(rows: &Rows, p: u32) -> Key {
    (rows.ts[p as usize], rows.message[p as usize])
}

impl Hot {
    /// Counts one visitor-day anew: `group` is every row of it in time order.
    pub(super) fn count(rows: &Rows, group: &[u32], opts: &SummaryOptions) -> Hot {
        let c = classify(rows, group, &opts.bots);
        let mut hot = Hot {
            class: c.class,
            polled: c.polled,
            at: Tally::default(),
            cursor: Cursor::new(opts, RUN),
            from: (i64::MIN, (i32::MIN, i64::MIN)),
            tail_polling: Vec::new(),
        };
        hot.go_on(rows, group, &c.polling, opts);
        hot
    }

    /// Counts on over `group`, every row of the visitor-day in time order,
    /// those at positions from `new` on new; `false` when it cannot (module
    /// docs), leaving it as it was.
    pub(super) fn update(
        &mut self,
        rows: &Rows,
        group: &[u32],
        new: u32,
        opts: &SummaryOptions,
    ) -> bool {
        let s = group.partition_point(|&p| key(rows, p) < self.from);
        if group[..s].iter().any(|&p| p >= new) {
            return false;
        }
        let c = classify(rows, group, &opts.bots);
        if c.class != self.class || c.polled != self.polled {
            return false;
        }
        self.go_on(rows, &group[s..], &c.polling[s..], opts);
        true
    }

    /// Counts `rest` (the rows from `from` on, `polling` per row of them)
    /// up to a visit timeout before the latest into `at`.
    fn go_on(&mut self, rows: &Rows, rest: &[u32], polling: &[bool], opts: &SummaryOptions) {
        let Some(&last) = rest.last() else {
            return;
        };
        let cut = rows.ts[last as usize].saturating_sub(opts.timeout_us());
        let k = rest.partition_point(|&p| rows.ts[p as usize] < cut);
        let class = self.class;
        self.at
            .go_on(&mut self.cursor, rows, &rest[..k], &polling[..k], class);
        self.from = key(rows, rest[k]);
        self.tail_polling = polling[k..].to_vec();
    }

    /// The tally of every row: `group` is every row of the visitor-day in
    /// time order, those at positions from `new` on left out.
    pub(super) fn whole(&self, rows: &Rows, group: &[u32], new: u32) -> Tally {
        let s = group.partition_point(|&p| key(rows, p) < self.from);
        let tail: Vec<u32> = group[s..].iter().copied().filter(|&p| p < new).collect();
        debug_assert_eq!(tail.len(), self.tail_polling.len());
        let (mut whole, mut cursor) = (self.at.clone(), self.cursor.clone());
        whole.go_on(&mut cursor, rows, &tail, &self.tail_polling, self.class);
        whole.finish(cursor, rows, self.class);
        whole
    }

    /// After reading back: the marks of `at`, which the bytes do not hold.
    pub(super) fn restore_marks(&mut self) {
        self.at.mark_visitors(self.cursor.run);
    }

    /// Whether its positions are rows of a state of `n` rows.
    pub(super) fn fits(&self, n: usize) -> bool {
        self.cursor
            .open
            .as_ref()
            .is_none_or(|v| (v.first as usize) < n && v.landing.is_none_or(|l| (l as usize) < n))
    }
}
