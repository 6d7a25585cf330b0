//! The site's own host inferred from its referrers, on real logs
//! (`parse.infer_site_host`, `footfall_parse::self_host`).
//!
//! The elastic log (semicomplete.com, combined format, no virtual host)
//! ships in `tests/data`; the other logs are read from `../shared/data`
//! beside the checkout (or `$FOOTFALL_SHARED_DATA`) when it is there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use footfall_parse::{FormatState, Outcome, ParseConfig, Pipeline, SecretKeys, SourceRef, Tables};
use footfall_testkit::{read_log, shared_data};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pipeline(format: &str) -> Pipeline {
    let cfg = ParseConfig {
        format: format.into(),
        // The corpus reaches back to 1995.
        max_past_days: 100 * 366,
        ..Default::default()
    };
    let keys = Arc::new(SecretKeys::from_secret(b"site host inference test secret").unwrap());
    Pipeline::new(&cfg, &Tables::embedded(), keys).unwrap()
}

/// Events of every line of `data` by referrer medium, and the external
/// referrals whose host is `self_host` (any spelling, `www.` or not).
fn media(p: Pipeline, data: &[u8], self_host: &str) -> (BTreeMap<String, usize>, usize) {
    let p = Arc::new(p);
    let mut worker = p.worker();
    let src = SourceRef::from_first_line("access.log", b"");
    let mut state = FormatState::default();
    let (mut by_medium, mut self_external) = (BTreeMap::new(), 0);
    let mut offset = 0u64;
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if let Outcome::Event(e) = worker.process(&src, &mut state, offset, line) {
            *by_medium.entry(e.referrer_medium.to_string()).or_insert(0) += 1;
            let host = e.referrer_host.as_deref().unwrap_or("");
            if e.referrer_medium == "external"
                && host.strip_prefix("www.").unwrap_or(host) == self_host
            {
                self_external += 1;
            }
        }
        offset += line.len() as u64 + 1;
    }
    (by_medium, self_external)
}

/// The first lines as `footfall parse` samples them: its first 256 KiB chunk.
fn first_chunk(data: &[u8]) -> Vec<&[u8]> {
    data[..data.len().min(256 << 10)]
        .split(|&b| b == b'\n')
        .collect()
}

#[test]
fn elastic_self_referrals_become_internal() {
    let data = read_log(&repo_root().join("tests/data/elastic-apache-logs/apache_logs.gz"));
    let p = pipeline("combined");
    let sample = first_chunk(&data);
    let found = p.infer_site_host(&sample).expect("a host is inferred");
    println!("elastic: first {} lines: inferred {found}", sample.len());
    assert_eq!(found.host, "www.semicomplete.com");
    assert!(found.referrals * 10 >= found.considered * 9, "{found}");

    let (before, self_before) = media(pipeline("combined"), &data, "semicomplete.com");
    let (after, self_after) = media(p.with_site_host(&found.host), &data, "semicomplete.com");
    let n = |m: &BTreeMap<String, usize>, k: &str| m.get(k).copied().unwrap_or(0);
    println!("elastic, no site host:     {before:?}; {self_before} of the external referrals are semicomplete.com's own");
    println!("elastic, {} inferred: {after:?}", found.host);
    // The count: 5,039 of the 5,322 external referrals are the site's own.
    assert_eq!((n(&before, "external"), self_before), (5_322, 5_039));
    assert_eq!(n(&after, "external"), 5_322 - 5_039);
    assert_eq!(self_after, 0);
    assert_eq!(
        n(&after, "internal"),
        n(&before, "internal") + 5_039,
        "every self-referral, and nothing else, moved to internal"
    );
    for m in ["direct", "search", "social", "email", "paid"] {
        assert_eq!(n(&before, m), n(&after, m), "{m}");
    }
}

#[test]
fn elastic_inference_is_the_same_from_a_small_sample() {
    let data = read_log(&repo_root().join("tests/data/elastic-apache-logs/apache_logs.gz"));
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let p = pipeline("combined");
    // The first 100 lines hold enough self-referrals; the first 10 do not.
    let hosts: Vec<Option<String>> = [10, 100, 1000, 10_000]
        .iter()
        .map(|&n| p.infer_site_host(&lines[..n]).map(|f| f.host))
        .collect();
    println!("elastic, first 10/100/1,000/10,000 lines: {hosts:?}");
    assert_eq!(hosts[0], None);
    for h in &hosts[1..] {
        assert_eq!(h.as_deref(), Some("www.semicomplete.com"));
    }
}

/// What every real log of the corpus infers from its first chunk: its own
/// site, or nothing; never a search engine or another site.
#[test]
fn corpus_infers_its_own_site_or_nothing() {
    let Some(shared) = shared_data() else {
        println!("../shared/data not present: not run");
        return;
    };
    let logs: &[(&str, &str, Option<&str>)] = &[
        (
            "elastic-apache-logs/apache_logs.gz",
            "combined",
            Some("www.semicomplete.com"),
        ),
        (
            "zanbil-kaggle-head10k/access_10000.log.gz",
            "combined",
            Some("www.zanbil.ir"),
        ),
        (
            "secrepo-selflogs/access-2018-12-15.log.gz",
            "combined",
            Some("www.secrepo.com"),
        ),
        (
            "secrepo-selflogs/2021_all.log.gz",
            "combined",
            Some("www.secrepo.com"),
        ),
        (
            "secrepo-selflogs/access.log.2022-12-22.gz",
            "combined",
            Some("www.secrepo.com"),
        ),
        (
            "wordpress-nginx-2025-hackathon/access.log.gz",
            "combined",
            Some("website.local.lan"),
        ),
        // No referrers at all.
        ("nasa-http-aug95-first20k/nasa.log.gz", "common", None),
        ("monitorware-twiki-2004/access_log", "common", None),
    ];
    for &(file, format, want) in logs {
        let path = shared.join(file);
        if !path.exists() {
            println!("{}: not present", path.display());
            continue;
        }
        let data = read_log(&path);
        let found = pipeline(format).infer_site_host(&first_chunk(&data));
        println!(
            "{file}: {}",
            found
                .as_ref()
                .map_or("nothing inferred".to_string(), |f| f.to_string())
        );
        assert_eq!(found.map(|f| f.host).as_deref(), want, "{file}");
    }
}
