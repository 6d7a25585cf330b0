//! Traffic over weeks and months: `traffic_weekly` (ISO weeks, Monday first)
//! and `traffic_monthly`, one file per period
//! (`DIR/traffic_weekly/date=<Monday>/period.parquet`,
//! `DIR/traffic_monthly/date=<first of month>/period.parquet`).
//!
//! A period's rows are computed from the `visits` files of its dates, so every
//! run (and erase, and recompute) that rewrites a date's summaries rewrites
//! the periods holding it. One row per (site, audience): a visitor is a
//! distinct `visitor_id` with a visit in the period, and is a bot when any of
//! its visitor-days was.
//!
//! **Exact or an upper bound.** Visitor ids last one pseudonym epoch
//! ([`SummaryOptions::epoch`], the keyring's `epoch`). When the whole period
//! lies inside one epoch (weeks with `epoch = "week"`, months with `"month"`)
//! a person keeps one id all period and `visitors` is exact, with
//! `visitors_exact = true`. Otherwise the same person counts once per epoch
//! and `visitors` is an upper bound, marked `visitors_exact = false`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use chrono::{Days, NaiveDate};
use footfall_keys::Epoch;

use crate::error::AggregateError;
use crate::hash::{FxHashMap, FxHashSet};
use crate::run::{put_file, RunOptions, RunReport};
use crate::schema::{day_number, Cols};
use crate::summaries::Table;
use crate::warehouse::{read_parquet, LockMode, Warehouse};

/// The `visits` columns a period's rows are computed from.
const VISIT_COLUMNS: &[&str] = &[
    "site",
    "visitor_id",
    "audience",
    "page_views",
    "bounce",
    "duration_s",
];

/// A period table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Period {
    /// ISO weeks, Monday to Sunday.
    Week,
    /// Calendar months.
    Month,
}

impl Period {
    /// Both period tables.
    pub const ALL: [Period; 2] = [Period::Week, Period::Month];

    /// The table's directory name under the warehouse root.
    pub fn name(self) -> &'static str {
        match self {
            Period::Week => "traffic_weekly",
            Period::Month => "traffic_monthly",
        }
    }

    /// First day of the period holding `date`.
    pub fn start(self, date: NaiveDate) -> NaiveDate {
        match self {
            Period::Week => Epoch::Week.start(date),
            Period::Month => Epoch::Month.start(date),
        }
    }

    /// Every date of the period starting on `start`.
    fn dates(self, start: NaiveDate) -> Vec<NaiveDate> {
        let mut out = vec![start];
        let mut d = start;
        while let Some(next) = d.checked_add_days(Days::new(1)) {
            if self.start(next) != start {
                break;
            }
            out.push(next);
            d = next;
        }
        out
    }
}

/// Rewrites the period files of every week and month holding one of `dates`.
///
/// A shared run holds each period's lock from reading its visits to
/// publishing its file, so that two runs refreshing one week cannot publish a
/// file computed before the other's visits (each run refreshes after writing
/// its own dates' visits, so the last to refresh sees both).
pub(crate) fn refresh(
    wh: &Warehouse,
    dates: &BTreeSet<NaiveDate>,
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    let shared = opts.lock == LockMode::Shared && !opts.dry_run;
    // Each date's visits are read once, for its week and its month (a shared
    // run reads them again under each period's lock).
    let mut visits: BTreeMap<NaiveDate, Vec<RecordBatch>> = BTreeMap::new();
    for period in Period::ALL {
        let starts: BTreeSet<NaiveDate> = dates.iter().map(|&d| period.start(d)).collect();
        for start in starts {
            let _lock = match shared {
                true => {
                    visits.clear();
                    Some(wh.lock_period(period, start, opts.lock_wait)?)
                }
                false => None,
            };
            let days = period.dates(start);
            let exact =
                opts.summary.epoch.start(days[0]) == opts.summary.epoch.start(days[days.len() - 1]);
            for &date in &days {
                if let std::collections::btree_map::Entry::Vacant(e) = visits.entry(date) {
                    let path = wh.summary_path(Table::Visits, date);
                    e.insert(match path.exists() {
                        true => read_parquet(&path, Some(VISIT_COLUMNS))?,
                        false => Vec::new(),
                    });
                }
            }
            let batch = period_batch(&days, &visits, exact)?;
            if !opts.dry_run {
                put_file(wh, wh.period_path(period, start), &batch, opts, report)?;
            }
        }
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    visitors: FxHashSet<u32>,
    visits: i64,
    page_views: i64,
    bounces: i64,
    duration_s: f64,
    days: BTreeSet<NaiveDate>,
}

/// One row of `visits`, its visitor interned.
struct Visit<'a> {
    date: NaiveDate,
    site: &'a str,
    visitor: u32,
    page_views: i64,
    bounce: bool,
    duration_s: f64,
}

/// The rows of one period from the visits of its `days`.
fn period_batch(
    days: &[NaiveDate],
    visits_of: &BTreeMap<NaiveDate, Vec<RecordBatch>>,
    exact: bool,
) -> Result<RecordBatch, AggregateError> {
    // (site, visitor) -> a code, and per code: bot on any day.
    let mut codes: FxHashMap<(&str, &str), u32> = FxHashMap::default();
    let mut bot: Vec<bool> = Vec::new();
    let mut visits: Vec<Visit> = Vec::new();
    for &date in days {
        for b in &visits_of[&date] {
            let c = Cols::new(b);
            let (site, visitor, audience) =
                (c.str("site")?, c.str("visitor_id")?, c.str("audience")?);
            let (pv, bounce, dur) = (
                c.i64("page_views")?,
                c.bool("bounce")?,
                c.f64("duration_s")?,
            );
            for i in 0..b.num_rows() {
                let next = bot.len() as u32;
                let code = *codes
                    .entry((site.value(i), visitor.value(i)))
                    .or_insert(next);
                if code == next {
                    bot.push(false);
                }
                bot[code as usize] |= audience.value(i) == "bot";
                visits.push(Visit {
                    date,
                    site: site.value(i),
                    visitor: code,
                    page_views: pv.value(i),
                    bounce: bounce.value(i),
                    duration_s: dur.value(i),
                });
            }
        }
    }
    // Summed in the order of the visits, so that the float sums are reproducible.
    let mut rows: BTreeMap<(&str, &'static str), Totals> = BTreeMap::new();
    for v in visits {
        let audience = if bot[v.visitor as usize] {
            "bot"
        } else {
            "human"
        };
        let t = rows.entry((v.site, audience)).or_default();
        t.visitors.insert(v.visitor);
        t.visits += 1;
        t.page_views += v.page_views;
        t.bounces += v.bounce as i64;
        t.duration_s += v.duration_s;
        t.days.insert(v.date);
    }
    columns(&rows, days, exact)
}

fn columns(
    rows: &BTreeMap<(&str, &'static str), Totals>,
    days: &[NaiveDate],
    exact: bool,
) -> Result<RecordBatch, AggregateError> {
    let n = |f: fn(&Totals) -> i64| -> ArrayRef {
        Arc::new(rows.values().map(f).collect::<Int64Array>())
    };
    let day = |d: NaiveDate| day_number(d) as i32;
    let (first, last) = (day(days[0]), day(days[days.len() - 1]));
    let cols: Vec<(&str, ArrayRef, bool)> = vec![
        (
            "site",
            Arc::new(rows.keys().map(|k| Some(k.0)).collect::<StringArray>()),
            false,
        ),
        (
            "audience",
            Arc::new(rows.keys().map(|k| Some(k.1)).collect::<StringArray>()),
            false,
        ),
        (
            "period_start",
            Arc::new(Date32Array::from(vec![first; rows.len()])),
            false,
        ),
        (
            "period_end",
            Arc::new(Date32Array::from(vec![last; rows.len()])),
            false,
        ),
        ("days", n(|t| t.days.len() as i64), false),
        ("visitors", n(|t| t.visitors.len() as i64), false),
        (
            "visitors_exact",
            Arc::new(BooleanArray::from(vec![exact; rows.len()])),
            false,
        ),
        ("visits", n(|t| t.visits), false),
        ("page_views", n(|t| t.page_views), false),
        ("bounces", n(|t| t.bounces), false),
        (
            "visit_duration_s",
            Arc::new(
                rows.values()
                    .map(|t| t.duration_s)
                    .collect::<Float64Array>(),
            ),
            false,
        ),
    ];
    Ok(RecordBatch::try_from_iter_with_nullable(cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_hold_their_dates() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(Period::Week.start(d("2015-05-17")), d("2015-05-11"));
        assert_eq!(Period::Week.dates(d("2015-05-11")).len(), 7);
        assert_eq!(Period::Month.start(d("2015-05-17")), d("2015-05-01"));
        assert_eq!(Period::Month.dates(d("2015-02-01")).len(), 28);
        assert_eq!(
            Period::Month.dates(d("2015-05-01")).last(),
            Some(&d("2015-05-31"))
        );
    }

    #[test]
    fn a_shared_refresh_holds_the_period_lock() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::new(dir.path());
        let date = NaiveDate::from_ymd_opt(2015, 5, 17).unwrap();
        let dates = BTreeSet::from([date]);
        let mut opts = RunOptions::new("t", "g", dir.path());
        opts.lock_wait = std::time::Duration::from_millis(50);
        let held = wh
            .lock_period(Period::Week, Period::Week.start(date), opts.lock_wait)
            .unwrap();
        let mut report = RunReport::default();
        // An exclusive run is alone in the warehouse: it takes no period lock.
        refresh(&wh, &dates, &opts, &mut report).unwrap();
        opts.lock = LockMode::Shared;
        let err = refresh(&wh, &dates, &opts, &mut report).unwrap_err();
        assert!(
            matches!(err, AggregateError::Locked { .. }),
            "a shared refresh waits for the week's lock: {err}"
        );
        drop(held);
        refresh(&wh, &dates, &opts, &mut report).unwrap();
    }
}
