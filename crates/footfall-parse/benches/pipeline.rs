//! Full pipeline cost per line: parse, enrich, pseudonymise, serialise to JSON.
//! Inputs: the elastic Apache log shipped in tests/data (10,000 real lines),
//! and the thedash nginx JSON log in tests/data/formats (request targets that
//! never repeat).

use std::io::Read;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use footfall_parse::{
    FormatState, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables, Worker,
};

/// What a JSON benchmark does with one line: (worker, state, offset, line, output).
type PerLine<'a> = dyn Fn(&mut Worker, &mut FormatState, u64, &[u8], &mut Vec<u8>) + 'a;

fn lines() -> Vec<Vec<u8>> {
    read_lines("elastic-apache-logs/apache_logs.gz")
}

/// The non-empty lines of a gzipped log under tests/data.
fn read_lines(rel: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/../../tests/data/{rel}", env!("CARGO_MANIFEST_DIR"));
    let mut data = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut data)
        .unwrap();
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.to_vec())
        .collect()
}

fn bench(c: &mut Criterion) {
    let lines = lines();
    let tables = Tables::embedded();
    let keys = Arc::new(SecretKeys::from_secret(b"benchmark secret, not for production").unwrap());
    let cfg = ParseConfig {
        format: "combined".into(),
        ..Default::default()
    };
    let p = Arc::new(Pipeline::new(&cfg, &tables, keys).unwrap());
    let src = SourceRef::from_first_line("bench", &lines[0]);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(lines.len() as u64));
    // Every line through `each(worker, state, offset, line, out)`, from a fresh format state.
    let json_bench = |b: &mut criterion::Bencher<'_>, each: &PerLine<'_>| {
        let mut w = p.worker();
        let mut out = Vec::with_capacity(8 << 20);
        b.iter(|| {
            out.clear();
            let mut state = FormatState::default();
            let mut off = 0u64;
            for l in &lines {
                each(&mut w, &mut state, off, l, &mut out);
                off += l.len() as u64 + 1;
            }
            out.len()
        })
    };
    g.bench_function("combined_enrich_json_10k", |b| {
        json_bench(b, &|w, state, off, l, out| {
            if let Outcome::Event(e) = w.process(&src, state, off, l) {
                e.write_json_line(out);
            }
        })
    });
    // What `footfall parse` and `footfall ingest` run: the borrowed event written straight to JSON.
    g.bench_function("combined_enrich_json_fast_10k", |b| {
        json_bench(b, &|w, state, off, l, out| {
            let _ = w.process_with(&src, state, off, l, |ev| ev.write_json_line(out));
        })
    });
    let events: Vec<_> = {
        let mut w = p.worker();
        let mut state = FormatState::default();
        lines
            .iter()
            .filter_map(|l| match w.process(&src, &mut state, 0, l) {
                Outcome::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    };
    g.bench_function("serialize_serde_json_10k", |b| {
        let mut out = Vec::with_capacity(8 << 20);
        b.iter(|| {
            out.clear();
            for e in &events {
                serde_json::to_writer(&mut out, &**e).unwrap();
                out.push(b'\n');
            }
            out.len()
        })
    });
    g.bench_function("write_json_line_10k", |b| {
        let mut out = Vec::with_capacity(8 << 20);
        b.iter(|| {
            out.clear();
            for e in &events {
                e.write_json_line(&mut out);
            }
            out.len()
        })
    });
    // Every line a cache miss: a fresh worker per pass, so request targets and
    // referrers go through redaction, the content detectors and route
    // templating, and every user agent through the classifier.
    g.bench_function("fresh_worker_10k", |b| {
        b.iter(|| {
            let mut w = p.worker();
            let mut state = FormatState::default();
            let mut out = Vec::with_capacity(8 << 20);
            let mut off = 0u64;
            for l in &lines {
                let _ = w.process_with(&src, &mut state, off, l, |ev| ev.write_json_line(&mut out));
                off += l.len() as u64 + 1;
            }
            out.len()
        })
    });
    // Every line a dead letter (a format that does not fit): each is
    // scrubbed before it is kept.
    let wrong = ParseConfig {
        format: "nginx-json".into(),
        ..Default::default()
    };
    let keys_for_rejects =
        Arc::new(SecretKeys::from_secret(b"benchmark secret, not for production").unwrap());
    let rejecting = Arc::new(Pipeline::new(&wrong, &tables, keys_for_rejects).unwrap());
    g.bench_function("rejects_10k", |b| {
        let mut w = rejecting.worker();
        b.iter(|| {
            let mut n = 0;
            for l in &lines {
                if let Outcome::Reject(r) = w.process(&src, &mut FormatState::default(), 0, l) {
                    n += r.line.len();
                }
            }
            n
        })
    });
    // Request targets that never repeat (`?_=<timestamp>` cache busters, a
    // single-page app's API): most lines miss the target memo.
    let json_lines = read_lines("formats/thedash-nginx-json-2013/access.log.gz");
    let json_cfg = ParseConfig {
        format: "nginx-json".into(),
        ..Default::default()
    };
    let json_keys =
        Arc::new(SecretKeys::from_secret(b"benchmark secret, not for production").unwrap());
    let json_pipeline = Arc::new(Pipeline::new(&json_cfg, &tables, json_keys).unwrap());
    g.bench_function("nginx_json_unique_targets_10k", |b| {
        b.iter(|| {
            let mut w = json_pipeline.worker();
            let mut out = Vec::with_capacity(8 << 20);
            let mut state = FormatState::default();
            for l in &json_lines {
                let _ = w.process_with(&src, &mut state, 0, l, |ev| ev.write_json_line(&mut out));
            }
            out.len()
        })
    });
    g.bench_function("process_only_10k", |b| {
        let mut w = p.worker();
        b.iter(|| {
            let mut state = FormatState::default();
            let mut n = 0;
            for l in &lines {
                if let Outcome::Event(e) = w.process(&src, &mut state, 0, l) {
                    n += e.status as usize;
                }
            }
            n
        })
    });
    g.bench_function("combined_parse_only_10k", |b| {
        let f = footfall_parse::formats::preset("combined").unwrap();
        b.iter(|| {
            let mut state = FormatState::default();
            let mut n = 0;
            for l in &lines {
                if f.parse(std::str::from_utf8(l).unwrap_or(""), &mut state)
                    .is_ok()
                {
                    n += 1;
                }
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
