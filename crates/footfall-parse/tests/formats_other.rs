//! Tests for the W3C/IIS, CloudFront, AWS (ELB, ALB, S3), Squid and JSON
//! (Caddy, Traefik, nginx) formats: tables of named single-line cases, one
//! test per sample file, and property tests that no input makes a parser panic.
//!
//! Sample files: `tests/data/formats/` (copied, BSD-2-Clause, see the README
//! there) and the Matomo samples, which are GPL-3.0 and therefore only read
//! from the shared data directory (`$FOOTFALL_SHARED_DATA`, default
//! `../shared/data` beside the repository) when it is present.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::SecondsFormat;
use footfall_event::RejectKind;
use footfall_parse::formats::aws::{Alb, Elb, S3};
use footfall_parse::formats::json::{DurationUnit, JsonFormat, JsonMapping};
use footfall_parse::formats::squid::Squid;
use footfall_parse::formats::w3c::W3cFormat;
use footfall_parse::formats::{FormatState, LineFormat};
use footfall_parse::record::RawRecord;
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Expectations.

/// A field expectation: `None` = not checked, `Some(None)` = must be absent.
type F = Option<Option<&'static str>>;

const NO: F = Some(None);

const fn v(s: &'static str) -> F {
    Some(Some(s))
}

/// The fields a case checks; unchecked fields are `None`.
#[derive(Clone, Copy)]
struct Want {
    client: F,
    /// RFC 3339 with the record's own offset, fraction as needed.
    ts: Option<&'static str>,
    method: F,
    target: F,
    protocol: F,
    status: Option<u16>,
    bytes: Option<Option<u64>>,
    duration_ms: Option<Option<f64>>,
    referrer: F,
    user_agent: F,
    host: F,
    upstream: F,
    cookies: F,
    session: F,
    user: F,
}

const W: Want = Want {
    client: None,
    ts: None,
    method: None,
    target: None,
    protocol: None,
    status: None,
    bytes: None,
    duration_ms: None,
    referrer: None,
    user_agent: None,
    host: None,
    upstream: None,
    cookies: None,
    session: None,
    user: None,
};

#[allow(clippy::large_enum_variant)] // test tables are `const`: no boxing
enum Expect {
    Ok(Want),
    Err(RejectKind),
}

struct Case {
    name: &'static str,
    /// Lines fed first (headers), each must be rejected as `Header`.
    pre: &'static [&'static str],
    line: &'static str,
    expect: Expect,
}

const fn ok(name: &'static str, line: &'static str, want: Want) -> Case {
    Case {
        name,
        pre: &[],
        line,
        expect: Expect::Ok(want),
    }
}

const fn err(name: &'static str, line: &'static str, kind: RejectKind) -> Case {
    Case {
        name,
        pre: &[],
        line,
        expect: Expect::Err(kind),
    }
}

const fn with_pre(mut c: Case, pre: &'static [&'static str]) -> Case {
    c.pre = pre;
    c
}

fn ts_string(r: &RawRecord<'_>) -> Option<String> {
    r.ts.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
}

fn check_field(case: &str, field: &str, got: &Option<std::borrow::Cow<'_, str>>, want: F) {
    if let Some(want) = want {
        assert_eq!(got.as_deref(), want, "{case}: {field}");
    }
}

fn check_record(case: &str, r: &RawRecord<'_>, w: &Want) {
    assert!(r.ts.is_some(), "{case}: a parsed record always has a time");
    assert!(
        r.status.is_some_and(|s| (100..=999).contains(&s)),
        "{case}: status in range"
    );
    if let Some(ts) = w.ts {
        assert_eq!(ts_string(r).as_deref(), Some(ts), "{case}: ts");
    }
    check_field(case, "client", &r.client, w.client);
    check_field(case, "method", &r.method, w.method);
    check_field(case, "target", &r.target, w.target);
    check_field(case, "protocol", &r.protocol, w.protocol);
    check_field(case, "referrer", &r.referrer, w.referrer);
    check_field(case, "user_agent", &r.user_agent, w.user_agent);
    check_field(case, "host", &r.host, w.host);
    check_field(case, "upstream", &r.upstream, w.upstream);
    check_field(case, "cookies", &r.cookies, w.cookies);
    check_field(case, "session", &r.session, w.session);
    check_field(case, "user", &r.user, w.user);
    if let Some(s) = w.status {
        assert_eq!(r.status, Some(s), "{case}: status");
    }
    if let Some(b) = w.bytes {
        assert_eq!(r.bytes, b, "{case}: bytes");
    }
    if let Some(d) = w.duration_ms {
        match (r.duration_ms, d) {
            (Some(got), Some(want)) => {
                assert!(
                    (got - want).abs() < 1e-6,
                    "{case}: duration_ms {got} != {want}"
                )
            }
            (got, want) => assert_eq!(got, want, "{case}: duration_ms"),
        }
    }
    for (field, value) in [
        ("client", &r.client),
        ("method", &r.method),
        ("target", &r.target),
        ("protocol", &r.protocol),
        ("referrer", &r.referrer),
        ("user_agent", &r.user_agent),
        ("host", &r.host),
        ("upstream", &r.upstream),
        ("cookies", &r.cookies),
        ("session", &r.session),
        ("user", &r.user),
    ] {
        if let Some(v) = value.as_deref() {
            assert!(
                v != "-" && !v.is_empty(),
                "{case}: {field} is {v:?}, must be None"
            );
        }
    }
}

fn run_cases(format: &dyn LineFormat, cases: &[Case]) {
    for case in cases {
        let mut state = FormatState::default();
        for pre in case.pre {
            let e = format.parse(pre, &mut state).expect_err(case.name);
            assert_eq!(
                e.kind,
                RejectKind::Header,
                "{}: pre-line {pre:?}",
                case.name
            );
        }
        let got = format.parse(case.line, &mut state);
        match (&case.expect, got) {
            (Expect::Ok(want), Ok(rec)) => check_record(case.name, &rec, want),
            (Expect::Err(kind), Err(e)) => {
                assert_eq!(
                    e.kind, *kind,
                    "{}: reject kind (reason: {})",
                    case.name, e.reason
                );
                assert!(!e.reason.is_empty(), "{}: a reject has a reason", case.name);
            }
            (Expect::Ok(_), Err(e)) => {
                panic!("{}: rejected as {} ({})", case.name, e.kind, e.reason)
            }
            (Expect::Err(kind), Ok(rec)) => {
                panic!("{}: expected {kind}, parsed {rec:?}", case.name)
            }
        }
    }
}

// ---------------------------------------------------------------------------
// W3C / IIS.

const IIS_FULL_FIELDS: &str = "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs-version cs(User-Agent) cs(Cookie) cs(Referer) cs-host sc-status sc-substatus sc-win32-status sc-bytes cs-bytes time-taken";

const W3C_CASES: &[Case] = &[
    ok(
        "IIS default layout without a header",
        "2015-01-13 00:32:17 100.79.192.81 GET /robots.txt - 80 - 157.55.39.146 Mozilla/5.0+(compatible;+bingbot/2.0;++http://www.bing.com/bingbot.htm) - 404 0 2 283",
        Want {
            ts: Some("2015-01-13T00:32:17+00:00"),
            client: v("157.55.39.146"),
            method: v("GET"),
            target: v("/robots.txt"),
            status: Some(404),
            bytes: Some(None),
            duration_ms: Some(Some(283.0)),
            user_agent: v("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"),
            referrer: NO,
            user: NO,
            host: NO,
            protocol: NO,
            ..W
        },
    ),
    ok(
        "IIS default layout plus sc-bytes cs-bytes without a header",
        "2015-01-13 00:32:17 100.79.192.81 GET /robots.txt - 80 - 157.55.39.146 curl/8.0 - 404 0 2 1405 242 157",
        Want { bytes: Some(Some(1405)), duration_ms: Some(Some(157.0)), user_agent: v("curl/8.0"), ..W },
    ),
    with_pre(
        ok(
            "full IIS layout: query, user, version, cookie, referrer, host",
            "2024-03-01 12:00:00 192.0.2.1 GET /search q=shoes&page=2 443 alice 198.51.100.23 HTTP/2 Mozilla/5.0+(X11;+Linux+x86_64) sid=abc123;+theme=dark https://www.example.org/ shop.example.com 200 0 0 5120 310 47",
            Want {
                client: v("198.51.100.23"),
                target: v("/search?q=shoes&page=2"),
                user: v("alice"),
                protocol: v("HTTP/2"),
                user_agent: v("Mozilla/5.0 (X11; Linux x86_64)"),
                cookies: v("sid=abc123; theme=dark"),
                referrer: v("https://www.example.org/"),
                host: v("shop.example.com"),
                status: Some(200),
                bytes: Some(Some(5120)),
                duration_ms: Some(Some(47.0)),
                ..W
            },
        ),
        &["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0", IIS_FULL_FIELDS],
    ),
    with_pre(
        ok(
            "byte order mark, CRLF, fraction of a second, IPv6 client",
            "2024-03-01 12:00:00.250 2001:db8::7 GET / 200\r",
            Want { ts: Some("2024-03-01T12:00:00.250+00:00"), client: v("2001:db8::7"), target: v("/"), ..W },
        ),
        &["\u{feff}#Fields: date time c-ip cs-method cs-uri-stem sc-status\r"],
    ),
    with_pre(
        ok(
            "quoted value with doubled quotes keeps its plus signs",
            r#"2024-03-01 12:00:00 192.0.2.9 GET /a 200 "Agent ""X"" 1.0 (+http://x.example/)""#,
            Want { user_agent: v(r#"Agent "X" 1.0 (+http://x.example/)"#), ..W },
        ),
        &["#Fields: date time c-ip cs-method cs-uri-stem sc-status cs(User-Agent)"],
    ),
    with_pre(
        ok(
            "Incapsula-style quoted values and host/path cs-uri",
            r#""2017-06-28" "07:26:35" "203.0.113.5" "www.example.com/page.php" "variable=test" "GET" "200" "" "Mozilla/5.0 (X11)""#,
            Want {
                client: v("203.0.113.5"),
                host: v("www.example.com"),
                target: v("/page.php?variable=test"),
                method: v("GET"),
                referrer: NO,
                user_agent: v("Mozilla/5.0 (X11)"),
                ..W
            },
        ),
        &["#Fields: date time c-ip cs-uri cs-uri-query cs-method sc-status cs(Referrer) cs(User-Agent)"],
    ),
    with_pre(
        ok(
            "absolute cs-uri with its own query",
            "2024-03-01 12:00:00 192.0.2.9 http://proxy.example.net:8080/p?q=1 200",
            Want { host: v("proxy.example.net"), target: v("/p?q=1"), ..W },
        ),
        &["#Fields: date time c-ip cs-uri sc-status"],
    ),
    with_pre(
        ok(
            "TimeTakenMS and -local date/time names, case-insensitive",
            "2012-08-15 17:00:00.363 GET /x 200 109",
            Want { ts: Some("2012-08-15T17:00:00.363+00:00"), duration_ms: Some(Some(109.0)), client: NO, ..W },
        ),
        &["#Fields: DATE-LOCAL Time-Local cs-method cs-uri-stem sc-status TimeTakenMS"],
    ),
    with_pre(
        ok(
            "x-forwarded-for is ignored by default",
            "2024-03-01 12:00:00 10.0.0.5 GET / 200 203.0.113.77,+10.0.0.1",
            Want { client: v("10.0.0.5"), ..W },
        ),
        &["#Fields: date time c-ip cs-method cs-uri-stem sc-status x-forwarded-for"],
    ),
    err("whitespace-only line", "   \t ", RejectKind::Empty),
    err("comment line", "#Software: Microsoft Internet Information Services 8.5", RejectKind::Header),
    err(
        "status not a number",
        "2015-01-13 00:32:17 100.79.192.81 GET /robots.txt - 80 - 157.55.39.146 curl - 2x0 0 2 283",
        RejectKind::BadStatus,
    ),
    err(
        "status below 100",
        "2015-01-13 00:32:17 100.79.192.81 GET /robots.txt - 80 - 157.55.39.146 curl - 99 0 2 283",
        RejectKind::BadStatus,
    ),
    err(
        "status above 999",
        "2015-01-13 00:32:17 100.79.192.81 GET /robots.txt - 80 - 157.55.39.146 curl - 1000 0 2 283",
        RejectKind::BadStatus,
    ),
    err(
        "status missing",
        "2015-01-13 00:32:17 100.79.192.81 GET /robots.txt - 80 - 157.55.39.146 curl - - 0 2 283",
        RejectKind::BadStatus,
    ),
    err(
        "bytes not a number",
        "2015-01-13 00:32:17 100.79.192.81 GET /robots.txt - 80 - 157.55.39.146 curl - 200 0 0 12k 242 157",
        RejectKind::BadNumber,
    ),
    err(
        "time-taken not a number",
        "2015-01-13 00:32:17 100.79.192.81 GET /robots.txt - 80 - 157.55.39.146 curl - 200 0 0 fast",
        RejectKind::BadNumber,
    ),
    err(
        "month 13",
        "2015-13-13 00:32:17 100.79.192.81 GET /robots.txt - 80 - 157.55.39.146 curl - 200 0 0 1",
        RejectKind::BadTimestamp,
    ),
    err(
        "hour 25",
        "2015-01-13 25:32:17 100.79.192.81 GET /robots.txt - 80 - 157.55.39.146 curl - 200 0 0 1",
        RejectKind::BadTimestamp,
    ),
    err("too few values for the default layout", "2015-01-13 00:32:17 GET / 200", RejectKind::Malformed),
    with_pre(
        err("more values than #Fields declares", "2024-03-01 12:00:00 GET / 200 extra", RejectKind::Malformed),
        &["#Fields: date time cs-method cs-uri-stem sc-status"],
    ),
    with_pre(
        err("unterminated quote", r#"2024-03-01 12:00:00 GET "/ 200"#, RejectKind::Malformed),
        &["#Fields: date time cs-method cs-uri-stem sc-status"],
    ),
    with_pre(
        err("layout without a date", "16:44:49 1.1.1.1 [2]USER anonymous 331", RejectKind::BadTimestamp),
        &["#Fields: time c-ip cs-method cs-uri-stem sc-status"],
    ),
];

#[test]
fn w3c_cases() {
    let f = W3cFormat::w3c();
    assert_eq!(f.name(), "w3c");
    run_cases(&f, W3C_CASES);
}

#[test]
fn w3c_fields_header_updates_state_and_can_change_mid_file() {
    let f = W3cFormat::w3c();
    let mut state = FormatState::default();
    let e = f
        .parse(
            "#Fields: date time c-ip cs-method cs-uri-stem sc-status",
            &mut state,
        )
        .unwrap_err();
    assert_eq!(e.kind, RejectKind::Header);
    assert_eq!(state.fields.as_deref().map(<[String]>::len), Some(6));
    let r = f
        .parse("2024-03-01 12:00:00 192.0.2.1 GET /one 200", &mut state)
        .unwrap();
    assert_eq!(r.target.as_deref(), Some("/one"));

    f.parse(
        "#Fields: date time cs-uri-stem sc-status sc-bytes c-ip",
        &mut state,
    )
    .unwrap_err();
    let r = f
        .parse("2024-03-01 12:00:01 /two 404 99 192.0.2.2", &mut state)
        .unwrap();
    assert_eq!(
        (r.target.as_deref(), r.status, r.bytes),
        (Some("/two"), Some(404), Some(99))
    );
    assert_eq!(r.client.as_deref(), Some("192.0.2.2"));
    assert_eq!(r.method, None);

    // An empty #Fields: directive leaves the layout as it was.
    f.parse("#Fields:", &mut state).unwrap_err();
    assert_eq!(state.fields.as_deref().map(<[String]>::len), Some(6));
}

#[test]
fn w3c_trusted_forwarded_for_replaces_the_client() {
    let f = W3cFormat::w3c().trust_forwarded_for(true);
    let mut state = FormatState::default();
    f.parse(
        "#Fields: date time c-ip cs-method cs-uri-stem sc-status x-forwarded-for",
        &mut state,
    )
    .unwrap_err();
    let r = f
        .parse(
            "2024-03-01 12:00:00 10.0.0.5 GET / 200 203.0.113.77,+10.0.0.1",
            &mut state,
        )
        .unwrap();
    assert_eq!(r.client.as_deref(), Some("203.0.113.77"));
    let r = f
        .parse("2024-03-01 12:00:00 10.0.0.5 GET / 200 -", &mut state)
        .unwrap();
    assert_eq!(
        r.client.as_deref(),
        Some("10.0.0.5"),
        "a `-` header keeps c-ip"
    );
}

// ---------------------------------------------------------------------------
// CloudFront.

const CLOUDFRONT_CASES: &[Case] = &[
    ok(
        "33-field line without a header",
        "2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\td111111abcdef8.cloudfront.net\t/index.html\t200\thttps://www.example.com/start%3Fx%3D1\tMozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)\tlang=en\tsession-id=abc%3D%3D;%20theme=dark\tHit\tSOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==\twww.example.com\thttps\t157\t0.146\t-\tTLSv1.2\tECDHE-RSA-AES128-GCM-SHA256\tHit\tHTTP/2.0\t-\t-\t11040\t0.001\tHit\ttext/html\t78\t-\t-",
        Want {
            ts: Some("2019-12-04T21:02:31+00:00"),
            client: v("192.0.2.100"),
            method: v("GET"),
            host: v("www.example.com"),
            target: v("/index.html?lang=en"),
            protocol: v("HTTP/2.0"),
            status: Some(200),
            bytes: Some(Some(392)),
            duration_ms: Some(Some(146.0)),
            referrer: v("https://www.example.com/start?x=1"),
            user_agent: v("Mozilla/5.0 (Windows NT 10.0; Win64; x64)"),
            cookies: v("session-id=abc==; theme=dark"),
            ..W
        },
    ),
    with_pre(
        ok(
            "older 12-field layout from the header; cs(Host) when there is no x-host-header",
            "2014-05-23\t01:13:11\tFRA2\t182\t192.0.2.10\tGET\td111111abcdef8.cloudfront.net\t/view/my/file.html\t304\t-\tSlackbot%201.0%20(+https://api.slack.com/robots)\t-",
            Want {
                host: v("d111111abcdef8.cloudfront.net"),
                target: v("/view/my/file.html"),
                status: Some(304),
                referrer: NO,
                user_agent: v("Slackbot 1.0 (+https://api.slack.com/robots)"),
                duration_ms: Some(None),
                ..W
            },
        ),
        &[
            "#Version: 1.0",
            "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query",
        ],
    ),
    ok(
        "double-encoded user agent, empty tab-separated value",
        "2014-05-23\t01:13:11\tFRA2\t\t192.0.2.10\tGET\td1.cloudfront.net\t/\t200\t-\tMozilla/5.0%2520(X11;%2520Linux)",
        Want { bytes: Some(None), user_agent: v("Mozilla/5.0 (X11; Linux)"), ..W },
    ),
    ok(
        "space-separated copy of a CloudFront line",
        "2014-05-23 01:13:11 FRA2 182 192.0.2.10 GET d1.cloudfront.net / 200",
        Want { client: v("192.0.2.10"), status: Some(200), bytes: Some(Some(182)), ..W },
    ),
    err(
        "fewer than 9 values without a header",
        "2014-05-23\t01:13:11\tFRA2\t182\t192.0.2.10\tGET\td1.cloudfront.net\t/",
        RejectKind::Malformed,
    ),
    err(
        "time-taken not a number",
        "2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\td1.cloudfront.net\t/\t200\t-\t-\t-\t-\tHit\tid\twww.example.com\thttps\t157\t0.1x",
        RejectKind::BadNumber,
    ),
    err(
        "status 000",
        "2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\td1.cloudfront.net\t/\t000",
        RejectKind::BadStatus,
    ),
];

#[test]
fn cloudfront_cases() {
    let f = W3cFormat::cloudfront();
    assert_eq!(f.name(), "cloudfront");
    run_cases(&f, CLOUDFRONT_CASES);
}

// ---------------------------------------------------------------------------
// AWS ELB / ALB / S3.

const ELB_CASES: &[Case] = &[
    ok(
        "HTTP request through a classic load balancer",
        r#"2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000073 0.001048 0.000057 200 200 0 29 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.38.0" - -"#,
        Want {
            ts: Some("2015-05-13T23:39:43.945958+00:00"),
            client: v("192.168.131.39"),
            upstream: v("10.0.0.1:80"),
            duration_ms: Some(Some(1.178)),
            status: Some(200),
            bytes: Some(Some(29)),
            method: v("GET"),
            target: v("/"),
            host: v("www.example.com"),
            protocol: v("HTTP/1.1"),
            user_agent: v("curl/7.38.0"),
            referrer: NO,
            ..W
        },
    ),
    ok(
        "backend unavailable: -1 times, no backend, query kept",
        r#"2015-05-13T23:39:43.945958Z my-lb [2001:db8::1]:54321 - -1 -1 -1 504 0 0 0 "GET https://www.example.com:443/x?y=1 HTTP/1.1" "-" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2"#,
        Want {
            client: v("2001:db8::1"),
            upstream: NO,
            duration_ms: Some(None),
            status: Some(504),
            bytes: Some(Some(0)),
            target: v("/x?y=1"),
            user_agent: NO,
            ..W
        },
    ),
    ok(
        "older 12-field line without user agent; escaped quote",
        r#"2014-01-01T00:00:00Z lb 203.0.113.1:1 10.0.0.1:80 0.1 0.2 0.3 301 301 0 0 "GET http://example.com/a\"b HTTP/1.0""#,
        Want {
            duration_ms: Some(Some(600.0)),
            target: v(r#"/a"b"#),
            protocol: v("HTTP/1.0"),
            user_agent: NO,
            ..W
        },
    ),
    err(
        "TCP listener line",
        r#"2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.001069 0.000028 0.000041 - - 82 305 "- - - " "-" - -"#,
        RejectKind::BadStatus,
    ),
    err("comment", "# not a request", RejectKind::Header),
    err("empty", "", RejectKind::Empty),
    err(
        "date and time separated by a space",
        r#"2015-05-13 23:39:43 lb 1.2.3.4:1 - 0 0 0 200 200 0 0 "GET / HTTP/1.1" "-" - -"#,
        RejectKind::BadTimestamp,
    ),
    err(
        "unparseable timestamp",
        r#"yesterday lb 1.2.3.4:1 - 0 0 0 200 200 0 0 "GET / HTTP/1.1" "-" - -"#,
        RejectKind::BadTimestamp,
    ),
    err(
        "sent_bytes not a number",
        r#"2015-05-13T23:39:43Z lb 1.2.3.4:1 - 0 0 0 200 200 0 x "GET / HTTP/1.1" "-" - -"#,
        RejectKind::BadNumber,
    ),
    err(
        "processing time not a number",
        r#"2015-05-13T23:39:43Z lb 1.2.3.4:1 - 0 abc 0 200 200 0 1 "GET / HTTP/1.1" "-" - -"#,
        RejectKind::BadNumber,
    ),
    err(
        "unterminated request",
        r#"2015-05-13T23:39:43Z lb 1.2.3.4:1 - 0 0 0 200 200 0 1 "GET / HTTP/1.1"#,
        RejectKind::Malformed,
    ),
    err(
        "too few fields",
        "2015-05-13T23:39:43Z lb 1.2.3.4:1 - 0 0 0 200",
        RejectKind::Malformed,
    ),
];

const ALB_CASES: &[Case] = &[
    ok(
        "HTTP request through an application load balancer",
        r#"http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-""#,
        Want {
            ts: Some("2018-07-02T22:23:00.186641+00:00"),
            client: v("192.168.131.39"),
            upstream: v("10.0.0.1:80"),
            duration_ms: Some(Some(1.0)),
            status: Some(200),
            bytes: Some(Some(366)),
            host: v("www.example.com"),
            target: v("/"),
            user_agent: v("curl/7.46.0"),
            ..W
        },
    ),
    ok(
        "HTTPS with a TLS server name: domain_name is the host",
        r#"https 2018-07-02T22:23:00.186641Z app/lb/1 203.0.113.12:2817 10.0.0.1:80 0.086 0.048 0.037 201 201 0 57 "POST https://www.example.com:443/api/v1?x=2 HTTP/2.0" "Mozilla/5.0 (X11)" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/t/1 "Root=1-5" "sni.example.com" "arn:aws:acm:us-east-2:123456789012:certificate/1" 1 2018-07-02T22:22:48.364000Z "authenticate,forward" "-" "-" "10.0.0.1:80" "201" "-" "-" TID_1"#,
        Want {
            method: v("POST"),
            host: v("sni.example.com"),
            target: v("/api/v1?x=2"),
            protocol: v("HTTP/2.0"),
            duration_ms: Some(Some(171.0)),
            status: Some(201),
            ..W
        },
    ),
    ok(
        "no target: -1 times, 502",
        r#"h2 2018-07-02T22:23:00.186641Z app/lb/1 203.0.113.12:2817 - -1 -1 -1 502 - 34 366 "GET https://www.example.com:443/ HTTP/2.0" "curl/8.0""#,
        Want {
            upstream: NO,
            duration_ms: Some(None),
            status: Some(502),
            ..W
        },
    ),
    err(
        "unknown request type",
        r#"tcp 2018-07-02T22:23:00.186641Z app/lb/1 203.0.113.12:2817 - -1 -1 -1 502 - 34 366 "GET / HTTP/1.1" "curl/8.0""#,
        RejectKind::Malformed,
    ),
    err(
        "status out of range",
        r#"wss 2018-07-02T22:23:00.186641Z app/lb/1 203.0.113.12:2817 - 0 0 0 42 - 34 366 "GET / HTTP/1.1" "curl/8.0""#,
        RejectKind::BadStatus,
    ),
];

const S3_CASES: &[Case] = &[
    ok(
        "REST request",
        r#"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be awsexamplebucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE REST.GET.VERSIONING - "GET /awsexamplebucket1?versioning HTTP/1.1" 200 - 113 - 7 - "-" "S3Console/0.4" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader awsexamplebucket1.s3.us-west-1.amazonaws.com TLSV1.2 arn:aws:s3:us-west-1:123456789012:accesspoint/example-AP Yes"#,
        Want {
            ts: Some("2019-02-06T00:00:38+00:00"),
            client: v("192.0.2.3"),
            host: v("awsexamplebucket1"),
            user: v("79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"),
            method: v("GET"),
            target: v("/awsexamplebucket1?versioning"),
            protocol: v("HTTP/1.1"),
            status: Some(200),
            bytes: Some(Some(113)),
            duration_ms: Some(Some(7.0)),
            referrer: NO,
            user_agent: v("S3Console/0.4"),
            ..W
        },
    ),
    ok(
        "website request without request_uri: method from the operation, target from the key",
        r#"owner www.example.com [10/Feb/2012:16:42:07 -0500] 198.51.100.4 - REQ1 WEBSITE.HEAD.OBJECT index.html "-" 304 - - 368 3 - "https://www.example.com/" "curl/8.0""#,
        Want {
            ts: Some("2012-02-10T16:42:07-05:00"),
            user: NO,
            method: v("HEAD"),
            target: v("/index.html"),
            protocol: NO,
            bytes: Some(None),
            referrer: v("https://www.example.com/"),
            ..W
        },
    ),
    ok(
        "ten fields are enough",
        r#"owner bucket [10/Feb/2012:16:42:07 +0000] 198.51.100.4 - REQ1 REST.GET.OBJECT k "GET /k HTTP/1.1" 200"#,
        Want {
            bytes: Some(None),
            duration_ms: Some(None),
            user_agent: NO,
            ..W
        },
    ),
    err(
        "status missing",
        r#"owner bucket [10/Feb/2012:16:42:07 +0000] 198.51.100.4 - REQ1 REST.GET.OBJECT k "GET /k HTTP/1.1" - - 0"#,
        RejectKind::BadStatus,
    ),
    err(
        "time not in brackets",
        r#"owner bucket 10/Feb/2012:16:42:07 198.51.100.4 - REQ1 REST.GET.OBJECT k "GET /k HTTP/1.1" 200 - 1"#,
        RejectKind::BadTimestamp,
    ),
    err(
        "unterminated bracket",
        r#"owner bucket [10/Feb/2012:16:42:07 +0000 198.51.100.4"#,
        RejectKind::Malformed,
    ),
    err(
        "total_time not a number",
        r#"owner bucket [10/Feb/2012:16:42:07 +0000] 198.51.100.4 - REQ1 REST.GET.OBJECT k "GET /k HTTP/1.1" 200 - 1 1 slow"#,
        RejectKind::BadNumber,
    ),
];

#[test]
fn elb_cases() {
    assert_eq!(Elb.name(), "elb");
    run_cases(&Elb, ELB_CASES);
}

#[test]
fn alb_cases() {
    assert_eq!(Alb.name(), "alb");
    run_cases(&Alb, ALB_CASES);
}

#[test]
fn s3_cases() {
    assert_eq!(S3.name(), "s3");
    run_cases(&S3, S3_CASES);
}

// ---------------------------------------------------------------------------
// Squid.

const SQUID_CASES: &[Case] = &[
    ok(
        "cache miss with an absolute URL",
        "1286536309.450     92 192.0.2.68 TCP_MISS/200 1464 GET http://www.example.com/index.html?a=1 - HIER_DIRECT/203.0.113.5 text/html",
        Want {
            ts: Some("2010-10-08T11:11:49.450+00:00"),
            duration_ms: Some(Some(92.0)),
            client: v("192.0.2.68"),
            status: Some(200),
            bytes: Some(Some(1464)),
            method: v("GET"),
            host: v("www.example.com"),
            target: v("/index.html?a=1"),
            upstream: v("203.0.113.5"),
            user: NO,
            ..W
        },
    ),
    ok(
        "CONNECT tunnel keeps the authority-form target",
        "1286536310.123  60012 192.0.2.68 TCP_TUNNEL/200 5321 CONNECT mail.example.com:443 alice HIER_DIRECT/198.51.100.7 -",
        Want {
            ts: Some("2010-10-08T11:11:50.123+00:00"),
            method: v("CONNECT"),
            host: v("mail.example.com"),
            target: v("mail.example.com:443"),
            user: v("alice"),
            upstream: v("198.51.100.7"),
            ..W
        },
    ),
    ok(
        "denied with an error URL, no peer",
        "1286536311.000 0 192.0.2.68 TCP_DENIED/403 3911 GET error:transaction-end-before-headers - HIER_NONE/- text/html",
        Want { status: Some(403), host: NO, target: v("error:transaction-end-before-headers"), upstream: NO, ..W },
    ),
    ok(
        "seven fields",
        "1286536311 5 192.0.2.68 TCP_HIT/200 10 GET http://a.example/",
        Want { ts: Some("2010-10-08T11:11:51+00:00"), upstream: NO, user: NO, ..W },
    ),
    err(
        "no reply sent",
        "1286536311.000 0 192.0.2.68 NONE/000 0 NONE error:invalid-request - HIER_NONE/- -",
        RejectKind::BadStatus,
    ),
    err("result code without status", "1286536311.000 0 192.0.2.68 TCP_MISS 0 GET http://a/ - - -", RejectKind::BadStatus),
    err("time not epoch", "yesterday 0 192.0.2.68 TCP_MISS/200 0 GET http://a/ - - -", RejectKind::BadTimestamp),
    err("time in milliseconds", "1286536311000 0 192.0.2.68 TCP_MISS/200 0 GET http://a/ - - -", RejectKind::BadTimestamp),
    err("bytes not a number", "1286536311.000 0 192.0.2.68 TCP_MISS/200 many GET http://a/ - - -", RejectKind::BadNumber),
    err("elapsed not a number", "1286536311.000 x 192.0.2.68 TCP_MISS/200 1 GET http://a/ - - -", RejectKind::BadNumber),
    err("six fields", "1286536311.000 0 192.0.2.68 TCP_MISS/200 0 GET", RejectKind::Malformed),
    err("blank", "  ", RejectKind::Empty),
];

#[test]
fn squid_cases() {
    assert_eq!(Squid.name(), "squid");
    run_cases(&Squid, SQUID_CASES);
}

// ---------------------------------------------------------------------------
// JSON: Caddy, Traefik, nginx.

const CADDY_CASES: &[Case] = &[
    ok(
        "access entry",
        r#"{"level":"info","ts":1703373474.8155608,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"192.0.2.1","remote_port":"64985","client_ip":"203.0.113.9","proto":"HTTP/2.0","method":"GET","host":"example.com","uri":"/beta/?x=1","headers":{"User-Agent":["Mozilla/5.0 (X11)"],"Referer":["https://example.com/"],"Cookie":["a=1","sid=xyz"],"Accept":["*/*"]},"tls":{"resumed":false,"version":772}},"bytes_read":0,"user_id":"bob","duration":0.001335486,"size":3609,"status":200,"resp_headers":{"Server":["Caddy"]}}"#,
        Want {
            ts: Some("2023-12-23T23:17:54.815561+00:00"),
            client: v("203.0.113.9"),
            method: v("GET"),
            target: v("/beta/?x=1"),
            protocol: v("HTTP/2.0"),
            host: v("example.com"),
            user_agent: v("Mozilla/5.0 (X11)"),
            referrer: v("https://example.com/"),
            cookies: v("a=1; sid=xyz"),
            user: v("bob"),
            status: Some(200),
            bytes: Some(Some(3609)),
            duration_ms: Some(Some(1.335486)),
            ..W
        },
    ),
    ok(
        "docker compose prefix, ISO time, empty user, lower-case header names",
        r#"caddy  | {"ts":"2024-01-02T03:04:05.678Z","request":{"remote_ip":"192.0.2.1","method":"HEAD","uri":"/","headers":{"user-agent":["curl/8.0"]}},"user_id":"","status":204,"size":0,"duration":1500000}"#,
        Want {
            ts: Some("2024-01-02T03:04:05.678+00:00"),
            client: v("192.0.2.1"),
            method: v("HEAD"),
            user_agent: v("curl/8.0"),
            user: NO,
            referrer: NO,
            duration_ms: Some(Some(1.5)),
            bytes: Some(Some(0)),
            ..W
        },
    ),
    ok(
        "remote_addr with port, Go duration string, epoch milliseconds, escaped uri",
        r#"{"ts":1703373474815,"request":{"remote_addr":"[2001:db8::1]:4711","uri":"/a\"b"},"status":301,"duration":"2.5ms"}"#,
        Want {
            ts: Some("2023-12-23T23:17:54.815+00:00"),
            client: v("2001:db8::1"),
            target: v(r#"/a"b"#),
            duration_ms: Some(Some(2.5)),
            bytes: Some(None),
            ..W
        },
    ),
    err(
        "runtime message",
        r#"{"level":"info","ts":1761019822.31575,"msg":"adapted config to JSON","adapter":"caddyfile"}"#,
        RejectKind::Header,
    ),
    err("not JSON", "caddy exited with code 0", RejectKind::BadJson),
    err(
        "truncated JSON",
        r#"{"ts":1,"request":{"uri":"/""#,
        RejectKind::BadJson,
    ),
    err(
        "request is not an object",
        r#"{"ts":1703373474,"request":"GET /","status":200}"#,
        RejectKind::BadJson,
    ),
    err(
        "trailing garbage",
        r#"{"ts":1703373474,"request":{},"status":200} x"#,
        RejectKind::BadJson,
    ),
    err(
        "no ts",
        r#"{"request":{"uri":"/"},"status":200}"#,
        RejectKind::BadTimestamp,
    ),
    err(
        "no status",
        r#"{"ts":1703373474,"request":{"uri":"/"}}"#,
        RejectKind::BadStatus,
    ),
    err(
        "status 0 (aborted)",
        r#"{"ts":1703373474,"request":{"uri":"/"},"status":0}"#,
        RejectKind::BadStatus,
    ),
    err(
        "size not a number",
        r#"{"ts":1703373474,"request":{"uri":"/"},"status":200,"size":"big"}"#,
        RejectKind::BadNumber,
    ),
    err(
        "negative duration",
        r#"{"ts":1703373474,"request":{"uri":"/"},"status":200,"duration":-1.5}"#,
        RejectKind::BadNumber,
    ),
    err("comment", "# caddy log", RejectKind::Header),
];

#[test]
fn caddy_cases() {
    let f = JsonFormat::caddy();
    assert_eq!(f.name(), "caddy");
    run_cases(&f, CADDY_CASES);
}

const TRAEFIK_CASES: &[Case] = &[
    ok(
        "access entry",
        r#"{"ClientAddr":"192.0.2.10:52458","ClientHost":"192.0.2.10","ClientPort":"52458","ClientUsername":"-","DownstreamContentSize":15,"DownstreamStatus":200,"Duration":10002425284,"OriginContentSize":15,"OriginDuration":10002302842,"OriginStatus":504,"RequestHost":"example.com","RequestMethod":"GET","RequestPath":"/my/app?id=1","RequestProtocol":"HTTP/1.1","RouterName":"my-router@file","ServiceAddr":"10.0.0.2:80","ServiceName":"svc@file","ServiceURL":{"Scheme":"http","Host":"10.0.0.2:80","Path":""},"StartLocal":"2023-08-11T13:39:21.773360139+02:00","StartUTC":"2023-08-11T11:39:21.773360139Z","request_Referer":"https://example.com/","request_User-Agent":"curl/8.0","level":"info","msg":"","time":"2023-08-11T11:41:25Z"}"#,
        Want {
            ts: Some("2023-08-11T11:39:21.773360139+00:00"),
            client: v("192.0.2.10"),
            status: Some(200),
            bytes: Some(Some(15)),
            duration_ms: Some(Some(10002.425284)),
            method: v("GET"),
            target: v("/my/app?id=1"),
            protocol: v("HTTP/1.1"),
            host: v("example.com"),
            upstream: v("10.0.0.2:80"),
            referrer: v("https://example.com/"),
            user_agent: v("curl/8.0"),
            user: NO,
            ..W
        },
    ),
    ok(
        "ClientAddr only, status as text, ServiceURL only, StartLocal only",
        r#"{"ClientAddr":"[2001:db8::5]:443","DownstreamStatus":"404","RequestAddr":"example.org:8443","RequestMethod":"GET","RequestPath":"/x","ServiceURL":{"Host":"backend:8080"},"StartLocal":"2023-08-11T13:39:21+02:00"}"#,
        Want {
            ts: Some("2023-08-11T13:39:21+02:00"),
            client: v("2001:db8::5"),
            status: Some(404),
            host: v("example.org:8443"),
            upstream: v("backend:8080"),
            duration_ms: Some(None),
            ..W
        },
    ),
    ok(
        "OriginStatus when DownstreamStatus is absent; ServiceURL as a string",
        r#"{"ClientHost":"192.0.2.1","OriginStatus":502,"RequestMethod":"GET","RequestPath":"/","ServiceURL":"http://backend:8080","time":"2023-08-11T11:41:25"}"#,
        Want {
            ts: Some("2023-08-11T11:41:25+00:00"),
            status: Some(502),
            upstream: v("http://backend:8080"),
            ..W
        },
    ),
    err(
        "runtime message",
        r#"{"level":"info","msg":"Configuration loaded from flags.","time":"2023-08-11T11:41:25Z"}"#,
        RejectKind::Header,
    ),
    err(
        "no time",
        r#"{"DownstreamStatus":200,"RequestMethod":"GET"}"#,
        RejectKind::BadTimestamp,
    ),
    err(
        "no status",
        r#"{"RequestMethod":"GET","StartUTC":"2023-08-11T11:39:21Z"}"#,
        RejectKind::BadStatus,
    ),
    err(
        "Duration not a number",
        r#"{"DownstreamStatus":200,"Duration":"long","StartUTC":"2023-08-11T11:39:21Z"}"#,
        RejectKind::BadNumber,
    ),
    err(
        "bad time",
        r#"{"DownstreamStatus":200,"StartUTC":"not a time"}"#,
        RejectKind::BadTimestamp,
    ),
];

#[test]
fn traefik_cases() {
    let f = JsonFormat::traefik();
    assert_eq!(f.name(), "traefik-json");
    run_cases(&f, TRAEFIK_CASES);
}

const NGINX_CASES: &[Case] = &[
    ok(
        "time_local, request line, numbers as strings",
        r#"{"remote_addr":"127.0.0.1","remote_user":"-","time_local":"17/Nov/2013:06:31:32 -0500","request":"GET /api/dashboard/eTINhm5amq/ping?_=1384443873878 HTTP/1.1","status":"200","server":"127.0.0.1:3000","body_bytes_sent":"12","request_time":"0.004","sent":"171","http_referer":"https://www.example.com/#dashboard","http_user_agent":"Mozilla/5.0 (compatible; MSIE 9.0)","http_x_forwarded_for":"-"}"#,
        Want {
            ts: Some("2013-11-17T06:31:32-05:00"),
            client: v("127.0.0.1"),
            user: NO,
            method: v("GET"),
            target: v("/api/dashboard/eTINhm5amq/ping?_=1384443873878"),
            protocol: v("HTTP/1.1"),
            status: Some(200),
            host: v("127.0.0.1:3000"),
            bytes: Some(Some(12)),
            duration_ms: Some(Some(4.0)),
            referrer: v("https://www.example.com/#dashboard"),
            user_agent: v("Mozilla/5.0 (compatible; MSIE 9.0)"),
            ..W
        },
    ),
    ok(
        "time_iso8601 wins over time_local; separate method/uri/protocol; JSON numbers",
        r#"{"time_local":"01/Jan/2000:00:00:00 +0000","time_iso8601":"2024-05-01T10:00:00+02:00","remote_addr":"2001:db8::2","request_method":"POST","request_uri":"/form?a=1","server_protocol":"HTTP/2.0","status":201,"bytes_sent":800,"body_bytes_sent":512,"host":"www.example.com","upstream_addr":"10.0.0.3:8080","http_cookie":"sid=1; b=2","request_time":0.25}"#,
        Want {
            ts: Some("2024-05-01T10:00:00+02:00"),
            method: v("POST"),
            target: v("/form?a=1"),
            protocol: v("HTTP/2.0"),
            status: Some(201),
            bytes: Some(Some(512)),
            host: v("www.example.com"),
            upstream: v("10.0.0.3:8080"),
            cookies: v("sid=1; b=2"),
            duration_ms: Some(Some(250.0)),
            ..W
        },
    ),
    ok(
        "msec epoch; a null time_iso8601 falls through; request parts override the request line",
        r#"{"time_iso8601":null,"msec":"1700000000.123","request":"GET /old HTTP/1.0","request_uri":"/new","status":"304"}"#,
        Want {
            ts: Some("2023-11-14T22:13:20.123+00:00"),
            method: v("GET"),
            target: v("/new"),
            protocol: v("HTTP/1.0"),
            client: NO,
            ..W
        },
    ),
    ok(
        "nginx default escaping (\\xHH) is repaired",
        r#"{"remote_addr":"192.0.2.1","time_local":"17/Nov/2013:06:31:30 -0500","request":"GET /caf\xC3\xA9 HTTP/1.1","status":"200","http_user_agent":"Agent \x22quoted\x22"}"#,
        Want {
            target: v("/café"),
            user_agent: v(r#"Agent "quoted""#),
            ..W
        },
    ),
    err(
        "no time",
        r#"{"remote_addr":"192.0.2.1","status":"200"}"#,
        RejectKind::BadTimestamp,
    ),
    err(
        "bad time",
        r#"{"time_local":"17/Nov/2013","status":"200"}"#,
        RejectKind::BadTimestamp,
    ),
    err(
        "no status",
        r#"{"time_local":"17/Nov/2013:06:31:30 -0500"}"#,
        RejectKind::BadStatus,
    ),
    err(
        "status not a number",
        r#"{"time_local":"17/Nov/2013:06:31:30 -0500","status":"OK"}"#,
        RejectKind::BadStatus,
    ),
    err(
        "bytes not a number",
        r#"{"time_local":"17/Nov/2013:06:31:30 -0500","status":"200","body_bytes_sent":"12k"}"#,
        RejectKind::BadNumber,
    ),
    err(
        "request_time not a number",
        r#"{"time_local":"17/Nov/2013:06:31:30 -0500","status":"200","request_time":"0.0.1"}"#,
        RejectKind::BadNumber,
    ),
    err(
        "top level is an array",
        r#"[{"status":"200"}]"#,
        RejectKind::BadJson,
    ),
    err("unterminated", r#"{"status":"200""#, RejectKind::BadJson),
];

#[test]
fn nginx_json_cases() {
    let f = JsonFormat::nginx(JsonMapping::default());
    assert_eq!(f.name(), "nginx-json");
    run_cases(&f, NGINX_CASES);
}

#[test]
fn nginx_json_mapping_from_config() {
    let mapping: JsonMapping = serde_yaml::from_str(
        "client: [ip]\ntime: [date]\nuri: [path]\nbytes: [length]\nreferrer: [referrer]\nuser_agent: [user_agent]\nduration: [took_ms]\nduration_unit: ms\nsession: [sid]\n",
    )
    .unwrap();
    assert_eq!(mapping.duration_unit, DurationUnit::Milliseconds);
    assert_eq!(
        mapping.status,
        JsonMapping::default().status,
        "unspecified fields keep their defaults"
    );
    let f = JsonFormat::nginx(mapping);
    let line = r#"{"ip":"198.51.100.1","date":"2013-10-10T16:52:00+02:00","path":"/p?q=1","status":"200","length":192,"referrer":"-","user_agent":"UA","took_ms":"12.5","sid":"s-1","remote_addr":"10.0.0.1"}"#;
    let r = f.parse(line, &mut FormatState::default()).unwrap();
    check_record(
        "custom mapping",
        &r,
        &Want {
            client: v("198.51.100.1"),
            ts: Some("2013-10-10T16:52:00+02:00"),
            target: v("/p?q=1"),
            bytes: Some(Some(192)),
            referrer: NO,
            user_agent: v("UA"),
            duration_ms: Some(Some(12.5)),
            session: v("s-1"),
            ..W
        },
    );
    let e = serde_yaml::from_str::<JsonMapping>("clients: [ip]").unwrap_err();
    assert!(
        e.to_string().contains("clients"),
        "unknown keys are refused: {e}"
    );
}

// ---------------------------------------------------------------------------
// Sample files.

/// Outcome counts for a whole file.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    events: usize,
    rejects: BTreeMap<RejectKind, usize>,
}

impl Tally {
    fn lines(&self) -> usize {
        self.events + self.rejects.values().sum::<usize>()
    }
}

/// Parse every line of `text`, calling `each` on the records.
fn tally<'t>(
    format: &dyn LineFormat,
    text: &'t str,
    mut each: impl FnMut(usize, RawRecord<'t>),
) -> Tally {
    let mut state = FormatState::default();
    let mut t = Tally::default();
    for (i, line) in text.lines().enumerate() {
        match format.parse(line, &mut state) {
            Ok(r) => {
                check_record(&format!("line {}", i + 1), &r, &W);
                t.events += 1;
                each(i + 1, r);
            }
            Err(e) => *t.rejects.entry(e.kind).or_default() += 1,
        }
    }
    assert_eq!(
        t.lines(),
        text.lines().count(),
        "every line is an event or a reject"
    );
    t
}

fn repo_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/formats")
        .join(name)
}

fn read_repo(name: &str) -> String {
    let p = repo_data(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The shared third-party data directory, when present.
/// A Matomo sample (GPL-3.0: read in place, never copied), or `None` with a note.
fn matomo(name: &str) -> Option<String> {
    let Some(dir) = footfall_testkit::shared_data() else {
        println!("shared data directory not present: not run ({name})");
        return None;
    };
    let p = dir.join("format-samples-matomo").join(name);
    if !p.is_file() {
        println!("{} not present: not run", p.display());
        return None;
    }
    Some(std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

fn expect_tally(name: &str, t: &Tally, events: usize, rejects: &[(RejectKind, usize)]) {
    println!(
        "{name}: {} lines, {} events, rejects {:?}",
        t.lines(),
        t.events,
        t.rejects
    );
    let want: BTreeMap<RejectKind, usize> =
        rejects.iter().copied().filter(|(_, n)| *n > 0).collect();
    assert_eq!((t.events, &t.rejects), (events, &want), "{name}");
}

#[test]
fn lnav_w3c_samples() {
    use RejectKind::*;
    let f = W3cFormat::w3c();
    // (file, events, rejects by kind)
    type Expected = (&'static str, usize, &'static [(RejectKind, usize)]);
    let expected: &[Expected] = &[
        ("logfile_w3c.0", 1, &[(Header, 4)]),
        ("logfile_w3c.1", 1, &[(Header, 6)]),
        // FTP log: `time` without `date`.
        ("logfile_w3c.2", 0, &[(Header, 8), (BadTimestamp, 14)]),
        ("logfile_w3c.3", 3, &[(Header, 4), (Empty, 3)]),
        // The second request has an empty status (connection closed by the server).
        ("logfile_w3c.4", 1, &[(Header, 4), (BadStatus, 1)]),
        // 17 values against a 6-field header.
        ("logfile_w3c.5", 0, &[(Header, 1), (Malformed, 1)]),
        ("logfile_w3c.6", 1, &[(Header, 4)]),
    ];
    for (name, events, rejects) in expected {
        let text = read_repo(&format!("lnav/{name}"));
        let t = tally(&f, &text, |_, _| ());
        expect_tally(name, &t, *events, rejects);
    }

    let text = read_repo("lnav/logfile_w3c.1");
    let r = single_record(&f, &text);
    check_record(
        "Oracle Web Cache",
        &r,
        &Want {
            ts: Some("2001-10-31T00:00:18+00:00"),
            client: v("64.103.37.2"),
            user: v("DMS.user"),
            target: v("/admin/images/oc_bottomleft.gif"),
            bytes: Some(Some(350)),
            referrer: v("http://www.oracle.com/nl/partner/content.html"),
            user_agent: v("Mozilla/4.5 [en] (WinNT; I)"),
            cookies: v("BIGipServerwww_webcache_pool=1443321748.19460.0000;ORA_UCM_AGID=%2fMP%2f8M7%3etSHPV%40%2fS%3f%3fDh3VHO"),
            ..W
        },
    );
    let text = read_repo("lnav/logfile_w3c.4");
    let r = single_record(&f, &text);
    check_record(
        "Incapsula",
        &r,
        &Want {
            ts: Some("2017-06-28T07:26:35+00:00"),
            client: v("123.123.123.123"),
            host: v("www.example.com"),
            target: v("/page.php?variable=test"),
            protocol: v("HTTP"),
            status: Some(200),
            referrer: NO,
            user_agent: v("Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/58.0.3029.110 Safari/537.36"),
            ..W
        },
    );
    let text = read_repo("lnav/logfile_w3c.6");
    let r = single_record(&f, &text);
    assert!(r
        .user_agent
        .as_deref()
        .unwrap()
        .ends_with("zill\u{e4}/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"));
}

/// The only record of a sample file.
fn single_record<'t>(f: &dyn LineFormat, text: &'t str) -> RawRecord<'t> {
    let mut state = FormatState::default();
    let mut found = text.lines().filter_map(|l| f.parse(l, &mut state).ok());
    found.next().expect("one record")
}

#[test]
fn lnav_w3c_big_iis_log() {
    let f = W3cFormat::w3c();
    let text = read_repo("lnav/logfile_w3c_big.0");
    let mut bots = 0;
    let mut statuses = BTreeMap::new();
    let t = tally(&f, &text, |_, r| {
        assert_eq!(r.ts.unwrap().date_naive().to_string(), "2015-01-13");
        assert!(r.duration_ms.is_some() && r.bytes.is_some() && r.client.is_some());
        if r.user_agent
            .as_deref()
            .is_some_and(|u| u.contains("bingbot/2.0; +http"))
        {
            bots += 1;
        }
        *statuses.entry(r.status.unwrap()).or_insert(0) += 1;
    });
    expect_tally("logfile_w3c_big.0", &t, 210, &[(RejectKind::Header, 44)]);
    println!("statuses {statuses:?}, bingbot {bots}");
    assert!(bots > 0, "IIS `+` spaces decoded in bingbot user agents");
}

#[test]
fn lnav_caddy_samples() {
    let f = JsonFormat::caddy();
    let text = read_repo("lnav/logfile_caddy_log.0");
    let mut recs = Vec::new();
    let t = tally(&f, &text, |_, r| recs.push(r));
    // Caddy's runtime messages are not requests.
    expect_tally("logfile_caddy_log.0", &t, 4, &[(RejectKind::Header, 35)]);
    check_record(
        "caddy_log.0 last",
        &recs[3],
        &Want {
            ts: Some("2025-10-21T04:12:37.924754+00:00"),
            client: v("172.19.0.1"),
            host: v("localhost"),
            target: v("/index.html"),
            status: Some(200),
            bytes: Some(Some(188)),
            duration_ms: Some(Some(0.073649)),
            cookies: v("REDACTED"),
            user_agent: v(
                "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:142.0) Gecko/20100101 Firefox/142.0",
            ),
            user: NO,
            ..W
        },
    );

    let text = read_repo("lnav/logfile_caddy_log.1");
    let mut recs = Vec::new();
    let t = tally(&f, &text, |_, r| recs.push(r));
    expect_tally("logfile_caddy_log.1", &t, 4, &[]);
    assert_eq!(
        recs[0].client.as_deref(),
        Some("10.10.10.117"),
        "client_ip wins over remote_ip"
    );
    assert_eq!(recs[3].client.as_deref(), Some("240e:1:1::1234"));
    assert_eq!(recs[3].protocol.as_deref(), Some("HTTP/3.0"));
}

#[test]
fn thedash_nginx_json_log() {
    let p = repo_data("thedash-nginx-json-2013/access.log.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let f = JsonFormat::nginx(JsonMapping::default());
    let mut with_ua = 0;
    let mut with_referrer = 0;
    let t = tally(&f, &text, |_, r| {
        let ts = r.ts.unwrap();
        assert_eq!(ts.offset().local_minus_utc(), -5 * 3600);
        assert_eq!(r.client.as_deref(), Some("127.0.0.1"));
        assert!(r.method.is_some() && r.target.is_some() && r.duration_ms.is_some());
        with_ua += usize::from(r.user_agent.is_some());
        with_referrer += usize::from(r.referrer.is_some());
    });
    expect_tally("thedash access.log", &t, 10_049, &[]);
    println!("with user agent {with_ua}, with referrer {with_referrer}");
    assert!(with_ua > 10_000 && with_referrer > 1_000);
}

#[test]
fn matomo_w3c_samples() {
    use RejectKind::*;
    let f = W3cFormat::w3c();
    if let Some(text) = matomo("iis.log") {
        let t = tally(&f, &text, |_, r| {
            check_record(
                "iis.log",
                &r,
                &Want {
                    ts: Some("2012-04-01T00:00:13+00:00"),
                    client: v("1.2.3.4"),
                    user: v("theuser"),
                    target: v("/foo/bar?topCat1=divinity&submit=Search"),
                    protocol: v("HTTP/1.1"),
                    user_agent: v("Mozilla/5.0 (X11; U; Linux i686; en-US; rv:1.9.2.7) Gecko/20100722 Firefox/3.6.7"),
                    referrer: NO,
                    host: v("example.com"),
                    status: Some(200),
                    bytes: Some(Some(27028)),
                    duration_ms: Some(Some(1687.0)),
                    ..W
                },
            );
            assert!(r
                .cookies
                .as_deref()
                .unwrap()
                .starts_with("ASP.NET_SessionId=sldfkjs; __utma="));
        });
        expect_tally("iis.log", &t, 1, &[(Header, 4)]);
    }
    if let Some(text) = matomo("iis_custom.log") {
        let mut recs = Vec::new();
        let t = tally(&f, &text, |_, r| recs.push(r));
        expect_tally("iis_custom.log", &t, 3, &[(Header, 4), (Empty, 3)]);
        check_record(
            "iis_custom.log first",
            &recs[0],
            &Want {
                ts: Some("2012-08-15T17:00:00.363+00:00"),
                client: v("70.95.0.0"),
                host: v("xzy.example.com"),
                user_agent: v("Mozilla/5.0 (Linux; Android 4.4.4; SM-G900V Build/KTU84P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/39.0.2171.59 Mobile Safari/537.36"),
                duration_ms: Some(Some(109.0)),
                ..W
            },
        );
        assert_eq!(recs[1].client, None);
        assert_eq!(
            (recs[2].status, recs[2].duration_ms),
            (Some(404), Some(359.0))
        );
    }
    if let Some(text) = matomo("incapsula_w3c.log") {
        let t = tally(&f, &text, |_, r| {
            assert_eq!(r.host.as_deref(), Some("www.example.com"));
            assert_eq!(r.target.as_deref(), Some("/page.php?variable=test"));
        });
        expect_tally("incapsula_w3c.log", &t, 1, &[(Header, 4), (BadStatus, 1)]);
    }
    if let Some(text) = matomo("netscaler.log") {
        let t = tally(&f, &text, |_, r| {
            check_record(
                "netscaler.log",
                &r,
                &Want {
                    client: v("172.20.1.0"),
                    target: v("/Citrix/XenApp/Wan/auth/login.jsp"),
                    status: Some(302),
                    bytes: Some(Some(355)),
                    duration_ms: Some(Some(1.0)),
                    protocol: v("HTTP/1.1"),
                    cookies: NO,
                    referrer: NO,
                    ..W
                },
            );
        });
        expect_tally("netscaler.log", &t, 1, &[(Header, 4)]);
    }
}

#[test]
fn matomo_cloudfront_sample() {
    let Some(text) = matomo("amazon_cloudfront_web.log") else {
        return;
    };
    let t = tally(&W3cFormat::cloudfront(), &text, |_, r| {
        check_record(
            "amazon_cloudfront_web.log",
            &r,
            &Want {
                ts: Some("2014-05-23T01:13:11+00:00"),
                client: v("192.0.2.10"),
                host: v("example.com"),
                target: v("/view/my/file.html"),
                status: Some(200),
                bytes: Some(Some(182)),
                duration_ms: Some(Some(1.0)),
                referrer: v("https://example.com/"),
                user_agent: v("Mozilla/5.0 (Windows; U; Windows NT 6.1; de-DE) AppleWebKit/534.17 (KHTML, like Gecko) Chrome/10.0.649.0 Safari/534.17"),
                protocol: v("HTTP/1.1"),
                ..W
            },
        );
    });
    expect_tally(
        "amazon_cloudfront_web.log",
        &t,
        1,
        &[(RejectKind::Header, 2)],
    );
}

#[test]
fn matomo_aws_samples() {
    use RejectKind::*;
    if let Some(text) = matomo("elb.log") {
        let t = tally(&Elb, &text, |_, r| {
            check_record(
                "elb.log",
                &r,
                &Want {
                    client: v("1.2.3.4"),
                    host: v("www.example.com"),
                    target: v("/path/index.html"),
                    status: Some(200),
                    bytes: Some(Some(57)),
                    duration_ms: Some(Some(2.471)),
                    ..W
                },
            );
        });
        // A comment line and a TCP-listener line.
        expect_tally("elb.log", &t, 1, &[(Header, 1), (BadStatus, 1)]);
    }
    if let Some(text) = matomo("alb.log") {
        let t = tally(&Alb, &text, |_, r| {
            check_record(
                "alb.log",
                &r,
                &Want {
                    ts: Some("2020-01-01T00:55:04.127531+00:00"),
                    client: v("1.2.3.4"),
                    upstream: v("10.0.0.1:80"),
                    host: v("www.example.com"),
                    status: Some(200),
                    bytes: Some(Some(24950)),
                    duration_ms: Some(Some(103.0)),
                    ..W
                },
            );
        });
        expect_tally("alb.log", &t, 1, &[]);
    }
    if let Some(text) = matomo("s3.log") {
        let t = tally(&S3, &text, |_, r| {
            check_record(
                "s3.log",
                &r,
                &Want {
                    ts: Some("2012-02-10T16:42:07-05:00"),
                    client: v("1.2.3.4"),
                    host: v("www.example.com"),
                    target: v("/index"),
                    status: Some(200),
                    bytes: Some(Some(368)),
                    duration_ms: Some(Some(10.0)),
                    ..W
                },
            );
        });
        expect_tally("s3.log", &t, 1, &[]);
    }
}

#[test]
fn matomo_json_samples() {
    if let Some(text) = matomo("caddy_json.log") {
        let mut recs = Vec::new();
        let t = tally(&JsonFormat::caddy(), &text, |_, r| recs.push(r));
        expect_tally("caddy_json.log", &t, 3, &[]);
        check_record(
            "caddy_json.log second",
            &recs[1],
            &Want {
                client: v("1.2.3.4"),
                host: v("example.com"),
                target: v("/beta/assets/index-mMaLXldj.css"),
                referrer: v("https://example.com/beta/"),
                bytes: Some(Some(34534)),
                protocol: v("HTTP/2.0"),
                ..W
            },
        );
    }
    if let Some(text) = matomo("traefik_json.log") {
        let t = tally(&JsonFormat::traefik(), &text, |_, r| {
            check_record(
                "traefik_json.log",
                &r,
                &Want {
                    ts: Some("2023-08-11T11:39:21.773360139+00:00"),
                    client: v("1.2.3.4"),
                    status: Some(200),
                    target: v("/my/app/auth?id=1234&user=dude"),
                    duration_ms: Some(Some(10002.425284)),
                    referrer: v("www.example.com"),
                    user_agent: v("Prometheus/2.40.5"),
                    upstream: v("apache:80"),
                    host: v("localhost"),
                    user: NO,
                    ..W
                },
            );
        });
        expect_tally("traefik_json.log", &t, 1, &[]);
    }
    if let Some(text) = matomo("nginx_json.log") {
        // Matomo's documented nginx `log_format` uses its own key names.
        let mapping: JsonMapping = serde_yaml::from_str(
            "client: [ip]\ntime: [date]\nuri: [path]\nbytes: [length]\nreferrer: [referrer]\nuser_agent: [user_agent]\nduration: [generation_time_milli]\n",
        )
        .unwrap();
        let t = tally(&JsonFormat::nginx(mapping), &text, |_, r| {
            check_record(
                "nginx_json.log",
                &r,
                &Want {
                    ts: Some("2013-10-10T16:52:00+02:00"),
                    client: v("1.2.3.4"),
                    host: v("www.piwik.org"),
                    status: Some(200),
                    bytes: Some(Some(192)),
                    referrer: v("http://clearcode.cc/"),
                    ..W
                },
            );
            assert!(r
                .target
                .as_deref()
                .unwrap()
                .starts_with("/piwik.php?action_name="));
        });
        expect_tally("nginx_json.log", &t, 2, &[]);
    }
}

// ---------------------------------------------------------------------------
// No input makes a parser panic.

fn all_formats() -> Vec<Box<dyn LineFormat>> {
    vec![
        Box::new(W3cFormat::w3c()),
        Box::new(W3cFormat::w3c().trust_forwarded_for(true)),
        Box::new(W3cFormat::cloudfront()),
        Box::new(Elb),
        Box::new(Alb),
        Box::new(S3),
        Box::new(Squid),
        Box::new(JsonFormat::caddy()),
        Box::new(JsonFormat::traefik()),
        Box::new(JsonFormat::nginx(JsonMapping::default())),
    ]
}

/// Valid lines of every format, to mutate.
fn seed_lines() -> Vec<&'static str> {
    [
        W3C_CASES,
        CLOUDFRONT_CASES,
        ELB_CASES,
        ALB_CASES,
        S3_CASES,
        SQUID_CASES,
        CADDY_CASES,
        TRAEFIK_CASES,
        NGINX_CASES,
    ]
    .iter()
    .flat_map(|cases| cases.iter().map(|c| c.line))
    .collect()
}

const W3C_HEADERS: &[&str] = &[
    IIS_FULL_FIELDS,
    "#Fields: date time c-ip cs-uri cs-uri-query cs-method sc-status cs(Referrer) cs(User-Agent) x-forwarded-for",
];

/// Parse `line` with every format (and W3C with headers); records must be well-formed.
fn parse_everywhere(line: &str) {
    for f in all_formats() {
        let mut state = FormatState::default();
        if let Ok(r) = f.parse(line, &mut state) {
            check_record(&format!("{} on {line:?}", f.name()), &r, &W);
        }
        for header in W3C_HEADERS {
            let mut state = FormatState::default();
            let _ = f.parse(header, &mut state);
            if let Ok(r) = f.parse(line, &mut state) {
                check_record(&format!("{} after header on {line:?}", f.name()), &r, &W);
            }
        }
    }
}

fn char_floor(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(line in any::<String>()) {
        parse_everywhere(&line);
    }

    #[test]
    fn structured_text_never_panics(line in r#"[ "\[\]{}:,%+\\/\t#0-9a-zA-Z.\-]{0,80}"#) {
        parse_everywhere(&line);
    }

    #[test]
    fn mutated_valid_lines_never_panic(
        seed in any::<prop::sample::Index>(),
        from in any::<prop::sample::Index>(),
        len in 0usize..12,
        junk in r#"(\PC|[ "\[\]{}:,%+\\\t\-]){0,6}"#,
    ) {
        let seeds = seed_lines();
        let s = seeds[seed.index(seeds.len())];
        let a = char_floor(s, from.index(s.len() + 1));
        let b = char_floor(s, a + len);
        let b = b.max(a);
        let line = format!("{}{}{}", &s[..a], junk, &s[b..]);
        parse_everywhere(&line);
    }
}

#[test]
fn every_format_has_a_distinct_preset_name() {
    let names: std::collections::BTreeSet<String> =
        all_formats().iter().map(|f| f.name().to_owned()).collect();
    let want: std::collections::BTreeSet<String> = [
        "w3c",
        "cloudfront",
        "elb",
        "alb",
        "s3",
        "squid",
        "caddy",
        "traefik-json",
        "nginx-json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(names, want);
}

/// CloudFront and W3C read the same lines; the `#Fields:` header decides
/// (CloudFront's `time-taken` is seconds, IIS's milliseconds).
#[test]
fn auto_tells_cloudfront_from_w3c_by_its_fields() {
    let cloudfront = [
        "#Version: 1.0",
        "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken",
        "2014-05-23\t01:13:11\tFRA2\t182\t192.0.2.10\tGET\td1.cloudfront.net\t/view/my/file.html\t200\twww.displaymyfiles.com\tMozilla/4.0\t-\t-\tRefreshHit\tMRVMF7KydIvxMWfJIglgwHQwZsbG2IhRJ07sn9AkKUFSHS9EXAMPLE==\td1.cloudfront.net\thttp\t-\t0.001",
    ];
    let iis = [
        "#Software: Microsoft Internet Information Services 6.0",
        "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) sc-status sc-substatus sc-win32-status time-taken",
        "2012-04-01 00:00:13 10.10.10.10 GET /foo/bar - 80 - 1.2.3.4 Mozilla/5.0 200 0 0 15",
    ];
    assert_eq!(
        footfall_parse::formats::detect(&cloudfront),
        Some("cloudfront")
    );
    assert_eq!(footfall_parse::formats::detect(&iis), Some("w3c"));
}

/// The Matomo importer's and lnav's sample logs (in the shared data
/// directory, not shipped: their licences differ): CloudFront web logs are
/// `cloudfront`, IIS and other W3C logs `w3c`.
#[test]
fn auto_on_the_matomo_and_lnav_samples() {
    let Some(root) = footfall_testkit::shared_data() else {
        println!(
            "shared data directory not present: not run (auto on the Matomo and lnav samples)"
        );
        return;
    };
    let cases = [
        (
            "format-samples-matomo/amazon_cloudfront_web.log",
            "cloudfront",
        ),
        ("format-samples-matomo/iis.log", "w3c"),
        ("format-samples-matomo/iis_custom.log", "w3c"),
        ("format-samples-lnav/logfile_w3c.0", "w3c"),
        ("format-samples-lnav/logfile_w3c.1", "w3c"),
    ];
    for (file, want) in cases {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let sample: Vec<&str> = text.lines().take(50).collect();
        assert_eq!(
            footfall_parse::formats::detect(&sample),
            Some(want),
            "{file}"
        );
    }
}
