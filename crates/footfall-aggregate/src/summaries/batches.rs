//! Arrow batches of the summary tables: rows sorted by their key columns,
//! every table led by `site`, `audience` and `bot_reason`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};

use super::count::{Client, Head, Page, Route, SiteClass, Traffic, Visit};
use super::fold::{Searches, VisitCounts};
use super::rows::Interner;
use super::{LATENCY_COLUMNS, STATUS_COLUMNS};
use crate::bots;
use crate::error::AggregateError;

pub(super) fn strs<'a>(it: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(it.collect::<StringArray>())
}
pub(super) fn i64s(it: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(it))
}
fn i32s(it: impl Iterator<Item = i32>) -> ArrayRef {
    Arc::new(Int32Array::from_iter_values(it))
}
pub(super) fn f64s(it: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(it))
}
fn bools(it: impl Iterator<Item = bool>) -> ArrayRef {
    Arc::new(it.map(Some).collect::<BooleanArray>())
}
fn timestamps(it: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(it).with_timezone("UTC"))
}
pub(super) fn seconds(us: i64) -> f64 {
    us as f64 / 1e6
}

pub(super) type Columns = Vec<(&'static str, ArrayRef, bool)>;

pub(super) fn batch(columns: Columns) -> Result<RecordBatch, AggregateError> {
    Ok(RecordBatch::try_from_iter_with_nullable(columns)?)
}

/// A row key with its site decoded: (site, class, rest).
type Keyed<'a, R, V> = ((Option<&'a str>, u8, R), V);

/// Decodes the site of every key and sorts the rows by (site, class, rest).
fn sorted<'a, R: Ord, V>(
    rows: impl IntoIterator<Item = (SiteClass, R, V)>,
    s: &'a Interner,
) -> Vec<Keyed<'a, R, V>> {
    let mut out: Vec<_> = rows
        .into_iter()
        .map(|((site, class), rest, v)| ((s.get(site), class, rest), v))
        .collect();
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The leading `site`, `audience`, `bot_reason` columns.
fn lead<R, V>(rows: &[Keyed<'_, R, V>]) -> Columns {
    vec![
        ("site", strs(rows.iter().map(|r| r.0 .0)), false),
        (
            "audience",
            strs(rows.iter().map(|r| Some(bots::audience(r.0 .1)))),
            false,
        ),
        (
            "bot_reason",
            strs(rows.iter().map(|r| bots::reason(r.0 .1))),
            true,
        ),
    ]
}

pub(super) fn traffic<'t>(
    rows: impl IntoIterator<Item = (SiteClass, u8, &'t Traffic)>,
    s: &Interner,
    hourly: bool,
) -> Result<RecordBatch, AggregateError> {
    let rows = sorted(rows, s);
    let mut cols = lead(&rows);
    if hourly {
        cols.push(("hour", i32s(rows.iter().map(|r| r.0 .2 as i32)), false));
    }
    let t = |f: fn(&Traffic) -> i64| i64s(rows.iter().map(move |r| f(r.1)));
    cols.extend([
        ("requests", t(|t| t.requests), false),
        ("page_views", t(|t| t.page_views), false),
        ("visits", t(|t| t.visits), false),
        ("visitors", t(|t| t.visitors), false),
        ("bounces", t(|t| t.bounces), false),
        (
            "visit_duration_s",
            f64s(rows.iter().map(|r| seconds(r.1.visit_duration_us))),
            false,
        ),
        ("bytes", t(|t| t.bytes), false),
    ]);
    for (j, name) in STATUS_COLUMNS.iter().enumerate() {
        cols.push((name, i64s(rows.iter().map(|r| r.1.status[j])), false));
    }
    for (j, name) in LATENCY_COLUMNS.iter().enumerate() {
        cols.push((name, i64s(rows.iter().map(|r| r.1.latency[j])), false));
    }
    batch(cols)
}

pub(super) fn pages<'a>(
    rows: impl IntoIterator<Item = (SiteClass, Option<&'a str>, &'a Page)>,
    s: &'a Interner,
) -> Result<RecordBatch, AggregateError> {
    let rows = sorted(rows, s);
    let p = |f: fn(&Page) -> i64| i64s(rows.iter().map(move |r| f(r.1)));
    let mut cols = lead(&rows);
    cols.extend([
        ("route", strs(rows.iter().map(|r| r.0 .2)), false),
        ("views", p(|p| p.views), false),
        ("visitors", p(|p| p.visitors), false),
        ("entries", p(|p| p.entries), false),
        ("exits", p(|p| p.exits), false),
        ("bounces", p(|p| p.bounces), false),
        (
            "time_on_page_s",
            f64s(rows.iter().map(|r| seconds(r.1.time_us))),
            false,
        ),
    ]);
    batch(cols)
}

pub(super) fn clients<'a>(
    rows: impl IntoIterator<Item = (SiteClass, [Option<&'a str>; 5], &'a Client)>,
    s: &'a Interner,
) -> Result<RecordBatch, AggregateError> {
    let rows = sorted(rows, s);
    let c = |f: fn(&Client) -> i64| i64s(rows.iter().map(move |r| f(r.1)));
    let k = |j: usize| strs(rows.iter().map(move |r| r.0 .2[j]));
    let mut cols = lead(&rows);
    cols.extend([
        ("browser", k(0), true),
        ("browser_version", k(1), true),
        ("os", k(2), true),
        ("device", k(3), false),
        ("bot_name", k(4), true),
        ("requests", c(|c| c.requests), false),
        ("page_views", c(|c| c.page_views), false),
        ("visitors", c(|c| c.visitors), false),
    ]);
    batch(cols)
}

pub(super) fn status<'a>(
    rows: impl IntoIterator<Item = (SiteClass, (u16, Option<&'a str>), i64)>,
    s: &'a Interner,
) -> Result<RecordBatch, AggregateError> {
    let rows = sorted(rows, s);
    let mut cols = lead(&rows);
    cols.extend([
        ("status", i32s(rows.iter().map(|r| r.0 .2 .0 as i32)), false),
        ("route", strs(rows.iter().map(|r| r.0 .2 .1)), false),
        ("requests", i64s(rows.iter().map(|r| r.1)), false),
    ]);
    batch(cols)
}

pub(super) fn search<'a>(
    rows: impl IntoIterator<Item = (SiteClass, [Option<&'a str>; 2], Searches)>,
    s: &'a Interner,
) -> Result<RecordBatch, AggregateError> {
    let rows = sorted(rows, s);
    let mut cols = lead(&rows);
    cols.extend([
        ("kind", strs(rows.iter().map(|r| r.0 .2[0])), false),
        ("terms", strs(rows.iter().map(|r| r.0 .2[1])), false),
        ("searches", i64s(rows.iter().map(|r| r.1.searches)), false),
        ("visitors", i64s(rows.iter().map(|r| r.1.visitors)), false),
    ]);
    batch(cols)
}

fn visit_counts<R>(cols: &mut Columns, rows: &[Keyed<'_, R, VisitCounts>], page_views: bool) {
    cols.push(("visits", i64s(rows.iter().map(|r| r.1.visits)), false));
    cols.push(("visitors", i64s(rows.iter().map(|r| r.1.visitors)), false));
    if page_views {
        cols.push((
            "page_views",
            i64s(rows.iter().map(|r| r.1.page_views)),
            false,
        ));
    }
    cols.push(("bounces", i64s(rows.iter().map(|r| r.1.bounces)), false));
}

pub(super) fn referrers<'a>(
    rows: impl IntoIterator<Item = (SiteClass, [Option<&'a str>; 4], VisitCounts)>,
    s: &'a Interner,
) -> Result<RecordBatch, AggregateError> {
    let rows = sorted(rows, s);
    let k = |j: usize| strs(rows.iter().map(move |r| r.0 .2[j]));
    let mut cols = lead(&rows);
    cols.extend([
        ("medium", k(0), false),
        ("source", k(1), true),
        ("referrer_host", k(2), true),
        ("landing_route", k(3), true),
    ]);
    visit_counts(&mut cols, &rows, false);
    batch(cols)
}

pub(super) fn campaigns<'a>(
    rows: impl IntoIterator<Item = (SiteClass, [Option<&'a str>; 5], VisitCounts)>,
    s: &'a Interner,
) -> Result<RecordBatch, AggregateError> {
    let rows = sorted(rows, s);
    let mut cols = lead(&rows);
    let names = [
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
    ];
    for (j, name) in names.into_iter().enumerate() {
        cols.push((name, strs(rows.iter().map(|r| r.0 .2[j])), true));
    }
    visit_counts(&mut cols, &rows, true);
    batch(cols)
}

pub(super) fn transitions<'a>(
    rows: impl IntoIterator<Item = (SiteClass, [Option<&'a str>; 2], i64)>,
    s: &'a Interner,
) -> Result<RecordBatch, AggregateError> {
    let rows = sorted(rows, s);
    let mut cols = lead(&rows);
    cols.extend([
        ("from_route", strs(rows.iter().map(|r| r.0 .2[0])), false),
        ("to_route", strs(rows.iter().map(|r| r.0 .2[1])), false),
        ("count", i64s(rows.iter().map(|r| r.1)), false),
    ]);
    batch(cols)
}

pub(super) fn routes<'a>(
    rows: impl IntoIterator<Item = (SiteClass, (u8, [Option<&'a str>; 4]), &'a Route)>,
    s: &'a Interner,
) -> Result<RecordBatch, AggregateError> {
    let rows = sorted(rows, s);
    let k = |j: usize| strs(rows.iter().map(move |r| r.0 .2 .1[j]));
    let r = |f: fn(&Route) -> i64| i64s(rows.iter().map(move |r| f(r.1)));
    let mut cols = lead(&rows);
    cols.extend([
        ("hour", i32s(rows.iter().map(|r| r.0 .2 .0 as i32)), false),
        ("host", k(0), true),
        ("method", k(1), true),
        ("route", k(2), false),
        ("upstream", k(3), true),
        ("requests", r(|r| r.requests), false),
        ("status_4xx", r(|r| r.status_4xx), false),
        ("status_5xx", r(|r| r.status_5xx), false),
        ("bytes", r(|r| r.bytes), false),
    ]);
    for (j, name) in LATENCY_COLUMNS.iter().enumerate() {
        cols.push((name, i64s(rows.iter().map(|r| r.1.latency[j])), false));
    }
    batch(cols)
}

/// The visits in their table's order: (site, start, visitor, first
/// message), the strings compared by their ranks.
fn visits_in_order<'a>(visits: &'a [Visit], strings: &Interner) -> Vec<&'a Visit> {
    let rank = strings.ranks(visits.iter().flat_map(|v| [v.head.site, v.head.visitor]));
    let mut keyed: Vec<_> = visits
        .iter()
        .map(|v| {
            let h = &v.head;
            let key = (rank[h.site as usize], v.start_us);
            (key, rank[h.visitor as usize], h.message, v)
        })
        .collect();
    keyed.sort_unstable_by_key(|&(key, visitor, message, _)| (key, visitor, message));
    keyed.into_iter().map(|k| k.3).collect()
}

/// One column of the `visits` table from the visits in order.
type VisitColumn = fn(&[&Visit], &Interner) -> ArrayRef;

fn head(order: &[&Visit], s: &Interner, f: fn(&Head) -> u32) -> ArrayRef {
    strs(order.iter().map(|v| s.get(f(&v.head))))
}

fn visit_i64s(order: &[&Visit], f: fn(&Visit) -> i64) -> ArrayRef {
    i64s(order.iter().map(|v| f(v)))
}

/// The columns of the `visits` table: name, nullable, how it is built.
const VISIT_COLUMNS: [(&str, bool, VisitColumn); 20] = [
    ("site", false, |o, s| head(o, s, |h| h.site)),
    ("visitor_id", false, |o, s| head(o, s, |h| h.visitor)),
    ("audience", false, |o, _| {
        strs(o.iter().map(|v| Some(bots::audience(v.head.class))))
    }),
    ("bot_reason", true, |o, _| {
        strs(o.iter().map(|v| bots::reason(v.head.class)))
    }),
    ("visit_start", false, |o, _| {
        timestamps(o.iter().map(|v| v.start_us))
    }),
    ("visit_end", false, |o, _| {
        timestamps(o.iter().map(|v| v.end_us))
    }),
    ("entry_route", true, |o, s| {
        strs(o.iter().map(|v| s.get(v.entry)))
    }),
    ("exit_route", true, |o, s| {
        strs(o.iter().map(|v| s.get(v.exit)))
    }),
    ("page_views", false, |o, _| visit_i64s(o, |v| v.page_views)),
    ("requests", false, |o, _| visit_i64s(o, |v| v.requests)),
    ("duration_s", false, |o, _| {
        f64s(o.iter().map(|v| seconds(v.end_us - v.start_us)))
    }),
    ("bounce", false, |o, _| bools(o.iter().map(|v| v.bounce()))),
    ("medium", false, |o, s| head(o, s, |h| h.medium)),
    ("source", true, |o, s| head(o, s, |h| h.source)),
    ("utm_source", true, |o, s| head(o, s, |h| h.utm[0])),
    ("utm_campaign", true, |o, s| head(o, s, |h| h.utm[2])),
    ("device", false, |o, s| head(o, s, |h| h.device)),
    ("browser", true, |o, s| head(o, s, |h| h.browser)),
    ("os", true, |o, s| head(o, s, |h| h.os)),
    ("is_bot", false, |o, _| {
        bools(o.iter().map(|v| v.head.class != bots::HUMAN))
    }),
];

/// The `visits` table: one row per visit. With `threads` > 1 its columns
/// are built side by side (the same columns).
pub(super) fn visits(
    visits: &[Visit],
    strings: &Interner,
    threads: usize,
) -> Result<RecordBatch, AggregateError> {
    let order = visits_in_order(visits, strings);
    let built = crate::parallel::map(
        &VISIT_COLUMNS,
        threads,
        |&(_, _, build)| Ok::<_, AggregateError>(build(&order, strings)),
        |_| {},
    )?;
    let names = VISIT_COLUMNS
        .iter()
        .map(|&(name, nullable, _)| (name, nullable));
    batch(
        names
            .zip(built)
            .map(|((name, nullable), col)| (name, col, nullable))
            .collect(),
    )
}
