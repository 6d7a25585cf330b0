//! Test support shared by footfall's crates (a dev-dependency only).
//!
//! **The broker under test.** Tests that need a real Kafka broker find it in
//! `FOOTFALL_KAFKA_BROKERS` ([`brokers`]). Without it such a test prints that
//! it is not run and returns, unless `FOOTFALL_REQUIRE_KAFKA=1` or `CI=true`
//! ([`required`]): then a missing broker is a test failure. That is the one
//! meaning of `FOOTFALL_REQUIRE_KAFKA` (any other value, or none, is "not
//! required"), the same as in `tests/python/footfall_support.py`;
//! `deploy/test.sh` starts a broker and sets both variables.
//!
//! ```
//! let Some(brokers) = footfall_testkit::brokers() else { return };
//! assert!(!brokers.is_empty());
//! ```
//!
//! **Warehouse snapshots.** [`snapshot`] reads every Parquet file of a
//! warehouse, so two warehouses (or one before and after a run) compare
//! byte for byte; [`snapshot_all`] reads every file but the metadata, the
//! locks and the cache files (temporary files and erasure records too), for tests of crash
//! recovery. With the `parquet` feature, [`pretty_parquet`] shows a Parquet
//! file as rows, and [`assert_same_files`] compares two snapshots and, when a
//! Parquet file differs, shows both versions as rows.
//!
//! **Ports.** [`free_port`] gives a local TCP port nothing listens on, for a
//! process under test to listen on (or, left alone, to refuse connections).
//!
//! **The shared corpus.** [`shared_data`] finds the third-party logs and test
//! vectors that are not copied into `tests/data` (a clone does not have
//! them: tests that need them say so and return); [`read_log`] reads a log,
//! plain or gzip.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the broker under test is: `host:port[,host:port...]`.
pub const BROKERS_VAR: &str = "FOOTFALL_KAFKA_BROKERS";
/// `1`: a missing [`BROKERS_VAR`] fails the test instead of skipping it.
pub const REQUIRE_VAR: &str = "FOOTFALL_REQUIRE_KAFKA";

/// Where the shared corpus is, when not beside the repository.
pub const SHARED_DATA_VAR: &str = "FOOTFALL_SHARED_DATA";

/// Set to `true` by CI: broker tests must run there too.
pub const CI_VAR: &str = "CI";

/// Whether broker tests must run: `FOOTFALL_REQUIRE_KAFKA=1` or `CI=true`.
pub fn required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| v.trim() == "1")
        || std::env::var(CI_VAR).is_ok_and(|v| v.trim() == "true")
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
/// When broker tests are [`required`] and `FOOTFALL_KAFKA_BROKERS` is not set.
pub fn brokers() -> Option<String> {
    let found = brokers_from_env();
    if found.is_none() {
        assert!(
            !required(),
            "{REQUIRE_VAR}=1 or {CI_VAR}=true but {BROKERS_VAR} is not set: start a broker \
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

/// Every file under `dir` (relative path, `/`-separated → bytes) except the
/// warehouse's metadata, locks and cache files (`.footfall*`, `.locks/`,
/// `.ids/date=*`, `.visitors/date=*` and `.days/date=*` at the top; a cache file names the
/// files it was made from with their modification times): Parquet files,
/// erasure records, and any temporary file a crashed run left behind. A missing `dir` is an empty snapshot.
///
/// # Panics
///
/// When a file under `dir` cannot be read.
pub fn snapshot_all(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.expect("a directory entry").path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(dir).expect("under dir");
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if ![
                ".footfall",
                ".locks",
                ".ids/date=",
                ".visitors/date=",
                ".days/date=",
            ]
            .iter()
            .any(|top| rel.starts_with(top))
            {
                let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                out.insert(rel, bytes);
            }
        }
    }
    out
}

/// A local TCP port that nothing listened on when asked, never the same twice
/// in one process, and outside Linux's ephemeral range (32768-60999): a port
/// the kernel picks for `bind(0)` can be picked again, for another test's
/// listener or an outgoing connection, before the process under test binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 8_000; // 20000-27999: clear of the test broker's 29092-29094 too
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + seed.wrapping_add(n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free local port in {FIRST}-{}", FIRST + SPAN - 1);
}

#[cfg(feature = "kafka")]
mod member;
#[cfg(feature = "kafka")]
pub use member::GroupMember;
#[cfg(feature = "kafka")]
mod send;
#[cfg(feature = "kafka")]
pub use send::send_waiting;
#[cfg(feature = "parquet")]
pub mod columns;
#[cfg(feature = "parquet")]
mod pretty;
#[cfg(feature = "parquet")]
pub use pretty::{assert_same_files, pretty_parquet};

/// The shared corpus: [`SHARED_DATA_VAR`], else `../shared/data` beside the
/// repository; `None` when that is not a directory.
pub fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os(SHARED_DATA_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    dir.is_dir().then_some(dir)
}

/// The bytes of a log file, gunzipped when it is gzip (every member).
pub fn read_log(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return raw;
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_differ_and_are_free() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len());
        for p in ports {
            assert!((20_000..28_000).contains(&p), "{p}");
            std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }

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

    #[test]
    fn full_snapshots_leave_out_metadata_locks_and_cache_files_only() {
        let dir = std::env::temp_dir().join(format!("footfall-testkit-all-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("events/date=2025-05-17")).unwrap();
        std::fs::create_dir_all(dir.join(".locks")).unwrap();
        std::fs::write(dir.join("events/date=2025-05-17/p0.parquet"), b"PAR1").unwrap();
        std::fs::write(dir.join("events/date=2025-05-17/.p1.parquet.tmp"), b"P").unwrap();
        std::fs::write(dir.join(".locks/partition-0"), b"").unwrap();
        std::fs::write(dir.join(".footfall.json"), b"{}").unwrap();
        std::fs::create_dir_all(dir.join(".ids")).unwrap();
        std::fs::write(dir.join(".ids/date=2025-05-17.idx"), b"").unwrap();
        std::fs::write(dir.join(".ids/.date=2025-05-17.idx.tmp"), b"").unwrap();
        std::fs::create_dir_all(dir.join(".visitors")).unwrap();
        std::fs::write(dir.join(".visitors/date=2025-05-17.rec"), b"").unwrap();
        std::fs::create_dir_all(dir.join(".days")).unwrap();
        std::fs::write(dir.join(".days/date=2025-05-17.state"), b"").unwrap();
        let snap = snapshot_all(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            snap.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                ".ids/.date=2025-05-17.idx.tmp",
                "events/date=2025-05-17/.p1.parquet.tmp",
                "events/date=2025-05-17/p0.parquet"
            ]
        );
        assert!(snapshot_all(&dir).is_empty());
    }
}
