//! Property: arbitrary bytes through every format's whole pipeline never panic,
//! and each line becomes exactly one event or one reject with a reason.

use std::sync::Arc;

use footfall_event::VisitEvent;
use footfall_parse::{
    formats, FormatState, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables, Worker,
};
use proptest::prelude::*;

mod common;

/// The pseudonym keys every test here uses.
fn keys() -> Arc<SecretKeys> {
    Arc::new(SecretKeys::from_secret(b"property test secret, 16+ bytes").unwrap())
}

/// The JSON line of the event `w` makes of `line` on its borrowed fast path
/// (cached JSON groups), or `None` for a reject.
fn borrowed_json(w: &mut Worker, src: &SourceRef, offset: u64, line: &[u8]) -> Option<String> {
    let mut out = Vec::new();
    w.process_with(src, &mut FormatState::default(), offset, line, |ev| {
        ev.write_json_line(&mut out)
    })
    .ok()?;
    Some(String::from_utf8(out).expect("event JSON is UTF-8"))
}

/// The JSON line of an owned event, written from its own fields.
fn owned_json(ev: &VisitEvent) -> String {
    let mut out = Vec::new();
    ev.write_json_line(&mut out);
    String::from_utf8(out).expect("event JSON is UTF-8")
}

fn pipelines() -> Vec<Arc<Pipeline>> {
    let tables = Tables::embedded();
    let keys = keys();
    formats::PRESETS
        .iter()
        .map(|f| {
            let cfg = ParseConfig {
                format: f.to_string(),
                ..Default::default()
            };
            Arc::new(Pipeline::new(&cfg, &tables, keys.clone()).unwrap())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        thread_local!(static P: Vec<Arc<Pipeline>> = pipelines());
        P.with(|ps| {
            let src = SourceRef::from_first_line("prop", &data);
            for p in ps {
                let mut w = p.worker();
                match w.process(&src, &mut FormatState::default(), 7, &data) {
                    Outcome::Event(e) => { assert_eq!(e.offset, 7); assert_eq!(e.event_id.len(), 32); }
                    Outcome::Reject(r) => { assert!(!r.reason.is_empty()); assert_eq!(r.offset, 7); }
                }
            }
        });
    }
}

/// The worker's caches (request targets, referrers, user agents, visitor ids)
/// never change a result: a worker that has seen every line before gives the
/// same events as a fresh worker per line, and the borrowed fast path writes
/// the same bytes as the owned event. Over the real logs in tests/data, with
/// virtual hosts (nginx JSON) and a timezone change of day mid-stream.
#[test]
fn caches_and_fast_path_change_nothing() {
    use std::io::Read;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
    let inputs = [
        ("combined", root.join("elastic-apache-logs/apache_logs.gz")),
        (
            "combined",
            root.join("secrepo-selflogs/access-2018-12-15.log.gz"),
        ),
        (
            "nginx-json",
            root.join("formats/thedash-nginx-json-2013/access.log.gz"),
        ),
    ];
    let tables = Tables::embedded();
    let keys = keys();
    for (format, path) in inputs {
        let mut text = Vec::new();
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        flate2::read::MultiGzDecoder::new(file)
            .read_to_end(&mut text)
            .unwrap();
        let cfg = ParseConfig {
            format: format.into(),
            timezone: Some("Asia/Tokyo".into()),
            ..Default::default()
        };
        let p = Arc::new(Pipeline::new(&cfg, &tables, keys.clone()).unwrap());
        let src = SourceRef::from_first_line(path.display().to_string(), b"first");
        let mut warm = p.worker();
        let mut offset = 0u64;
        let mut events = 0;
        // Twice over: the second pass is served from warm caches.
        for pass in 0..2 {
            for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let fresh = p
                    .worker()
                    .process(&src, &mut FormatState::default(), offset, line);
                let cached = warm.process(&src, &mut FormatState::default(), offset, line);
                assert_eq!(
                    cached,
                    fresh,
                    "{}: pass {pass}, line at {offset}",
                    path.display()
                );
                let fast = borrowed_json(&mut warm, &src, offset, line);
                if let Outcome::Event(ev) = &fresh {
                    assert_eq!(fast, Some(owned_json(ev)));
                    events += 1;
                }
                offset += line.len() as u64 + 1;
            }
        }
        assert!(events > 1000, "{}: only {events} events", path.display());
    }
}

/// The JSON a worker keeps with its cached values (request target, referrer,
/// user agent) is written as-is only while it still holds: a landing query
/// that changes the referrer's medium (ad click ids, `utm_medium`) makes the
/// referrer fields be written from the event's own values.
#[test]
fn cached_json_follows_the_landing_query() {
    let tables = Tables::embedded();
    let keys = keys();
    let cfg = ParseConfig {
        format: "combined".into(),
        ..Default::default()
    };
    let p = Arc::new(Pipeline::new(&cfg, &tables, keys).unwrap());
    let src = SourceRef::from_first_line("landing", b"first");
    let mut warm = p.worker();
    let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let cases: &[(&str, &str, &str)] = &[
        ("/", "https://www.google.com/", "search"),
        ("/?gclid=abc123", "https://www.google.com/", "paid"),
        ("/", "https://www.google.com/", "search"),
        ("/?utm_medium=email&utm_source=newsletter", "-", "email"),
        ("/", "-", "direct"),
        ("/?utm_medium=cpc", "https://news.example.net/a", "paid"),
        ("/", "https://news.example.net/a", "external"),
        (
            "/?utm_medium=social&utm_source=mastodon",
            "https://news.example.net/a",
            "social",
        ),
        ("/?q=shoes&s=1", "https://news.example.net/a", "external"),
    ];
    for round in 0..2 {
        for (i, (target, referrer, medium)) in cases.iter().enumerate() {
            let line = format!(
                r#"203.0.113.{i} - - [17/May/2015:10:05:03 +0000] "GET {target} HTTP/1.1" 200 512 "{referrer}" "{ua}""#
            );
            let fresh = p
                .worker()
                .process(&src, &mut FormatState::default(), 0, line.as_bytes());
            let Outcome::Event(ev) = fresh else {
                panic!("{line}: rejected")
            };
            assert_eq!(ev.referrer_medium, *medium, "{line}");
            assert_eq!(
                borrowed_json(&mut warm, &src, 0, line.as_bytes()),
                Some(owned_json(&ev)),
                "round {round}: {line}"
            );
        }
    }
}

/// Visitor ids are the keyed hash of (site, client, agent) or of the session
/// cookie, whichever way the worker's memo keys them: by the agent cache's
/// token or by the whole basis (a cookie), warm or fresh.
#[test]
fn visitor_ids_are_the_documented_hash_on_every_memo_path() {
    use footfall_parse::privacy::{visitor_id, KeyProvider, VisitorBasis};
    let tables = Tables::embedded();
    let keys = keys();
    let cfg = ParseConfig {
        format: "combined".into(),
        log_format: Some(
            r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$cookie_sid""#
                .into(),
        ),
        session_cookie: Some("sid".into()),
        site: Some("example.org".into()),
        ..Default::default()
    };
    let p = Arc::new(Pipeline::new(&cfg, &tables, keys.clone()).unwrap());
    let src = SourceRef::from_first_line("visitors", b"first");
    let day = chrono::NaiveDate::from_ymd_opt(2015, 5, 17).unwrap();
    let day_key = keys.day_key(day).expect("a fixed secret holds every day");
    let short_ua = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    let mut warm = p.worker();
    // A short address goes to the inline visitor table; a long host name
    // (a key over its bound) and a cookie go to the general memo.
    let long_host = "a-rather-long-host-name-for-a-visitor.dsl.example-provider.net";
    for round in 0..2 {
        for client in ["203.0.113.9", long_host] {
            for (ua, cookie) in [(short_ua, "-"), (short_ua, "s3ss10n"), ("curl/8.5.0", "-")] {
                let line = format!(
                    r#"{client} - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "{ua}" "{cookie}""#
                );
                let basis = if cookie == "-" {
                    VisitorBasis::ClientAgent(client, ua)
                } else {
                    VisitorBasis::Cookie(cookie)
                };
                let want = visitor_id(&day_key, "example.org", basis);
                let net = if client == long_host {
                    "*.example-provider.net"
                } else {
                    "203.0.113.0/24"
                };
                for w in [&mut warm, &mut p.worker()] {
                    let ev = match w.process(&src, &mut FormatState::default(), 0, line.as_bytes())
                    {
                        Outcome::Event(ev) => ev,
                        Outcome::Reject(r) => panic!("rejected: {}", r.reason),
                    };
                    let at = format!("round {round}, {client}, cookie {cookie}");
                    assert_eq!(ev.visitor_id, want, "{at}");
                    assert_eq!(ev.client_net.as_deref(), Some(net), "{at}");
                    // The borrowed event (cached JSON groups) writes the same bytes.
                    assert_eq!(
                        borrowed_json(w, &src, 0, line.as_bytes()),
                        Some(owned_json(&ev)),
                        "{at}"
                    );
                }
            }
        }
    }
}

/// Lines whose URLs carry personal data and secrets give the same scrubbed
/// events from a fresh worker, a warm one (every target and referrer
/// served from its memo) and the borrowed fast path.
#[test]
fn scrubbed_values_are_the_same_from_every_memo_path() {
    let tables = Tables::embedded();
    for policy in ["allow", "deny"] {
        let cfg: ParseConfig = serde_json::from_str(&format!(
            r#"{{"format":"combined","site":"example.org","query_policy":"{policy}"}}"#
        ))
        .unwrap();
        let p = Arc::new(Pipeline::new(&cfg, &tables, keys()).unwrap());
        let src = SourceRef::from_first_line("planted", b"first");
        let mut warm = p.worker();
        for round in 0..3 {
            for line in common::PLANTED_LINES {
                let fresh =
                    p.worker()
                        .process(&src, &mut FormatState::default(), 0, line.as_bytes());
                let Outcome::Event(ev) = &fresh else {
                    panic!("{line}: rejected")
                };
                let cached = warm.process(&src, &mut FormatState::default(), 0, line.as_bytes());
                assert_eq!(cached, fresh, "{policy}, round {round}: {line}");
                assert_eq!(
                    borrowed_json(&mut warm, &src, 0, line.as_bytes()),
                    Some(owned_json(ev)),
                    "{policy}, round {round}: {line}"
                );
            }
        }
    }
}
