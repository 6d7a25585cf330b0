//! Producing in tests: a send that waits while the producer's local queue is full.

use std::time::Duration;

use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// Sends `record`. While the producer's local queue is full, serves its
/// delivery reports for 50 ms and tries again.
///
/// # Panics
///
/// On any other error of the send.
pub fn send_waiting<C, K, P>(
    producer: &BaseProducer<C>,
    record: BaseRecord<'_, K, P, C::DeliveryOpaque>,
) where
    C: ProducerContext,
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    let mut record = record;
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                producer.poll(Duration::from_millis(50));
                record = back;
            }
            Err((e, back)) => panic!("producing to {}: {e}", back.topic),
        }
    }
}
