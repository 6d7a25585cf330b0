//! Shared by the binary's integration tests (the broker and warehouse
//! snapshots come from `footfall_testkit`).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// The footfall binary under test.
pub fn ff() -> Command {
    Command::new(env!("CARGO_BIN_EXE_footfall"))
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
