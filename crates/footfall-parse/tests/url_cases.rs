//! Named cases for `footfall_parse::url` and `footfall_parse::route`.

use std::borrow::Cow;

use footfall_parse::route::{RouteConfig, RouteRuleConfig, RouteRuleError, RouteRules};
use footfall_parse::url::{
    percent_decode_lossy, query_pairs, query_value, split_target, utm, QueryPair, QueryPolicy,
    UrlParts, UrlRules, Utm, MAX_TEXT_CHARS,
};
use proptest::prelude::*;

/// Checks `got` against `want`, and that an unchanged result is borrowed.
fn check(kind: &str, name: &str, input: &str, got: Cow<'_, str>, want: &str) {
    assert_eq!(got, want, "{kind} case {name:?}: input {input:?}");
    if input == want {
        assert!(
            matches!(got, Cow::Borrowed(_)),
            "{kind} case {name:?}: unchanged but allocated"
        );
    } else {
        assert!(
            matches!(got, Cow::Owned(_)),
            "{kind} case {name:?}: changed but borrowed"
        );
    }
}

#[test]
fn redact_query_cases() {
    let cases: &[(&str, &str, &str)] = &[
        ("empty", "", ""),
        ("nothing secret", "a=1&b=2", "a=1&b=2"),
        ("plain secret", "password=hunter2", "password=REDACTED"),
        (
            "keeps neighbours and order",
            "a=1&password=hunter2&b=2",
            "a=1&password=REDACTED&b=2",
        ),
        ("upper-case name", "PASSWORD=x", "PASSWORD=REDACTED"),
        ("mixed-case name", "Access_Token=x", "Access_Token=REDACTED"),
        (
            "percent-encoded name",
            "pass%77ord=x",
            "pass%77ord=REDACTED",
        ),
        (
            "percent-encoded upper hex",
            "PASS%57ORD=x",
            "PASS%57ORD=REDACTED",
        ),
        (
            "plus in name decodes to space, no match",
            "api+key=x",
            "api+key=x",
        ),
        ("malformed escape in name", "pass%2=x", "pass%2=x"),
        (
            "repeated secret",
            "token=a&token=b",
            "token=REDACTED&token=REDACTED",
        ),
        (
            "repeated mixed",
            "sid=1&x=2&SID=3",
            "sid=REDACTED&x=2&SID=REDACTED",
        ),
        ("secret without =", "token", "token"),
        ("secret with empty value", "token=", "token="),
        ("empty pairs kept", "a=1&&token=x&", "a=1&&token=REDACTED&"),
        ("leading &", "&token=x", "&token=REDACTED"),
        ("only separators", "&&&", "&&&"),
        ("value containing =", "key=a=b&c=d", "key=REDACTED&c=d"),
        (
            "bracketed name",
            "user[password]=x&user[name]=y",
            "user[password]=REDACTED&user[name]=y",
        ),
        (
            "encoded brackets",
            "user%5Bpassword%5D=x",
            "user%5Bpassword%5D=REDACTED",
        ),
        ("already redacted", "token=REDACTED", "token=REDACTED"),
        (
            "non-UTF-8 escapes in values",
            "x=%FF%FE&sid=%FF",
            "x=%FF%FE&sid=REDACTED",
        ),
        (
            "prefix of a secret name",
            "keyword=rust&keys=1",
            "keyword=rust&keys=1",
        ),
        (
            "oauth code",
            "code=abc&state=xyz",
            "code=REDACTED&state=xyz",
        ),
        ("empty name", "=x&=y", "=x&=y"),
        (
            "utf-8 value",
            "q=caf%C3%A9&secret=él",
            "q=caf%C3%A9&secret=REDACTED",
        ),
        ("semicolon is not a separator", "a=1;token=x", "a=1;token=x"),
        (
            "html-escaped separator",
            "a=1&amp;token=x",
            "a=1&amp;token=REDACTED",
        ),
        ("amp; alone", "amp;=x&amp;", "amp;=x&amp;"),
    ];
    let rules = deny();
    for (name, input, want) in cases {
        check("redact_query", name, input, rules.redact_query(input), want);
    }
}

/// The deny-list policy with the default secret names: what these cases test.
fn deny() -> UrlRules {
    UrlRules {
        query_policy: QueryPolicy::Deny,
        ..UrlRules::default()
    }
}

#[test]
fn redact_query_custom_rules() {
    let rules = UrlRules {
        secret_params: vec!["X-Amz-Signature".into()],
        site_search_params: vec![],
        ..deny()
    };
    check(
        "redact_query",
        "custom",
        "x-amz-signature=abc&password=y",
        rules.redact_query("x-amz-signature=abc&password=y"),
        "x-amz-signature=REDACTED&password=y",
    );
    let none = UrlRules {
        secret_params: vec![],
        site_search_params: vec![],
        ..deny()
    };
    check(
        "redact_query",
        "no secrets",
        "password=x",
        none.redact_query("password=x"),
        "password=x",
    );
}

#[test]
fn redact_path_cases() {
    let cases: &[(&str, &str, &str)] = &[
        ("plain", "/plain/path", "/plain/path"),
        ("root", "/", "/"),
        (
            "jsessionid",
            "/cart;jsessionid=ABC123",
            "/cart;jsessionid=REDACTED",
        ),
        (
            "upper-case, several segments",
            "/a;JSESSIONID=abc/b;x=1;sid=2",
            "/a;JSESSIONID=REDACTED/b;x=1;sid=REDACTED",
        ),
        ("param without value", "/a;sid", "/a;sid"),
        ("empty value", "/a;sid=", "/a;sid="),
        ("not secret", "/a;v=2", "/a;v=2"),
        ("bare semicolon", "/a;/b;", "/a;/b;"),
        (
            "stops at query",
            "/a;sid=1?x;sid=2",
            "/a;sid=REDACTED?x;sid=2",
        ),
        ("stops at fragment", "/a#;sid=2", "/a#;sid=2"),
        (
            "encoded name",
            "/a;ph%70sessid=1",
            "/a;ph%70sessid=REDACTED",
        ),
        ("already redacted", "/a;sid=REDACTED", "/a;sid=REDACTED"),
    ];
    let rules = UrlRules::default();
    for (name, input, want) in cases {
        check("redact_path", name, input, rules.redact_path(input), want);
    }
}

#[test]
fn redact_url_cases() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "clean referrer",
            "https://www.google.com/search?q=rust",
            "https://www.google.com/search?q=rust",
        ),
        (
            "userinfo",
            "https://user:pass@example.org/a",
            "https://example.org/a",
        ),
        (
            "userinfo and query",
            "https://user:pass@example.org/a?token=x#frag",
            "https://example.org/a?token=REDACTED#frag",
        ),
        (
            "empty userinfo",
            "http://@example.org/",
            "http://example.org/",
        ),
        (
            "@ in path is not userinfo",
            "https://example.org/@jane?x=1",
            "https://example.org/@jane?x=1",
        ),
        (
            "@ in query is not userinfo",
            "https://example.org?u=a@b",
            "https://example.org?u=a@b",
        ),
        (
            "no path",
            "https://example.org?token=a",
            "https://example.org?token=REDACTED",
        ),
        (
            "fragment params",
            "http://example.org/cb#access_token=abc&state=1",
            "http://example.org/cb#access_token=REDACTED&state=1",
        ),
        (
            "fragment route query",
            "http://example.org/#/reset?token=abc",
            "http://example.org/#/reset?token=REDACTED",
        ),
        (
            "fragment route clean",
            "http://example.org/#/reset?x=abc",
            "http://example.org/#/reset?x=abc",
        ),
        (
            "plain fragment",
            "http://example.org/page#section-2",
            "http://example.org/page#section-2",
        ),
        (
            "path parameter",
            "http://example.org/page;jsessionid=1?q=x",
            "http://example.org/page;jsessionid=REDACTED?q=x",
        ),
        (
            "scheme-relative",
            "//cdn.example.org/x?sig=1&signature=abc",
            "//cdn.example.org/x?sig=1&signature=REDACTED",
        ),
        (
            "relative",
            "/relative?password=x",
            "/relative?password=REDACTED",
        ),
        ("not a URL", "not a url", "not a url"),
        ("dash", "-", "-"),
        (
            "apache escapes in host",
            "http://\\xe4\\xe5.com/?key=v",
            "http://\\xe4\\xe5.com/?key=REDACTED",
        ),
        (
            "everything",
            "https://a:b@h.example:8443/p;sid=1?token=2#code=3",
            "https://h.example:8443/p;sid=REDACTED?token=REDACTED#code=REDACTED",
        ),
        (
            "android app",
            "android-app://com.google.android.gm/",
            "android-app://com.google.android.gm/",
        ),
    ];
    let rules = deny();
    for (name, input, want) in cases {
        check("redact_url", name, input, rules.redact_url(input), want);
    }
}

#[test]
fn site_search_cases() {
    let long = format!("q={}", "ab+".repeat(400));
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("q", "q=rust", Some("rust")),
        (
            "plus and %20, collapsed and trimmed",
            "s=+Rust%20%20Logs+",
            Some("Rust Logs"),
        ),
        ("case kept", "q=Rust+LOGS", Some("Rust LOGS")),
        ("no search param", "page=2", None),
        ("empty first value skipped", "q=&s=x", Some("x")),
        ("blank first value skipped", "q=%20%20&search=y", Some("y")),
        ("name case-insensitive", "Q=upper", Some("upper")),
        ("query order wins", "keyword=a&q=b", Some("a")),
        ("utf-8", "q=caf%C3%A9", Some("café")),
        ("invalid utf-8", "q=%FF", Some("\u{FFFD}")),
        ("no =", "q", None),
        ("other name", "qq=x", None),
        ("control characters", "q=a%0Ab%00c", Some("a b c")),
        ("tab and newline only", "q=%09%0A", None),
        ("encoded name", "%71=x", Some("x")),
    ];
    let rules = UrlRules::default();
    for (name, input, want) in cases {
        assert_eq!(
            rules.site_search(input).as_deref(),
            *want,
            "site_search case {name:?}: {input:?}"
        );
    }
    let got = rules.site_search(&long).unwrap();
    assert_eq!(got.chars().count(), MAX_TEXT_CHARS, "long value bounded");
    assert!(got.starts_with("ab ab ab") && !got.ends_with(' '));

    // A parameter that is both secret and a search parameter is never reported.
    let both = UrlRules {
        secret_params: vec!["q".into()],
        site_search_params: vec!["q".into(), "s".into()],
        ..UrlRules::default()
    };
    assert_eq!(both.site_search("q=secret&s=ok").as_deref(), Some("ok"));
}

#[test]
fn utm_cases() {
    let full = utm("utm_source=news%20letter&utm_medium=email&utm_campaign=spring+sale&utm_term=rust%2Blogs&utm_content=hero");
    assert_eq!(
        full,
        Utm {
            source: Some("news letter".into()),
            medium: Some("email".into()),
            campaign: Some("spring sale".into()),
            term: Some("rust+logs".into()),
            content: Some("hero".into()),
        }
    );
    assert!(!full.is_empty());
    assert!(utm("").is_empty());
    assert!(utm("a=1&b=2").is_empty());
    assert_eq!(
        utm("UTM_SOURCE=X").source.as_deref(),
        Some("X"),
        "names are case-insensitive"
    );
    assert_eq!(
        utm("utm_source=&utm_source=second").source.as_deref(),
        Some("second"),
        "empty skipped"
    );
    assert_eq!(
        utm("utm_source=first&utm_source=second").source.as_deref(),
        Some("first"),
        "first wins"
    );
    assert_eq!(utm("utm_medium").medium, None, "no value");
    assert_eq!(utm("utm_mediums=x").medium, None, "other name");
    assert_eq!(
        utm("x=1&&utm_campaign=%FF").campaign.as_deref(),
        Some("\u{FFFD}")
    );
    let long = format!("utm_campaign={}", "x".repeat(10_000));
    assert_eq!(utm(&long).campaign.map(|c| c.len()), Some(MAX_TEXT_CHARS));
}

#[test]
fn percent_decode_cases() {
    let cases: &[(&str, &str, bool, &str)] = &[
        ("nothing to do", "abc", false, "abc"),
        ("plus kept", "a+b", false, "a+b"),
        ("plus as space", "a+b", true, "a b"),
        ("ascii escapes", "%41%42", false, "AB"),
        ("lower-case hex", "%c3%a9", false, "é"),
        ("truncated escape", "%4", false, "%4"),
        ("bad hex", "%zz", false, "%zz"),
        ("trailing %", "100%", false, "100%"),
        ("double %", "%%41", false, "%A"),
        ("utf-8", "caf%C3%A9", false, "café"),
        ("invalid byte", "%FF", false, "\u{FFFD}"),
        ("truncated utf-8", "%C3", false, "\u{FFFD}"),
        ("invalid in middle", "a%FFb%C3%A9", false, "a\u{FFFD}bé"),
        ("raw utf-8 kept", "é%20", false, "é "),
        ("encoded plus", "%2B", true, "+"),
    ];
    for (name, input, plus, want) in cases {
        let got = percent_decode_lossy(input, *plus);
        assert_eq!(got, *want, "percent_decode case {name:?}");
        if input == want {
            assert!(
                matches!(got, Cow::Borrowed(_)),
                "percent_decode case {name:?} allocated"
            );
        }
    }
}

#[test]
fn split_target_cases() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("/", "/", None),
        ("/a/b", "/a/b", None),
        ("/search?q=x", "/search", Some("q=x")),
        ("/a?", "/a", Some("")),
        ("/a?b?c", "/a", Some("b?c")),
        ("/a#frag", "/a", None),
        ("/a?x=1#frag?y", "/a", Some("x=1")),
        ("http://example.org/a?b=1", "/a", Some("b=1")),
        ("http://example.org", "/", None),
        ("http://example.org?x=1", "/", Some("x=1")),
        ("example.org:443", "example.org:443", None),
        ("*", "*", None),
        ("", "", None),
    ];
    for (input, path, query) in cases {
        assert_eq!(
            split_target(input),
            (*path, *query),
            "split_target({input:?})"
        );
    }
}

#[test]
fn query_pair_cases() {
    let pairs: Vec<QueryPair<'_>> = query_pairs("a=1&&flag&b=x=y&=v&&").collect();
    let got: Vec<_> = pairs.iter().map(|p| (p.name, p.value)).collect();
    assert_eq!(
        got,
        [
            ("a", Some("1")),
            ("flag", None),
            ("b", Some("x=y")),
            ("", Some("v"))
        ]
    );
    assert_eq!(query_pairs("").count(), 0);
    assert_eq!(query_pairs("&&&").count(), 0);
    let p = query_pairs("na%6De=a+b%21").next().unwrap();
    assert_eq!(p.decoded_name(), "name");
    assert_eq!(p.decoded_value().as_deref(), Some("a b!"));
    assert!(p.name_is("NAME"));
    assert!(!p.name_is("nam"));
    assert_eq!(query_value("x=1&Y=2&y=3", "y"), Some("2"));
    assert_eq!(query_value("flag&x=1", "flag"), Some(""));
    assert_eq!(query_value("x=1", "y"), None);
}

#[test]
fn url_parts_cases() {
    let p = UrlParts::split("https://u:p@Example.org:8443/a;b?c=d#e");
    assert_eq!(
        p,
        UrlParts {
            scheme: Some("https"),
            userinfo: Some("u:p"),
            host: Some("Example.org"),
            port: Some("8443"),
            path: "/a;b",
            query: Some("c=d"),
            fragment: Some("e"),
        }
    );
    let v6 = UrlParts::split("http://[2001:db8::1]:8080/x");
    assert_eq!(
        (v6.host, v6.port, v6.path),
        (Some("[2001:db8::1]"), Some("8080"), "/x")
    );
    let rel = UrlParts::split("/a?b#c");
    assert_eq!(
        (rel.scheme, rel.host, rel.path, rel.query, rel.fragment),
        (None, None, "/a", Some("b"), Some("c"))
    );
    let mailto = UrlParts::split("mailto:jane@example.org");
    assert_eq!(
        (mailto.host, mailto.path),
        (None, "mailto:jane@example.org")
    );
    let empty_host = UrlParts::split("http:///x");
    assert_eq!((empty_host.host, empty_host.path), (Some(""), "/x"));
}

#[test]
fn very_long_inputs() {
    let rules = UrlRules::default();
    // 100k parameters, every tenth a secret.
    let query: String = (0..100_000)
        .map(|i| {
            if i % 10 == 0 {
                format!("token={i}")
            } else {
                format!("p{i}=v{i}")
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    let redacted = rules.redact_query(&query);
    assert_eq!(redacted.matches("token=REDACTED").count(), 10_000);
    assert_eq!(query_pairs(&redacted).count(), 100_000);
    assert!(!redacted.contains("token=10"));

    let clean: String = "page=1&".repeat(250_000);
    assert!(matches!(rules.redact_query(&clean), Cow::Borrowed(_)));
    assert_eq!(
        rules
            .site_search(&format!("{clean}q={}", "z".repeat(100_000)))
            .map(|s| s.len()),
        Some(MAX_TEXT_CHARS)
    );

    let path = format!("/x{}", "/12345".repeat(50_000));
    let route = RouteRules::default().template(&path);
    assert_eq!(route.len(), 2 + 4 * 50_000);
    assert!(route.ends_with("/:id/:id"));

    let long_segment = format!("/{}", "a".repeat(1_000_000));
    assert!(matches!(
        RouteRules::default().template(&long_segment),
        Cow::Borrowed(_)
    ));
    let semis = format!("/a{}", ";sid=1".repeat(10_000));
    assert_eq!(
        rules.redact_path(&semis).matches("REDACTED").count(),
        10_000
    );
}

#[test]
fn route_cases() {
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    let jwt_path = format!("/reset/{jwt}");
    let cases: &[(&str, &str, &str)] = &[
        ("root", "/", "/"),
        ("empty", "", ""),
        ("numeric id", "/users/123", "/users/:id"),
        ("trailing slash kept", "/users/123/", "/users/:id/"),
        (
            "query dropped",
            "/users/123/orders/456?page=2",
            "/users/:id/orders/:id",
        ),
        ("query dropped, nothing else", "/about?x=1", "/about"),
        ("fragment dropped", "/page#frag", "/page"),
        ("empty segments kept", "/a//b/7", "/a//b/:id"),
        ("single digit", "/page/2", "/page/:id"),
        (
            "uuid",
            "/u/3f2504e0-4f89-11d3-9a0c-0305e82c3301/edit",
            "/u/:uuid/edit",
        ),
        (
            "upper-case uuid",
            "/u/3F2504E0-4F89-11D3-9A0C-0305E82C3301",
            "/u/:uuid",
        ),
        (
            "md5",
            "/blob/d41d8cd98f00b204e9800998ecf8427e",
            "/blob/:hex",
        ),
        ("short hex kept", "/c/deadbeef", "/c/deadbeef"),
        ("16 hex", "/c/0123456789abcdef", "/c/:hex"),
        (
            "15 hex letters kept",
            "/c/abcdefabcdefabc",
            "/c/abcdefabcdefabc",
        ),
        (
            "hex letters without digits kept",
            "/c/deadbeefdeadbeefcafe",
            "/c/deadbeefdeadbeefcafe",
        ),
        (
            "token with extension",
            "/dl/k3j4h5g6f7d8s9a0z1x2c3v4.zip",
            "/dl/:token.zip",
        ),
        ("date", "/archive/2024-05-01", "/archive/:date"),
        ("timestamp", "/at/2024-05-01T10:00:00Z", "/at/:date"),
        (
            "impossible date kept",
            "/archive/2024-13-01",
            "/archive/2024-13-01",
        ),
        ("id with extension", "/img/123.jpg", "/img/:id.jpg"),
        (
            "date with extension",
            "/files/2024-05-01.pdf",
            "/files/:date.pdf",
        ),
        (
            "uuid with extension",
            "/a/3f2504e0-4f89-11d3-9a0c-0305e82c3301.png",
            "/a/:uuid.png",
        ),
        (
            "hashed asset",
            "/static/main.3f9a8b7c6d5e4f3a2b1c.js",
            "/static/main.:hex.js",
        ),
        (
            "hashed chunk",
            "/static/js/2.4c8d6f4e9a3b2c1d0e9f.chunk.js",
            "/static/js/2.:hex.chunk.js",
        ),
        ("version kept", "/v1.2.3/download", "/v1.2.3/download"),
        ("decimal kept", "/price/12.50", "/price/12.50"),
        (
            "email",
            "/users/jane.doe@example.org/profile",
            "/users/:email/profile",
        ),
        (
            "encoded email",
            "/users/jane%40example.org",
            "/users/:email",
        ),
        ("handle kept", "/@jane", "/@jane"),
        // The content detectors name it (the path scrubber does the same).
        ("jwt", &jwt_path, "/reset/:jwt"),
        (
            "base64url token",
            "/s/AbCdEf-GhIjKl_MnOpQr-StUvWx1",
            "/s/:token",
        ),
        (
            "slug kept",
            "/blog/how-to-install-rust-1-88-on-linux",
            "/blog/how-to-install-rust-1-88-on-linux",
        ),
        (
            "title slug kept",
            "/Top-10-Reasons-To-Visit-Paris-In-2024",
            "/Top-10-Reasons-To-Visit-Paris-In-2024",
        ),
        ("api version kept", "/api/v2/items", "/api/v2/items"),
        (
            "path params dropped",
            "/cart;jsessionid=ABC123/checkout",
            "/cart/checkout",
        ),
        ("path params dropped, id", "/item/42;v=1", "/item/:id"),
        (
            "percent-encoded words kept",
            "/%D8%B3%D9%84%D8%A7%D9%85/12",
            "/%D8%B3%D9%84%D8%A7%D9%85/:id",
        ),
        ("asterisk", "*", "*"),
        ("relative", "users/1", "users/:id"),
        (
            "wordpress date archive",
            "/2015/05/17/hello-world/",
            "/:id/:id/:id/hello-world/",
        ),
    ];
    let rules = RouteRules::default();
    for (name, input, want) in cases {
        let got = rules.template(input);
        assert_eq!(got, *want, "route case {name:?}: {input:?}");
        // Unchanged routes (query aside) are borrowed.
        let bare = input.split(['?', '#']).next().unwrap();
        if bare == *want {
            assert!(
                matches!(got, Cow::Borrowed(_)),
                "route case {name:?} allocated"
            );
        }
    }
}

#[test]
fn route_custom_rules_and_prefixes() {
    let config = RouteConfig {
        rules: vec![
            RouteRuleConfig {
                segment: "[a-z]{2}-[A-Z]{2}".into(),
                placeholder: ":locale".into(),
            },
            RouteRuleConfig {
                segment: r"p-\d+".into(),
                placeholder: ":product".into(),
            },
            // Custom rules run first: this one wins over the built-in `:id`.
            RouteRuleConfig {
                segment: "20[0-9]{2}".into(),
                placeholder: ":year".into(),
            },
        ],
        keep_prefixes: vec!["/docs/".into(), "/releases".into()],
        builtin: true,
    };
    let rules = RouteRules::from_config(&config).unwrap();
    let cases: &[(&str, &str)] = &[
        ("/en-GB/shop/p-123", "/:locale/shop/:product"),
        ("/en-gb/shop", "/en-gb/shop"),
        ("/xen-GB", "/xen-GB"),
        ("/news/2024/17", "/news/:year/:id"),
        ("/docs/2024-05-01/42", "/docs/2024-05-01/42"),
        ("/docs", "/docs"),
        ("/releases/1234", "/releases/1234"),
        ("/releases", "/releases"),
        ("/releases-old/1234", "/releases-old/:id"),
        ("/docs/x?q=1", "/docs/x"),
    ];
    for (input, want) in cases {
        assert_eq!(rules.template(input), *want, "{input:?}");
    }

    let no_builtin: RouteConfig = serde_json::from_str(
        r#"{"builtin": false, "rules": [{"segment": "\\d+", "placeholder": ":n"}]}"#,
    )
    .unwrap();
    let rules = RouteRules::from_config(&no_builtin).unwrap();
    assert_eq!(
        rules.template("/a/12/3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
        "/a/:n/3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    );

    let defaults: RouteConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(defaults, RouteConfig::default());
    assert!(defaults.builtin);
    assert!(
        serde_json::from_str::<RouteConfig>(r#"{"rulez": []}"#).is_err(),
        "unknown keys rejected"
    );
}

#[test]
fn route_config_errors() {
    let bad = |pattern: &str, replacement: &str| RouteConfig {
        rules: vec![RouteRuleConfig {
            segment: pattern.into(),
            placeholder: replacement.into(),
        }],
        ..RouteConfig::default()
    };
    assert!(matches!(
        RouteRules::from_config(&bad("(", ":x")),
        Err(RouteRuleError::Pattern { .. })
    ));
    assert!(matches!(
        RouteRules::from_config(&bad("x", "")),
        Err(RouteRuleError::Replacement(_))
    ));
    assert!(matches!(
        RouteRules::from_config(&bad("x", "a/b")),
        Err(RouteRuleError::Replacement(_))
    ));
    let prefix = RouteConfig {
        keep_prefixes: vec!["docs".into()],
        ..RouteConfig::default()
    };
    assert!(matches!(
        RouteRules::from_config(&prefix),
        Err(RouteRuleError::Prefix(_))
    ));

    let mut rules = RouteRules::new();
    assert!(rules.add_rule("[", ":x").is_err());
    assert_eq!(
        rules.template("/1"),
        "/:id",
        "a failed add leaves the rules usable"
    );
    rules
        .add_rule("abc", ":abc")
        .unwrap()
        .add_keep_prefix("/keep")
        .unwrap();
    assert_eq!(rules.template("/abc/1"), "/:abc/:id");
    assert_eq!(rules.template("/keep/1"), "/keep/1");
    rules.set_builtin(false);
    assert_eq!(rules.template("/abc/1"), "/:abc/1");
    let msg = RouteRules::from_config(&bad("(", ":x"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("\"(\""), "{msg}");
}

fn query_strategy() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "password",
        "Token",
        "pass%77ord",
        "q",
        "x",
        "sid",
        "",
        "user[secret]",
        "keyword",
        "%",
        "a+b",
    ]);
    let value = prop::option::of("[a-zA-Z0-9%+=;é]{0,8}");
    prop::collection::vec((name, value, prop::bool::weighted(0.1)), 0..12).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(n, v, empty)| {
                if empty {
                    String::new()
                } else {
                    v.map_or(n.to_string(), |v| format!("{n}={v}"))
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

proptest! {
    // Failures are reported with their minimal input; no regression files are written.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn redact_query_properties(query in query_strategy(), allow in any::<bool>()) {
        // Values of up to 8 characters without `.`, `@` or `:` hold nothing
        // the content detectors find: only the policy changes them.
        let rules = if allow { UrlRules::default() } else { deny() };
        let out = rules.redact_query(&query);
        let before: Vec<_> = query_pairs(&query).collect();
        let after: Vec<_> = query_pairs(&out).collect();
        prop_assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            prop_assert_eq!(a.name, b.name);
            if !rules.keeps(b.name) && b.value.is_some_and(|v| !v.is_empty()) {
                prop_assert_eq!(a.value, Some("REDACTED"));
            } else {
                prop_assert_eq!(a.value, b.value);
            }
            if rules.is_secret_name(b.name) {
                prop_assert!(!rules.keeps(b.name), "a secret is never kept");
            }
        }
        // Separators survive byte-for-byte.
        prop_assert_eq!(out.matches('&').count(), query.matches('&').count());
        // Idempotent, and the second pass borrows.
        let again = rules.redact_query(&out);
        prop_assert!(matches!(again, Cow::Borrowed(_)));
    }

    #[test]
    fn decode_never_panics(s in "\\PC{0,40}", plus in any::<bool>()) {
        let decoded = percent_decode_lossy(&s, plus);
        if !(s.contains('%') || plus && s.contains('+')) {
            prop_assert!(matches!(decoded, Cow::Borrowed(_)));
        }
        let _ = UrlRules::default().redact_url(&s);
        let _ = UrlRules::default().site_search(&s);
        let _ = utm(&s);
        let _ = split_target(&s);
    }

    #[test]
    fn route_template_properties(segments in prop::collection::vec("[a-zA-Z0-9.@%;=_-]{0,30}", 0..8), query in "[a-z=&]{0,5}") {
        let path = format!("/{}", segments.join("/"));
        let target = format!("{path}?{query}");
        let rules = RouteRules::default();
        let route = rules.template(&target);
        prop_assert!(!route.contains('?'));
        prop_assert!(!route.contains(';'));
        prop_assert_eq!(route.matches('/').count(), path.matches('/').count());
        // Templating a template changes nothing.
        let again = rules.template(&route);
        prop_assert_eq!(&again, &route);
        prop_assert!(matches!(again, Cow::Borrowed(_)));
    }
}

/// Under the default policy: referrers from addresses, without a scheme,
/// and with personal data in their path and query.
#[test]
fn redact_url_allow_cases() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "address host",
            "http://84.203.1.217:80/",
            "http://84.203.1.0:80/",
        ),
        ("network host", "http://84.203.1.0/", "http://84.203.1.0/"),
        (
            "IPv6 host",
            "https://[2001:db8:1:2::99]:8443/a",
            "https://[2001:db8:1::]:8443/a",
        ),
        ("IPv4-mapped host", "http://[::ffff:192.0.2.33]/", "http://192.0.2.0/"),
        (
            "no scheme",
            "www.google.com/search?q=jane%40example.org&ei=xYz",
            "www.google.com/search?q=:email&ei=REDACTED",
        ),
        (
            "no scheme, address",
            "84.203.1.217/admin",
            "84.203.1.0/admin",
        ),
        (
            "path and query",
            "https://example.org/u/jane@example.org/3f2504e0-4f89-11d3-9a0c-0305e82c3301?utm_source=x&uid=42",
            "https://example.org/u/:email/:uuid?utm_source=x&uid=REDACTED",
        ),
        (
            "fragment",
            "https://example.org/#/u/jane@example.org?page=2&t=1",
            "https://example.org/#/u/:email?page=2&t=REDACTED",
        ),
        (
            "clean",
            "https://www.google.com/search?q=rust&start=10",
            "https://www.google.com/search?q=rust&start=10",
        ),
    ];
    let rules = UrlRules::default();
    for (name, input, want) in cases {
        check("redact_url", name, input, rules.redact_url(input), want);
    }
}

/// The allow-list: which values stay, by name; what the detectors do to them.
#[test]
fn redact_query_allow_cases() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "kept names",
            "page=2&sort=desc&lang=de",
            "page=2&sort=desc&lang=de",
        ),
        (
            "other values, names kept",
            "cronKey=6fd2a8c0&wp_scrape_nonce=1&uid=30635594",
            "cronKey=REDACTED&wp_scrape_nonce=REDACTED&uid=REDACTED",
        ),
        (
            "utm prefix, any case and encoding",
            "UTM_Source=x&utm%5Fcampaign=y&utm_anything=z",
            "UTM_Source=x&utm%5Fcampaign=y&utm_anything=z",
        ),
        ("site search", "s=shoes&q=boots", "s=shoes&q=boots"),
        ("secret wins", "page=2&token=x", "page=2&token=REDACTED"),
        ("bracketed allowed key", "filter[page]=3", "filter[page]=3"),
        (
            "html-escaped separator",
            "a=1&amp;page=2",
            "a=REDACTED&amp;page=2",
        ),
        ("bare names kept", "flag&debug", "flag&debug"),
        ("empty values kept", "x=&page=", "x=&page="),
        (
            "detectors on kept values",
            "q=call+%2B49+170+1234567&page=84.203.1.217",
            "q=call+:phone&page=:ip",
        ),
        (
            "detectors on names",
            "jane@example.org&page=1",
            ":email&page=1",
        ),
        ("already redacted", "x=REDACTED", "x=REDACTED"),
    ];
    let rules = UrlRules::default();
    for (name, input, want) in cases {
        check("redact_query", name, input, rules.redact_query(input), want);
    }
}
