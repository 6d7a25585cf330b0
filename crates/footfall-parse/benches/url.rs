//! Per-event URL work: query redaction, on-site search, UTM, route templates,
//! referrer classification and the content detectors.
//!
//! `cargo bench -p footfall-parse --bench url`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use footfall_parse::dead_letter::scrub_line;
use footfall_parse::referrer::ReferrerClassifier;
use footfall_parse::route::RouteRules;
use footfall_parse::scrub::{find, scrub_component};
use footfall_parse::url::{split_target, utm, UrlRules};

const CLEAN_QUERY: &str = "page=2&sort=desc&filter=shoes&size=42&colour=blue";
const SECRET_QUERY: &str = "page=2&access_token=eyJhbGciOiJIUzI1NiJ9.e30.abc&sort=desc";
const LANDING: &str = "utm_source=newsletter&utm_medium=email&utm_campaign=spring&id=7";
const REFERRERS: &[&str] = &[
    "-",
    "https://www.google.com/",
    "https://www.google.co.uk/search?q=rust+access+logs&hl=en",
    "https://example.org/blog/post",
    "https://news.ycombinator.com/item?id=1",
    "http://some-unknown-blog.example.net/2015/05/links.html",
];

fn url(c: &mut Criterion) {
    let rules = UrlRules::default();
    let mut g = c.benchmark_group("url");
    g.throughput(Throughput::Elements(1));
    g.bench_function("split_target", |b| {
        b.iter(|| split_target(black_box("/shop/items?page=2&sort=desc")))
    });
    g.bench_function("redact_query/clean", |b| {
        b.iter(|| rules.redact_query(black_box(CLEAN_QUERY)))
    });
    g.bench_function("redact_query/secret", |b| {
        b.iter(|| rules.redact_query(black_box(SECRET_QUERY)))
    });
    g.bench_function("redact_path/clean", |b| {
        b.iter(|| rules.redact_path(black_box("/shop/items/42")))
    });
    g.bench_function("redact_url/referrer", |b| {
        b.iter(|| {
            rules.redact_url(black_box(
                "https://www.google.co.uk/search?q=rust+access+logs&hl=en",
            ))
        })
    });
    g.bench_function("site_search/miss", |b| {
        b.iter(|| rules.site_search(black_box(CLEAN_QUERY)))
    });
    g.bench_function("site_search/hit", |b| {
        b.iter(|| rules.site_search(black_box("page=1&q=red+shoes")))
    });
    g.bench_function("utm/tagged", |b| b.iter(|| utm(black_box(LANDING))));
    g.bench_function("utm/untagged", |b| b.iter(|| utm(black_box(CLEAN_QUERY))));
    g.finish();
}

fn route(c: &mut Criterion) {
    let rules = RouteRules::default();
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    g.bench_function("unchanged", |b| {
        b.iter(|| {
            rules.template(black_box(
                "/presentations/logstash-monitorama-2013/css/print/paper.css",
            ))
        })
    });
    g.bench_function("ids", |b| {
        b.iter(|| {
            rules.template(black_box(
                "/users/12345/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            ))
        })
    });
    let mut custom = RouteRules::default();
    custom
        .add_rule("[a-z]{2}-[A-Z]{2}", ":locale")
        .expect("valid rule");
    g.bench_function("custom_rule", |b| {
        b.iter(|| custom.template(black_box("/en-GB/products/shoes/123")))
    });
    g.finish();
}

fn referrer(c: &mut Criterion) {
    let classifier = ReferrerClassifier::embedded();
    let site = ["example.org".to_string()];
    let mut g = c.benchmark_group("referrer");
    g.throughput(Throughput::Elements(REFERRERS.len() as u64));
    g.bench_function("classify/mix", |b| {
        b.iter(|| {
            for r in REFERRERS {
                black_box(classifier.classify(
                    Some(black_box(r)),
                    &site,
                    Some(black_box(CLEAN_QUERY)),
                ));
            }
        })
    });
    g.finish();
    c.bench_function("referrer/embedded", |b| {
        b.iter(ReferrerClassifier::embedded)
    });
}

const CLF_LINE: &str = r#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36""#;

fn scrub(c: &mut Criterion) {
    let rules = UrlRules::default();
    let mut g = c.benchmark_group("scrub");
    g.throughput(Throughput::Elements(1));
    g.bench_function("component/plain_path", |b| {
        b.iter(|| {
            scrub_component(black_box(
                "/presentations/logstash-monitorama-2013/images/kibana-search.png",
            ))
        })
    });
    g.bench_function("component/email_path", |b| {
        b.iter(|| scrub_component(black_box("/users/jane.doe%40example.org/orders/2")))
    });
    g.bench_function("find/clf_line", |b| {
        b.iter(|| find(black_box(CLF_LINE.as_bytes())))
    });
    g.bench_function("scrub_line/clf", |b| {
        b.iter(|| scrub_line(black_box(CLF_LINE), &rules, None))
    });
    g.finish();
}

criterion_group!(benches, url, route, referrer, scrub);
criterion_main!(benches);
