//! Kafka lost during a run: librdkafka's mock cluster, taken down from the
//! test at a chosen stage (the shared broker of the other tests is never
//! stopped). The run fails with a Kafka-kind error, which the binary maps to
//! exit 69; it never reports success with what it had. No broker is needed.

#[path = "../src/testdata.rs"]
mod testdata;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use footfall_aggregate::{run, AggregateError, ErrorKind, Progress, RunOptions, Stage, Warehouse};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

/// Stops the run at one stage until the test has taken the broker down.
struct Hook {
    at: Stage,
    reached: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
}

impl Progress for Hook {
    fn stage(&mut self, stage: Stage) {
        if stage == self.at {
            let _ = self.reached.send(());
            let _ = self.go.recv();
        }
    }
}

/// A run against a mock cluster whose only broker goes down when the run
/// reaches `stage`; returns how the run ended and how long it took after.
fn broker_down_at(
    stage: Stage,
) -> (
    Result<footfall_aggregate::RunReport, AggregateError>,
    Duration,
    tempfile::TempDir,
) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("visits", 2, 1).unwrap();
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", cluster.bootstrap_servers());
    let producer: BaseProducer = client.create().unwrap();
    let day = NaiveDate::from_ymd_opt(2015, 5, 15).unwrap();
    for e in testdata::events(81, day, 1, 20) {
        let value = serde_json::to_vec(&e).unwrap();
        producer
            .send(
                BaseRecord::to("visits")
                    .key(e.visitor_id.as_bytes())
                    .payload(&value),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut opts = RunOptions::new("visits", "g", dir.path());
    opts.broker_timeout = Duration::from_secs(3);
    opts.request_timeout = Duration::from_secs(5);
    opts.assignment_timeout = Duration::from_secs(60);
    opts.stall_timeout = Duration::from_secs(60);
    client.set("session.timeout.ms", "6000");
    let (reached_tx, reached) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut hook = Hook {
            at: stage,
            reached: reached_tx,
            go: go_rx,
        };
        run(&client, &opts, &mut hook)
    });
    reached
        .recv_timeout(Duration::from_secs(30))
        .expect("the run reaches the stage");
    cluster.broker_down(1).unwrap();
    let t = Instant::now();
    go.send(()).unwrap();
    let res = handle.join().unwrap();
    (res, t.elapsed(), dir)
}

#[test]
fn the_broker_lost_while_joining_fails_the_run() {
    let (res, took, _dir) = broker_down_at(Stage::Joining);
    let err = res.unwrap_err();
    println!("{err} (after {took:?})");
    assert!(matches!(err, AggregateError::Lost(_)), "{err}");
    assert_eq!(err.kind(), ErrorKind::Kafka);
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn the_broker_lost_while_consuming_fails_the_run() {
    let (res, took, dir) = broker_down_at(Stage::Consuming);
    let err = res.unwrap_err();
    println!("{err} (after {took:?})");
    assert_eq!(err.kind(), ErrorKind::Kafka, "{err}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    // Nothing the run read can have been summarised as a success.
    let _ = Warehouse::new(dir.path());
}
