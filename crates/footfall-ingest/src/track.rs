//! Per-stream progress: which lines are in flight, and the checkpoint offset.
//!
//! Every stream being read (a file, stdin, a syslog listener) has a [`Track`].
//! The producing side registers what it hands to Kafka by start offset (the
//! produce stage registers each batch under its first line) and acknowledges
//! it once Kafka has confirmed every write of it; the checkpoint is the
//! oldest start not yet acknowledged, or, when nothing is in flight, the end
//! of the last line handed out. Restarting from the checkpoint therefore
//! never skips an unacknowledged line (at least once); lines acknowledged
//! after it are re-sent with the same `event_id`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// 128-bit hash of the first bytes of a file's content.
pub type Fingerprint = [u8; 16];

/// Where a file is and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdentity {
    /// xxh3-128 of the first `head_len` bytes of the content.
    pub fingerprint: Fingerprint,
    /// How many bytes `fingerprint` covers (up to 1 KiB; grows with a short file).
    pub head_len: u32,
    /// Device number of the file system the file is on.
    pub dev: u64,
    /// Inode number of the file.
    pub ino: u64,
    /// The path the file was last seen at.
    pub path: PathBuf,
    /// The file is gzip-compressed (offsets are into the uncompressed stream).
    pub gzip: bool,
}

/// Mutable progress of one stream.
#[derive(Debug)]
pub struct Progress {
    /// Start offsets of lines (or batches) handed to Kafka and not yet
    /// acknowledged, in increasing order, with an acknowledged flag (acks can
    /// come out of order).
    in_flight: VecDeque<(u64, bool)>,
    /// End of the last line handed out (start of the next one).
    frontier: u64,
    /// File identity; `None` for streams without checkpoints (stdin, syslog).
    pub identity: Option<FileIdentity>,
    /// Source key of the file's `event_id`s ([`footfall_parse::SourceRef`]),
    /// once known: decided when the file is first read and kept when it is
    /// found again under another name or compressed.
    pub source_key: Option<[u8; 16]>,
    /// Bytes known to exist in the stream (file size), for `bytes_behind`.
    pub size: u64,
    /// The stream has been read to its end and will not grow (`.gz`, a file read once).
    pub complete: bool,
    /// A reader currently has the file open.
    pub open: bool,
    /// Last time a scan matched the file.
    pub last_seen: SystemTime,
}

/// One stream's progress, shared between its reader, its producer and the checkpoint writer.
#[derive(Debug)]
pub struct Track {
    /// Unique within the process.
    pub id: u64,
    /// Configured source name (metric label, checkpoint grouping).
    pub source: Arc<str>,
    inner: Mutex<Progress>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Track {
    /// A new stream of `source`, read from `offset` on (nothing in flight);
    /// `identity` is `None` for a stream that is not a file (stdin, syslog).
    pub fn new(source: Arc<str>, identity: Option<FileIdentity>, offset: u64) -> Arc<Track> {
        Arc::new(Track {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            source,
            inner: Mutex::new(Progress {
                in_flight: VecDeque::new(),
                frontier: offset,
                identity,
                source_key: None,
                size: offset,
                complete: false,
                open: false,
                last_seen: SystemTime::now(),
            }),
        })
    }

    /// Lock the progress. Never held across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, Progress> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Register lines or batches handed to Kafka (`offsets` increasing) and the end of the batch.
    pub fn register(&self, offsets: impl IntoIterator<Item = u64>, end: u64) {
        let mut p = self.lock();
        p.in_flight.extend(offsets.into_iter().map(|o| (o, false)));
        if end > p.frontier {
            p.frontier = end;
        }
    }

    /// Kafka acknowledged the line (or the whole batch) registered at `offset`.
    pub fn ack(&self, offset: u64) {
        let mut p = self.lock();
        if let Ok(i) = p.in_flight.binary_search_by_key(&offset, |e| e.0) {
            p.in_flight[i].1 = true;
        }
        while p.in_flight.front().is_some_and(|e| e.1) {
            p.in_flight.pop_front();
        }
    }

    /// The restart offset: the oldest unacknowledged line start, else the frontier.
    pub fn checkpoint(&self) -> u64 {
        self.lock().checkpoint()
    }

    /// Registered offsets (lines or batches) not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.lock().pending()
    }
}

impl Progress {
    /// The restart offset: the oldest unacknowledged line start, else the frontier.
    pub fn checkpoint(&self) -> u64 {
        self.in_flight.front().map_or(self.frontier, |e| e.0)
    }

    /// Registered offsets (lines or batches) not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.in_flight.iter().filter(|e| !e.1).count()
    }

    /// Nothing handed out is waiting for an acknowledgement.
    pub fn all_acknowledged(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// End of the last line handed out: where reading goes on.
    pub fn frontier(&self) -> u64 {
        self.frontier
    }

    /// Bytes in the stream after the checkpoint.
    pub fn bytes_behind(&self) -> u64 {
        self.size.saturating_sub(self.checkpoint())
    }
}

/// All file tracks of the process: what the checkpoint writer persists.
#[derive(Debug, Default)]
pub struct Registry {
    tracks: Mutex<Vec<Arc<Track>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds a file's track, for the checkpoint writer to persist from now on.
    pub fn add(&self, track: Arc<Track>) {
        self.lock().push(track);
    }

    /// A snapshot of all tracks.
    pub fn tracks(&self) -> Vec<Arc<Track>> {
        self.lock().clone()
    }

    /// Tracks of one source.
    pub fn of_source(&self, source: &str) -> Vec<Arc<Track>> {
        self.lock()
            .iter()
            .filter(|t| &*t.source == source)
            .cloned()
            .collect()
    }

    /// Drop tracks that `keep` rejects.
    pub fn retain(&self, mut keep: impl FnMut(&Track) -> bool) {
        self.lock().retain(|t| keep(t));
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Track>>> {
        self.tracks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_is_lowest_unacknowledged_line() {
        let t = Track::new("s".into(), None, 0);
        t.register([0, 10, 20, 30], 40);
        assert_eq!(t.checkpoint(), 0);
        t.ack(10);
        t.ack(20);
        assert_eq!(t.checkpoint(), 0, "line 0 is still in flight");
        assert_eq!(t.pending(), 2);
        t.ack(0);
        assert_eq!(t.checkpoint(), 30);
        t.register([40, 50], 60);
        t.ack(30);
        assert_eq!(t.checkpoint(), 40);
        t.ack(50);
        t.ack(40);
        assert_eq!(t.checkpoint(), 60, "everything acknowledged: the frontier");
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn unknown_acks_are_ignored() {
        let t = Track::new("s".into(), None, 5);
        t.ack(7);
        assert_eq!(t.checkpoint(), 5);
        t.register([5], 9);
        t.ack(6);
        assert_eq!(t.checkpoint(), 5);
    }
}
