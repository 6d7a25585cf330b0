//! Traffic over weeks and months: `traffic_weekly` (ISO weeks, Monday first)
//! and `traffic_monthly`, one file per period
//! (`DIR/traffic_weekly/date=<Monday>/period.parquet`,
//! `DIR/traffic_monthly/date=<first of month>/period.parquet`).
//!
//! A period's rows are computed from the `visits` of its dates, so every run
//! (and erase, and recompute) that rewrites a date's summaries rewrites the
//! periods holding it. Each date's visits are taken from its visitor records
//! ([`records`]) when they are those of its `visits` file, else from the file.
//! One row per (site, audience): a visitor is a distinct `visitor_id` with a
//! visit in the period, and is a bot when any of its visitor-days was.
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
use crate::hash::{id_key, FxHashMap};
use crate::parallel;
use crate::run::{put_file, RunOptions, RunReport};
use crate::schema::{day_number, Cols};
use crate::summaries::Table;
use crate::warehouse::{read_parquet_iter, Covered, LockMode, Warehouse};

mod records;
use records::DateRecords;

/// The `visits` columns a period's rows are computed from.
const VISIT_COLUMNS: &[&str] = &[
    "site",
    "visitor_id",
    "audience",
    "page_views",
    "bounce",
    "visit_start",
    "visit_end",
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

/// Rewrites the period files of every week and month holding one of `dates`,
/// periods side by side on [`RunOptions::threads`].
///
/// A period's visits are read one date and one batch at a time and folded
/// into one small record per (site, visitor) as they are read, so memory
/// grows with the period's distinct visitors, not with its visits.
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
    let periods: Vec<(Period, NaiveDate)> = Period::ALL
        .into_iter()
        .flat_map(|period| {
            let starts: BTreeSet<NaiveDate> = dates.iter().map(|&d| period.start(d)).collect();
            starts.into_iter().map(move |start| (period, start))
        })
        .collect();
    let work = |&(period, start): &(Period, NaiveDate)| {
        let mut part = RunReport::default();
        refresh_one(wh, period, start, opts, &mut part)?;
        Ok::<_, AggregateError>(part)
    };
    for part in parallel::map(&periods, opts.threads.get(), work, |_| {})? {
        report.absorb(part);
    }
    Ok(())
}

/// Keeps a date's visitor records with its `visits` file, just written
/// (`visits`: its rows; `None` when the date has no `visits` file any more).
pub(crate) fn keep_records(
    wh: &Warehouse,
    date: NaiveDate,
    visits: Option<&RecordBatch>,
) -> Result<(), AggregateError> {
    let path = wh.summary_path(Table::Visits, date);
    match visits.filter(|_| path.exists()) {
        Some(b) => {
            let mut v = PeriodVisitors::default();
            v.add(0, b)?;
            v.records().write(wh, date, &Covered::of(&path)?)
        }
        None => DateRecords::remove(wh, date),
    }
}

/// The visitor keys of a date's records, if they are those of its `visits` file.
#[cfg(test)]
pub(crate) fn record_keys(wh: &Warehouse, date: NaiveDate) -> Option<BTreeSet<u128>> {
    let source = Covered::of(&wh.summary_path(Table::Visits, date)).ok()?;
    let records = DateRecords::read(wh, date, &source).unwrap()?;
    Some(records.sites.values().flatten().map(|&(k, _)| k).collect())
}

/// Rewrites the file of the period of `period` that starts on `start`.
fn refresh_one(
    wh: &Warehouse,
    period: Period,
    start: NaiveDate,
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<(), AggregateError> {
    let _lock = match opts.lock == LockMode::Shared && !opts.dry_run {
        true => Some(wh.lock_period(period, start, opts.lock_wait)?),
        false => None,
    };
    let days = period.dates(start);
    let exact = opts.summary.epoch.start(days[0]) == opts.summary.epoch.start(days[days.len() - 1]);
    let mut visitors = PeriodVisitors::default();
    for (n, &date) in days.iter().enumerate() {
        let path = wh.summary_path(Table::Visits, date);
        if !path.exists() {
            continue;
        }
        match DateRecords::read(wh, date, &Covered::of(&path)?)? {
            Some(records) => visitors.add_records(n, &records),
            None => {
                for b in read_parquet_iter(&path, Some(VISIT_COLUMNS), None)? {
                    visitors.add(1 << n, &b?)?;
                }
            }
        }
    }
    let batch = visitors.batch(&days, exact)?;
    if !opts.dry_run {
        put_file(wh, wh.period_path(period, start), &batch, opts, report)?;
    }
    Ok(())
}

/// One (site, visitor)'s visits in a period (or a date), summed as they are read.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Visitor {
    duration_us: i64,
    visits: u32,
    page_views: u32,
    bounces: u32,
    /// Bit `n`: a visit on the period's `n`-th day.
    days: u32,
    /// A bot on any of its visitor-days.
    bot: bool,
}

impl Visitor {
    /// Adds another's visits of the same site and visitor.
    fn merge(&mut self, o: &Visitor) {
        self.duration_us += o.duration_us;
        self.visits += o.visits;
        self.page_views += o.page_views;
        self.bounces += o.bounces;
        self.days |= o.days;
        self.bot |= o.bot;
    }
}

/// The (site, visitor)s of a period: sites interned, visitor ids as 128-bit
/// keys ([`id_key`]).
#[derive(Default)]
struct PeriodVisitors {
    sites: FxHashMap<String, u32>,
    by_key: FxHashMap<(u32, u128), Visitor>,
}

impl PeriodVisitors {
    fn site_code(&mut self, site: &str) -> u32 {
        if let Some(&code) = self.sites.get(site) {
            return code;
        }
        let code = self.sites.len() as u32;
        self.sites.insert(site.to_string(), code);
        code
    }

    /// Adds one batch of visits; `days` is the [`Visitor::days`] of each
    /// (bit `n` for the period's `n`-th day).
    fn add(&mut self, days: u32, b: &RecordBatch) -> Result<(), AggregateError> {
        let c = Cols::new(b);
        let (site, visitor, audience) = (c.str("site")?, c.str("visitor_id")?, c.str("audience")?);
        let (pv, bounce) = (c.i64("page_views")?, c.bool("bounce")?);
        let (start, end) = (c.ts("visit_start")?, c.ts("visit_end")?);
        for i in 0..b.num_rows() {
            let visit = Visitor {
                duration_us: end.value(i) - start.value(i),
                visits: 1,
                page_views: pv.value(i) as u32,
                bounces: bounce.value(i) as u32,
                days,
                bot: audience.value(i) == "bot",
            };
            let key = (self.site_code(site.value(i)), id_key(visitor.value(i)));
            self.by_key.entry(key).or_default().merge(&visit);
        }
        Ok(())
    }

    /// Adds the visitor records of the period's `day`-th day.
    fn add_records(&mut self, day: usize, records: &DateRecords) {
        for (site, visitors) in &records.sites {
            let code = self.site_code(site);
            for (key, v) in visitors {
                let v = Visitor {
                    days: 1 << day,
                    ..*v
                };
                self.by_key.entry((code, *key)).or_default().merge(&v);
            }
        }
    }

    /// The visitor records of one date's visits, this one's visitors.
    fn records(self) -> DateRecords {
        let mut names = vec![String::new(); self.sites.len()];
        for (name, code) in self.sites {
            names[code as usize] = name;
        }
        let mut out = DateRecords::default();
        for ((site, key), v) in self.by_key {
            let site = out.sites.entry(names[site as usize].clone()).or_default();
            site.push((key, v));
        }
        for visitors in out.sites.values_mut() {
            visitors.sort_unstable_by_key(|&(key, _)| key);
        }
        out
    }

    /// One row per (site, audience): a visitor is a bot when any of its
    /// visitor-days was. Every sum is of integers, so the rows do not depend
    /// on the order the visits were read in.
    fn batch(self, days: &[NaiveDate], exact: bool) -> Result<RecordBatch, AggregateError> {
        let mut names = vec![""; self.sites.len()];
        for (name, &code) in &self.sites {
            names[code as usize] = name;
        }
        let mut rows: BTreeMap<(&str, &'static str), Totals> = BTreeMap::new();
        for (&(site, _), v) in &self.by_key {
            let audience = if v.bot { "bot" } else { "human" };
            let t = rows.entry((names[site as usize], audience)).or_default();
            t.visitors += 1;
            t.visits += i64::from(v.visits);
            t.page_views += i64::from(v.page_views);
            t.bounces += i64::from(v.bounces);
            t.duration_us += v.duration_us;
            t.days |= v.days;
        }
        columns(&rows, days, exact)
    }
}

#[derive(Default)]
struct Totals {
    visitors: i64,
    visits: i64,
    page_views: i64,
    bounces: i64,
    duration_us: i64,
    days: u32,
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
        ("days", n(|t| i64::from(t.days.count_ones())), false),
        ("visitors", n(|t| t.visitors), false),
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
                    .map(|t| t.duration_us as f64 / 1e6)
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

    /// Visits rows: (site, visitor, audience, page_views, bounce, seconds).
    fn visits(rows: &[(&'static str, &'static str, &'static str, i64, bool, i64)]) -> RecordBatch {
        use arrow::array::TimestampMicrosecondArray;
        let ts = |f: fn(i64) -> i64| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                rows.iter().map(|r| f(r.5)),
            ))
        };
        let s = |f: usize| -> ArrayRef {
            let pick =
                |r: &(&'static str, &'static str, &'static str, i64, bool, i64)| [r.0, r.1, r.2][f];
            Arc::new(rows.iter().map(|r| Some(pick(r))).collect::<StringArray>())
        };
        RecordBatch::try_from_iter(vec![
            ("site", s(0)),
            ("visitor_id", s(1)),
            ("audience", s(2)),
            (
                "page_views",
                Arc::new(rows.iter().map(|r| Some(r.3)).collect::<Int64Array>()) as ArrayRef,
            ),
            (
                "bounce",
                Arc::new(rows.iter().map(|r| Some(r.4)).collect::<BooleanArray>()) as ArrayRef,
            ),
            ("visit_start", ts(|_| 1_000_000)),
            ("visit_end", ts(|secs| 1_000_000 + secs * 1_000_000)),
        ])
        .unwrap()
    }

    fn fold(days: &[NaiveDate], batches: &[(usize, RecordBatch)]) -> RecordBatch {
        let mut v = PeriodVisitors::default();
        for (day, b) in batches {
            v.add(1 << day, b).unwrap();
        }
        v.batch(days, true).unwrap()
    }

    #[test]
    fn a_period_counts_each_visitor_once_and_as_a_bot_when_any_day_was() {
        let days = Period::Week.dates(NaiveDate::from_ymd_opt(2015, 5, 11).unwrap());
        let a = "0123456789abcdef0123456789abcdef";
        let day0 = visits(&[
            ("s", a, "human", 3, false, 60),
            ("s", "b", "human", 1, true, 0),
            ("t", a, "human", 2, false, 30),
        ]);
        let day3 = visits(&[
            ("s", a, "human", 1, true, 0),
            ("s", "b", "bot", 9, false, 5),
        ]);
        let out = fold(&days, &[(0, day0.clone()), (3, day3.clone())]);
        let c = Cols::new(&out);
        let col = |name: &str| c.i64(name).unwrap().values().to_vec();
        let keys: Vec<(&str, &str)> = (0..out.num_rows())
            .map(|i| {
                (
                    c.str("site").unwrap().value(i),
                    c.str("audience").unwrap().value(i),
                )
            })
            .collect();
        // "b" was a bot on day 3, so its day-0 visit is a bot's too.
        assert_eq!(keys, [("s", "bot"), ("s", "human"), ("t", "human")]);
        assert_eq!(col("visitors"), [1, 1, 1]);
        assert_eq!(col("visits"), [2, 2, 1]);
        assert_eq!(col("page_views"), [10, 4, 2]);
        assert_eq!(col("bounces"), [1, 1, 0]);
        assert_eq!(col("days"), [2, 2, 1]);
        assert_eq!(
            c.f64("visit_duration_s").unwrap().values(),
            &[5.0, 60.0, 30.0]
        );
        // The order the batches are read in changes nothing.
        assert_eq!(fold(&days, &[(3, day3), (0, day0)]), out);
    }

    /// The period files of a warehouse (path → bytes).
    fn period_files(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
        let all = footfall_testkit::snapshot_all(dir);
        let period = |k: &String| Period::ALL.iter().any(|p| k.starts_with(p.name()));
        all.into_iter().filter(|(k, _)| period(k)).collect()
    }

    #[test]
    fn periods_from_visitor_records_equal_periods_from_the_visits_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = NaiveDate::from_ymd_opt(2015, 5, 15).unwrap();
        let mut topic = crate::run::testkit::FakeTopic::default();
        topic.produce(&crate::testdata::events(71, first, 4, 6), 2);
        let opts = RunOptions::new("visits", "g", dir.path());
        let report = topic.run(dir.path(), &opts).unwrap();
        let dates: BTreeSet<NaiveDate> = report.dates_touched.iter().copied().collect();
        let want = period_files(dir.path());
        assert_eq!(want.len(), 3, "two weeks and one month: {:?}", want.keys());
        let wh = Warehouse::new(dir.path());
        let again = |what: &str| {
            refresh(&wh, &dates, &opts, &mut RunReport::default()).unwrap();
            assert_eq!(period_files(dir.path()), want, "{what}");
        };
        // Without records, the visits files give the same periods.
        std::fs::remove_dir_all(dir.path().join(crate::warehouse::VISITORS_DIR)).unwrap();
        again("from the visits files");
        // The records are used while they name the visits file: doubled, they
        // double the period's visits.
        for &date in &dates {
            let path = wh.summary_path(Table::Visits, date);
            let mut v = PeriodVisitors::default();
            for b in crate::warehouse::read_parquet(&path, None).unwrap() {
                v.add(0, &b).unwrap();
                v.add(0, &b).unwrap();
            }
            v.records()
                .write(&wh, date, &Covered::of(&path).unwrap())
                .unwrap();
        }
        refresh(&wh, &dates, &opts, &mut RunReport::default()).unwrap();
        assert_ne!(period_files(dir.path()), want, "doubled records");
        // Once a visits file is written again, its records are not used.
        std::thread::sleep(std::time::Duration::from_millis(20));
        for &date in &dates {
            let path = wh.summary_path(Table::Visits, date);
            std::fs::write(&path, std::fs::read(&path).unwrap()).unwrap();
        }
        again("records of an older visits file");
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
