//! How often a route's polling flag changes as its day arrives in runs.
//!
//! Replays a warehouse's events as RUNS runs would have read them, each run
//! an equal share of every Kafka partition in offset order (as runs of
//! `--max-events` take them), however the warehouse was built. Every (site,
//! visitor, date, route) is replayed run by run with the bot rules' own
//! polling test ([`BotRules::is_polling`], default thresholds), and a *flip*
//! is a change of its flag after a run that added requests to it. A flip
//! re-labels the route's earlier requests (polling requests are not page
//! views), so state kept for a visitor-day instead of its rows could not
//! absorb it: the visitor-day would go back to a recompute from its events.
//! Flips are also counted for visitor-days with at least HEAVY requests at
//! that run, the ones such state would keep.
//!
//! ```sh
//! cargo run --release -p footfall-aggregate --example polling_flips -- WAREHOUSE [RUNS] [HEAVY]
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::error::Error;
use std::path::Path;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use chrono::NaiveDate;
use footfall_aggregate::{read_parquet, BotRules, EventFile, Warehouse};

/// A visitor-day: (site, visitor, date).
type Day = (String, String, NaiveDate);
/// The requests of one route of one visitor-day: (run, time in microseconds).
type Requests = Vec<(usize, i64)>;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        return Err("usage: polling_flips WAREHOUSE [RUNS] [HEAVY]".into());
    };
    let runs: usize = args.get(2).map_or(Ok(96), |s| s.parse())?;
    let heavy: u64 = args.get(3).map_or(Ok(100), |s| s.parse())?;
    let wh = Warehouse::open(Path::new(dir), None)?;
    let events = read_events(&wh.event_files()?)?;
    let (routes, per_run) = by_route(&events, runs);
    let rules = BotRules::default();
    let (mut flips, mut heavy_flips, mut heavy_days) = (0u64, 0u64, BTreeSet::new());
    let mut polling_at_the_end = 0;
    for ((day, _route), requests) in &routes {
        let requests_so_far = cumulative(&per_run[day], runs);
        let changes = flip_runs(&rules, requests);
        polling_at_the_end += changes.len() % 2;
        for run in changes {
            flips += 1;
            if requests_so_far[run] >= heavy {
                heavy_flips += 1;
                heavy_days.insert(day.clone());
            }
        }
    }
    println!(
        "{} events in {runs} runs; visitor-days: {}; routes of visitor-days: {}, of which polling \
         after the last run: {polling_at_the_end}",
        events.len(),
        per_run.len(),
        routes.len()
    );
    println!(
        "polling flag changes between consecutive runs: {flips}; of visitor-days with at least \
         {heavy} requests then: {heavy_flips} ({} distinct)",
        heavy_days.len()
    );
    Ok(())
}

/// The runs after which the route's polling flag differs from the run before.
fn flip_runs(rules: &BotRules, requests: &Requests) -> Vec<usize> {
    let mut sorted = requests.clone();
    sorted.sort_unstable();
    let mut times: Vec<i64> = Vec::with_capacity(sorted.len());
    let (mut polling, mut out, mut i) = (false, Vec::new(), 0);
    while i < sorted.len() {
        let run = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == run {
            times.push(sorted[i].1);
            i += 1;
        }
        times.sort_unstable();
        let now = rules.is_polling(&times);
        if now != polling {
            out.push(run);
            polling = now;
        }
    }
    out
}

/// Requests so far after each run, from the requests of each run.
fn cumulative(per_run: &[u64], runs: usize) -> Vec<u64> {
    let mut total = 0;
    (0..runs)
        .map(|r| {
            total += per_run.get(r).copied().unwrap_or(0);
            total
        })
        .collect()
}

/// One event as the replay needs it.
struct Event {
    day: Day,
    route: String,
    ts: i64,
    partition: i32,
    offset: i64,
}

/// Every request of the warehouse by (visitor-day, route), with the run that
/// reads it; and each visitor-day's requests per run.
#[allow(clippy::type_complexity)]
fn by_route(
    events: &[Event],
    runs: usize,
) -> (HashMap<(Day, String), Requests>, HashMap<Day, Vec<u64>>) {
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for e in events {
        offsets.entry(e.partition).or_default().push(e.offset);
    }
    offsets.values_mut().for_each(|o| o.sort_unstable());
    let (mut routes, mut per_run) = (HashMap::new(), HashMap::new());
    for e in events {
        let of = &offsets[&e.partition];
        let rank = of.binary_search(&e.offset).expect("listed above");
        let run = rank * runs / of.len();
        let counts: &mut Vec<u64> = per_run.entry(e.day.clone()).or_default();
        if counts.len() <= run {
            counts.resize(run + 1, 0);
        }
        counts[run] += 1;
        routes
            .entry((e.day.clone(), e.route.clone()))
            .or_insert_with(Vec::new)
            .push((run, e.ts));
    }
    (routes, per_run)
}

fn read_events(files: &[EventFile]) -> Result<Vec<Event>, Box<dyn Error>> {
    let columns = [
        "site",
        "visitor_id",
        "route",
        "ts",
        "kafka_partition",
        "kafka_offset",
    ];
    let mut events = Vec::new();
    for f in files {
        for b in read_parquet(&f.path, Some(&columns))? {
            add_batch(&b, f.date, &mut events);
        }
    }
    Ok(events)
}

fn add_batch(b: &RecordBatch, date: NaiveDate, events: &mut Vec<Event>) {
    let col = |name: &str| {
        b.column(b.schema().index_of(name).expect("projected"))
            .clone()
    };
    let (site, visitor, route, ts, partition, offset) = (
        col("site"),
        col("visitor_id"),
        col("route"),
        col("ts"),
        col("kafka_partition"),
        col("kafka_offset"),
    );
    let (site, visitor, route) = (
        site.as_string::<i32>(),
        visitor.as_string::<i32>(),
        route.as_string::<i32>(),
    );
    let ts = ts.as_primitive::<TimestampMicrosecondType>();
    let partition = partition.as_primitive::<Int32Type>();
    let offset = offset.as_primitive::<Int64Type>();
    for i in 0..b.num_rows() {
        events.push(Event {
            day: (site.value(i).into(), visitor.value(i).into(), date),
            route: route.value(i).into(),
            ts: ts.value(i),
            partition: partition.value(i),
            offset: offset.value(i),
        });
    }
}
