//! `footfall topics` and `footfall demo` against the real broker.
//! Needs FOOTFALL_KAFKA_BROKERS (deploy/test.sh sets it and requires it).

use footfall_testkit::brokers;

use std::process::Command;

fn ff(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_footfall"))
        .args(args)
        .output()
        .expect("spawn footfall")
}

fn unique(p: &str) -> String {
    format!(
        "{p}.{}.{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    )
}

#[test]
fn topics_creates_is_idempotent_and_reports_mismatches() {
    let Some(b) = brokers() else { return };
    let t = unique("cli.topics");
    let dlq = format!("{t}.dlq");
    let first = ff(&[
        "topics",
        "--brokers",
        &b,
        "--topic",
        &t,
        "--dlq-topic",
        &dlq,
    ]);
    assert!(first.status.success(), "{first:?}");
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        out.contains(&format!("created  {t} (6 partitions)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("created  {dlq} (1 partitions)")),
        "{out}"
    );

    let again = ff(&[
        "topics",
        "--brokers",
        &b,
        "--topic",
        &t,
        "--dlq-topic",
        &dlq,
    ]);
    assert!(again.status.success());
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(
        out.contains(&format!("ok       {t}")) && !out.contains("created"),
        "second run is a no-op: {out}"
    );

    let wrong = ff(&[
        "topics",
        "--brokers",
        &b,
        "--topic",
        &t,
        "--dlq-topic",
        &dlq,
        "--partitions",
        "3",
    ]);
    assert_eq!(
        wrong.status.code(),
        Some(78),
        "a mismatch exits 78 (configuration)"
    );
    let out = String::from_utf8_lossy(&wrong.stdout);
    assert!(
        out.contains(&format!("mismatch: topic {t}: partitions is 6, expected 3")),
        "{out}"
    );

    let check = ff(&[
        "topics",
        "--brokers",
        &b,
        "--topic",
        &unique("cli.missing"),
        "--dlq-topic",
        &unique("cli.missing.dlq"),
        "--check",
    ]);
    assert_eq!(check.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&check.stdout).contains("missing"));

    let unreachable = ff(&["topics", "--brokers", "127.0.0.1:1", "--topic", &t]);
    assert_eq!(
        unreachable.status.code(),
        Some(69),
        "an unreachable broker exits 69"
    );
}

/// `topics --config`: the layout is the config's `[kafka.topics]`, the
/// dead-letter topic is named after the visits topic, and `--topic` beats
/// the file.
#[test]
fn topics_follow_the_config_and_the_dead_letter_topic_follows_the_visits_topic() {
    let Some(b) = brokers() else { return };
    let t = unique("cli.config");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("footfall.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{b}\"\n[kafka.topics.visits]\nname = \"{t}\"\npartitions = 2\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let created = ff(&["topics", "--config", config]);
    let out = String::from_utf8_lossy(&created.stdout);
    assert!(created.status.success(), "{out}");
    assert!(
        out.contains(&format!("created  {t} (2 partitions)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("created  {t}.dlq (1 partitions)")),
        "{out}"
    );

    let other = unique("cli.config.flag");
    let check = ff(&["topics", "--config", config, "--topic", &other, "--check"]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(78), "{out}");
    assert!(out.contains(&format!("missing  {other} ")), "{out}");
    assert!(out.contains(&format!("missing  {other}.dlq ")), "{out}");
}

/// The demo gives the same report on the embedded broker and on real Kafka.
#[test]
fn demo_same_results_embedded_and_real_kafka() {
    let Some(b) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("embedded");
    let r = dir.path().join("real");
    let embedded = ff(&["demo", "--json", "--dir", a.to_str().unwrap()]);
    assert!(
        embedded.status.success(),
        "{}",
        String::from_utf8_lossy(&embedded.stderr)
    );
    let real = ff(&[
        "demo",
        "--json",
        "--dir",
        r.to_str().unwrap(),
        "--brokers",
        &b,
        "--topic",
        &unique("cli.demo"),
    ]);
    assert!(
        real.status.success(),
        "{}",
        String::from_utf8_lossy(&real.stderr)
    );
    let ja: serde_json::Value = serde_json::from_slice(&embedded.stdout).unwrap();
    let jr: serde_json::Value = serde_json::from_slice(&real.stdout).unwrap();
    assert_eq!(ja, jr, "same report either way");
    // 15 days of sample traffic, and the books balance (the demo checks itself and fails otherwise).
    assert_eq!(ja["days"].as_array().unwrap().len(), 15);
    let requests: i64 = ja["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[1].as_i64().unwrap())
        .sum();
    assert_eq!(requests, 32_126);
}

/// A misspelt or unsupported librdkafka property is a configuration error
/// (exit 78, which systemd does not restart), named by its key; its value,
/// possibly a secret, is never printed. No broker is needed to find out.
#[test]
fn bad_kafka_properties_exit_78_without_their_value() {
    let wh = tempfile::tempdir().unwrap();
    let wh = wh.path().join("wh").display().to_string();
    for prop in [
        "sasl.passwrod=S3CRET-VALUE",
        "sasl.oauthbearer.client.secret=S3CRET-VALUE",
    ] {
        let runs: [Vec<&str>; 2] = [
            vec!["topics", "--check", "--brokers", "127.0.0.1:1", "-X", prop],
            vec![
                "aggregate",
                "--brokers",
                "127.0.0.1:1",
                "--warehouse",
                &wh,
                "-X",
                prop,
            ],
        ];
        for args in runs {
            let out = ff(&args);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.code(), Some(78), "{args:?}: {text}");
            let key = prop.split('=').next().unwrap();
            assert!(text.contains(key), "{args:?} names the key: {text}");
            assert!(
                !text.contains("S3CRET"),
                "{args:?} printed the value: {text}"
            );
        }
    }
}
