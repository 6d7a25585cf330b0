use super::*;
use crate::schema::{events_to_batch, KafkaEvent};
use arrow::array::{Array, BooleanArray, Float64Array, Int64Array, RecordBatch};
use chrono::DateTime;
use footfall_event::VisitEvent;
use std::collections::BTreeMap;

/// A page view (or other request) by `visitor` at `ts` (`+02:00` local time).
pub(crate) fn ev(visitor: &str, ts: &str, route: &str, status: u16, pageview: bool) -> VisitEvent {
    VisitEvent {
        v: 1,
        event_id: format!("{visitor}-{ts}-{route}"),
        ts: DateTime::parse_from_rfc3339(&format!("{ts}+02:00")).unwrap(),
        site: "s".into(),
        visitor_id: visitor.into(),
        method: Some("GET".into()),
        path: route.into(),
        route: route.into(),
        status,
        bytes: Some(100),
        referrer_medium: "direct".into(),
        browser: Some("Firefox".into()),
        browser_version: Some("38".into()),
        os: Some("Linux".into()),
        device: "desktop".into(),
        kind: if pageview {
            "page".into()
        } else {
            "asset".into()
        },
        is_pageview: pageview,
        source: "test".into(),
        ..Default::default()
    }
}

pub(crate) fn bot(mut e: VisitEvent) -> VisitEvent {
    e.is_bot = true;
    e.device = "bot".into();
    e.browser = Some("Googlebot".into());
    e.browser_version = Some("2".into());
    e.os = Some("Other".into());
    e.bot_name = Some("Googlebot".into());
    e
}

/// The hand-made day of the module docs' scenario (2015-05-17, partition 0).
pub(crate) fn scenario() -> Vec<KafkaEvent> {
    let mut a1 = ev("A", "2015-05-17T10:00:00", "/", 200, true);
    a1.bytes = Some(1000);
    a1.duration_ms = Some(5.0);
    a1.referrer_medium = "search".into();
    a1.referrer_source = Some("Google".into());
    a1.referrer_host = Some("www.google.com".into());
    a1.search_terms = Some("rust parquet".into());
    let mut a2 = ev("A", "2015-05-17T10:00:01", "/style.css", 200, false);
    a2.duration_ms = Some(60.0);
    let mut a3 = ev("A", "2015-05-17T10:02:00", "/docs", 200, true);
    a3.duration_ms = Some(120.0);
    let a4 = ev("A", "2015-05-17T10:05:00", "/missing", 404, false);
    let a5 = ev("A", "2015-05-17T10:40:00", "/docs", 200, true);
    let b1 = bot(ev("B", "2015-05-17T11:00:00", "/robots.txt", 200, false));
    let b2 = bot(ev("B", "2015-05-17T11:01:00", "/", 200, true));
    let mut c1 = ev("C", "2015-05-17T12:00:00", "/nope", 404, false);
    c1.bytes = None;
    c1.browser = Some("Chrome".into());
    let mut d1 = ev("D", "2015-05-17T13:00:00", "/", 200, true);
    d1.utm_source = Some("news".into());
    d1.utm_campaign = Some("spring".into());
    let mut d2 = ev("D", "2015-05-17T13:05:00", "/search", 200, true);
    d2.site_search = Some("shoes".into());
    let mut d3 = ev("D", "2015-05-17T13:10:00", "/", 200, true);
    d3.utm_source = Some("ads".into());
    d3.utm_campaign = Some("summer".into());
    let e0 = ev("E", "2015-05-16T10:00:00", "/old", 200, true);
    let e1 = ev("E", "2015-05-16T23:50:00", "/", 200, true);
    let e2 = ev("E", "2015-05-17T00:10:00", "/docs", 200, true);
    let e3 = ev("E", "2015-05-17T00:11:00", "/x", 500, false);
    let f0 = ev("F", "2015-05-15T23:59:00", "/", 200, true);
    let events = vec![
        f0, e0, e1, a1, a2, a3, a4, a5, b1, b2, c1, d1, d2, d3, e2, e3,
    ];
    one_partition(events)
}

/// The events as read from partition 0, at offsets 0, 1, 2, … in order.
fn one_partition(events: Vec<VisitEvent>) -> Vec<KafkaEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| KafkaEvent {
            partition: 0,
            offset: i as i64,
            event,
        })
        .collect()
}

pub(crate) fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2015, 5, 17).unwrap()
}

use footfall_testkit::columns::{f64s, i32s, i64s, strs};

/// Row index of the row whose string columns equal the given values (None = null).
fn row(b: &RecordBatch, key: &[(&str, Option<&str>)]) -> usize {
    let cols: Vec<_> = key.iter().map(|(n, _)| strs(b, n)).collect();
    let hits: Vec<usize> = (0..b.num_rows())
        .filter(|&i| {
            key.iter()
                .zip(&cols)
                .all(|((_, v), c)| c[i].as_deref() == *v)
        })
        .collect();
    assert_eq!(hits.len(), 1, "rows matching {key:?}: {hits:?}");
    hits[0]
}

/// `val` summed over the rows grouped by `keys` (any column type, shown as
/// text; nulls as ""): summing out `audience` and `bot_reason` gives the totals.
fn sum_by(b: &RecordBatch, keys: &[&str], val: &str) -> Vec<(Vec<String>, i64)> {
    use arrow::util::display::array_value_to_string;
    let vals = i64s(b, val);
    let mut out: std::collections::BTreeMap<Vec<String>, i64> = Default::default();
    for (i, v) in vals.iter().enumerate() {
        let k = keys
            .iter()
            .map(|n| array_value_to_string(b.column_by_name(n).unwrap(), i).unwrap())
            .collect();
        *out.entry(k).or_default() += v;
    }
    out.into_iter().collect()
}

/// The total of `val` over every row.
fn total(b: &RecordBatch, val: &str) -> i64 {
    i64s(b, val).iter().sum()
}

/// `val` per value of one key column, in key order.
fn per(b: &RecordBatch, key: &str, val: &str) -> Vec<i64> {
    sum_by(b, &[key], val).into_iter().map(|r| r.1).collect()
}

fn run(k: u32) -> Summaries {
    let batch = events_to_batch(&scenario()).unwrap();
    summarize(
        &batch,
        day(),
        &SummaryOptions {
            min_visitors: k,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn traffic_daily_exact() {
    let s = run(3);
    let t = s.get(Table::TrafficDaily);
    // B's bot user agent; C's lone request (no page, no referrer) is assets_only.
    assert_eq!(t.num_rows(), 3, "a human row and two bot rows");
    let get = |n: &str| total(t, n);
    assert_eq!(get("requests"), 13);
    assert_eq!(get("page_views"), 8);
    assert_eq!(get("visits"), 5);
    assert_eq!(
        get("visitors"),
        4,
        "C only had 4xx; E counts (non-4xx on the day)"
    );
    assert_eq!(per(t, "audience", "visitors"), vec![1, 3], "bot, human");
    assert_eq!(per(t, "audience", "requests"), vec![3, 10]);
    let reasons: Vec<(Vec<String>, i64)> = sum_by(t, &["bot_reason"], "requests");
    let named = |r: &str, n: i64| (vec![r.to_string()], n);
    assert_eq!(
        reasons,
        vec![
            named("", 10),
            named("assets_only", 1),
            named("user_agent", 2)
        ]
    );
    assert_eq!(get("bounces"), 3);
    assert_eq!(f64s(t, "visit_duration_s").iter().sum::<f64>(), 480.0);
    assert_eq!(get("bytes"), 2100);
    let status: Vec<i64> = STATUS_COLUMNS.iter().map(|c| get(c)).collect();
    assert_eq!(status, vec![0, 10, 0, 2, 1, 0]);
    let lat: Vec<i64> = LATENCY_COLUMNS.iter().map(|c| get(c)).collect();
    assert_eq!(lat, vec![1, 0, 1, 1, 0, 0, 0, 0, 10]);
}

#[test]
fn traffic_hourly_exact() {
    let s = run(3);
    let t = s.get(Table::TrafficHourly);
    let hours: Vec<String> = sum_by(t, &["hour"], "requests")
        .into_iter()
        .map(|r| r.0[0].clone())
        .collect();
    assert_eq!(hours, ["0", "10", "11", "12", "13"]);
    assert_eq!(per(t, "hour", "requests"), vec![2, 5, 2, 1, 3]);
    assert_eq!(per(t, "hour", "visits"), vec![0, 2, 1, 0, 2]);
    assert_eq!(per(t, "hour", "visitors"), vec![1, 1, 1, 0, 1]);
    assert_eq!(
        sum_by(t, &["audience", "hour"], "visitors")[0],
        (vec!["bot".to_string(), "11".to_string()], 1)
    );
    assert_eq!(total(t, "page_views"), 8);
}

#[test]
fn pages_daily_exact() {
    let s = run(3);
    let p = s.get(Table::PagesDaily);
    let routes: Vec<String> = sum_by(p, &["route"], "views")
        .into_iter()
        .map(|r| r.0[0].clone())
        .collect();
    assert_eq!(routes, ["/", "/docs", "/search"]);
    assert_eq!(per(p, "route", "views"), vec![4, 3, 1]);
    assert_eq!(per(p, "route", "visitors"), vec![3, 2, 1]);
    assert_eq!(per(p, "route", "entries"), vec![4, 1, 0]);
    assert_eq!(per(p, "route", "exits"), vec![2, 2, 1]);
    assert_eq!(per(p, "route", "bounces"), vec![2, 1, 0]);
    let human = row(p, &[("audience", Some("human")), ("route", Some("/"))]);
    assert_eq!(f64s(p, "time_on_page_s")[human], 420.0);
    let bot = row(p, &[("audience", Some("bot")), ("route", Some("/"))]);
    assert_eq!(i64s(p, "views")[bot], 1, "the bot's view of / is a bot row");
}

#[test]
fn transitions_exact() {
    let s = run(3);
    let t = s.get(Table::TransitionsDaily);
    let pairs: Vec<(String, String, i64)> = sum_by(t, &["from_route", "to_route"], "count")
        .into_iter()
        .map(|(k, n)| (k[0].clone(), k[1].clone(), n))
        .collect();
    let expect = [
        ("(entrance)", "/", 4),
        ("(entrance)", "/docs", 1),
        ("/", "(exit)", 2),
        ("/", "/docs", 1),
        ("/", "/search", 1),
        ("/docs", "(exit)", 2),
        ("/search", "(exit)", 1),
    ];
    let expect: Vec<_> = expect
        .iter()
        .map(|(a, b, n)| (a.to_string(), b.to_string(), *n))
        .collect();
    assert_eq!(pairs, expect);
}

#[test]
fn referrers_fold_rare_hosts() {
    let s = run(3);
    let r = s.get(Table::ReferrersDaily);
    assert_eq!(r.num_rows(), 4, "three human rows, one bot row");
    let g = row(
        r,
        &[("medium", Some("search")), ("referrer_host", Some(OTHER))],
    );
    assert_eq!(strs(r, "source")[g].as_deref(), Some("Google"));
    assert_eq!(strs(r, "landing_route")[g].as_deref(), Some("/"));
    assert_eq!(
        (
            i64s(r, "visits")[g],
            i64s(r, "visitors")[g],
            i64s(r, "bounces")[g]
        ),
        (1, 1, 0)
    );
    let keys = ["medium", "landing_route"];
    let direct = |col| {
        sum_by(r, &keys, col)
            .into_iter()
            .find(|(k, _)| k[0] == "direct" && k[1] == "/")
            .unwrap()
            .1
    };
    assert_eq!(
        (direct("visits"), direct("visitors"), direct("bounces")),
        (3, 2, 2)
    );
    assert_eq!(total(r, "visits"), 5, "every visit has a referrer row");
    // With k = 1 the host is shown.
    let s1 = run(1);
    let r1 = s1.get(Table::ReferrersDaily);
    row(
        r1,
        &[
            ("medium", Some("search")),
            ("referrer_host", Some("www.google.com")),
        ],
    );
}

#[test]
fn campaigns_and_search_terms() {
    let s1 = run(1);
    let c = s1.get(Table::CampaignsDaily);
    assert_eq!(
        strs(c, "utm_campaign"),
        vec![Some("summer".into()), Some("spring".into())]
    );
    assert_eq!(i64s(c, "visits"), vec![1, 1]);
    assert_eq!(i64s(c, "page_views"), vec![1, 2]);
    assert_eq!(i64s(c, "bounces"), vec![1, 0]);
    // With k = 3 each value (one visitor each) folds; the rows merge and still add up.
    let s = run(3);
    let c = s.get(Table::CampaignsDaily);
    assert_eq!(strs(c, "utm_source"), vec![Some(OTHER.into())]);
    assert_eq!(strs(c, "utm_campaign"), vec![Some(OTHER.into())]);
    assert_eq!(strs(c, "utm_medium"), vec![None]);
    assert_eq!(
        (
            i64s(c, "visits"),
            i64s(c, "visitors"),
            i64s(c, "page_views"),
            i64s(c, "bounces")
        ),
        (vec![2], vec![1], vec![3], vec![1])
    );
    let t = s.get(Table::SearchTermsDaily);
    assert_eq!(
        strs(t, "kind"),
        vec![Some("on-site".into()), Some("search-engine".into())]
    );
    assert_eq!(
        strs(t, "terms"),
        vec![Some(OTHER.into()), Some(OTHER.into())]
    );
    assert_eq!(i64s(t, "searches"), vec![1, 1]);
    let t1 = s1.get(Table::SearchTermsDaily);
    assert_eq!(
        strs(t1, "terms"),
        vec![Some("shoes".into()), Some("rust parquet".into())]
    );
    assert_eq!(i64s(t1, "visitors"), vec![1, 1]);
}

#[test]
fn clients_status_routes_and_visits() {
    let s = run(3);
    let c = s.get(Table::ClientsDaily);
    let ff = row(c, &[("browser", Some("Firefox"))]);
    assert_eq!((i64s(c, "requests")[ff], i64s(c, "visitors")[ff]), (10, 3));
    let gb = row(c, &[("bot_name", Some("Googlebot"))]);
    assert_eq!((i64s(c, "requests")[gb], i64s(c, "visitors")[gb]), (2, 1));
    let ch = row(c, &[("browser", Some("Chrome"))]);
    assert_eq!((i64s(c, "requests")[ch], i64s(c, "visitors")[ch]), (1, 0));

    let st = s.get(Table::StatusDaily);
    assert_eq!(i64s(st, "requests").iter().sum::<i64>(), 13);
    let x = row(st, &[("route", Some("/x"))]);
    assert_eq!(i32s(st, "status")[x], 500);

    let r = s.get(Table::RoutesHourly);
    assert_eq!(i64s(r, "requests").iter().sum::<i64>(), 13);
    assert_eq!(i64s(r, "status_4xx").iter().sum::<i64>(), 2);
    assert_eq!(i64s(r, "status_5xx").iter().sum::<i64>(), 1);
    assert_eq!(i64s(r, "bytes").iter().sum::<i64>(), 2100);

    let v = s.get(Table::Visits);
    assert_eq!(v.num_rows(), 5);
    assert_eq!(
        strs(v, "visitor_id")
            .into_iter()
            .map(Option::unwrap)
            .collect::<Vec<_>>(),
        vec!["A", "A", "B", "D", "D"]
    );
    assert_eq!(i64s(v, "page_views"), vec![2, 1, 1, 2, 1]);
    assert_eq!(i64s(v, "requests"), vec![3, 1, 2, 2, 1]);
    assert_eq!(f64s(v, "duration_s"), vec![120.0, 0.0, 60.0, 300.0, 0.0]);
    assert_eq!(strs(v, "entry_route")[0].as_deref(), Some("/"));
    assert_eq!(strs(v, "exit_route")[0].as_deref(), Some("/docs"));
    assert_eq!(strs(v, "medium")[0].as_deref(), Some("search"));
    assert_eq!(strs(v, "utm_campaign")[3].as_deref(), Some("spring"));
    let bounce = v
        .column_by_name("bounce")
        .unwrap()
        .as_any()
        .downcast_ref::<BooleanArray>()
        .unwrap();
    assert_eq!(
        bounce.iter().map(Option::unwrap).collect::<Vec<_>>(),
        vec![false, true, true, false, true]
    );
    let start = v.column_by_name("visit_start").unwrap();
    assert_eq!(start.null_count(), 0);
}

#[test]
fn a_longer_timeout_joins_visits() {
    let batch = events_to_batch(&scenario()).unwrap();
    let opts = SummaryOptions {
        visit_timeout: std::time::Duration::from_secs(3600),
        min_visitors: 3,
        ..SummaryOptions::default()
    };
    let s = summarize(&batch, day(), &opts).unwrap();
    // A's two visits merge; D's still split on the campaign change.
    assert_eq!(total(s.get(Table::TrafficDaily), "visits"), 4);
}

/// A table's rows as key (every column that is not a counter, as text) →
/// counters (`Int64` columns, and `Float64` seconds as whole microseconds),
/// summed over the rows of `b` into `into`.
fn add_keyed(b: &RecordBatch, into: &mut BTreeMap<Vec<String>, Vec<i64>>) {
    use arrow::datatypes::DataType;
    use arrow::util::display::array_value_to_string;
    let counter = |i: usize| {
        matches!(
            b.schema().field(i).data_type(),
            DataType::Int64 | DataType::Float64
        )
    };
    for r in 0..b.num_rows() {
        let mut key = Vec::new();
        let mut values = Vec::new();
        for (i, col) in b.columns().iter().enumerate() {
            if !counter(i) {
                // Timestamps as their microseconds (text would need chrono-tz for "UTC").
                let col = match col.data_type() {
                    DataType::Timestamp(..) => arrow::compute::cast(col, &DataType::Int64).unwrap(),
                    _ => col.clone(),
                };
                key.push(array_value_to_string(&col, r).unwrap());
            } else if let Some(f) = col.as_any().downcast_ref::<Float64Array>() {
                values.push((f.value(r) * 1e6).round() as i64);
            } else {
                values.push(col.as_any().downcast_ref::<Int64Array>().unwrap().value(r));
            }
        }
        let sums = into.entry(key).or_insert_with(|| vec![0; values.len()]);
        for (s, v) in sums.iter_mut().zip(values) {
            *s += v;
        }
    }
}

#[test]
fn every_table_is_additive_over_visitors() {
    // With privacy folding off, each summary table of a date is the key-wise
    // sum of the tables of each visitor's events alone (and `visits` their
    // union): every count is a sum over visitor-days, distinct visitors
    // included, which is what per-visitor incremental state relies on.
    let first = NaiveDate::from_ymd_opt(2015, 5, 16).unwrap();
    let all: Vec<KafkaEvent> = crate::testdata::events(11, first, 3, 30)
        .into_iter()
        .enumerate()
        .map(|(i, event)| KafkaEvent {
            partition: crate::testdata::partition_of(&event.visitor_id, 3),
            offset: i as i64,
            event,
        })
        .collect();
    let mut by_visitor: BTreeMap<&str, Vec<KafkaEvent>> = BTreeMap::new();
    for e in &all {
        by_visitor
            .entry(&e.event.visitor_id)
            .or_default()
            .push(e.clone());
    }
    assert!(by_visitor.len() > 100, "{} visitors", by_visitor.len());
    let opts = SummaryOptions {
        min_visitors: 0,
        ..Default::default()
    };
    for date in first.iter_days().take(4) {
        let whole = summarize(&events_to_batch(&all).unwrap(), date, &opts).unwrap();
        let mut parts = vec![BTreeMap::new(); Table::ALL.len()];
        for events in by_visitor.values() {
            let one = summarize(&events_to_batch(events).unwrap(), date, &opts).unwrap();
            for (t, b) in one.iter() {
                add_keyed(b, &mut parts[t as usize]);
            }
        }
        for ((t, b), parts) in whole.iter().zip(parts) {
            let mut got = BTreeMap::new();
            add_keyed(b, &mut got);
            assert_eq!(got, parts, "{t} on {date}");
            if t == Table::Visits {
                assert_eq!(got.len(), b.num_rows(), "every visit row is its own key");
            }
        }
    }
}

#[test]
fn deterministic_regardless_of_input_order() {
    let mut events = scenario();
    let a = summarize(
        &events_to_batch(&events).unwrap(),
        day(),
        &SummaryOptions::default(),
    )
    .unwrap();
    events.reverse();
    let b = summarize(
        &events_to_batch(&events).unwrap(),
        day(),
        &SummaryOptions::default(),
    )
    .unwrap();
    for ((t, x), (_, y)) in a.iter().zip(b.iter()) {
        assert_eq!(x, y, "{t}");
    }
}

#[test]
fn empty_input_gives_empty_tables() {
    let batch = RecordBatch::new_empty(crate::schema::events_schema());
    let s = summarize(&batch, day(), &SummaryOptions::default()).unwrap();
    assert!(s.iter().all(|(_, b)| b.num_rows() == 0));
}

#[test]
fn summaries_read_batch_by_batch_equal_those_of_one_batch() {
    // Rows are decoded one batch at a time (strings interned as they come):
    // how the events are cut and in which order the batches come changes
    // nothing, the previous day's tail included.
    let first = day().pred_opt().unwrap();
    let events: Vec<KafkaEvent> = crate::testdata::events(11, first, 2, 40)
        .into_iter()
        .enumerate()
        .map(|(i, event)| KafkaEvent {
            partition: (i % 3) as i32,
            offset: i as i64,
            event,
        })
        .collect();
    assert!(events.len() > 500, "{}", events.len());
    let opts = SummaryOptions::default();
    let whole = summarize(&events_to_batch(&events).unwrap(), day(), &opts).unwrap();
    for cut in [1, 7, 64] {
        let mut batches: Vec<_> = events
            .chunks(cut)
            .map(|c| Ok(events_to_batch(c).unwrap()))
            .collect();
        batches.reverse();
        let (parts, rows) = summarize_batches(batches, day(), &opts).unwrap();
        let of_day = events.iter().filter(|e| e.event.local_date() == day());
        assert_eq!(rows, of_day.count() as u64);
        for ((t, x), (_, y)) in whole.iter().zip(parts.iter()) {
            assert!(x.num_rows() > 0, "{t} has rows");
            assert_eq!(x, y, "{t}, batches of {cut}");
        }
    }
}

#[test]
fn visits_are_ordered_by_site_start_and_visitor_as_strings() {
    // The batch sorts by the strings' ranks; this checks the strings.
    let date = NaiveDate::from_ymd_opt(2015, 5, 16).unwrap();
    let mut events = crate::testdata::events(12, date, 1, 200);
    // Interned in an order unlike the strings' (codes follow first sight).
    events.reverse();
    let events = one_partition(events);
    let s = summarize(
        &events_to_batch(&events).unwrap(),
        date,
        &SummaryOptions::default(),
    )
    .unwrap();
    let v = s.get(Table::Visits);
    assert!(v.num_rows() > 300, "{} visits", v.num_rows());
    let c = crate::schema::Cols::new(v);
    let (site, visitor, start) = (
        c.str("site").unwrap(),
        c.str("visitor_id").unwrap(),
        c.ts("visit_start").unwrap(),
    );
    let keys: Vec<(&str, i64, &str)> = (0..v.num_rows())
        .map(|i| (site.value(i), start.value(i), visitor.value(i)))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "visits out of order");
    assert!(keys.iter().any(|k| k.0 != keys[0].0), "two sites");
}

#[test]
fn visits_built_side_by_side_are_the_same_batch() {
    let date = NaiveDate::from_ymd_opt(2015, 5, 16).unwrap();
    let events = one_partition(crate::testdata::events(13, date, 1, 200));
    let batch = events_to_batch(&events).unwrap();
    let opts = SummaryOptions::default();
    let rows = rows::Rows::load([Ok(batch)], date, &opts).unwrap();
    let t = count::Tally::count(&rows, &rows.order(), &opts);
    let one = batches::visits(&t.visits, &rows.strings, 1).unwrap();
    assert!(one.num_rows() > 300, "{} visits", one.num_rows());
    for threads in [2, 3, 8] {
        let side_by_side = batches::visits(&t.visits, &rows.strings, threads).unwrap();
        assert_eq!(one, side_by_side, "{threads} threads");
    }
}
