//! `footfall aggregate` as cron runs it, against the real broker: SIGKILL at
//! several points then a re-run gives the same warehouse as an uninterrupted
//! run; a run that finds the warehouse locked exits 75 at once.
//! Needs FOOTFALL_KAFKA_BROKERS (deploy/test.sh sets it and requires it).

mod common;
use common::{aggregate, brokers, ff, snapshot};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ok(c: &mut Command) {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Ingest the built-in sample logs (the demo's) into a fresh topic.
fn topic_with_events(b: &str, tmp: &Path) -> String {
    let topic = format!(
        "aggproc.{}.{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    ok(ff().args([
        "topics",
        "--brokers",
        b,
        "--topic",
        &topic,
        "--dlq-topic",
        &format!("{topic}.dlq"),
    ]));
    let key = tmp.join("keyring");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (f, fmt) in [
        ("tests/data/elastic-apache-logs/apache_logs.gz", "combined"),
        ("tests/data/secrepo-selflogs/2021_all.log.gz", "combined"),
        (
            "tests/data/formats/thedash-nginx-json-2013/access.log.gz",
            "nginx-json",
        ),
    ] {
        ok(ff()
            .args([
                "ingest",
                "--brokers",
                b,
                "--topic",
                &topic,
                "--dead-letter-topic",
                &format!("{topic}.dlq"),
                "--format",
                fmt,
                "--once",
                "--http-listen",
                "off",
            ])
            .arg("--state-dir")
            .arg(tmp.join(format!("state-{fmt}")))
            .arg("--keyring")
            .arg(&key)
            .arg(repo.join(f)));
    }
    topic
}

#[test]
fn sigkill_at_several_points_then_rerun_equals_uninterrupted() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let topic = topic_with_events(&b, tmp.path());

    let reference = tmp.path().join("reference");
    ok(&mut aggregate(&b, &topic, &format!("{topic}.ref"), &reference));
    let want = snapshot(&reference);
    assert!(
        want.len() > 100,
        "the reference run wrote {} files",
        want.len()
    );

    let wh = tmp.path().join("killed");
    let group = format!("{topic}.killed");
    // Kill points spread over a run: early (joining), mid-consume, writing, summarising.
    let mut killed = 0;
    for delay_ms in [150u64, 600, 1100, 1700, 2500] {
        let mut child = aggregate(&b, &topic, &group, &wh)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        killed >= 2,
        "only {killed} runs were killed before they finished"
    );
    ok(&mut aggregate(&b, &topic, &group, &wh));
    let got = snapshot(&wh);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "same files"
    );
    for (k, v) in &want {
        assert!(
            got[k] == *v,
            "{} differs from the uninterrupted run",
            k.display()
        );
    }
}

#[test]
fn a_locked_warehouse_exits_75_at_once() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let wh = tmp.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let lock = wh.join(".footfall.lock");
    std::fs::write(&lock, "").unwrap();
    // Hold the lock the way a running aggregate does (flock), from another process.
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let o = aggregate(&b, "no.such.topic", "g", &wh).output()
        .unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(
        o.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it must not wait for the lock"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("lock"));
}
