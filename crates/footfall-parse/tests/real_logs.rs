//! Real third-party logs: every line accounted for, GoAccess's unique-visitor
//! counts reproduced, and no personal data in the output.
//!
//! The Apache-2.0 elastic log ships in `tests/data`; the rest of the corpus is
//! read from `../shared/data` beside the checkout (or `$FOOTFALL_SHARED_DATA`)
//! and those tests say so plainly when it is absent.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use footfall_parse::{FormatState, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables};
use footfall_testkit::{read_log, shared_data};

/// The corpus reaches back to 1995, further than the default window of
/// twenty years before the clock (`parse.max_past_days`).
const CORPUS_PAST_DAYS: u32 = 100 * 366;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Lines with their byte offsets, as `footfall parse` and ingest cut them.
fn lines(data: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = memchr_pos(&data[start..]).map_or(data.len(), |i| start + i);
        out.push((start as u64, &data[start..end]));
        start = end + 1;
    }
    out
}

fn memchr_pos(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

struct Run {
    lines: usize,
    events: Vec<footfall_event::VisitEvent>,
    rejects: Vec<footfall_event::Reject>,
    raw: Vec<String>,
}

fn run(path: &Path, format: &str, tables: &Tables) -> Run {
    let data = read_log(path);
    // One site per file, as GoAccess counts visitors without the virtual host.
    let cfg = ParseConfig {
        format: format.to_string(),
        site: Some("example.org".into()),
        max_past_days: CORPUS_PAST_DAYS,
        ..Default::default()
    };
    let keys = Arc::new(SecretKeys::from_secret(b"test secret for the real-log corpus").unwrap());
    let p = Arc::new(Pipeline::new(&cfg, tables, keys).unwrap());
    let mut w = p.worker();
    let ls = lines(&data);
    let src = SourceRef::from_first_line(
        path.display().to_string(),
        ls.first().map_or(&[][..], |l| l.1),
    );
    let mut state = FormatState::default();
    let mut r = Run {
        lines: ls.len(),
        events: vec![],
        rejects: vec![],
        raw: vec![],
    };
    for (off, line) in ls {
        r.raw.push(String::from_utf8_lossy(line).into_owned());
        match w.process(&src, &mut state, off, line) {
            Outcome::Event(e) => r.events.push(*e),
            Outcome::Reject(j) => r.rejects.push(*j),
        }
    }
    r
}

/// GoAccess's unique visitors: distinct (day, visitor) over requests not answered 4xx.
fn goaccess_visitors(events: &[footfall_event::VisitEvent]) -> usize {
    events
        .iter()
        .filter(|e| e.is_visitor_request())
        .map(|e| (e.local_date(), e.visitor_id.clone()))
        .collect::<HashSet<_>>()
        .len()
}

#[test]
fn elastic_apache_log_in_repo() {
    let tables = Tables::embedded();
    let r = run(
        &repo_root().join("tests/data/elastic-apache-logs/apache_logs.gz"),
        "combined",
        &tables,
    );
    assert_eq!(r.lines, 10_000);
    assert_eq!(
        r.events.len(),
        10_000,
        "rejects: {:?}",
        r.rejects.iter().take(3).collect::<Vec<_>>()
    );
    assert!(r.rejects.is_empty());
    assert_eq!(
        goaccess_visitors(&r.events),
        2_095,
        "GoAccess 1.7 counts 2,095 unique visitors"
    );
    let ids: HashSet<_> = r.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), 10_000, "event ids are unique per line");
    // Line 8,899's user agent lost its closing quote; it still parses.
    let cut_off = offset_of(&r.raw, 8898) as u64;
    assert!(!r.raw[8898].ends_with('"'));
    let e = r
        .events
        .iter()
        .find(|e| e.offset == cut_off)
        .expect("line 8,899 is an event");
    assert_eq!(e.status, 200);
    assert_no_personal_data(&r);
}

fn offset_of(raw: &[String], idx: usize) -> usize {
    raw[..idx].iter().map(|l| l.len() + 1).sum()
}

/// (path under shared/data, format, expected lines, expected GoAccess unique visitors)
const CORPUS: &[(&str, &str, usize, Option<usize>)] = &[
    (
        "elastic-apache-logs/apache_logs.gz",
        "combined",
        10_000,
        Some(2_095),
    ),
    (
        "zanbil-kaggle-head10k/access_10000.log.gz",
        "combined",
        10_018,
        Some(637),
    ),
    (
        "secrepo-selflogs/access-2018-12-15.log.gz",
        "combined",
        4_961,
        Some(316),
    ),
    ("secrepo-selflogs/2021_all.log.gz", "combined", 5_854, None),
    (
        "secrepo-selflogs/access.log.2022-12-22.gz",
        "combined",
        1_262,
        Some(442),
    ),
    (
        "wordpress-nginx-2025-hackathon/access.log.gz",
        "combined",
        10_000,
        Some(1_864),
    ),
    (
        "nasa-http-aug95-first20k/nasa.log.gz",
        "common",
        20_000,
        Some(1_642),
    ),
    (
        "monitorware-twiki-2004/access_log",
        "common",
        1_535,
        Some(197),
    ),
    (
        "thedash-nginx-json-2013/access.log.gz",
        "nginx-json",
        10_049,
        Some(115),
    ),
];

#[test]
fn shared_corpus_counts_and_visitors() {
    let Some(dir) = shared_data() else {
        println!("shared/data not present: the real-log corpus tests were not run");
        return;
    };
    let tables = Tables::embedded();
    for &(rel, format, lines, visitors) in CORPUS {
        let r = run(&dir.join(rel), format, &tables);
        println!(
            "{rel}: {} lines, {} events, {} rejects",
            r.lines,
            r.events.len(),
            r.rejects.len()
        );
        assert_eq!(r.lines, lines, "{rel}: line count");
        assert_eq!(
            r.events.len() + r.rejects.len(),
            r.lines,
            "{rel}: every line is an event or a reject"
        );
        assert!(
            r.rejects.is_empty(),
            "{rel}: real lines rejected: {:?}",
            r.rejects.iter().take(3).collect::<Vec<_>>()
        );
        if let Some(v) = visitors {
            assert_eq!(
                goaccess_visitors(&r.events),
                v,
                "{rel}: GoAccess unique visitors"
            );
        }
        assert_no_personal_data(&r);
    }
}

/// No client address, and no value of a secret parameter, from any input line
/// appears anywhere in the events.
fn assert_no_personal_data(r: &Run) {
    let secret_names = footfall_parse::url::UrlRules::default().secret_params;
    let mut checked_clients = 0;
    let json: Vec<String> = r
        .events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let by_offset: std::collections::HashMap<u64, &String> =
        r.events.iter().map(|e| e.offset).zip(json.iter()).collect();
    let mut offset = 0u64;
    for raw in &r.raw {
        let here = offset;
        offset += raw.len() as u64 + 1;
        let Some(out) = by_offset.get(&here) else {
            continue;
        };
        // The truncated network may start with the address itself (x.y.z.0), and
        // the logged virtual host is the server's own name: neither is the client.
        let mut out = out.to_string();
        for field in ["client_net", "host"] {
            let key = format!("\"{field}\":\"");
            if let Some(v) = out
                .split(&key)
                .nth(1)
                .and_then(|s| s.split('"').next())
                .map(str::to_string)
            {
                out = out.replace(&format!("{key}{v}\""), "");
            }
        }
        // The client is the first token in CLF-family lines and remote_addr in JSON ones.
        let client = if raw.starts_with('{') {
            raw.split("\"remote_addr\":\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("")
        } else {
            raw.split(' ').next().unwrap_or("")
        };
        if client.len() >= 7 {
            assert!(!out.contains(client), "client {client:?} leaked into {out}");
            checked_clients += 1;
        }
        for name in &secret_names {
            for pat in [format!("?{name}="), format!("&{name}=")] {
                if let Some(i) = raw.find(&pat) {
                    let v: String = raw[i + pat.len()..]
                        .chars()
                        .take_while(|c| !matches!(c, '&' | ' ' | '"' | '#'))
                        .collect();
                    if v.len() >= 4 && v != "REDACTED" {
                        assert!(!out.contains(&v), "secret {name}={v} leaked into {out}");
                    }
                }
            }
        }
    }
    assert!(
        checked_clients > 0 || r.events.is_empty(),
        "the leak check looked at no clients"
    );
}

/// A format each corpus log is not in, so that every line becomes a dead letter.
fn wrong_format(format: &str) -> &'static str {
    if format == "nginx-json" {
        "combined"
    } else {
        "nginx-json"
    }
}

/// The request target and the referrer of a raw line, as logged.
fn target_and_referrer(raw: &str) -> (Option<&str>, Option<&str>) {
    if raw.starts_with('{') {
        let field = |key: &str| {
            raw.split(&format!("\"{key}\":\""))
                .nth(1)
                .and_then(|s| s.split('"').next())
        };
        let target = field("request").and_then(|r| r.split(' ').nth(1));
        return (target, field("http_referer"));
    }
    let mut quoted = raw.split('"');
    let target = quoted.nth(1).and_then(|r| r.split(' ').nth(1));
    (target, quoted.nth(1))
}

/// Query parameters the issue found leaking by name (the shared logs carry
/// `cronKey`, `wp_scrape_key`, `wp_scrape_nonce` and `uid`; `sessionToken`
/// is planted in `tests/privacy_policy.rs`).
const LEAKED_NAMES: &[&str] = &[
    "cronKey",
    "wp_scrape_key",
    "wp_scrape_nonce",
    "sessionToken",
    "uid",
];

/// What a line's URLs carry that must not leave the parser, found by an
/// oracle of its own (not the detectors): values of [`LEAKED_NAMES`], e-mail
/// addresses (plain or `%40`), and IP addresses in the request target or
/// the referrer.
fn personal_values(raw: &str) -> Vec<String> {
    use std::sync::LazyLock;
    static EMAIL: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"[A-Za-z0-9._+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]+")
            .unwrap()
    });
    static IPV4: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"(^|[^0-9A-Za-z._-])(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})($|[^0-9A-Za-z.])",
        )
        .unwrap()
    });
    static IPV6: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"[0-9A-Fa-f:]*::[0-9A-Fa-f:.]*").unwrap());
    let (target, referrer) = target_and_referrer(raw);
    let mut found = Vec::new();
    for url in [target, referrer].into_iter().flatten() {
        for pair in url.split(['?', '&', '#']) {
            if let Some((name, value)) = pair.split_once('=') {
                if LEAKED_NAMES.contains(&name) && value.len() >= 4 {
                    found.push(value.to_string());
                }
            }
        }
        for m in EMAIL.find_iter(url) {
            found.push(m.as_str().to_string());
            found.push(m.as_str().replace("%40", "@"));
        }
        for c in IPV4.captures_iter(url) {
            let ip = &c[2];
            if ip.parse::<std::net::Ipv4Addr>().is_ok() && !ip.ends_with(".0") {
                found.push(ip.to_string());
            }
        }
        for m in IPV6.find_iter(url) {
            if m.as_str().parse::<std::net::Ipv6Addr>().is_ok() && m.as_str().len() > 3 {
                found.push(m.as_str().to_string());
            }
        }
    }
    found
}

/// The issue's list: `cronKey`, `wp_scrape_key`/`wp_scrape_nonce`,
/// `sessionToken`, e-mail addresses and IP addresses in URLs or referrers
/// reach no field of their line's event, nor its dead letter (every line made
/// a reject by reading it in a format it is not in). Dead letters keep no
/// client address either. (The memo tests in `pipeline_props.rs` show that a
/// line's output does not depend on other lines.)
#[test]
fn shared_corpus_leaks_nothing_listed_into_events_or_dead_letters() {
    let Some(dir) = shared_data() else {
        println!("shared/data not present: the real-log leak tests were not run");
        return;
    };
    let tables = Tables::embedded();
    let mut checked = std::collections::BTreeMap::new();
    for &(rel, format, ..) in CORPUS {
        let path = dir.join(rel);
        let events = run(&path, format, &tables);
        let dead = run(&path, wrong_format(format), &tables);
        assert_eq!(dead.rejects.len(), dead.lines, "{rel}: every line rejected");
        let by_offset: std::collections::HashMap<u64, String> = events
            .events
            .iter()
            .map(|e| (e.offset, serde_json::to_string(e).unwrap()))
            .collect();
        let mut offset = 0u64;
        for (raw, reject) in dead.raw.iter().zip(&dead.rejects) {
            let here = offset;
            offset += raw.len() as u64 + 1;
            let dead_letter = serde_json::to_string(reject).unwrap();
            let event = by_offset.get(&here).map_or("", String::as_str);
            for value in personal_values(raw) {
                for (what, out) in [("event", event), ("dead letter", &dead_letter)] {
                    assert!(
                        !out.contains(&value),
                        "{rel}: {value:?} reached the {what}: {out}"
                    );
                }
                *checked.entry(rel).or_insert(0) += 1;
            }
            let client = if raw.starts_with('{') {
                raw.split("\"remote_addr\":\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("")
            } else {
                raw.split(' ').next().unwrap_or("")
            };
            // A host name that is its own registrable domain (`yid613.org`)
            // is kept as `*.yid613.org`, as in `client_net`.
            let out = dead_letter.replace(&format!("*.{client}"), "");
            if client.len() >= 7 && !client.ends_with(".0") {
                assert!(!out.contains(client), "{rel}: client {client:?} in {out}");
            }
        }
    }
    println!("values checked per log: {checked:?}");
    assert!(
        checked["wordpress-nginx-2025-hackathon/access.log.gz"] >= 208,
        "the cronKey values were looked for"
    );
}

/// Dead letters can be parsed again once their format is fixed (the runbook
/// has operators do so): every line of the corpus, rejected for a wrong
/// format and scrubbed, is an event in the right one.
#[test]
fn dead_letters_parse_again_in_the_right_format() {
    let tables = Tables::embedded();
    let mut logs = vec![(
        repo_root().join("tests/data/elastic-apache-logs/apache_logs.gz"),
        "combined",
    )];
    if let Some(dir) = shared_data() {
        logs.extend(
            CORPUS
                .iter()
                .map(|&(rel, format, ..)| (dir.join(rel), format)),
        );
    } else {
        println!("shared/data not present: only the log in tests/data was re-parsed");
    }
    let keys = Arc::new(SecretKeys::from_secret(b"test secret for the real-log corpus").unwrap());
    for (path, format) in logs {
        let dead = run(&path, wrong_format(format), &tables);
        let cfg = ParseConfig {
            format: format.to_string(),
            site: Some("example.org".into()),
            max_past_days: CORPUS_PAST_DAYS,
            ..Default::default()
        };
        let p = Arc::new(Pipeline::new(&cfg, &tables, keys.clone()).unwrap());
        let mut w = p.worker();
        let src = SourceRef::from_first_line("dead letters", b"");
        let mut scrubbed = 0;
        for (raw, reject) in dead.raw.iter().zip(&dead.rejects) {
            if reject.truncated {
                continue; // over Reject::MAX_LINE: kept in part, for reading only
            }
            scrubbed += usize::from(reject.line != *raw);
            match w.process(&src, &mut FormatState::default(), 0, reject.line.as_bytes()) {
                Outcome::Event(_) => {}
                Outcome::Reject(r) => panic!(
                    "{}: the dead letter {:?} of {raw:?} does not parse: {}",
                    path.display(),
                    reject.line,
                    r.reason
                ),
            }
        }
        assert!(
            scrubbed > 0,
            "{}: no dead letter was scrubbed",
            path.display()
        );
    }
}

/// The paths of a log with their counts, most requested first (ties by path).
fn top_paths(raw: &[String], n: usize) -> Vec<(String, usize)> {
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for line in raw {
        if let (Some(target), _) = target_and_referrer(line) {
            let path = target.split(['?', '#']).next().unwrap_or("");
            *counts.entry(path.to_string()).or_default() += 1;
        }
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// Top-200 paths the detectors change, each with why: (log, path as
/// logged, path in events, reason).
const NAMED_FINDINGS: &[(&str, &str, &str, &str)] = &[
    (
        "elastic-apache-logs/apache_logs.gz",
        "/presentations/logstash-scale11x/css/fonts/cJZKeOuBrn4kERxqtaUH3aCWcynf_cDxXwCLxiixG1c.ttf",
        "/presentations/logstash-scale11x/css/fonts/:token.ttf",
        "a 43-character base64url name (a web-font id) is what a token looks like",
    ),
    (
        "elastic-apache-logs/apache_logs.gz",
        "/presentations/logstash-scale11x/css/fonts/xjAJXh38I15wypJXxuGMBp0EAVxt0G0biEntp43Qt6E.ttf",
        "/presentations/logstash-scale11x/css/fonts/:token.ttf",
        "a 43-character base64url name (a web-font id) is what a token looks like",
    ),
];

/// No false positives on real paths: the 200 most requested paths of the
/// elastic, wordpress and zanbil logs reach events unchanged, except those
/// in [`NAMED_FINDINGS`], which become what the table says.
#[test]
fn top_paths_are_unchanged_but_for_named_findings() {
    let Some(dir) = shared_data() else {
        println!("shared/data not present: the top-paths test was not run");
        return;
    };
    let tables = Tables::embedded();
    let mut named_seen = 0;
    for rel in [
        "elastic-apache-logs/apache_logs.gz",
        "wordpress-nginx-2025-hackathon/access.log.gz",
        "zanbil-kaggle-head10k/access_10000.log.gz",
    ] {
        let r = run(&dir.join(rel), "combined", &tables);
        let by_offset: std::collections::HashMap<u64, &str> = r
            .events
            .iter()
            .map(|e| (e.offset, e.path.as_str()))
            .collect();
        let mut parsed = std::collections::HashMap::<&str, &str>::new();
        let mut offset = 0u64;
        for raw in &r.raw {
            if let (Some(target), Some(path)) = (target_and_referrer(raw).0, by_offset.get(&offset))
            {
                parsed.insert(target.split(['?', '#']).next().unwrap_or(""), path);
            }
            offset += raw.len() as u64 + 1;
        }
        let top = top_paths(&r.raw, 200);
        assert_eq!(top.len(), 200, "{rel}");
        for (path, count) in &top {
            let named = NAMED_FINDINGS
                .iter()
                .find(|(log, original, ..)| *log == rel && original == path);
            let want = named.map_or(path.as_str(), |n| n.2);
            named_seen += usize::from(named.is_some());
            assert_eq!(
                parsed[path.as_str()],
                want,
                "{rel}: {path} ({count} requests)"
            );
        }
    }
    assert_eq!(
        named_seen,
        NAMED_FINDINGS.len(),
        "every named finding is a top path"
    );
}
