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
use crate::run::{put_file, RunOptions, RunReport};
use crate::schema::{day_number, Cols};
use crate::summaries::Table;
use crate::warehouse::{read_parquet, Warehouse};

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
pub(crate) fn refresh(
    wh: &Warehouse,
    dates: &BTreeSet<NaiveDate>,
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    // Each date's visits are read once, for its week and its month.
    let mut visits: BTreeMap<NaiveDate, Vec<RecordBatch>> = BTreeMap::new();
    for period in Period::ALL {
        let starts: BTreeSet<NaiveDate> = dates.iter().map(|&d| period.start(d)).collect();
        for start in starts {
            let days = period.dates(start);
            let exact =
                opts.summary.epoch.start(days[0]) == opts.summary.epoch.start(days[days.len() - 1]);
            for &date in &days {
                if let std::collections::btree_map::Entry::Vacant(e) = visits.entry(date) {
                    let path = wh.summary_path(Table::Visits, date);
                    e.insert(match path.exists() {
                        true => read_parquet(&path, None)?,
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
    visitors: BTreeSet<String>,
    visits: i64,
    page_views: i64,
    bounces: i64,
    duration_s: f64,
    days: BTreeSet<NaiveDate>,
}

/// The rows of one period from the visits of its `days`.
fn period_batch(
    days: &[NaiveDate],
    visits_of: &BTreeMap<NaiveDate, Vec<RecordBatch>>,
    exact: bool,
) -> Result<RecordBatch, AggregateError> {
    // (site, visitor) -> bot on any day; then totals per (site, audience).
    let mut bot: BTreeMap<(String, String), bool> = BTreeMap::new();
    let mut visits: Vec<(NaiveDate, String, String, i64, bool, f64)> = Vec::new();
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
                let key = (site.value(i).to_string(), visitor.value(i).to_string());
                *bot.entry(key.clone()).or_default() |= audience.value(i) == "bot";
                visits.push((
                    date,
                    key.0,
                    key.1,
                    pv.value(i),
                    bounce.value(i),
                    dur.value(i),
                ));
            }
        }
    }
    let mut rows: BTreeMap<(String, &'static str), Totals> = BTreeMap::new();
    for (date, site, visitor, pv, bounce, dur) in visits {
        let audience = if bot[&(site.clone(), visitor.clone())] {
            "bot"
        } else {
            "human"
        };
        let t = rows.entry((site, audience)).or_default();
        t.visitors.insert(visitor);
        t.visits += 1;
        t.page_views += pv;
        t.bounces += bounce as i64;
        t.duration_s += dur;
        t.days.insert(date);
    }
    columns(&rows, days, exact)
}

fn columns(
    rows: &BTreeMap<(String, &'static str), Totals>,
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
            Arc::new(
                rows.keys()
                    .map(|k| Some(k.0.as_str()))
                    .collect::<StringArray>(),
            ),
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
}
