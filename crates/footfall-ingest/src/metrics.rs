//! Counters and gauges, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use footfall_event::RejectKind;

use crate::track::Registry;

/// Counters of one configured source.
#[derive(Debug)]
pub struct SourceCounters {
    /// The source's configured name (the metrics' `source` label).
    pub name: Arc<str>,
    /// Lines read and parsed.
    pub lines_read: AtomicU64,
    /// Lines whose outcome is settled: the event or dead letter acknowledged
    /// by Kafka, or the reject counted (dead letters off).
    pub lines_done: AtomicU64,
    /// Bytes after a checkpoint that could not be read: the file was rotated
    /// away while ingest was stopped and found nowhere.
    pub unaccounted_bytes: AtomicU64,
}

impl SourceCounters {
    /// Counters of the source `name`, all zero.
    pub fn new(name: Arc<str>) -> Self {
        SourceCounters {
            name,
            lines_read: AtomicU64::new(0),
            lines_done: AtomicU64::new(0),
            unaccounted_bytes: AtomicU64::new(0),
        }
    }

    /// Lines read whose outcome Kafka has not acknowledged.
    pub fn undelivered(&self) -> u64 {
        let done = self.lines_done.load(Relaxed);
        self.lines_read.load(Relaxed).saturating_sub(done)
    }
}

/// All counters of the service. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    sources: Vec<Arc<SourceCounters>>,
    /// Lines parsed into events.
    pub events_parsed: AtomicU64,
    /// Events acknowledged by Kafka.
    pub events_produced: AtomicU64,
    rejects: [AtomicU64; RejectKind::ALL.len()],
    /// Rejects acknowledged by Kafka on the dead-letter topic.
    pub dead_letters_produced: AtomicU64,
    /// Rejects whose handling is finished (produced, or counted only when dead letters are off).
    pub rejects_done: AtomicU64,
    /// Failed deliveries (each is retried).
    pub delivery_errors: AtomicU64,
    registry: Arc<Registry>,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// Lines read, per configured source.
    pub lines_read: BTreeMap<String, u64>,
    /// Lines read, every source together.
    pub lines_read_total: u64,
    /// Lines parsed into events.
    pub events_parsed: u64,
    /// Events acknowledged by Kafka.
    pub events_produced: u64,
    /// Rejected lines per kind (only kinds seen).
    pub rejects: BTreeMap<&'static str, u64>,
    /// Rejected lines, every kind together.
    pub rejects_total: u64,
    /// Rejects acknowledged by Kafka on the dead-letter topic.
    pub dead_letters_produced: u64,
    /// Failed deliveries (each is retried).
    pub delivery_errors: u64,
    /// Lines read and not yet acknowledged by Kafka.
    pub queue_depth: u64,
    /// Bytes of files after their checkpoints, per file source.
    pub bytes_behind: BTreeMap<String, u64>,
    /// Bytes after checkpoints found nowhere at start, per configured source.
    pub unaccounted_bytes: BTreeMap<String, u64>,
}

impl Metrics {
    /// Zero counters for the configured sources; `registry` gives the file
    /// tracks that `bytes_behind` is measured on.
    pub fn new(source_names: &[Arc<str>], registry: Arc<Registry>) -> Metrics {
        Metrics {
            sources: source_names
                .iter()
                .map(|n| Arc::new(SourceCounters::new(n.clone())))
                .collect(),
            events_parsed: AtomicU64::new(0),
            events_produced: AtomicU64::new(0),
            rejects: Default::default(),
            dead_letters_produced: AtomicU64::new(0),
            rejects_done: AtomicU64::new(0),
            delivery_errors: AtomicU64::new(0),
            registry,
        }
    }

    /// Counters of the source named `name`.
    pub fn source(&self, name: &str) -> Option<Arc<SourceCounters>> {
        self.sources.iter().find(|s| &*s.name == name).cloned()
    }

    /// Counts one rejected line of `kind`.
    pub fn reject(&self, kind: RejectKind) {
        self.rejects[kind_index(kind)].fetch_add(1, Relaxed);
    }

    /// Rejected lines of `kind` so far.
    pub fn rejects_of(&self, kind: RejectKind) -> u64 {
        self.rejects[kind_index(kind)].load(Relaxed)
    }

    /// Lines read, every source together.
    pub fn lines_read_total(&self) -> u64 {
        self.sources
            .iter()
            .map(|s| s.lines_read.load(Relaxed))
            .sum()
    }

    /// Lines read whose outcome Kafka has not yet acknowledged.
    pub fn queue_depth(&self) -> u64 {
        // Load the "done" counters first: they only grow after lines_read.
        let done = self.events_produced.load(Relaxed) + self.rejects_done.load(Relaxed);
        self.lines_read_total().saturating_sub(done)
    }

    fn bytes_behind(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for t in self.registry.tracks() {
            *out.entry(t.source.to_string()).or_default() += t.lock().bytes_behind();
        }
        out
    }

    /// A copy of every counter as of now (for `/metrics`, `/stats` and the
    /// end-of-run summary).
    pub fn snapshot(&self) -> Snapshot {
        let lines_read: BTreeMap<String, u64> = self
            .sources
            .iter()
            .map(|s| (s.name.to_string(), s.lines_read.load(Relaxed)))
            .collect();
        let rejects: BTreeMap<&'static str, u64> = RejectKind::ALL
            .iter()
            .map(|k| (k.as_str(), self.rejects_of(*k)))
            .filter(|(_, n)| *n > 0)
            .collect();
        Snapshot {
            lines_read_total: lines_read.values().sum(),
            lines_read,
            events_parsed: self.events_parsed.load(Relaxed),
            events_produced: self.events_produced.load(Relaxed),
            rejects_total: rejects.values().sum(),
            rejects,
            dead_letters_produced: self.dead_letters_produced.load(Relaxed),
            delivery_errors: self.delivery_errors.load(Relaxed),
            queue_depth: self.queue_depth(),
            bytes_behind: self.bytes_behind(),
            unaccounted_bytes: self
                .sources
                .iter()
                .map(|s| (s.name.to_string(), s.unaccounted_bytes.load(Relaxed)))
                .collect(),
        }
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, kafka_up: bool) -> String {
        let mut o = String::with_capacity(4096);
        let family = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut o,
            "footfall_ingest_lines_read_total",
            "counter",
            "Lines read and parsed, per configured source.",
        );
        for s in &self.sources {
            let _ = writeln!(
                o,
                "footfall_ingest_lines_read_total{{source=\"{}\"}} {}",
                escape(&s.name),
                s.lines_read.load(Relaxed)
            );
        }
        family(
            &mut o,
            "footfall_ingest_events_parsed_total",
            "counter",
            "Lines that became visit events.",
        );
        let _ = writeln!(
            o,
            "footfall_ingest_events_parsed_total {}",
            self.events_parsed.load(Relaxed)
        );
        family(
            &mut o,
            "footfall_ingest_events_produced_total",
            "counter",
            "Visit events acknowledged by Kafka.",
        );
        let _ = writeln!(
            o,
            "footfall_ingest_events_produced_total {}",
            self.events_produced.load(Relaxed)
        );
        family(
            &mut o,
            "footfall_ingest_rejects_total",
            "counter",
            "Lines rejected by the parser, per reason.",
        );
        for k in RejectKind::ALL {
            let _ = writeln!(
                o,
                "footfall_ingest_rejects_total{{kind=\"{}\"}} {}",
                k.as_str(),
                self.rejects_of(k)
            );
        }
        family(
            &mut o,
            "footfall_ingest_dead_letters_produced_total",
            "counter",
            "Rejects acknowledged by Kafka on the dead-letter topic.",
        );
        let _ = writeln!(
            o,
            "footfall_ingest_dead_letters_produced_total {}",
            self.dead_letters_produced.load(Relaxed)
        );
        family(
            &mut o,
            "footfall_ingest_delivery_errors_total",
            "counter",
            "Failed deliveries to Kafka (each is retried).",
        );
        let _ = writeln!(
            o,
            "footfall_ingest_delivery_errors_total {}",
            self.delivery_errors.load(Relaxed)
        );
        family(
            &mut o,
            "footfall_ingest_queue_depth",
            "gauge",
            "Lines read and not yet acknowledged by Kafka.",
        );
        let _ = writeln!(o, "footfall_ingest_queue_depth {}", self.queue_depth());
        family(
            &mut o,
            "footfall_ingest_bytes_behind",
            "gauge",
            "Bytes of followed files after their checkpoints, per file source.",
        );
        let behind = self.bytes_behind();
        for s in &self.sources {
            let v = behind.get(&*s.name).copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "footfall_ingest_bytes_behind{{source=\"{}\"}} {v}",
                escape(&s.name)
            );
        }
        family(
            &mut o,
            "footfall_ingest_unaccounted_bytes_total",
            "counter",
            "Bytes after a checkpoint whose file was rotated away while ingest was stopped and found nowhere.",
        );
        for s in &self.sources {
            let _ = writeln!(
                o,
                "footfall_ingest_unaccounted_bytes_total{{source=\"{}\"}} {}",
                escape(&s.name),
                s.unaccounted_bytes.load(Relaxed)
            );
        }
        family(
            &mut o,
            "footfall_ingest_kafka_up",
            "gauge",
            "1 while Kafka accepts events, 0 when it has been unreachable for a while.",
        );
        let _ = writeln!(o, "footfall_ingest_kafka_up {}", u8::from(kafka_up));
        o
    }
}

fn kind_index(kind: RejectKind) -> usize {
    RejectKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_and_escapes_labels() {
        let m = Metrics::new(&["www".into(), "we\"ird".into()], Arc::new(Registry::new()));
        m.source("www").unwrap().lines_read.fetch_add(5, Relaxed);
        m.events_parsed.fetch_add(4, Relaxed);
        m.events_produced.fetch_add(3, Relaxed);
        m.reject(RejectKind::Malformed);
        m.rejects_done.fetch_add(1, Relaxed);
        let text = m.render(true);
        for line in [
            "footfall_ingest_lines_read_total{source=\"www\"} 5",
            "footfall_ingest_lines_read_total{source=\"we\\\"ird\"} 0",
            "footfall_ingest_events_produced_total 3",
            "footfall_ingest_rejects_total{kind=\"malformed\"} 1",
            "footfall_ingest_rejects_total{kind=\"too_long\"} 0",
            "footfall_ingest_delivery_errors_total 0",
            "footfall_ingest_queue_depth 1",
            "footfall_ingest_bytes_behind{source=\"www\"} 0",
            "footfall_ingest_unaccounted_bytes_total{source=\"www\"} 0",
            "footfall_ingest_kafka_up 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let s = m.snapshot();
        assert_eq!(s.lines_read_total, 5);
        assert_eq!(s.rejects.get("malformed"), Some(&1));
        assert_eq!(s.queue_depth, 1);
    }
}
