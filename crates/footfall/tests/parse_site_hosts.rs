//! `footfall parse --site-host`: referrers from the site's own hosts are
//! `internal`; without one the host is inferred from the referrers (unless
//! `--no-infer-site-host`); and the events carry the kind of resource of
//! schema 2. No broker needed.

use std::io::Write;
use std::process::{Command, Stdio};

use footfall_event::{VisitEvent, SCHEMA_VERSION};

const BIN: &str = env!("CARGO_BIN_EXE_footfall");

const LINES: &str = concat!(
    r#"203.0.113.7 - - [17/May/2025:10:05:03 +0000] "GET /about HTTP/1.1" 200 512 "https://blog.example.com/" "Mozilla/5.0 (X11; Linux x86_64; rv:138.0) Gecko/20100101 Firefox/138.0""#,
    "\n",
    r#"203.0.113.7 - - [17/May/2025:10:05:04 +0000] "GET /static/site.css HTTP/1.1" 200 512 "https://shop.example.com/cart" "Mozilla/5.0 (X11; Linux x86_64; rv:138.0) Gecko/20100101 Firefox/138.0""#,
    "\n",
    r#"203.0.113.7 - - [17/May/2025:10:05:05 +0000] "GET /api/cart HTTP/1.1" 404 0 "https://elsewhere.example.net/" "Mozilla/5.0 (X11; Linux x86_64; rv:138.0) Gecko/20100101 Firefox/138.0""#,
    "\n",
);

fn parse(flags: &[&str]) -> Vec<VisitEvent> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("parse")
        .arg("--keyring")
        .arg(dir.path().join("keyring"))
        .args(["-f", "combined", "--site", "example.org"])
        .args(flags)
        .env_remove("FOOTFALL_KEYRING")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(LINES.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn media(events: &[VisitEvent]) -> Vec<&str> {
    events.iter().map(|e| &*e.referrer_medium).collect()
}

#[test]
fn site_hosts_make_referrers_internal() {
    // The site is example.org; its shop and blog live on example.com.
    let none = parse(&[]);
    assert_eq!(media(&none), ["external", "external", "external"]);
    let one = parse(&["--site-host", "blog.example.com"]);
    assert_eq!(media(&one), ["internal", "external", "external"]);
    let two = parse(&[
        "--site-host",
        "Blog.Example.com",
        "--site-host",
        "shop.example.com",
    ]);
    assert_eq!(media(&two), ["internal", "internal", "external"]);
}

#[test]
fn events_carry_the_kind_of_resource() {
    let events = parse(&[]);
    let got: Vec<(u16, &str, bool)> = events
        .iter()
        .map(|e| (e.v, &*e.kind, e.is_pageview))
        .collect();
    let v = SCHEMA_VERSION;
    assert_eq!(
        got,
        [(v, "page", true), (v, "asset", false), (v, "api", false)]
    );
}

/// `footfall parse` of the elastic log (semicomplete.com, no virtual host)
/// with `flags`: events by referrer medium, and stderr.
fn parse_elastic(flags: &[&str]) -> (std::collections::BTreeMap<String, usize>, String) {
    let log = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/elastic-apache-logs/apache_logs.gz");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("parse")
        .arg("--keyring")
        .arg(dir.path().join("keyring"))
        .args(flags)
        .arg(&log)
        .env_remove("FOOTFALL_KEYRING")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let mut media = std::collections::BTreeMap::new();
    for l in String::from_utf8(out.stdout).unwrap().lines() {
        let e: VisitEvent = serde_json::from_str(l).unwrap();
        *media.entry(e.referrer_medium.to_string()).or_insert(0) += 1;
    }
    (media, stderr)
}

#[test]
fn the_site_host_is_inferred_from_the_referrers_unless_switched_off() {
    let n = |m: &std::collections::BTreeMap<String, usize>, k: &str| m.get(k).copied().unwrap_or(0);
    let (inferred, stderr) = parse_elastic(&[]);
    let (off, off_stderr) = parse_elastic(&["--no-infer-site-host"]);
    println!("inferred: {inferred:?}\n{stderr}");
    println!("--no-infer-site-host: {off:?}");
    assert!(
        stderr.contains(
            "site host inferred: www.semicomplete.com (433 of 443 referrals to the site's own paths); \
             set --site-host or --no-infer-site-host to change"
        ),
        "{stderr}"
    );
    // 5,039 of the 5,322 external referrals were semicomplete.com's own.
    assert_eq!((n(&off, "external"), n(&off, "internal")), (5_322, 0));
    assert_eq!(
        (n(&inferred, "external"), n(&inferred, "internal")),
        (283, 5_039)
    );
    assert!(!off_stderr.contains("inferred"), "{off_stderr}");
    // A host given is the operator's word: nothing is inferred.
    let (given, given_stderr) = parse_elastic(&["--site-host", "semicomplete.com"]);
    assert_eq!(given, inferred);
    assert!(!given_stderr.contains("inferred"), "{given_stderr}");
}
