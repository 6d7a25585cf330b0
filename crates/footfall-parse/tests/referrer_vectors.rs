//! Referrer classification against third-party data read at test time.
//!
//! * snowplow referer-parser's `referer-tests.json` (licence not stated, so it
//!   is not copied into the repository);
//! * the real access logs under the shared data directory.
//!
//! The data directory is `$FOOTFALL_SHARED_DATA`, default `../shared/data`
//! beside the repository. A test whose file is absent prints that it did not
//! run and returns.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

use footfall_parse::referrer::ReferrerClassifier;
use footfall_parse::url::split_target;

/// referer-parser's medium names mapped to ours.
fn expected_medium(medium: &str) -> &str {
    match medium {
        "unknown" => "external",
        "chatbot" => "ai-assistant",
        other => other,
    }
}

/// referer-parser source names that differ from ours only in naming.
///
/// referer-parser splits verticals of one engine into sources (`Google
/// Images`, `Ask Toolbar`); footfall reports the engine.
const SOURCE_ALIASES: &[(&str, &str)] = &[
    ("Google Images", "Google"),
    ("Bing Images", "Bing"),
    ("Yahoo! Images", "Yahoo!"),
    ("Yandex Images", "Yandex"),
    ("Ask Toolbar", "Ask"),
    ("Perplexity.ai", "Perplexity"),
    ("Claude.ai", "Claude"),
    ("META.ai", "Meta AI"),
    ("Mistral.ai", "Mistral Le Chat"),
    ("1und1", "1&1"),
    ("Proton", "Proton Mail"),
];

fn normalise_source(name: &str) -> String {
    let name = SOURCE_ALIASES
        .iter()
        .find(|(theirs, _)| *theirs == name)
        .map_or(name, |(_, ours)| ours);
    name.to_lowercase()
}

fn normalise_term(term: &str) -> String {
    term.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Agreement with referer-parser's own test vectors.
///
/// A case agrees when all three hold:
/// * medium: referer-parser's medium, with `unknown` read as `external` and
///   `chatbot` as `ai-assistant`, equals ours;
/// * source: equal ignoring case, after mapping the names in
///   [`SOURCE_ALIASES`]; a missing source on either side only equals a
///   missing source;
/// * term: both absent, or equal after trimming and collapsing whitespace
///   (footfall trims search terms).
///
/// At least 95% of the cases must agree.
#[test]
fn referer_parser_vectors() {
    let Some(dir) = footfall_testkit::shared_data() else {
        println!("shared/data not present: the referer-parser vectors were not checked");
        return;
    };
    let path = dir.join("referer-parser/referer-tests.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!(
            "referer-parser vectors not present: not run ({})",
            path.display()
        );
        return;
    };
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&text).expect("referer-tests.json is a JSON array");
    assert!(
        cases.len() >= 100,
        "expected ~118 cases, found {}",
        cases.len()
    );

    let classifier = ReferrerClassifier::embedded();
    let (mut medium_ok, mut source_ok, mut term_ok, mut all_ok) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for case in &cases {
        let field = |k: &str| case.get(k).and_then(|v| v.as_str());
        let uri = field("uri").expect("case has a uri");
        let spec = field("spec").unwrap_or("?");
        let want_medium = expected_medium(field("medium").expect("case has a medium"));
        let want_source = field("source").map(normalise_source);
        let want_term = field("term").map(normalise_term).filter(|t| !t.is_empty());

        let info = classifier.classify(Some(uri), &[], None);
        let got_source = info.source.as_deref().map(normalise_source);
        let got_term = info.search_terms.as_deref().map(normalise_term);

        let m = info.medium == want_medium;
        let s = got_source == want_source;
        let t = got_term == want_term;
        medium_ok += m as usize;
        source_ok += s as usize;
        term_ok += t as usize;
        if m && s && t {
            all_ok += 1;
        } else {
            failures.push(format!(
                "  {spec}: {uri:.100}\n    want {want_medium} / {want_source:?} / {want_term:?}\n    got  {} / {got_source:?} / {got_term:?}",
                info.medium
            ));
        }
    }
    let n = cases.len();
    let pct = |k: usize| 100.0 * k as f64 / n as f64;
    println!(
        "referer-parser vectors: {all_ok}/{n} agree ({:.1}%); medium {:.1}%, source {:.1}%, term {:.1}%",
        pct(all_ok),
        pct(medium_ok),
        pct(source_ok),
        pct(term_ok)
    );
    if !failures.is_empty() {
        println!("disagreements:\n{}", failures.join("\n"));
    }
    assert!(
        pct(all_ok) >= 95.0,
        "agreement {:.1}% is below 95%",
        pct(all_ok)
    );
}

/// The quoted fields of an Apache/nginx log line, honouring `\"` escapes. An
/// unterminated last field runs to the end of the line.
fn quoted_fields(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut fields = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < bytes.len() && bytes[j] != b'"' {
            j += if bytes[j] == b'\\' { 2 } else { 1 };
        }
        let end = j.min(bytes.len());
        fields.push(&line[start..end]);
        i = end + 1;
    }
    fields
}

struct LogSpec {
    file: &'static str,
    site: &'static str,
    /// Position of the referrer among the quoted fields, counted from the end (1 = last).
    referrer_from_end: usize,
}

/// Every referrer of the real logs is classified without panicking, and the
/// media come out in plausible proportions.
#[test]
fn real_log_referrers() {
    let logs = [
        LogSpec {
            file: "elastic-apache-logs/apache_logs.gz",
            site: "semicomplete.com",
            referrer_from_end: 2,
        },
        LogSpec {
            file: "zanbil-kaggle-head10k/access_10000.log.gz",
            site: "zanbil.ir",
            referrer_from_end: 3,
        },
        LogSpec {
            file: "wordpress-nginx-2025-hackathon/access.log.gz",
            site: "website.local.lan",
            referrer_from_end: 2,
        },
    ];
    let classifier = ReferrerClassifier::embedded();
    let mut ran = 0;
    let Some(dir) = footfall_testkit::shared_data() else {
        println!("shared/data not present: the real logs' referrers were not checked");
        return;
    };
    for log in &logs {
        let path = dir.join(log.file);
        let Ok(file) = std::fs::File::open(&path) else {
            println!("{} not present: not run", path.display());
            continue;
        };
        ran += 1;
        let reader = BufReader::new(flate2::read::GzDecoder::new(file));
        let site = [log.site.to_string()];
        let mut media: BTreeMap<String, usize> = BTreeMap::new();
        let mut sources: BTreeMap<String, usize> = BTreeMap::new();
        let (mut lines, mut with_terms) = (0usize, 0usize);
        for line in reader.split(b'\n') {
            let line = line.expect("readable log");
            let line = String::from_utf8_lossy(&line);
            let fields = quoted_fields(&line);
            if fields.len() < log.referrer_from_end + 1 {
                continue;
            }
            lines += 1;
            let referrer = fields[fields.len() - log.referrer_from_end];
            let target = fields[0].split(' ').nth(1).unwrap_or("");
            let (_, landing_query) = split_target(target);
            let info = classifier.classify(Some(referrer), &site, landing_query);
            *media.entry(info.medium.to_string()).or_default() += 1;
            if let Some(s) = &info.source {
                *sources.entry(format!("{}/{s}", info.medium)).or_default() += 1;
            }
            if let Some(t) = &info.search_terms {
                assert!(
                    !t.is_empty()
                        && t.trim() == t
                        && t.chars().count() <= footfall_parse::url::MAX_TEXT_CHARS
                );
                with_terms += 1;
            }
            if referrer == "-" || referrer.is_empty() {
                assert!(
                    info.medium == "direct"
                        || info.medium == "paid"
                        || info.medium == "email"
                        || info.medium == "social"
                );
            }
        }
        let mut top: Vec<_> = sources.into_iter().collect();
        top.sort_by_key(|s| std::cmp::Reverse(s.1));
        top.truncate(12);
        println!("{}: {lines} lines, media {media:?}, {with_terms} with search terms, top sources {top:?}", log.file);
        assert!(lines > 1000, "{}: only {lines} lines parsed", log.file);
        let count = |m: &str| media.get(m).copied().unwrap_or(0);
        assert!(
            count("direct") > 0 && count("internal") > 0,
            "{}: {media:?}",
            log.file
        );
        assert!(
            count("internal") > count("external"),
            "{}: a site's own pages dominate its referrers: {media:?}",
            log.file
        );
        if log.file.starts_with("elastic") {
            // The log has 573 referrers on Google hosts (most `/url?...&q=&...`
            // redirects without terms) and about 60 engine referrers with a
            // non-empty term parameter.
            assert!(count("search") >= 550, "search referrers: {media:?}");
            assert!(with_terms >= 50, "search terms: {with_terms}");
        }
        if log.file.starts_with("zanbil") {
            assert!(count("search") > 0, "search referrers: {media:?}");
        }
    }
    if ran == 0 {
        println!("real access logs not present: not run");
    }
}

/// Named classification cases that need no external data.
#[test]
fn named_cases() {
    struct Case {
        name: &'static str,
        referrer: Option<&'static str>,
        landing: Option<&'static str>,
        medium: &'static str,
        source: Option<&'static str>,
        terms: Option<&'static str>,
        host: Option<&'static str>,
    }
    const fn case(
        name: &'static str,
        referrer: Option<&'static str>,
        medium: &'static str,
    ) -> Case {
        Case {
            name,
            referrer,
            landing: None,
            medium,
            source: None,
            terms: None,
            host: None,
        }
    }
    impl Case {
        const fn landing(mut self, q: &'static str) -> Case {
            self.landing = Some(q);
            self
        }
        const fn source(mut self, s: &'static str) -> Case {
            self.source = Some(s);
            self
        }
        const fn terms(mut self, t: &'static str) -> Case {
            self.terms = Some(t);
            self
        }
        const fn host(mut self, h: &'static str) -> Case {
            self.host = Some(h);
            self
        }
    }
    let cases = [
        case("absent", None, "direct"),
        case("empty", Some(""), "direct"),
        case("dash", Some("-"), "direct"),
        case("blank", Some("  "), "direct"),
        case("same host", Some("https://example.org/a"), "internal").host("example.org"),
        case(
            "www variant",
            Some("http://WWW.Example.org:8080/"),
            "internal",
        )
        .host("www.example.org"),
        case(
            "www site, bare referrer",
            Some("https://shop.test/"),
            "internal",
        ),
        case(
            "subdomain is not internal",
            Some("https://blog.example.org/"),
            "external",
        )
        .host("blog.example.org"),
        case("relative referrer", Some("/previous/page"), "internal"),
        case(
            "internal keeps click id",
            Some("https://example.org/"),
            "internal",
        )
        .landing("gclid=abc"),
        case(
            "google with terms",
            Some("https://www.google.co.uk/search?q=rust+logs&hl=en"),
            "search",
        )
        .source("Google")
        .terms("rust logs")
        .host("www.google.co.uk"),
        case(
            "google without terms",
            Some("https://www.google.com/"),
            "search",
        )
        .source("Google"),
        case(
            "google redirect carries a URL, not terms",
            Some("https://www.google.com/url?q=https://example.net/x&sa=D"),
            "search",
        )
        .source("Google"),
        case(
            "google redirect with empty q",
            Some("http://www.google.fr/url?sa=t&q=&url=http%3A%2F%2Fx"),
            "search",
        )
        .source("Google"),
        case(
            "old google fragment terms",
            Some("https://www.google.com/#q=access+logs"),
            "search",
        )
        .source("Google")
        .terms("access logs"),
        case(
            "google.com.br",
            Some("https://www.google.com.br/"),
            "search",
        )
        .source("Google"),
        case(
            "google under a foreign domain",
            Some("https://google.evil.com/"),
            "external",
        )
        .host("google.evil.com"),
        case(
            "bing",
            Some("https://www.bing.com/search?q=a%20b"),
            "search",
        )
        .source("Bing")
        .terms("a b"),
        case(
            "yahoo p",
            Some("https://search.yahoo.com/search?p=x+y"),
            "search",
        )
        .source("Yahoo!")
        .terms("x y"),
        case(
            "yandex text",
            Some("https://yandex.ru/search/?text=%D0%BB%D0%BE%D0%B3"),
            "search",
        )
        .source("Yandex")
        .terms("лог"),
        case(
            "baidu wd",
            Some("https://www.baidu.com/s?wd=rust"),
            "search",
        )
        .source("Baidu")
        .terms("rust"),
        case("duckduckgo", Some("https://duckduckgo.com/"), "search").source("DuckDuckGo"),
        case("schemeless", Some("www.bing.com/search?q=x"), "search")
            .source("Bing")
            .terms("x")
            .host("www.bing.com"),
        case("gclid", Some("https://www.google.com/"), "paid")
            .landing("gclid=abc")
            .source("Google"),
        case("gbraid without referrer", None, "paid").landing("gbraid=x"),
        case("msclkid", Some("https://www.bing.com/"), "paid")
            .landing("a=1&MSCLKID=x")
            .source("Bing"),
        case("empty click id is no signal", None, "direct").landing("gclid="),
        case("utm cpc", None, "paid").landing("utm_source=google&utm_medium=cpc"),
        case("utm paid_social", Some("https://www.facebook.com/"), "paid")
            .landing("utm_medium=paid_social")
            .source("Facebook"),
        case(
            "fbclid is organic",
            Some("https://l.facebook.com/l.php?u=x"),
            "social",
        )
        .landing("fbclid=IwAR0")
        .source("Facebook"),
        case(
            "ad host",
            Some("https://googleads.g.doubleclick.net/pagead/ads"),
            "paid",
        )
        .source("Google"),
        case("utm email without referrer", None, "email")
            .landing("utm_medium=Email&utm_source=newsletter"),
        case(
            "utm newsletter on unknown referrer",
            Some("https://tracker.example.net/c/1"),
            "email",
        )
        .landing("utm_medium=newsletter"),
        case(
            "utm email does not override a known source",
            Some("https://www.google.com/"),
            "search",
        )
        .landing("utm_medium=email")
        .source("Google"),
        case("utm social", None, "social").landing("utm_medium=social"),
        case("unknown utm medium", None, "direct").landing("utm_medium=print"),
        case("gmail", Some("https://mail.google.com/"), "email").source("Gmail"),
        case(
            "gmail app",
            Some("android-app://com.google.android.gm/"),
            "email",
        )
        .source("Gmail")
        .host("com.google.android.gm"),
        case(
            "unknown app",
            Some("android-app://com.google.example"),
            "external",
        )
        .host("com.google.example"),
        case(
            "webmail by name",
            Some("https://webmail.example-isp.net/"),
            "email",
        ),
        case(
            "mail.ru portal is not webmail",
            Some("https://mail.ru/"),
            "external",
        ),
        case("chatgpt", Some("https://chatgpt.com/"), "ai-assistant").source("ChatGPT"),
        case(
            "perplexity search is not search terms",
            Some("https://www.perplexity.ai/search?q=x"),
            "ai-assistant",
        )
        .source("Perplexity"),
        case(
            "gemini is not google search",
            Some("https://gemini.google.com/app"),
            "ai-assistant",
        )
        .source("Google Gemini"),
        case(
            "google docs",
            Some("https://docs.google.com/document/d/1"),
            "external",
        )
        .source("Google Docs"),
        case("t.co", Some("https://t.co/abc"), "social").source("Twitter"),
        case("x.com", Some("https://x.com/someone"), "social").source("Twitter"),
        case(
            "trailing dot and case",
            Some("https://WWW.Reddit.COM./r/rust"),
            "social",
        )
        .source("Reddit")
        .host("www.reddit.com"),
        case("ipv6 host", Some("http://[2001:db8::1]:8080/x"), "external").host("[2001:db8::1]"),
        case("not a URL", Some("not a url"), "external"),
        case("empty authority", Some("http:///x"), "external"),
        case(
            "userinfo is not the host",
            Some("https://www.google.com@evil.example/"),
            "external",
        )
        .host("evil.example"),
        case("apache escapes", Some("http://\\xe4\\xe5.com/"), "external").host("\\xe4\\xe5.com"),
    ];
    let classifier = ReferrerClassifier::embedded();
    let site = ["example.org".to_string(), "www.shop.test:443".to_string()];
    for c in &cases {
        let info = classifier.classify(c.referrer, &site, c.landing);
        assert_eq!(
            info.medium, c.medium,
            "{}: medium of {:?}",
            c.name, c.referrer
        );
        assert_eq!(info.source.as_deref(), c.source, "{}: source", c.name);
        assert_eq!(info.search_terms.as_deref(), c.terms, "{}: terms", c.name);
        if let Some(h) = c.host {
            assert_eq!(info.host.as_deref(), Some(h), "{}: host", c.name);
        }
    }
    // Without site hosts nothing is internal except relative referrers.
    assert_eq!(
        classifier
            .classify(Some("https://example.org/"), &[], None)
            .medium,
        "external"
    );
    assert_eq!(
        classifier.classify(Some("/x"), &[], None).medium,
        "internal"
    );
    // Search terms are bounded.
    let long = format!("https://www.bing.com/search?q={}", "word+".repeat(200));
    let terms = classifier
        .classify(Some(&long), &[], None)
        .search_terms
        .unwrap();
    // 40 whole words (199 characters): the cut never leaves a trailing space.
    assert_eq!(
        terms.chars().count(),
        footfall_parse::url::MAX_TEXT_CHARS - 1
    );
    assert!(terms.ends_with("word"));
}

#[test]
fn configured_sources() {
    use footfall_parse::referrer::{Medium, ReferrerError, SourceConfig};
    let mut classifier = ReferrerClassifier::embedded();
    let builtin = classifier.pattern_count();
    let source = |name: &str, medium, hosts: &[&str], params: &[&str]| SourceConfig {
        name: name.into(),
        medium,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        params: params.iter().map(|p| p.to_string()).collect(),
    };
    classifier
        .add_source(&source(
            "Intranet Search",
            Medium::Search,
            &["Search.Corp.example", "find*.corp.example"],
            &["k"],
        ))
        .unwrap()
        .add_source(&source("Short Links", Medium::Paid, &["t.co"], &[]))
        .unwrap();
    assert_eq!(
        classifier.pattern_count(),
        builtin + 2,
        "t.co replaced, not added"
    );
    let info = classifier.classify(
        Some("https://search.corp.example/?k=budget+2024"),
        &[],
        None,
    );
    assert_eq!(
        (
            info.medium.as_ref(),
            info.source.as_deref(),
            info.search_terms.as_deref()
        ),
        ("search", Some("Intranet Search"), Some("budget 2024"))
    );
    assert_eq!(
        classifier
            .classify(Some("https://find02.corp.example/"), &[], None)
            .source
            .as_deref(),
        Some("Intranet Search")
    );
    assert_eq!(
        classifier
            .classify(Some("https://t.co/x"), &[], None)
            .medium,
        "paid"
    );

    let err = classifier
        .add_source(&source("", Medium::Social, &["x.example"], &[]))
        .unwrap_err();
    assert_eq!(err, ReferrerError::EmptyName);
    for bad in ["https://x.example/", "*.x.example", "x.*.example", ""] {
        let err = classifier
            .add_source(&source("X", Medium::Social, &[bad], &[]))
            .unwrap_err();
        assert!(
            matches!(err, ReferrerError::Pattern { .. }),
            "{bad:?}: {err}"
        );
    }
    let config: SourceConfig = serde_json::from_str(
        r#"{"name": "Chat", "medium": "ai-assistant", "hosts": ["chat.example"]}"#,
    )
    .unwrap();
    assert_eq!(config.medium, Medium::AiAssistant);
    assert!(config.params.is_empty());
    assert!(ReferrerClassifier::empty()
        .classify(Some("https://www.google.com/"), &[], None)
        .source
        .is_none());
}
