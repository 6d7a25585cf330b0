//! User-agent classification costs: building the classifier, classifying
//! (cache misses) and cached lookups.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use footfall_parse::ua::{UaCache, UaClassifier};
use std::hint::black_box;
use std::sync::Arc;

/// A mix of common browsers, phones, tablets, crawlers and tools.
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "curl/8.4.0",
    "python-requests/2.31.0",
    "Mozilla/5.0 (Linux; Android 13; SM-S908B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 Instagram 309.1.0.41.113 Android",
    "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36",
    "SomeInternalClient/3.2",
];

fn construction(c: &mut Criterion) {
    let mut group = c.benchmark_group("ua_construction");
    group.sample_size(10);
    group.bench_function("embedded", |b| {
        b.iter(|| black_box(UaClassifier::embedded()))
    });
    // What construction cost before rules were compiled on first use.
    group.bench_function("embedded_compile_all", |b| {
        b.iter(|| {
            let c = UaClassifier::embedded();
            c.compile_all().expect("embedded rules compile");
            black_box(c)
        })
    });
    group.finish();
}

fn classification(c: &mut Criterion) {
    let classifier = Arc::new(UaClassifier::embedded());
    let mut group = c.benchmark_group("ua_classify");
    group.throughput(Throughput::Elements(AGENTS.len() as u64));
    group.bench_function("uncached_mix", |b| {
        b.iter(|| {
            for ua in AGENTS {
                black_box(classifier.classify(black_box(ua)));
            }
        })
    });
    group.bench_function("cache_hit_mix", |b| {
        let mut cache = UaCache::new(Arc::clone(&classifier));
        for ua in AGENTS {
            cache.get(ua);
        }
        b.iter(|| {
            for ua in AGENTS {
                black_box(cache.get(black_box(ua)));
            }
        })
    });
    group.bench_function("cache_miss_mix", |b| {
        b.iter_batched(
            || UaCache::new(Arc::clone(&classifier)),
            |mut cache| {
                for ua in AGENTS {
                    black_box(cache.get(black_box(ua)));
                }
                cache
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, construction, classification);
criterion_main!(benches);
