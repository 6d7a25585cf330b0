//! Helpers shared by the ingest integration tests.

use std::time::{Duration, Instant};

use footfall_ingest::{IngestHandle, Snapshot};

/// Poll the service's snapshot until `done` holds; fail after `timeout`
/// naming `what` and the last snapshot.
pub async fn wait_for(
    handle: &IngestHandle,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&Snapshot) -> bool,
) {
    let start = Instant::now();
    loop {
        let s = handle.snapshot();
        if done(&s) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
