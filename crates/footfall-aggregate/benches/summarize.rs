//! Cost of the aggregate's CPU work for one day of one partition: building the
//! events batch, writing it as Parquet, and computing every summary table.
//! Input: ~200,000 synthetic events (the generator the tests use).

#[path = "../src/testdata.rs"]
mod testdata;

use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use footfall_aggregate::{events_to_batch, summarize, KafkaEvent, SummaryOptions, Warehouse};

fn bench(c: &mut Criterion) {
    let day = NaiveDate::from_ymd_opt(2015, 5, 17).unwrap();
    let events: Vec<KafkaEvent> = testdata::events(1, day, 1, 8_000)
        .into_iter()
        .enumerate()
        .map(|(i, event)| KafkaEvent {
            partition: 0,
            offset: i as i64,
            event,
        })
        .collect();
    let batch = events_to_batch(&events).unwrap();
    let opts = SummaryOptions::default();
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::new(dir.path());
    let path = wh.events_path(day, 0, 0);

    let mut g = c.benchmark_group("aggregate");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("events_to_batch", |b| {
        b.iter(|| events_to_batch(&events).unwrap().num_rows())
    });
    g.bench_function("write_events_parquet", |b| {
        b.iter(|| wh.write_pending(&path, &batch).unwrap().persist().unwrap())
    });
    g.bench_function("summarize_day", |b| {
        b.iter(|| summarize(&batch, day, &opts).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
