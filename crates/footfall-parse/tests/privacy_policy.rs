//! What leaves the parser of a line's URLs and of a rejected line, under the
//! query policy and the content detectors; and the privacy settings that
//! are refused.

use std::sync::Arc;

use footfall_event::{Reject, VisitEvent};
use footfall_parse::url::QueryPolicy;
use footfall_parse::{
    ConfigError, FormatState, Outcome, ParseConfig, Pipeline, PrivacyConfig, SecretKeys, SourceRef,
    Tables,
};

mod common;
use common::{PLANTED, PLANTED_LINES};

fn pipeline(cfg: &ParseConfig) -> Arc<Pipeline> {
    let keys = Arc::new(SecretKeys::from_secret(b"privacy policy test secret").unwrap());
    Arc::new(Pipeline::new(cfg, &Tables::embedded(), keys).unwrap())
}

fn combined() -> ParseConfig {
    ParseConfig {
        format: "combined".into(),
        site: Some("example.org".into()),
        ..Default::default()
    }
}

fn outcome(p: &Arc<Pipeline>, line: &str) -> Outcome {
    let src = SourceRef::from_first_line("privacy", b"first");
    p.worker()
        .process(&src, &mut FormatState::default(), 0, line.as_bytes())
}

fn event(p: &Arc<Pipeline>, line: &str) -> VisitEvent {
    match outcome(p, line) {
        Outcome::Event(e) => *e,
        Outcome::Reject(r) => panic!("{line}: rejected: {}", r.reason),
    }
}

fn reject(p: &Arc<Pipeline>, line: &str) -> Reject {
    match outcome(p, line) {
        Outcome::Reject(r) => *r,
        Outcome::Event(_) => panic!("{line}: not rejected"),
    }
}

fn assert_nothing_planted(what: &str, out: &str) {
    for value in PLANTED {
        assert!(
            !out.contains(value),
            "{value:?} left the parser in {what}: {out}"
        );
    }
}

#[test]
fn planted_values_reach_no_event_field() {
    let p = pipeline(&combined());
    let events: Vec<VisitEvent> = PLANTED_LINES.iter().map(|l| event(&p, l)).collect();
    for e in &events {
        assert_nothing_planted("an event", &serde_json::to_string(e).unwrap());
    }
    let [a, b, c, d, e] = &events[..] else {
        panic!("five lines")
    };
    // Path segments and routes: typed placeholders.
    assert_eq!(a.path, "/users/:email/orders");
    assert_eq!(a.route, "/users/:email/orders");
    assert_eq!(d.path, "/ip/:ip/:ip/:key");
    assert_eq!(e.path, "/contact/:phone/:ip");
    // Query values: the allow-list keeps `page`, `q`, `s`, `utm_*`; the
    // detectors scrub what it keeps.
    assert_eq!(a.query.as_deref(), Some("cronKey=REDACTED&page=2"));
    assert_eq!(
        b.query.as_deref(),
        Some("wp_scrape_key=REDACTED&wp_scrape_nonce=REDACTED")
    );
    assert_eq!(
        c.query.as_deref(),
        Some("sessionToken=REDACTED&q=call+:phone")
    );
    assert_eq!(c.site_search.as_deref(), Some("call :phone"));
    assert_eq!(
        d.query.as_deref(),
        Some("utm_source=news&utm_content=:card&s=:jwt")
    );
    assert_eq!(d.utm_content.as_deref(), Some(":card"));
    assert_eq!(d.site_search.as_deref(), Some(":jwt"));
    // Referrers: an address host is its network; user-info goes; path and
    // query as in requests; no scheme is still a URL; `\xHH` stays, not U+FFFD.
    assert_eq!(
        a.referrer.as_deref(),
        Some("http://84.203.1.0:80/admin?uid=REDACTED")
    );
    assert_eq!(a.referrer_host.as_deref(), Some("84.203.1.0/24"));
    assert_eq!(
        b.referrer.as_deref(),
        Some("www.google.com/search?q=:email")
    );
    assert_eq!(b.referrer_host.as_deref(), Some("www.google.com"));
    assert_eq!(b.referrer_medium, "search");
    assert_eq!(b.search_terms.as_deref(), Some(":email"));
    assert_eq!(
        c.referrer.as_deref(),
        Some("https://[2001:db8:abcd::]:8443/x/:uuid?email=REDACTED&q=rust")
    );
    assert_eq!(c.referrer_host.as_deref(), Some("2001:db8:abcd::/48"));
    assert_eq!(
        e.referrer.as_deref(),
        Some("http://\\xe4\\xe5.example/?token=REDACTED")
    );
    assert_eq!(e.referrer_host.as_deref(), Some("\\xe4\\xe5.example"));
}

#[test]
fn the_allow_list_is_extended_or_traded_for_a_deny_list() {
    let line = |q: &str| {
        format!(
            r#"203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /?{q} HTTP/1.1" 200 5 "-" "curl/8.5.0""#
        )
    };
    let q = "ref=spring&color=red&token=x&sort=asc&cronKey=6fd2a8c0b1e94f37";
    let allow = event(&pipeline(&combined()), &line(q));
    assert_eq!(
        allow.query.as_deref(),
        Some("ref=REDACTED&color=REDACTED&token=REDACTED&sort=asc&cronKey=REDACTED")
    );
    let extended = ParseConfig {
        query_allow: vec!["ref".into(), "Color".into()],
        ..combined()
    };
    assert_eq!(
        event(&pipeline(&extended), &line(q)).query.as_deref(),
        Some("ref=spring&color=red&token=REDACTED&sort=asc&cronKey=REDACTED")
    );
    // The deny-list keeps what no secret name covers; the detectors still
    // run on every kept value.
    let deny = ParseConfig {
        query_policy: QueryPolicy::Deny,
        ..combined()
    };
    assert_eq!(
        event(&pipeline(&deny), &line(q)).query.as_deref(),
        Some("ref=spring&color=red&token=REDACTED&sort=asc&cronKey=:hex")
    );
}

#[test]
fn dead_letters_carry_nothing_planted_and_parse_again() {
    let wrong = pipeline(&ParseConfig {
        format: "nginx-json".into(),
        ..combined()
    });
    let right = pipeline(&combined());
    for line in PLANTED_LINES {
        let dead = reject(&wrong, line);
        assert_nothing_planted("a dead letter", &serde_json::to_string(&dead).unwrap());
        // The time is intact and the line parses once its format is fixed.
        assert!(dead.line.contains("[17/May/2015:10:05:0"), "{}", dead.line);
        let again = event(&right, &dead.line);
        assert_nothing_planted(
            "a re-parsed dead letter",
            &serde_json::to_string(&again).unwrap(),
        );
    }
    let first = reject(&wrong, PLANTED_LINES[0]);
    assert!(
        first.line.starts_with("203.0.113.0 - - [17/May/2015:10:05:03 +0000] \"GET /users/:email/orders?cronKey=REDACTED&page=2 "),
        "{}",
        first.line
    );
    let second = reject(&wrong, PLANTED_LINES[1]);
    assert!(
        second.line.starts_with("2001:db8:abcd:: - - "),
        "{}",
        second.line
    );
}

#[test]
fn impossible_settings_are_refused_naming_the_key() {
    let refused = |cfg: ParseConfig, key: &str| {
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.to_string().starts_with(&format!("{key}: ")), "{e}");
        let keys = Arc::new(SecretKeys::from_secret(b"privacy policy test secret").unwrap());
        match Pipeline::new(&cfg, &Tables::embedded(), keys) {
            Err(ConfigError::Setting(s)) => assert_eq!(s, e),
            other => panic!("{key}: Pipeline::new gave {:?}", other.map(|_| ())),
        }
        e.to_string()
    };
    let privacy = |ipv4_prefix, ipv6_prefix, emit_raw_ip| ParseConfig {
        privacy: PrivacyConfig {
            ipv4_prefix,
            ipv6_prefix,
            emit_raw_ip,
            ..Default::default()
        },
        ..combined()
    };
    let e = refused(privacy(40, 48, false), "privacy.ipv4_prefix");
    assert!(e.contains("40") && e.contains("0 to 31"), "{e}");
    refused(privacy(24, 129, false), "privacy.ipv6_prefix");
    // Whole addresses only with the explicit opt-in.
    let e = refused(privacy(32, 48, false), "privacy.ipv4_prefix");
    assert!(e.contains("emit_raw_ip"), "{e}");
    refused(privacy(24, 128, false), "privacy.ipv6_prefix");
    assert_eq!(privacy(32, 128, true).validate(), Ok(()));
    assert_eq!(privacy(0, 0, false).validate(), Ok(()));

    refused(
        ParseConfig {
            query_policy: QueryPolicy::Deny,
            query_allow: vec!["ref".into()],
            ..combined()
        },
        "query_allow",
    );
    let e = refused(
        ParseConfig {
            query_allow: vec!["Token".into()],
            ..combined()
        },
        "query_allow",
    );
    assert!(
        e.contains("\"Token\"") && e.contains("secret_params"),
        "{e}"
    );
    refused(
        ParseConfig {
            site_search_params: Some(vec!["q".into(), "sid".into()]),
            ..combined()
        },
        "site_search_params",
    );
    refused(
        ParseConfig {
            secret_params: Some(vec!["token".into(), " ".into()]),
            ..combined()
        },
        "secret_params",
    );
    assert_eq!(combined().validate(), Ok(()));
}

#[test]
fn the_policy_is_read_from_configuration() {
    let cfg: ParseConfig =
        serde_json::from_str(r#"{"query_policy":"deny","secret_params":["token"]}"#).unwrap();
    assert_eq!(cfg.query_policy, QueryPolicy::Deny);
    let cfg: ParseConfig = serde_json::from_str(r#"{"query_allow":["ref"]}"#).unwrap();
    assert_eq!(
        (cfg.query_policy, cfg.query_allow),
        (QueryPolicy::Allow, vec!["ref".to_string()])
    );
    for bad in [r#"{"query_policy":"none"}"#, r#"{"query_allowed":["ref"]}"#] {
        assert!(serde_json::from_str::<ParseConfig>(bad).is_err(), "{bad}");
    }
}

/// The user keys a dead letter's JSON loses ([`dead_letter::USER_KEYS`]) are the
/// ones the JSON formats read a user name from.
#[test]
fn dead_letters_drop_the_user_keys_the_json_formats_read() {
    use footfall_parse::dead_letter::USER_KEYS;
    use footfall_parse::formats;
    let lines = [
        (
            "nginx-json",
            r#"{"remote_addr":"192.0.2.1","remote_user":"frank","time_local":"17/May/2015:10:05:03 +0000","request":"GET / HTTP/1.1","status":"200"}"#,
        ),
        (
            "caddy",
            r#"{"ts":"2024-01-02T03:04:05.678Z","request":{"remote_ip":"192.0.2.1","method":"GET","uri":"/","headers":{}},"user_id":"frank","status":200,"size":0}"#,
        ),
        (
            "traefik-json",
            r#"{"ClientHost":"192.0.2.10","ClientUsername":"frank","DownstreamStatus":200,"RequestMethod":"GET","RequestPath":"/","StartUTC":"2023-08-11T11:39:21.773360139Z"}"#,
        ),
    ];
    let rules = footfall_parse::url::UrlRules::default();
    for ((format, line), key) in lines.iter().zip(USER_KEYS) {
        assert!(line.contains(&format!("\"{key}\":\"frank\"")));
        let rec = formats::preset(format)
            .unwrap()
            .parse(line, &mut FormatState::default())
            .unwrap_or_else(|e| panic!("{format}: {}", e.reason));
        assert_eq!(rec.user.as_deref(), Some("frank"), "{format} reads {key}");
        let scrubbed = footfall_parse::dead_letter::scrub_line(line, &rules, None);
        assert!(scrubbed.contains(&format!("\"{key}\":\"-\"")), "{scrubbed}");
    }
}
