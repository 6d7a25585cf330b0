//! `footfall parse` at the edges: a reader that goes away, damaged inputs,
//! interrupted runs, and formats that do not fit. No broker needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_footfall");

fn elastic() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/elastic-apache-logs/apache_logs.gz")
}

fn elastic_text() -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(elastic()).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn parse(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("parse")
        .arg("--keyring")
        .arg(dir.join("keyring"))
        .env_remove("FOOTFALL_KEYRING");
    c
}

fn wait(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("footfall parse did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_at_every_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    // Four copies: far more output than a pipe holds.
    let big = dir.path().join("big.log");
    let text = elastic_text();
    std::fs::write(&big, [&text[..], &text, &text, &text].concat()).unwrap();
    for threads in ["1", "2", "4"] {
        let mut child = parse(dir.path())
            .args(["-j", threads])
            .arg(&big)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("{\"v\":"), "{first}");
        // The reader is dropped here: like `| head -1`.
        let status = wait(&mut child, Duration::from_secs(20));
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(0), "-j {threads}: {err}");
        assert!(!err.contains("error"), "-j {threads}: {err}");
    }
}

#[test]
fn a_truncated_gzip_keeps_its_readable_part_and_the_next_inputs_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let gz = std::fs::read(elastic()).unwrap();
    let truncated = dir.path().join("truncated.gz");
    std::fs::write(&truncated, &gz[..gz.len() / 2]).unwrap();
    let text = elastic_text();
    let next = dir.path().join("next.log");
    std::fs::write(
        &next,
        &text[..text
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(99)
            .unwrap()
            .0
            + 1],
    )
    .unwrap();
    let out = dir.path().join("events.jsonl");
    let run = parse(dir.path())
        .arg(&truncated)
        .arg(&next)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(65), "{err}");
    assert!(
        err.contains("truncated.gz") && err.contains("damaged"),
        "{err}"
    );
    // What decompresses of the first half, to its last complete line.
    let mut readable = Vec::new();
    let _ = flate2::read::MultiGzDecoder::new(&gz[..gz.len() / 2]).read_to_end(&mut readable);
    let readable_lines = readable.iter().filter(|b| **b == b'\n').count();
    assert!(readable_lines > 1000, "{readable_lines}");
    let events = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(
        events,
        readable_lines + 100,
        "the readable part and every line of the next input"
    );
}

#[test]
fn an_interrupted_run_leaves_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut child = parse(dir.path())
        .args(["-f", "combined", "-o"])
        .arg(&out)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&elastic_text()).unwrap();
    // Wait until the temporary output exists, then interrupt while stdin is still open.
    let start = Instant::now();
    let temp_exists = || {
        std::fs::read_dir(dir.path()).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".footfall-")
        })
    };
    while !temp_exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no temporary output appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: sends SIGINT to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait(&mut child, Duration::from_secs(20));
    drop(stdin);
    assert_eq!(status.code(), Some(130));
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "keyring")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_format_that_does_not_fit_stops_with_65_and_says_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    // Common-format lines: the combined lines without referrer and user agent.
    let text = String::from_utf8(elastic_text()).unwrap();
    let common: String = text
        .lines()
        .take(300)
        .map(|l| {
            format!(
                "{}\n",
                l.split("\" \"")
                    .next()
                    .unwrap()
                    .rsplit_once(" \"")
                    .unwrap()
                    .0
            )
        })
        .collect();
    let clf = dir.path().join("common.log");
    std::fs::write(&clf, common).unwrap();
    let run = parse(dir.path())
        .args(["-f", "combined", "-o"])
        .arg(dir.path().join("o.jsonl"))
        .arg(&clf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(65), "{err}");
    assert!(
        err.contains("auto detects common") && err.contains("--format common"),
        "{err}"
    );
    assert!(
        !dir.path().join("o.jsonl").exists(),
        "no output for a run that stopped"
    );

    let binary = dir.path().join("binary.log");
    std::fs::write(
        &binary,
        (0..20_000u32)
            .flat_map(|i| i.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let run = parse(dir.path())
        .args(["-f", "combined"])
        .arg(&binary)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // A narrower format parses the lines but says once what it leaves out.
    let run = parse(dir.path())
        .args(["-f", "common", "-o", "/dev/null"])
        .arg(elastic())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert_eq!(
        err.matches("--format combined reads them").count(),
        1,
        "{err}"
    );
}

#[test]
fn an_impossible_prefix_stops_with_78_naming_the_key_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value, key) in [
        ("--ipv4-prefix", "40", "privacy.ipv4_prefix"),
        ("--ipv6-prefix", "129", "privacy.ipv6_prefix"),
        ("--ipv4-prefix", "32", "privacy.ipv4_prefix"),
    ] {
        let run = parse(dir.path())
            .args(["-f", "combined", flag, value, "-o"])
            .arg(dir.path().join("o.jsonl"))
            .arg(elastic())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(78), "{flag} {value}: {err}");
        assert!(err.contains(key), "{flag} {value}: {err}");
        assert!(!dir.path().join("o.jsonl").exists());
    }
    assert!(
        !dir.path().join("keyring").exists(),
        "no keyring is made for a run that cannot start"
    );
    // Whole addresses are an explicit opt-in.
    let run = parse(dir.path())
        .args([
            "-f",
            "combined",
            "--ipv4-prefix",
            "32",
            "--emit-raw-ip",
            "-o",
            "/dev/null",
        ])
        .arg(elastic())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn a_missing_input_stops_with_66_naming_each_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("gone-a.log"), dir.path().join("gone-b.log"));
    let run = parse(dir.path())
        .args(["-f", "combined", "-o"])
        .arg(dir.path().join("o.jsonl"))
        .arg(elastic())
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(66), "{err}");
    for p in [&a, &b] {
        assert!(
            err.contains(&format!("cannot open {}", p.display())),
            "{err}"
        );
    }
    assert!(!dir.path().join("o.jsonl").exists(), "no output is written");
    assert!(!dir.path().join("keyring").exists(), "no keyring is made");
}
