//! A member of a consumer group, held by a thread until dropped: for tests of
//! what a run does while another consumer is in its group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// A consumer subscribed to a topic in a group, polling until dropped (then
/// it leaves the group).
pub struct GroupMember {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GroupMember {
    /// Joins `group` on `topic` at `brokers` as client `client_id` (the range
    /// assignor gives partitions to members in the order of their ids) and
    /// returns once the group has assigned it a partition.
    pub fn join(brokers: &str, topic: &str, group: &str, client_id: &str) -> GroupMember {
        GroupMember::join_with(brokers, topic, group, client_id, &[])
    }

    /// [`GroupMember::join`] with more client settings (`group.protocol`, …).
    pub fn join_with(
        brokers: &str,
        topic: &str,
        group: &str,
        client_id: &str,
        settings: &[(&str, &str)],
    ) -> GroupMember {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("client.id", client_id)
            .set("enable.auto.commit", "false");
        for (k, v) in settings {
            config.set(*k, *v);
        }
        let consumer: BaseConsumer = config.create().expect("a consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let (held_tx, held) = mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut told = false;
            while !flag.load(Ordering::SeqCst) {
                let _ = consumer.poll(Duration::from_millis(50));
                if !told && consumer.assignment().is_ok_and(|a| a.count() > 0) {
                    told = held_tx.send(()).is_ok();
                }
            }
            consumer.unsubscribe();
        });
        held.recv_timeout(Duration::from_secs(60))
            .expect("the member is assigned a partition");
        GroupMember {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
