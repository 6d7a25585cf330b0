//! The CLF family and custom templates: a table of named cases, then fixtures.

use footfall_event::RejectKind;
use footfall_parse::formats::{self, FormatState};
use footfall_parse::RawRecord;

struct Case {
    name: &'static str,
    format: &'static str,
    line: &'static str,
    want: Result<Want, RejectKind>,
}

#[derive(Default)]
struct Want {
    client: Option<&'static str>,
    ts: &'static str,
    method: Option<&'static str>,
    target: Option<&'static str>,
    protocol: Option<&'static str>,
    status: u16,
    bytes: Option<u64>,
    referrer: Option<&'static str>,
    user_agent: Option<&'static str>,
    host: Option<&'static str>,
}

fn check(rec: &RawRecord<'_>, w: &Want, name: &str) {
    assert_eq!(rec.client.as_deref(), w.client, "{name}: client");
    assert_eq!(
        rec.ts.map(|t| t.to_rfc3339()).as_deref(),
        Some(w.ts),
        "{name}: ts"
    );
    assert_eq!(rec.method.as_deref(), w.method, "{name}: method");
    assert_eq!(rec.target.as_deref(), w.target, "{name}: target");
    assert_eq!(rec.protocol.as_deref(), w.protocol, "{name}: protocol");
    assert_eq!(rec.status, Some(w.status), "{name}: status");
    assert_eq!(rec.bytes, w.bytes, "{name}: bytes");
    assert_eq!(rec.referrer.as_deref(), w.referrer, "{name}: referrer");
    assert_eq!(
        rec.user_agent.as_deref(),
        w.user_agent,
        "{name}: user agent"
    );
    assert_eq!(rec.host.as_deref(), w.host, "{name}: host");
}

fn cases() -> Vec<Case> {
    let base = || Want {
        client: Some("203.0.113.7"),
        ts: "2015-05-17T10:05:03+00:00",
        method: Some("GET"),
        target: Some("/index.html"),
        protocol: Some("HTTP/1.1"),
        status: 200,
        bytes: Some(512),
        referrer: Some("http://example.org/"),
        user_agent: Some("Mozilla/5.0 (X11)"),
        ..Default::default()
    };
    vec![
        Case {
            name: "plain combined",
            format: "combined",
            line: r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 512 "http://example.org/" "Mozilla/5.0 (X11)""#,
            want: Ok(base()),
        },
        Case {
            name: "bytes dash and empty referrer",
            format: "combined",
            line: r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 - "-" "Mozilla/5.0 (X11)""#,
            want: Ok(Want { bytes: None, referrer: None, ..base() }),
        },
        Case {
            name: "hostname client and user",
            format: "combined",
            line: r#"pm9.example.net - frank [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 512 "http://example.org/" "Mozilla/5.0 (X11)""#,
            want: Ok(Want { client: Some("pm9.example.net"), ..base() }),
        },
        Case {
            name: "ipv6 client",
            format: "combined",
            line: r#"2001:db8::1 - - [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 512 "http://example.org/" "Mozilla/5.0 (X11)""#,
            want: Ok(Want { client: Some("2001:db8::1"), ..base() }),
        },
        Case {
            name: "apache escaped quote in user agent",
            format: "combined",
            line: r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 512 "http://example.org/" "Mozilla/5.0 \"quoted\" (X11)""#,
            want: Ok(Want { user_agent: Some(r#"Mozilla/5.0 "quoted" (X11)"#), ..base() }),
        },
        Case {
            name: "nginx hex escapes decode to UTF-8",
            format: "combined",
            line: r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /\xD8\xB3 HTTP/1.1" 200 512 "http://example.org/" "Mozilla/5.0 \x22q\x22 (X11)""#,
            want: Ok(Want { target: Some("/س"), user_agent: Some(r#"Mozilla/5.0 "q" (X11)"#), ..base() }),
        },
        Case {
            name: "extra trailing field (x-forwarded-for)",
            format: "combined",
            line: r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 512 "http://example.org/" "Mozilla/5.0 (X11)" "-""#,
            want: Ok(base()),
        },
        Case {
            name: "trailing spaces",
            format: "combined",
            line: "203.0.113.7 - - [17/May/2015:10:05:03 +0000] \"GET /index.html HTTP/1.1\" 200 512 \"http://example.org/\" \"Mozilla/5.0 (X11)\"   ",
            want: Ok(base()),
        },
        Case {
            name: "cut-off final quote",
            format: "combined",
            line: r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 512 "http://example.org/" "Mozilla/5.0 (X11)"#,
            want: Ok(base()),
        },
        Case {
            name: "empty request",
            format: "combined",
            line: r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "" 400 0 "-" "-""#,
            want: Ok(Want { method: None, target: None, protocol: None, status: 400, bytes: Some(0), referrer: None, user_agent: None, ..base() }),
        },
        Case {
            name: "odd protocol HTTP/V1.0",
            format: "common",
            line: r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/V1.0" 200 512"#,
            want: Ok(Want { protocol: Some("HTTP/V1.0"), referrer: None, user_agent: None, ..base() }),
        },
        Case {
            name: "no protocol",
            format: "common",
            line: r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /index.html" 200 512"#,
            want: Ok(Want { protocol: None, referrer: None, user_agent: None, ..base() }),
        },
        Case {
            name: "half-hour timezone",
            format: "common",
            line: r#"203.0.113.7 - - [22/Jan/2019:03:56:14 +0330] "GET /index.html HTTP/1.1" 200 512"#,
            want: Ok(Want { ts: "2019-01-22T03:56:14+03:30", referrer: None, user_agent: None, ..base() }),
        },
        Case {
            name: "vcombined",
            format: "vcombined",
            line: r#"www.example.org:443 203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 512 "http://example.org/" "Mozilla/5.0 (X11)""#,
            want: Ok(Want { host: Some("www.example.org"), ..base() }),
        },
        Case {
            name: "traefik clf",
            format: "traefik",
            line: r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 512 "http://example.org/" "Mozilla/5.0 (X11)" 42 "web@docker" "http://10.0.0.3:80" 7ms"#,
            want: Ok(base()),
        },
        Case {
            name: "bad status",
            format: "combined",
            line: r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" abc 512 "-" "-""#,
            want: Err(RejectKind::BadStatus),
        },
        Case {
            name: "bad time",
            format: "combined",
            line: r#"203.0.113.7 - - [17/Mai/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 512 "-" "-""#,
            want: Err(RejectKind::BadTimestamp),
        },
        Case {
            name: "bad bytes",
            format: "combined",
            line: r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 12x "-" "-""#,
            want: Err(RejectKind::BadNumber),
        },
        Case { name: "empty line", format: "combined", line: "   ", want: Err(RejectKind::Empty) },
        Case { name: "not a log line", format: "combined", line: "hello world", want: Err(RejectKind::Malformed) },
        Case {
            name: "syslog prefix is not combined",
            format: "combined",
            line: r#"Jan  1 00:00:00 web nginx: 203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "-""#,
            want: Err(RejectKind::Malformed),
        },
    ]
}

#[test]
fn named_cases() {
    for c in cases() {
        let f = formats::preset(c.format).unwrap();
        let got = f.parse(c.line, &mut FormatState::default());
        match (&got, &c.want) {
            (Ok(rec), Ok(w)) => check(rec, w, c.name),
            (Err(e), Err(k)) => assert_eq!(e.kind, *k, "{}: {}", c.name, e.reason),
            _ => panic!("{}: got {:?}", c.name, got),
        }
    }
}

#[test]
fn custom_templates() {
    // nginx log_format with timing, upstream and a session cookie.
    let nginx = formats::custom(
        r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $host $request_time "$upstream_addr" "$cookie_sid""#,
    )
    .unwrap();
    let line = r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /a?b=1 HTTP/2.0" 200 10 "-" "UA" shop.example 0.125 "10.0.0.5:8080" "abc123""#;
    let r = nginx.parse(line, &mut FormatState::default()).unwrap();
    assert_eq!(r.host.as_deref(), Some("shop.example"));
    assert_eq!(r.duration_ms, Some(125.0));
    assert_eq!(r.upstream.as_deref(), Some("10.0.0.5:8080"));
    assert_eq!(r.session.as_deref(), Some("abc123"));
    assert_eq!(r.target.as_deref(), Some("/a?b=1"));

    // Apache LogFormat with %D (microseconds), %v and a cookie.
    let apache =
        formats::custom(r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D %v %{sid}C"#)
            .unwrap();
    let line = r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 10 "-" "UA" 2500 www.example.org xyz"#;
    let r = apache.parse(line, &mut FormatState::default()).unwrap();
    assert_eq!(r.duration_ms, Some(2.5));
    assert_eq!(r.host.as_deref(), Some("www.example.org"));
    assert_eq!(r.session.as_deref(), Some("xyz"));

    // Split request pieces.
    let split = formats::custom(r#"$remote_addr [$time_local] $request_method $uri $args $status"#)
        .unwrap();
    let r = split
        .parse(
            "1.2.3.4 [17/May/2015:10:05:03 +0000] GET /p x=1 200",
            &mut FormatState::default(),
        )
        .unwrap();
    assert_eq!(r.target.as_deref(), Some("/p?x=1"));

    // Errors are clear.
    assert!(formats::custom("$remote_addr $status")
        .unwrap_err()
        .to_string()
        .contains("time"));
    assert!(formats::custom("%h %Z %t %>s")
        .unwrap_err()
        .to_string()
        .contains("%Z"));
    assert!(formats::preset("nope").is_err());
}

#[test]
fn auto_detection() {
    let combined = r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 512 "-" "Mozilla/5.0""#;
    let common = r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 512"#;
    let vcombined = r#"www.example.org:80 203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 512 "-" "Mozilla/5.0""#;
    assert_eq!(formats::detect(&[combined, combined]), Some("combined"));
    assert_eq!(formats::detect(&[common, common]), Some("common"));
    assert_eq!(formats::detect(&[vcombined]), Some("vcombined"));
    assert_eq!(formats::detect(&["no log here"]), None);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
            for name in formats::PRESETS {
                let f = formats::preset(name).unwrap();
                let _ = f.parse(&s, &mut FormatState::default());
            }
        }

        #[test]
        fn mutated_lines_never_panic(cut in 0usize..160, junk in "[ \"\\[\\]\\\\x0-9a-f-]{0,12}") {
            let line = r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 512 "http://e.org/" "UA""#;
            let cut = cut.min(line.len());
            let m = format!("{}{}{}", &line[..cut], junk, &line[cut..]);
            for name in ["combined", "common", "vcombined", "traefik"] {
                let f = formats::preset(name).unwrap();
                let _ = f.parse(&m, &mut FormatState::default());
            }
        }
    }
}
