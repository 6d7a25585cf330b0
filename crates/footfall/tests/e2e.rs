//! End to end against the real broker: real logs of different formats →
//! `footfall ingest` → Kafka → `footfall aggregate` → Parquet, queried with
//! DuckDB; the answers must equal independent numbers: GoAccess's per-day
//! unique visitors and status counts on the same files, and counts computed
//! here from the raw lines. Also: no client address reaches Kafka or Parquet,
//! and a second aggregate run changes nothing.
//!
//! Needs FOOTFALL_KAFKA_BROKERS (deploy/test.sh sets it and requires it).

mod common;
use common::{aggregate, ff};
use footfall_testkit::{brokers, snapshot};

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn gunzip(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap();
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

struct Log {
    name: &'static str,
    path: PathBuf,
    format: &'static str,
    site: &'static str,
    /// GoAccess --log-format (and extra args) for the oracle; None: no oracle.
    goaccess: Option<Vec<&'static str>>,
}

fn duckdb(sql: &str) -> Vec<Vec<String>> {
    let script = "import duckdb,json,sys\nrows=duckdb.sql(sys.argv[1]).fetchall()\nprint(json.dumps([[str(c) for c in r] for r in rows]))";
    let out = run_ok(Command::new("python3").arg("-c").arg(script).arg(sql));
    serde_json::from_str(&out).expect("duckdb output")
}

/// GoAccess's per-day unique visitors and per-status hits.
fn goaccess(path: &Path, args: &[&str]) -> (BTreeMap<String, u64>, BTreeMap<u16, u64>) {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("log");
    std::fs::write(&plain, gunzip(path)).unwrap();
    let json = dir.path().join("out.json");
    run_ok(
        Command::new("goaccess")
            .arg(&plain)
            .args(args)
            .arg("--no-global-config")
            .arg("-o")
            .arg(&json),
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let mut days = BTreeMap::new();
    for d in v["visitors"]["data"].as_array().unwrap() {
        let s = d["data"].as_str().unwrap(); // 20150517
        let date = format!("{}-{}-{}", &s[0..4], &s[4..6], &s[6..8]);
        days.insert(date, d["visitors"]["count"].as_u64().unwrap());
    }
    let mut status = BTreeMap::new();
    for class in v["status_codes"]["data"].as_array().unwrap() {
        for item in class["items"].as_array().into_iter().flatten() {
            let code: u16 = item["data"].as_str().unwrap()[..3].parse().unwrap();
            *status.entry(code).or_default() += item["hits"]["count"].as_u64().unwrap();
        }
    }
    (days, status)
}

#[test]
fn real_logs_through_kafka_to_parquet_match_goaccess() {
    let Some(brokers) = brokers() else { return };
    // Oldest first (2013, 2015, 2025): one keyring backfills in date order,
    // since moving to a newer day destroys the keys of days more than its
    // horizon before it (docs/privacy.md, "Destruction").
    let mut logs = vec![
        Log {
            name: "thedash",
            path: repo().join("tests/data/formats/thedash-nginx-json-2013/access.log.gz"),
            format: "nginx-json",
            site: "thedash.com",
            goaccess: None,
        },
        Log {
            name: "elastic",
            path: repo().join("tests/data/elastic-apache-logs/apache_logs.gz"),
            format: "combined",
            site: "semicomplete.com",
            goaccess: Some(vec!["--log-format=COMBINED"]),
        },
    ];
    let shared = repo().join("../shared/data/wordpress-nginx-2025-hackathon/access.log.gz");
    if shared.exists() {
        logs.push(Log {
            name: "wordpress",
            path: shared,
            format: "combined",
            site: "wp.example",
            goaccess: Some(vec!["--log-format=COMBINED"]),
        });
    } else {
        println!("shared/data not present: the wordpress log is not part of this run");
    }

    let tmp = tempfile::tempdir().unwrap();
    // One keyring for every ingest of the run, made by the first.
    let key = tmp.path().join("keyring");
    let topic = format!(
        "e2e.visits.{}.{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    run_ok(ff().args([
        "topics",
        "--brokers",
        &brokers,
        "--topic",
        &topic,
        "--dlq-topic",
        &format!("{topic}.dlq"),
    ]));

    let mut raw_lines: HashMap<&str, Vec<String>> = HashMap::new();
    for log in &logs {
        let text = String::from_utf8_lossy(&gunzip(&log.path)).into_owned();
        raw_lines.insert(log.name, text.lines().map(str::to_string).collect());
        run_ok(
            ff().args([
                "ingest",
                "--brokers",
                &brokers,
                "--topic",
                &topic,
                "--dlq-topic",
                &format!("{topic}.dlq"),
            ])
            .args([
                "--format",
                log.format,
                "--site",
                log.site,
                "--http-listen",
                "off",
                "--once",
            ])
            .arg("--state-dir")
            .arg(tmp.path().join(format!("state-{}", log.name)))
            .arg("--keyring")
            .arg(&key)
            .arg(&log.path),
        );
    }

    let wh = tmp.path().join("wh");
    run_ok(&mut aggregate(
        &brokers,
        &topic,
        &format!("{topic}.agg"),
        &wh,
    ));
    let w = wh.display().to_string();
    let table = |t: &str| format!("read_parquet('{w}/{t}/*/*.parquet', hive_partitioning=true)");

    // Every line is one request in the summaries and one row in the events table.
    for log in &logs {
        let n = raw_lines[log.name].len();
        let req = duckdb(&format!(
            "SELECT sum(requests) FROM {} WHERE site = '{}'",
            table("traffic_daily"),
            log.site
        ));
        assert_eq!(req[0][0], n.to_string(), "{}: requests = lines", log.name);
        let ev = duckdb(&format!(
            "SELECT count(*), count(DISTINCT event_id) FROM {} WHERE site = '{}'",
            table("events"),
            log.site
        ));
        assert_eq!(
            ev[0],
            vec![n.to_string(), n.to_string()],
            "{}: event rows = lines",
            log.name
        );
        // pyarrow reads the same table.
        let pa = run_ok(Command::new("python3").arg("-c").arg(format!(
            "import pyarrow.dataset as ds; t=ds.dataset('{w}/events', format='parquet', partitioning='hive').to_table(); print(t.num_rows)"
        )));
        assert!(pa.trim().parse::<usize>().unwrap() >= n);
    }

    for log in &logs {
        let Some(args) = &log.goaccess else { continue };
        let (ga_days, ga_status) = goaccess(&log.path, args);
        let ours: BTreeMap<String, u64> = duckdb(&format!(
            "SELECT date::VARCHAR, sum(visitors) FROM {} WHERE site = '{}' GROUP BY 1 ORDER BY 1",
            table("traffic_daily"),
            log.site
        ))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
        assert_eq!(
            ours, ga_days,
            "{}: per-day unique visitors equal GoAccess's",
            log.name
        );
        let status: BTreeMap<u16, u64> = duckdb(&format!(
            "SELECT status, sum(requests) FROM {} WHERE site = '{}' GROUP BY 1 ORDER BY 1",
            table("status_daily"),
            log.site
        ))
        .into_iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
        .collect();
        assert_eq!(
            status, ga_status,
            "{}: status counts equal GoAccess's",
            log.name
        );
        // And equal a count straight from the raw lines: the status follows the quoted request.
        let mut raw: BTreeMap<u16, u64> = BTreeMap::new();
        for l in &raw_lines[log.name] {
            let after = l.split("\" ").nth(1).unwrap_or("");
            if let Ok(s) = after.split(' ').next().unwrap_or("").parse::<u16>() {
                *raw.entry(s).or_default() += 1;
            }
        }
        assert_eq!(
            status, raw,
            "{}: status counts equal the raw lines'",
            log.name
        );
    }

    // No client address from any input reaches Kafka or Parquet. Referrer
    // fields are left out: a referrer whose host is an IP literal names a web
    // server (here the site's own address), not a visitor.
    let kcat = Command::new("kcat")
        .args([
            "-b",
            &brokers,
            "-C",
            "-t",
            &topic,
            "-e",
            "-q",
            "-o",
            "beginning",
        ])
        .output()
        .unwrap();
    assert!(kcat.status.success());
    let mut values: std::collections::HashSet<String> = std::collections::HashSet::new();
    for line in String::from_utf8_lossy(&kcat.stdout).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).expect("every message is a JSON event");
        assert!(
            v.get("client_ip").is_none(),
            "raw client_ip on the topic without opt-in"
        );
        for (k, val) in v.as_object().unwrap() {
            if let (false, Some(s)) = (k.starts_with("referrer"), val.as_str()) {
                values.insert(s.to_string());
            }
        }
    }
    let parquet_values = run_ok(Command::new("python3").arg("-c").arg(format!(
        "import duckdb\nfor r in duckdb.sql(\"SELECT * EXCLUDE (referrer, referrer_host) FROM {}\").fetchall():\n    print('\\n'.join(str(c) for c in r))",
        table("events")
    )));
    values.extend(parquet_values.lines().map(str::to_string));
    let mut checked = 0;
    for log in &logs {
        for l in &raw_lines[log.name] {
            let client = if l.starts_with('{') {
                l.split("\"remote_addr\":\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("")
            } else {
                l.split(' ').next().unwrap_or("")
            };
            if client.parse::<std::net::IpAddr>().is_ok() {
                assert!(
                    !values.contains(client),
                    "client address {client} reached Kafka or Parquet"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "checked only {checked} addresses");

    // A second run with nothing new changes nothing.
    let before = snapshot(&wh);
    run_ok(&mut aggregate(
        &brokers,
        &topic,
        &format!("{topic}.agg"),
        &wh,
    ));
    assert_eq!(
        snapshot(&wh),
        before,
        "a re-run with no new data changed the warehouse"
    );
}
