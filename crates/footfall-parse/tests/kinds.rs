//! The kind of resource on real logs: zanbil's extension-less product images
//! are assets, thedash's polling calls are api, and what that does to the
//! page views; and the operator's `kind_rules` on the way from a
//! configuration to the events. The logs are read from `../shared/data`
//! beside the checkout (or `$FOOTFALL_SHARED_DATA`); without it those tests
//! say so and pass.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use footfall_event::VisitEvent;
use footfall_parse::{
    FormatState, KindRuleConfig, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables,
};

/// The events of a (gzip) log; every line must parse.
fn events(rel: &str, format: &str, kind_rules: Vec<KindRuleConfig>) -> Option<Vec<VisitEvent>> {
    let Some(dir) = footfall_testkit::shared_data() else {
        println!("shared/data not present: {rel} was not checked");
        return None;
    };
    let mut data = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(dir.join(rel)).unwrap())
        .read_to_end(&mut data)
        .unwrap();
    let cfg = ParseConfig {
        format: format.into(),
        site: Some("example.org".into()),
        max_past_days: 100 * 366,
        kind_rules,
        ..Default::default()
    };
    let keys = Arc::new(SecretKeys::from_secret(b"test secret for the kind corpus").unwrap());
    let p = Arc::new(Pipeline::new(&cfg, &Tables::embedded(), keys).unwrap());
    let mut w = p.worker();
    let src = SourceRef::from_first_line(rel, data.split(|&b| b == b'\n').next().unwrap());
    let mut state = FormatState::default();
    let mut out = Vec::new();
    let mut offset = 0u64;
    for line in data.split(|&b| b == b'\n') {
        if !line.is_empty() {
            match w.process(&src, &mut state, offset, line) {
                Outcome::Event(e) => out.push(*e),
                Outcome::Reject(r) => panic!("{rel}@{offset}: rejected: {}", r.reason),
            }
        }
        offset += line.len() as u64 + 1;
    }
    Some(out)
}

fn by_kind(events: &[VisitEvent]) -> BTreeMap<&str, usize> {
    let mut n = BTreeMap::new();
    for e in events {
        *n.entry(&*e.kind).or_default() += 1;
    }
    n
}

/// What schema version 1 counted as a page view: a successful GET or HEAD of
/// a path without a static extension, polling and API calls included.
fn version_1_pageview(e: &VisitEvent) -> bool {
    const STATIC: &[&str] = &[
        "css", "js", "mjs", "map", "jpg", "jpeg", "png", "gif", "ico", "svg", "webp", "avif",
        "bmp", "tif", "tiff", "woff", "woff2", "ttf", "otf", "eot", "pdf", "txt", "csv", "xls",
        "xlsx", "doc", "docx", "ppt", "pptx", "zip", "gz", "tgz", "tar", "rar", "7z", "iso", "exe",
        "dmg", "mp3", "mp4", "m4a", "ogg", "wav", "flac", "webm", "mpeg", "mpg", "avi", "flv",
        "mov", "swf", "wasm", "xml", "json",
    ];
    let last = e.path.rsplit('/').next().unwrap_or("");
    let is_static = match last.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => STATIC.contains(&&*ext.to_ascii_lowercase()),
        _ => false,
    };
    !is_static
        && !e.path.is_empty()
        && matches!(e.status, 200..=299 | 304)
        && matches!(e.method.as_deref(), Some("GET" | "HEAD") | None)
}

fn report(name: &str, events: &[VisitEvent]) -> (usize, usize) {
    let before = events.iter().filter(|e| version_1_pageview(e)).count();
    let after = events.iter().filter(|e| e.is_pageview).count();
    println!(
        "{name}: {} events, kinds {:?}, page views {before} by version 1's rule, {after} now",
        events.len(),
        by_kind(events)
    );
    (before, after)
}

#[test]
fn zanbil_product_images_are_assets() {
    let Some(events) = events(
        "zanbil-kaggle-head10k/access_10000.log.gz",
        "combined",
        Vec::new(),
    ) else {
        return;
    };
    let images: Vec<&VisitEvent> = events
        .iter()
        .filter(|e| e.path.starts_with("/image/"))
        .collect();
    println!("zanbil: {} requests under /image/", images.len());
    assert!(images.len() > 3000, "{}", images.len());
    for e in &images {
        assert_eq!(e.kind, "asset", "{}", e.path);
        assert!(!e.is_pageview, "{}", e.path);
    }
    let (before, after) = report("zanbil", &events);
    assert!(after < before);
    // Product and filter pages stay pages (a product path ending in an
    // image name is that image).
    for e in events
        .iter()
        .filter(|e| e.path.starts_with("/filter/") || e.path.starts_with("/product/"))
    {
        let image = e.path.ends_with(".jpg");
        assert_eq!(e.kind, if image { "asset" } else { "page" }, "{}", e.path);
    }
}

#[test]
fn thedash_polling_calls_are_api() {
    let Some(events) = events(
        "thedash-nginx-json-2013/access.log.gz",
        "nginx-json",
        Vec::new(),
    ) else {
        return;
    };
    // The dashboards poll `/api/dashboard/<id>/ping` every few seconds, and
    // socket.io's transports (`xhr-polling`, `htmlfile`) hold the live
    // connection: generic conventions, so the built-in rules know them.
    let polling = |e: &&VisitEvent| {
        (e.path.starts_with("/api/") && e.path.ends_with("/ping"))
            || e.path.starts_with("/socket.io/")
    };
    let polls: Vec<&VisitEvent> = events.iter().filter(polling).collect();
    let api = events.iter().filter(|e| e.kind == "api").count();
    println!(
        "thedash: {} polling requests, {api} api requests, {} under /api/",
        polls.len(),
        events.iter().filter(|e| e.path.starts_with("/api")).count()
    );
    assert!(polls.len() > 7000, "{}", polls.len());
    for e in &polls {
        assert_eq!(e.kind, "api", "{}", e.path);
        assert!(!e.is_pageview, "{}", e.path);
    }
    assert!(events
        .iter()
        .filter(|e| e.path.starts_with("/api/") || e.path == "/api")
        .all(|e| e.kind == "api"));
    let (before, after) = report("thedash", &events);
    assert!(
        after * 3 < before,
        "polling no longer counts: {after} of {before}"
    );
    assert!(events
        .iter()
        .filter(|e| e.path == "/" && e.status == 200 && e.method.as_deref() == Some("GET"))
        .all(|e| e.kind == "page" && e.is_pageview));
}

fn process(p: &Arc<Pipeline>, line: &str) -> VisitEvent {
    let src = SourceRef::from_first_line("kinds.log", line.as_bytes());
    match p
        .worker()
        .process(&src, &mut FormatState::default(), 0, line.as_bytes())
    {
        Outcome::Event(e) => *e,
        Outcome::Reject(r) => panic!("{line}: {}", r.reason),
    }
}

#[test]
fn kind_rules_from_a_configuration_reach_the_events() {
    let cfg: ParseConfig = serde_json::from_str(
        r#"{"format": "combined", "kind_rules": [
            {"path_prefix": "/CDN/", "kind": "asset"},
            {"path_contains": "/poll", "kind": "api"},
            {"path_suffix": ".php5", "kind": "page"}
        ]}"#,
    )
    .unwrap();
    let keys = Arc::new(SecretKeys::from_secret(b"test secret for kind rules").unwrap());
    let p = Arc::new(Pipeline::new(&cfg, &Tables::embedded(), keys).unwrap());
    let line = |method: &str, target: &str, status: u16| {
        format!(
            r#"203.0.113.7 - - [17/May/2025:10:05:03 +0000] "{method} {target} HTTP/1.1" {status} 512 "-" "Mozilla/5.0""#
        )
    };
    let cases = [
        ("GET", "/cdn/lib/x", 200, "asset", false),
        ("GET", "/live/poll?since=7", 200, "api", false),
        ("GET", "/legacy/index.php5", 200, "page", true),
        ("GET", "/about", 200, "page", true),
        ("HEAD", "/about", 304, "page", true),
        ("GET", "/about", 301, "page", false),
        ("GET", "/about", 404, "page", false),
        ("POST", "/about", 200, "page", false),
        ("GET", "/api/v1/items", 500, "api", false),
        ("GET", "/static/app.js", 200, "asset", false),
        ("GET", "/robots.txt", 200, "other", false),
        ("GET", "/report.pdf?download=1", 200, "download", false),
        ("GET", "/feed/", 200, "feed", false),
    ];
    for (method, target, status, kind, pageview) in cases {
        let ev = process(&p, &line(method, target, status));
        assert_eq!(ev.kind, kind, "{method} {target} {status}");
        assert_eq!(ev.is_pageview, pageview, "{method} {target} {status}");
    }
    // An empty request line is `other`, whatever the rules.
    let empty = process(
        &p,
        r#"203.0.113.7 - - [17/May/2025:10:05:03 +0000] "-" 400 0 "-" "-""#,
    );
    assert_eq!((&*empty.kind, empty.is_pageview), ("other", false));
}

#[test]
fn bad_kind_rules_are_configuration_errors() {
    let unknown_key = serde_json::from_str::<ParseConfig>(
        r#"{"kind_rules": [{"path_regex": "^/x", "kind": "api"}]}"#,
    );
    assert!(unknown_key.unwrap_err().to_string().contains("path_regex"));
    for (rules, want) in [
        (
            r#"[{"path_prefix": "/x", "kind": "static"}]"#,
            "is not a kind",
        ),
        (r#"[{"kind": "api"}]"#, "exactly one"),
        (
            r#"[{"path_prefix": "/x", "path_suffix": "y", "kind": "api"}]"#,
            "exactly one",
        ),
    ] {
        let cfg: ParseConfig = serde_json::from_str(&format!(
            r#"{{"format": "combined", "kind_rules": {rules}}}"#
        ))
        .unwrap();
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.key, "kind_rules");
        assert!(e.reason.contains(want), "{}", e.reason);
        let keys = Arc::new(SecretKeys::from_secret(b"test secret for kind rules").unwrap());
        assert!(Pipeline::new(&cfg, &Tables::embedded(), keys).is_err());
    }
}
