//! Test support shared by footfall's crates (a dev-dependency only).
//!
//! **The broker under test.** Tests that need a real Kafka broker find it in
//! `FOOTFALL_KAFKA_BROKERS` ([`brokers`]). Without it such a test prints that
//! it is not run and returns, unless `FOOTFALL_REQUIRE_KAFKA=1`: then a
//! missing broker is a test failure. That is the one meaning of
//! `FOOTFALL_REQUIRE_KAFKA` (any other value, or none, is "not required");
//! `deploy/test.sh` starts a broker and sets both.
//!
//! ```
//! let Some(brokers) = footfall_testkit::brokers() else { return };
//! assert!(!brokers.is_empty());
//! ```
//!
//! **Warehouse snapshots.** [`snapshot`] reads every Parquet file of a
//! warehouse, so two warehouses (or one before and after a run) compare
//! byte for byte.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the broker under test is: `host:port[,host:port...]`.
pub const BROKERS_VAR: &str = "FOOTFALL_KAFKA_BROKERS";
/// `1`: a missing [`BROKERS_VAR`] fails the test instead of skipping it.
pub const REQUIRE_VAR: &str = "FOOTFALL_REQUIRE_KAFKA";

/// Whether broker tests must run (`FOOTFALL_REQUIRE_KAFKA=1`).
pub fn required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| v.trim() == "1")
}

/// `FOOTFALL_KAFKA_BROKERS`, trimmed, when set and not empty; nothing else
/// is decided (see [`brokers`]).
pub fn brokers_from_env() -> Option<String> {
    std::env::var(BROKERS_VAR)
        .ok()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
}

/// The broker under test, or `None` after printing that the calling test is
/// not run.
///
/// # Panics
///
/// When `FOOTFALL_REQUIRE_KAFKA=1` and `FOOTFALL_KAFKA_BROKERS` is not set.
pub fn brokers() -> Option<String> {
    let found = brokers_from_env();
    if found.is_none() {
        assert!(
            !required(),
            "{REQUIRE_VAR}=1 but {BROKERS_VAR} is not set: start a broker \
             (deploy/kafka/local-kafka.sh start) and export {BROKERS_VAR}=127.0.0.1:9092"
        );
        note(&format!("{BROKERS_VAR} not set: broker test not run"));
    }
    found
}

/// Prints a line straight to stderr, past the test harness's capture, so a
/// test that is not run says so in `cargo test`'s output.
pub fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Every Parquet file under `dir`: path relative to `dir` → bytes. Lock
/// files and the warehouse's metadata are not part of it.
///
/// # Panics
///
/// When `dir` or a file under it cannot be read.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for e in entries {
            let p = e.expect("a directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                let rel = p.strip_prefix(dir).expect("under dir").to_path_buf();
                out.insert(rel, bytes);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_hold_parquet_files_only() {
        let dir = std::env::temp_dir().join(format!("footfall-testkit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("events/date=2025-05-17")).unwrap();
        std::fs::write(dir.join("events/date=2025-05-17/p0.parquet"), b"PAR1").unwrap();
        std::fs::write(dir.join(".footfall.json"), b"{}").unwrap();
        let snap = snapshot(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            snap.keys().collect::<Vec<_>>(),
            [Path::new("events/date=2025-05-17/p0.parquet")]
        );
    }
}
