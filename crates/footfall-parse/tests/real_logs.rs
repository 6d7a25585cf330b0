//! Real third-party logs: every line accounted for, GoAccess's unique-visitor
//! counts reproduced, and no personal data in the output.
//!
//! The Apache-2.0 elastic log ships in `tests/data`; the rest of the corpus is
//! read from `../shared/data` beside the checkout (or `$FOOTFALL_SHARED_DATA`)
//! and those tests say so plainly when it is absent.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use footfall_parse::{FormatState, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared_data() -> Option<PathBuf> {
    let p = std::env::var_os("FOOTFALL_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data"));
    p.is_dir().then_some(p)
}

fn read(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        raw
    }
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
    let data = read(path);
    // One site per file, as GoAccess counts visitors without the virtual host.
    let cfg = ParseConfig {
        format: format.to_string(),
        site: Some("example.org".into()),
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
