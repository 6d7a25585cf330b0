//! Search terms in one spelling on the events: on-site search (`site_search`)
//! and search-engine terms from the referrer (`search_terms`) are lower case,
//! NFC, with single spaces, however the visitor typed them.

use std::sync::Arc;

use footfall_event::VisitEvent;
use footfall_parse::{FormatState, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables};

fn event(target: &str, referrer: &str) -> VisitEvent {
    let cfg = ParseConfig {
        format: "combined".into(),
        site: Some("example.org".into()),
        ..Default::default()
    };
    let keys = Arc::new(SecretKeys::from_secret(b"test secret for search terms").unwrap());
    let p = Arc::new(Pipeline::new(&cfg, &Tables::embedded(), keys).unwrap());
    let line = format!(
        r#"203.0.113.7 - - [17/May/2025:10:05:03 +0000] "GET {target} HTTP/1.1" 200 512 "{referrer}" "Mozilla/5.0""#
    );
    let src = SourceRef::from_first_line("search.log", line.as_bytes());
    match p
        .worker()
        .process(&src, &mut FormatState::default(), 0, line.as_bytes())
    {
        Outcome::Event(e) => *e,
        Outcome::Reject(r) => panic!("{line}: {}", r.reason),
    }
}

#[test]
fn site_search_has_one_spelling() {
    let spellings = [
        "/search?q=Google+Homepage",
        "/search?q=google%20%20homepage",
        "/search?q=%20GOOGLE%09Homepage%20",
        "/search?q=google+homepage",
    ];
    for target in spellings {
        let ev = event(target, "-");
        assert_eq!(
            ev.site_search.as_deref(),
            Some("google homepage"),
            "{target}"
        );
    }
    // é composed (U+00E9) and decomposed (e + U+0301), upper and lower case.
    for target in [
        "/search?q=caf%C3%A9",
        "/search?q=cafe%CC%81",
        "/search?q=CAF%C3%89",
        "/search?q=CAFE%CC%81",
    ] {
        assert_eq!(
            event(target, "-").site_search.as_deref(),
            Some("caf\u{e9}"),
            "{target}"
        );
    }
    assert_eq!(event("/search?q=+++", "-").site_search, None);
}

#[test]
fn search_engine_terms_have_one_spelling() {
    for referrer in [
        "https://www.google.com/search?q=Google+Homepage",
        "https://www.google.com/search?q=google++homepage",
        "https://www.bing.com/search?q=GOOGLE%20HOMEPAGE",
    ] {
        let ev = event("/", referrer);
        assert_eq!(ev.referrer_medium, "search", "{referrer}");
        assert_eq!(
            ev.search_terms.as_deref(),
            Some("google homepage"),
            "{referrer}"
        );
    }
    let decomposed = event("/", "https://duckduckgo.com/?q=Cafe%CC%81+cr%C3%A8me");
    assert_eq!(
        decomposed.search_terms.as_deref(),
        Some("caf\u{e9} cr\u{e8}me")
    );
}
