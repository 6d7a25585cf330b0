//! Decoding the batch's messages on threads beside the poll loop.
//!
//! Contract: the poll loop copies each message it keeps (partition, offset,
//! payload) into the open [`Chunk`]; full chunks go to the [`DECODERS`]
//! decoder threads in turn, which turn every payload into a [`Decoded`] and
//! each partition's events into events batches of one date each (JSON
//! decoding and building columns are most of the loop's work, so it is spread
//! over the cores, and the decoded strings are freed on the thread that made
//! them). Results are taken back one chunk at a time in the order the chunks
//! were sent, and the loop applies them in that order: each partition's
//! events reach its spill in offset order exactly as if they had been decoded
//! inline, and a chunk's other messages (invalid ones, counted; a newer schema
//! or a dead letter, which stop the run) are applied first, in read order. At
//! most [`IN_FLIGHT`] chunks per thread are out at once, each of at most
//! [`CHUNK_MESSAGES`] messages. The loop takes every result back
//! ([`Decoder::drain`]) before it applies a rebalance and before it stops
//! reading, so that no event is applied under another assignment than the one
//! it was read in.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use footfall_event::{Reject, VisitEvent, SCHEMA_VERSION};

use crate::error::AggregateError;
use crate::schema::KafkaEvent;

use super::spill::by_date;

/// Messages in one chunk.
pub(crate) const CHUNK_MESSAGES: usize = 4096;
/// Decoder threads.
const DECODERS: usize = 2;
/// Chunks sent to one decoder thread and not yet taken back.
const IN_FLIGHT: usize = 2;

/// What a message's payload is.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A visit event of a schema version this build reads.
    Event(Box<VisitEvent>),
    /// A visit event of a newer schema version.
    Newer(u16),
    /// A message without a value.
    Empty,
    /// A dead letter: the input is the dead-letter topic.
    DeadLetter,
    /// Not a visit event (the decoder's message).
    Invalid(String),
}

/// Decodes one payload. The payload's UTF-8 is checked once, as a whole,
/// before the JSON is decoded from the text (a third faster than decoding
/// from bytes, which checks every string on its own; the same events and the
/// same refusals, as a test checks).
pub(crate) fn classify(payload: Option<&[u8]>) -> Decoded {
    let Some(payload) = payload else {
        return Decoded::Empty;
    };
    let text = match std::str::from_utf8(payload) {
        Ok(text) => text,
        Err(e) => return Decoded::Invalid(format!("not UTF-8: {e}")),
    };
    match serde_json::from_str::<VisitEvent>(text) {
        Ok(ev) if ev.v > SCHEMA_VERSION => Decoded::Newer(ev.v),
        Ok(ev) => Decoded::Event(Box::new(ev)),
        Err(_) if serde_json::from_str::<Reject>(text).is_ok() => Decoded::DeadLetter,
        Err(e) => Decoded::Invalid(footfall_event::json_error(&e, "a visit event")),
    }
}

/// Messages copied out of the consumer's buffers, to decode elsewhere.
#[derive(Default)]
pub(crate) struct Chunk {
    bytes: Vec<u8>,
    messages: Vec<(i32, i64, Option<Range<usize>>)>,
}

impl Chunk {
    /// An empty chunk with room for [`CHUNK_MESSAGES`] messages of `bytes` in all.
    fn with_capacity(bytes: usize) -> Chunk {
        Chunk {
            bytes: Vec::with_capacity(bytes),
            messages: Vec::with_capacity(CHUNK_MESSAGES),
        }
    }

    /// Copies one message in.
    pub(crate) fn push(&mut self, partition: i32, offset: i64, payload: Option<&[u8]>) {
        let range = payload.map(|p| {
            self.bytes.extend_from_slice(p);
            self.bytes.len() - p.len()..self.bytes.len()
        });
        self.messages.push((partition, offset, range));
    }

    fn decode(self) -> Result<DecodedChunk, AggregateError> {
        let mut events: BTreeMap<i32, Vec<KafkaEvent>> = BTreeMap::new();
        let mut out = DecodedChunk::default();
        for (partition, offset, range) in self.messages {
            match classify(range.map(|r| &self.bytes[r])) {
                Decoded::Event(event) => events.entry(partition).or_default().push(KafkaEvent {
                    partition,
                    offset,
                    event: *event,
                }),
                other => out.others.push((partition, offset, other)),
            }
        }
        for (partition, events) in events {
            for (date, batch) in by_date(&events)? {
                out.events.push((partition, date, batch));
            }
        }
        Ok(out)
    }
}

/// A chunk's messages, decoded.
#[derive(Default)]
pub(crate) struct DecodedChunk {
    /// Each partition's events as events batches of one date each, in offset
    /// order within a (partition, date).
    pub(crate) events: Vec<(i32, NaiveDate, RecordBatch)>,
    /// The messages that are not events, in read order.
    pub(crate) others: Vec<(i32, i64, Decoded)>,
}

/// One decoder thread: where its chunks go and its results come from.
struct Worker {
    to: Option<SyncSender<Chunk>>,
    from: Receiver<Result<DecodedChunk, AggregateError>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn start(n: usize) -> Result<Worker, AggregateError> {
        let (to, inbox) = mpsc::sync_channel::<Chunk>(IN_FLIGHT);
        let (outbox, from) = mpsc::sync_channel(IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name(format!("footfall-decode-{n}"))
            .spawn(move || {
                for chunk in inbox {
                    if outbox.send(chunk.decode()).is_err() {
                        break;
                    }
                }
            })
            .map_err(AggregateError::io("start a decoder thread", "."))?;
        Ok(Worker {
            to: Some(to),
            from,
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The thread ends once it has answered what it was sent (the answers
        // fit in the channel's buffer).
        self.to = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The decoder threads and the chunks out with them: chunk `k` goes to
/// thread `k mod DECODERS`, and results are taken back in `k` order.
pub(crate) struct Decoder {
    open: Chunk,
    workers: Vec<Worker>,
    sent: usize,
    taken: usize,
}

impl Decoder {
    /// Starts the decoder threads.
    pub(crate) fn start() -> Result<Decoder, AggregateError> {
        Ok(Decoder {
            open: Chunk::default(),
            workers: (0..DECODERS).map(Worker::start).collect::<Result<_, _>>()?,
            sent: 0,
            taken: 0,
        })
    }

    /// Copies one message into the open chunk; when that fills it, sends it
    /// and returns the results of the oldest chunk out, if as many as the
    /// threads can hold were.
    pub(crate) fn push(
        &mut self,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
    ) -> Result<Vec<DecodedChunk>, AggregateError> {
        self.open.push(partition, offset, payload);
        if self.open.messages.len() < CHUNK_MESSAGES {
            return Ok(Vec::new());
        }
        let done = match self.sent - self.taken {
            n if n >= IN_FLIGHT * DECODERS => vec![self.take()?],
            _ => Vec::new(),
        };
        self.send();
        Ok(done)
    }

    /// Every result not yet taken back, the open chunk's included, in order.
    pub(crate) fn drain(&mut self) -> Result<Vec<DecodedChunk>, AggregateError> {
        let mut out = Vec::new();
        while self.taken < self.sent {
            out.push(self.take()?);
        }
        let open = std::mem::take(&mut self.open);
        if !open.messages.is_empty() {
            out.push(open.decode()?);
        }
        Ok(out)
    }

    fn send(&mut self) {
        let capacity = self.open.bytes.len();
        let chunk = std::mem::replace(&mut self.open, Chunk::with_capacity(capacity));
        let worker = &self.workers[self.sent % DECODERS];
        let Some(to) = &worker.to else {
            self.open = chunk;
            return;
        };
        match to.send(chunk) {
            Ok(()) => self.sent += 1,
            // The thread is gone (it panicked): decode here instead.
            Err(mpsc::SendError(chunk)) => self.open = chunk,
        }
    }

    fn take(&mut self) -> Result<DecodedChunk, AggregateError> {
        let worker = &self.workers[self.taken % DECODERS];
        self.taken += 1;
        worker
            .from
            .recv()
            .expect("a decoder thread answers every chunk it was sent")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `serde_json::from_slice` makes of a payload, for comparison.
    fn from_bytes(payload: &[u8]) -> Decoded {
        match serde_json::from_slice::<VisitEvent>(payload) {
            Ok(ev) if ev.v > SCHEMA_VERSION => Decoded::Newer(ev.v),
            Ok(ev) => Decoded::Event(Box::new(ev)),
            Err(_) if serde_json::from_slice::<Reject>(payload).is_ok() => Decoded::DeadLetter,
            Err(e) => Decoded::Invalid(e.to_string()),
        }
    }

    #[test]
    fn decoding_from_checked_text_gives_what_decoding_from_bytes_gives() {
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        let events = crate::testdata::events(
            1,
            chrono::NaiveDate::from_ymd_opt(2015, 5, 15).unwrap(),
            2,
            40,
        );
        assert!(events.len() > 50);
        for ev in &events {
            payloads.push(serde_json::to_vec(ev).unwrap());
            let mut newer = ev.clone();
            newer.v = SCHEMA_VERSION + 1;
            payloads.push(serde_json::to_vec(&newer).unwrap());
        }
        let one = String::from_utf8(payloads[0].clone()).unwrap();
        // Escapes, non-ASCII, invalid UTF-8 inside and outside strings, broken JSON.
        payloads.push(
            one.replace(r#""path":""#, r#""path":"/caf\u00e9/\"q\"/é/"#)
                .into_bytes(),
        );
        payloads.push(one.replace(r#""path":""#, r#""path":"\ud800"#).into_bytes());
        let mut bad = payloads[0].clone();
        let at = one.find("\"path\":\"").unwrap() + 8;
        bad[at] = 0xff;
        payloads.push(bad);
        payloads.push(b"\xff{}".to_vec());
        payloads.push(one.as_bytes()[..one.len() / 2].to_vec());
        let reject = crate::testdata::reject("garbage \u{e9}");
        payloads.push(serde_json::to_vec(&reject).unwrap());
        for p in &payloads {
            let (a, b) = (classify(Some(p)), from_bytes(p));
            let same = match (&a, &b) {
                (Decoded::Event(x), Decoded::Event(y)) => x == y,
                (Decoded::Newer(x), Decoded::Newer(y)) => x == y,
                (Decoded::DeadLetter, Decoded::DeadLetter) => true,
                (Decoded::Invalid(_), Decoded::Invalid(_)) => true,
                _ => false,
            };
            assert!(same, "{a:?} vs {b:?} for {}", String::from_utf8_lossy(p));
        }
        let kinds = payloads
            .iter()
            .map(|p| std::mem::discriminant(&classify(Some(p))));
        assert_eq!(
            kinds.collect::<std::collections::HashSet<_>>().len(),
            4,
            "events, newer, dead letters and invalid payloads"
        );
    }

    #[test]
    fn a_refusal_names_no_value_of_the_payload() {
        let secret = "alice@example.com";
        let mut quoted = 0;
        for payload in [
            format!(r#"{{"v":"{secret}"}}"#),
            format!(r#"{{"v":1,"event_id":{{"{secret}":1}}}}"#),
            format!(r#"{{"v":1,"{secret}""#),
            secret.to_string(),
        ] {
            let Decoded::Invalid(why) = classify(Some(payload.as_bytes())) else {
                panic!("{payload} is not a visit event");
            };
            assert!(!why.contains("alice"), "{why}");
            assert!(why.contains("column"), "{why}");
            let Decoded::Invalid(theirs) = from_bytes(payload.as_bytes()) else {
                unreachable!()
            };
            quoted += usize::from(theirs.contains(secret));
        }
        assert!(quoted > 0, "serde_json's own message quotes the payload");
    }

    #[test]
    fn results_come_back_in_the_order_messages_were_pushed() {
        let day = chrono::NaiveDate::from_ymd_opt(2015, 5, 15).unwrap();
        let events = crate::testdata::events(3, day, 3, 40);
        let payloads: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap())
            .collect();
        let mut d = Decoder::start().unwrap();
        let mut got = Vec::new();
        let n = CHUNK_MESSAGES * 5 + 17;
        for i in 0..n {
            let p = (i % 3) as i32;
            // Every 10th message is not an event; one has no value.
            let payload = match i % 10 {
                0 => format!("{{\"not\": {i}}}").into_bytes(),
                _ => payloads[i % payloads.len()].clone(),
            };
            got.extend(d.push(p, i as i64, Some(&payload)).unwrap());
            if i == 7 {
                got.extend(d.push(p, -1, None).unwrap());
            }
        }
        got.extend(d.drain().unwrap());
        let others: Vec<(i64, bool)> = got
            .iter()
            .flat_map(|c| {
                c.others
                    .iter()
                    .map(|(_, o, d)| (*o, matches!(d, Decoded::Empty)))
            })
            .collect();
        let want: Vec<(i64, bool)> = (0..n as i64)
            .filter(|o| o % 10 == 0)
            .map(|o| (o, false))
            .collect();
        assert_eq!(
            others
                .iter()
                .filter(|o| o.0 >= 0)
                .copied()
                .collect::<Vec<_>>(),
            want
        );
        assert_eq!(
            others.iter().filter(|o| o.1).count(),
            1,
            "the message without a value"
        );
        let mut offsets: BTreeMap<(i32, NaiveDate), Vec<i64>> = BTreeMap::new();
        for (p, date, batch) in got.iter().flat_map(|c| c.events.iter()) {
            let cols = crate::schema::Cols::new(batch);
            assert!(cols
                .i32("kafka_partition")
                .unwrap()
                .values()
                .iter()
                .all(|x| x == p));
            let o = cols.i64("kafka_offset").unwrap().values().iter().copied();
            offsets.entry((*p, *date)).or_default().extend(o);
        }
        assert!(offsets.len() > 3, "{:?}", offsets.keys());
        let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for ((p, _), o) in offsets {
            assert!(
                o.windows(2).all(|w| w[0] < w[1]),
                "offset order within a (partition, date)"
            );
            per_partition.entry(p).or_default().extend(o);
        }
        for (p, mut o) in per_partition {
            o.sort_unstable();
            let want: Vec<i64> = (0..n as i64)
                .filter(|x| x % 3 == p as i64 && x % 10 != 0)
                .collect();
            assert_eq!(o, want, "partition {p}");
        }
        assert!(d.drain().unwrap().is_empty());
    }
}
