//! Shared by the binary's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The broker from FOOTFALL_KAFKA_BROKERS. Without it the test prints that it
/// did not run, unless FOOTFALL_REQUIRE_KAFKA is set: then it fails.
pub fn brokers() -> Option<String> {
    match std::env::var("FOOTFALL_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            assert!(
                std::env::var_os("FOOTFALL_REQUIRE_KAFKA").is_none(),
                "FOOTFALL_REQUIRE_KAFKA is set but FOOTFALL_KAFKA_BROKERS is not"
            );
            println!("FOOTFALL_KAFKA_BROKERS not set: broker tests not run");
            None
        }
    }
}

/// The footfall binary under test.
pub fn ff() -> Command {
    Command::new(env!("CARGO_BIN_EXE_footfall"))
}

/// Every Parquet file under `dir`, relative path → bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// `footfall aggregate` of `topic` into `warehouse` for consumer group `group`.
pub fn aggregate(brokers: &str, topic: &str, group: &str, warehouse: &Path) -> Command {
    let mut c = ff();
    c.args([
        "aggregate",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--group",
        group,
    ])
    .arg("--warehouse")
    .arg(warehouse);
    c
}
