//! Following files: globs, rotation, truncation, compressed files.
//!
//! [`Follower`] is a synchronous state machine; [`run_files`] drives it from
//! tokio, polling every `poll_interval` (on the blocking pool: file I/O stays
//! off the reactor), and scanning the patterns for new files every
//! `scan_interval`.
//!
//! # Identity
//!
//! A file is known by its device and inode plus a *head*: the xxh3-128 hash of
//! its first `head_len` bytes (up to [`HEAD_BYTES`]; the head grows with the
//! file until it reaches that size). A file whose inode matches a known one
//! but whose head does not is new content (the inode was reused, or the file
//! was truncated and rewritten). Reading starts only once the first line is
//! complete, because that line is part of the source key of every `event_id`.
//!
//! The source key ([`footfall_parse::SourceRef::from_first_line`]) covers the
//! file's lineage (its directory and its name without rotation suffixes,
//! [`footfall_parse::lineage`]) and its first line. It is decided when the
//! file is first read, kept in its checkpoint, and kept when the same content
//! is found again under another name or compressed, so a line read twice
//! always gets the same `event_id`.
//!
//! # Rotation while running
//!
//! * **Rename rotation** (`access.log` → `access.log.1`, new `access.log`):
//!   the open descriptor keeps reading the old file to its end; when no
//!   pattern matches it any more it is closed after `rotate_wait` without
//!   growth (its unterminated last line, if any, is then emitted). If a
//!   pattern matches the renamed file, it is recognised by inode and head and
//!   not read twice. The new `access.log` is read from its beginning.
//! * **copytruncate**: the file shrinks below the read position (or its head
//!   changes). Its old content is looked for among the **rotations in its
//!   directory** (as below, by the fingerprint of its head; a copy that a
//!   pattern matches is recognised the same way): the copy is read from where
//!   the original was left to its end (it may have grown past that point),
//!   which recovers lines written between the last read and the copy, and
//!   only then is the file's new content read, from 0. Lines written between
//!   the copy and the truncation are in neither file: they are lost (inherent
//!   to copytruncate).
//! * **Compressed rotations** (`.gz`) are read once, as a stream; when a
//!   `.gz` file's head equals that of a file read before, reading resumes at
//!   that file's offset in the uncompressed stream.
//! * A file whose head equals that of a file being read under another inode is
//!   left alone until that file is closed (a copy in progress).
//!
//! A copy or a compressed file is taken for a file read before only within
//! its lineage: in the same directory, under a rotation name of the same log
//! (`access.log.1`, `access.log.2.gz` for `access.log`). Two logs that hold
//! the same bytes (`a.log` and `b.log`, or `host1/access.log` and
//! `host2/access.log`) are two sources, each read in full.
//!
//! # Rotation while stopped
//!
//! On start, each checkpointed file of the source that is not finished is
//! looked for where it was: under a path a pattern matches, or at its
//! recorded path (same inode and head). When it is gone, or its path now
//! holds another file, it is looked for among the **rotations in its
//! directory**: the files whose names are its name followed by rotation
//! suffixes ([`footfall_parse::lineage`]: `access.log.1`,
//! `access.log-20250101`, `access.log.1.gz`, `access.log.2025-01-01.gz`, …),
//! recognised by the fingerprint of their (uncompressed) head; the same inode
//! is preferred, then the most recently modified. The file found is read from
//! the checkpointed offset (a compressed one is decompressed and skipped to
//! it) to its end, and until it reaches its end no new file of the source is
//! opened: the rest of the old log comes before the new live file. It stays
//! known under the live name, so a restart before it is read to its end looks
//! for it among the rotations again.
//!
//! Then the rotations of that log **newer than the file found** (strictly, by
//! modification time, then by rotation number, lower is newer, then by name:
//! file times are coarse, and two rotations can share one; in that order)
//! that no checkpoint knows (their fingerprint is in none) and that are not
//! live files are read from their start, one at a time, oldest first, before
//! the live file: generations rotated away before ingest checkpointed them
//! (several rotations while ingest was stopped, or a kill before a new file's
//! first checkpoint). Rotations older than the file found are never read
//! (they were read before, and their checkpoints may have been forgotten).
//! A rotation with the fingerprint that ends before the checkpoint (a copy
//! taken before ingest read the lines written after it) was read already.
//!
//! When the fingerprint is nowhere, the bytes the checkpoint knew to be
//! unread (its size at the last read less its offset) cannot be accounted
//! for, and newer generations are not guessed at: a warning gives their number and
//! `footfall_ingest_unaccounted_bytes_total` counts them. What was written to
//! the file after ingest stopped, before it vanished, is unknown and not
//! counted. Rotations moved to another directory (logrotate's `olddir`) are
//! not looked for there.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use flate2::read::MultiGzDecoder;
use footfall_parse::lineage::same_lineage;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::IngestError;
use crate::lines::{LineBuf, LineSplitter};
use crate::metrics::SourceCounters;
use crate::source::{first_line, source_ref, RawBatch};
use crate::track::{FileIdentity, Fingerprint, Registry, Track};

mod rotated;

/// Bytes of a file's beginning that identify it.
pub const HEAD_BYTES: usize = 1024;
/// How much of a file's beginning is searched for header lines to restore the
/// format state when reading resumes in the middle.
const PRIME_BYTES: u64 = 1 << 20;

/// Where to start in files that have no checkpoint on the very first run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// Read existing files from their first line.
    #[default]
    Beginning,
    /// Skip what existing files hold; read only lines appended later.
    End,
}

/// Settings of one file source.
#[derive(Debug, Clone)]
pub struct FileSettings {
    /// Configured source name.
    pub source: Arc<str>,
    /// Paths or glob patterns, as given.
    pub patterns: Vec<String>,
    /// Glob patterns of paths to leave alone (matched against the full path).
    pub exclude: Vec<glob::Pattern>,
    /// Where to start in files found at the very first start (no checkpoints).
    pub start_at: StartAt,
    /// Keep following files for new lines (`false`: read each file once, to its end).
    pub follow: bool,
    /// How often open files are checked for new data.
    pub poll_interval: Duration,
    /// How often the patterns are expanded to find new, renamed or rotated files.
    pub scan_interval: Duration,
    /// A file no pattern matches any more is closed after this long without growth.
    pub rotate_wait: Duration,
    /// A matched file is closed after this long without growth (reopened when it grows).
    pub close_idle: Duration,
    /// Checkpoints of files not seen for this long are dropped.
    pub forget_after: Duration,
    /// Bytes read from one file per poll.
    pub read_chunk: usize,
    /// Longest line kept whole; longer lines are cut (and rejected as too long).
    pub line_cap: usize,
}

impl FileSettings {
    /// For a source that reads its files once: every path exists and every
    /// glob matches a file (exclusions applied). A source that follows its
    /// files waits for them instead.
    pub fn check_inputs(&self) -> Result<(), IngestError> {
        if self.follow {
            return Ok(());
        }
        for pattern in &self.patterns {
            if let Some(message) = self.missing(pattern) {
                return Err(IngestError::NoInput {
                    source_name: self.source.to_string(),
                    message,
                });
            }
        }
        Ok(())
    }

    /// Why `pattern` names no file to read, if it names none.
    fn missing(&self, pattern: &str) -> Option<String> {
        let excluded = |p: &Path| self.exclude.iter().any(|x| x.matches_path(p));
        if is_glob(pattern) {
            let found = glob::glob(pattern).into_iter().flatten().flatten();
            let mut files = found.filter(|p| !excluded(p) && p.is_file());
            return files
                .next()
                .is_none()
                .then(|| format!("pattern {pattern:?} matches no file"));
        }
        let path = Path::new(pattern);
        match fs::metadata(path) {
            Err(e) => Some(format!("{pattern}: {e}")),
            Ok(m) if !m.is_file() => Some(format!("{pattern}: not a regular file")),
            Ok(_) if excluded(path) => Some(format!("{pattern}: excluded by `exclude`")),
            Ok(_) => None,
        }
    }
}

/// Whether a configured path is a glob pattern.
fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// What one poll produced.
#[derive(Debug, Default)]
pub struct PollResult {
    /// Complete lines read, a batch per file that had any.
    pub batches: Vec<RawBatch>,
    /// Some file has more data ready: poll again without waiting.
    pub more: bool,
    /// Nothing more will ever be read (a source that does not follow, fully read).
    pub finished: bool,
}

/// The first bytes of a file (up to [`HEAD_BYTES`]).
struct Head {
    bytes: Vec<u8>,
    first_line: Vec<u8>,
}

impl Head {
    /// Whether this head begins with the head recorded in `id`.
    fn starts_with(&self, id: &FileIdentity) -> bool {
        let len = id.head_len as usize;
        len > 0 && self.bytes.len() >= len && hash(&self.bytes[..len]) == id.fingerprint
    }

    fn identity(&self, c: &Candidate) -> FileIdentity {
        FileIdentity {
            fingerprint: hash(&self.bytes),
            head_len: self.bytes.len() as u32,
            dev: c.dev,
            ino: c.ino,
            path: c.path.clone(),
            gzip: c.gzip,
        }
    }
}

fn hash(bytes: &[u8]) -> Fingerprint {
    xxhash_rust::xxh3::xxh3_128(bytes).to_le_bytes()
}

/// Collects the `#` lines among the first `limit` bytes of a stream.
struct Primer {
    limit: u64,
    seen: u64,
    splitter: LineSplitter,
    lines: LineBuf,
}

impl Primer {
    fn new(limit: u64, cap: usize) -> Self {
        Primer {
            limit,
            seen: 0,
            splitter: LineSplitter::new(0, cap),
            lines: LineBuf::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if self.seen >= self.limit {
            return;
        }
        let take = (self.limit - self.seen).min(bytes.len() as u64) as usize;
        self.seen += take as u64;
        let mut all = LineBuf::new();
        self.splitter.feed(&bytes[..take], &mut all);
        for (offset, line) in all.iter() {
            if line.first() == Some(&b'#') {
                self.lines.push(offset, line);
            }
        }
    }

    fn finish(self) -> LineBuf {
        self.lines
    }
}

enum Reader {
    Plain(File),
    Gzip(Box<MultiGzDecoder<BufReader<File>>>),
}

struct OpenFile {
    track: Arc<Track>,
    src: footfall_parse::SourceRef,
    path: PathBuf,
    dev: u64,
    ino: u64,
    gzip: bool,
    reader: Reader,
    /// Next byte to read (uncompressed offset for gzip).
    pos: u64,
    splitter: LineSplitter,
    head_len: usize,
    head_hash: Fingerprint,
    /// Some pattern matched this file in the latest scan.
    matched: bool,
    /// Content changed under the same inode: restart it as new content.
    replaced: bool,
    idle_since: Option<Instant>,
    prime: LineBuf,
    /// A file rotated while ingest was stopped, not yet read to its end: no
    /// new file of the source is opened before it is.
    recovering: bool,
}

#[derive(Clone)]
struct Candidate {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    gzip: bool,
}

/// Follows the files of one source.
pub struct Follower {
    s: Arc<FileSettings>,
    registry: Arc<Registry>,
    counters: Arc<SourceCounters>,
    open: Vec<OpenFile>,
    /// Files seen without a complete first line: (dev, ino) → size then.
    waiting: HashMap<(u64, u64), u64>,
    /// Files with nothing to read in a source that does not follow: (dev, ino).
    done: Vec<(u64, u64)>,
    apply_start_at: bool,
    next_scan: Option<Instant>,
    scans: u64,
    warned: HashMap<PathBuf, String>,
    /// Scan again at the end of this poll (a recovered rotation was read to
    /// its end: the files it held back can be opened).
    rescan: bool,
    /// Rotations found at start that no checkpoint knows, newer than the
    /// recovered file: read from their start, one at a time, oldest first.
    queued: VecDeque<(Candidate, Head)>,
}

impl Follower {
    /// A follower for `settings`. Tracks of this source already in `registry`
    /// (from checkpoints) are resumed; when there are none, `start_at` applies
    /// to the files found by the first scan. `counters` are the source's.
    pub fn new(
        settings: Arc<FileSettings>,
        registry: Arc<Registry>,
        counters: Arc<SourceCounters>,
    ) -> Follower {
        let apply_start_at = registry.of_source(&settings.source).is_empty();
        Follower {
            s: settings,
            registry,
            counters,
            open: Vec::new(),
            waiting: HashMap::new(),
            done: Vec::new(),
            apply_start_at,
            next_scan: None,
            scans: 0,
            warned: HashMap::new(),
            rescan: false,
            queued: VecDeque::new(),
        }
    }

    /// Number of files open.
    pub fn open_files(&self) -> usize {
        self.open.len()
    }

    /// Scan if due, then read up to `read_chunk` bytes from every open file.
    pub fn poll(&mut self, now: Instant) -> PollResult {
        let mut out = PollResult::default();
        let scan_due = match self.next_scan {
            None => true,
            Some(t) => self.s.follow && now >= t,
        };
        if scan_due {
            self.scan(now);
            self.next_scan = Some(now + self.s.scan_interval);
        }
        let mut force_scan = false;
        let mut i = 0;
        while i < self.open.len() {
            let (batch, action) = self.read_one(i, now);
            if let Some(b) = batch {
                out.batches.push(b);
            }
            match action {
                Action::Keep { more } => {
                    out.more |= more;
                    i += 1;
                }
                Action::Close { reconsider } => {
                    force_scan |= reconsider;
                    let f = self.open.swap_remove(i);
                    f.track.lock().open = false;
                    if reconsider {
                        // Truncated or replaced: its old content may be in a copy.
                        self.recover_copy(f.track, &f.path, (f.dev, f.ino), now);
                    }
                }
            }
        }
        if force_scan || std::mem::take(&mut self.rescan) {
            // A truncated file is new content, files held back by a recovered
            // rotation can be opened: pick them up now, not at the next scan.
            self.scan(now);
            out.more = true;
        }
        out.finished = !self.s.follow && self.open.is_empty();
        out
    }

    fn warn_once(&mut self, path: &Path, message: String) {
        if self.warned.get(path) != Some(&message) {
            tracing::warn!(source = %self.s.source, path = %path.display(), "{message}");
            self.warned.insert(path.to_path_buf(), message);
        }
    }

    fn candidates(&mut self) -> Vec<Candidate> {
        let mut paths: Vec<PathBuf> = Vec::new();
        for pattern in self.s.patterns.clone() {
            if is_glob(&pattern) {
                match glob::glob(&pattern) {
                    Ok(entries) => {
                        for entry in entries {
                            match entry {
                                Ok(p) => paths.push(p),
                                Err(e) => self.warn_once(
                                    e.path(),
                                    format!(
                                        "cannot read while matching {pattern:?}: {}",
                                        e.error()
                                    ),
                                ),
                            }
                        }
                    }
                    Err(e) => self.warn_once(Path::new(&pattern), format!("invalid pattern: {e}")),
                }
            } else {
                paths.push(PathBuf::from(pattern));
            }
        }
        let mut out: Vec<Candidate> = Vec::new();
        for path in paths {
            if self.s.exclude.iter().any(|p| p.matches_path(&path)) {
                continue;
            }
            match fs::metadata(&path) {
                Ok(m) if m.is_file() => {
                    self.warned.remove(&path);
                    if out.iter().any(|c| c.dev == m.dev() && c.ino == m.ino()) {
                        continue;
                    }
                    // Whether it is compressed is decided from its content when it is considered.
                    out.push(Candidate {
                        path,
                        dev: m.dev(),
                        ino: m.ino(),
                        size: m.len(),
                        gzip: false,
                    });
                }
                Ok(_) => self.warn_once(&path, "not a regular file; ignored".into()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => self.warn_once(&path, format!("cannot stat: {e}")),
            }
        }
        out
    }

    fn scan(&mut self, now: Instant) {
        let candidates = self.candidates();
        let wall = SystemTime::now();
        for f in &mut self.open {
            match candidates.iter().find(|c| c.dev == f.dev && c.ino == f.ino) {
                Some(c) => {
                    if c.path != f.path {
                        tracing::info!(source = %self.s.source, from = %f.path.display(), to = %c.path.display(), "file renamed; still reading it");
                        f.path = c.path.clone();
                    }
                    f.matched = true;
                    let mut p = f.track.lock();
                    p.last_seen = wall;
                    if let Some(id) = p.identity.as_mut() {
                        id.path = f.path.clone();
                    }
                }
                None => {
                    if f.matched {
                        tracing::info!(source = %self.s.source, path = %f.path.display(), "file rotated away or removed; reading it to its end");
                    }
                    f.matched = false;
                }
            }
            if !f.gzip && f.matched {
                verify_head(f);
            }
        }
        if self.scans == 0 {
            self.recover_rotated(&candidates, now, wall);
        } else {
            self.open_queued(&candidates, now);
        }
        for c in candidates.iter() {
            if self.open.iter().any(|f| f.dev == c.dev && f.ino == c.ino) {
                continue;
            }
            if let Err(e) = self.consider(c, now, wall) {
                self.warn_once(&c.path, format!("cannot read: {e}"));
            }
        }
        self.waiting
            .retain(|k, _| candidates.iter().any(|c| (c.dev, c.ino) == *k));
        let forget = self.s.forget_after;
        let source = self.s.source.clone();
        self.registry.retain(|t| {
            if t.source != source {
                return true;
            }
            let p = t.lock();
            p.open
                || wall
                    .duration_since(p.last_seen)
                    .map_or(true, |age| age < forget)
        });
        self.apply_start_at = false;
        self.scans += 1;
    }

    /// Decide what to do with a file that is not open.
    fn consider(&mut self, c: &Candidate, now: Instant, wall: SystemTime) -> io::Result<()> {
        if self.done.contains(&(c.dev, c.ino)) {
            return Ok(());
        }
        if self.waiting.get(&(c.dev, c.ino)) == Some(&c.size) {
            return Ok(()); // still no complete first line
        }
        // Compressed or not is decided by content, as `footfall parse` does.
        let c = &Candidate {
            gzip: is_gzip(&c.path)?,
            ..c.clone()
        };
        let final_at_eof = c.gzip || !self.s.follow;
        let Some(head) = read_head(&c.path, c.gzip, final_at_eof)? else {
            if final_at_eof {
                // Empty file read once: nothing to do.
                self.done.push((c.dev, c.ino));
            } else {
                self.waiting.insert((c.dev, c.ino), c.size);
            }
            return Ok(());
        };
        self.waiting.remove(&(c.dev, c.ino));
        let tracks = self.registry.of_source(&self.s.source);

        // 1. The same file (inode and head), closed earlier.
        for t in &tracks {
            let (open, id, frontier, complete) = {
                let p = t.lock();
                (p.open, p.identity.clone(), p.frontier(), p.complete)
            };
            let Some(id) = id else { continue };
            if open
                || id.dev != c.dev
                || id.ino != c.ino
                || id.gzip != c.gzip
                || !head.starts_with(&id)
            {
                continue;
            }
            {
                let mut p = t.lock();
                p.last_seen = wall;
                if let Some(i) = p.identity.as_mut() {
                    i.path = c.path.clone();
                }
            }
            if c.gzip {
                // A compressed file does not grow: read it once, to its end.
                return if complete {
                    Ok(())
                } else {
                    self.open_file(c, &head, t.clone(), frontier, now).map(drop)
                };
            }
            if c.size > frontier {
                return self.open_file(c, &head, t.clone(), frontier, now).map(drop);
            }
            if c.size == frontier {
                if !self.s.follow {
                    t.lock().complete = true;
                }
                return Ok(());
            }
            // Shrank while closed: new content under the same inode.
            break;
        }

        // 2. Same head as a file of its lineage being read under another
        //    inode: a copy in progress; decided once that file is closed.
        if self.open.iter().any(|f| {
            (f.dev, f.ino) != (c.dev, c.ino)
                && head.bytes.len() >= f.head_len
                && hash(&head.bytes[..f.head_len]) == f.head_hash
                && same_lineage(&f.path, &c.path)
        }) {
            return Ok(());
        }

        // 3. Same full head as a closed file of its lineage under another
        //    inode: a copy, compressed rotation or restored file: continue
        //    where that one was left. (Another log with the same content is
        //    another source.)
        let mut best: Option<(Arc<Track>, u64, SystemTime)> = None;
        for t in &tracks {
            let p = t.lock();
            let Some(id) = p.identity.as_ref() else {
                continue;
            };
            if p.open
                || id.head_len as usize != HEAD_BYTES
                || !head.starts_with(id)
                || !same_lineage(&id.path, &c.path)
            {
                continue;
            }
            if best.as_ref().is_none_or(|b| p.last_seen > b.2) {
                best = Some((t.clone(), p.frontier(), p.last_seen));
            }
        }
        if let Some((t, frontier, _)) = best {
            if c.gzip || c.size >= frontier {
                tracing::info!(source = %self.s.source, path = %c.path.display(), offset = frontier, "file has the content of a file read before; continuing where that one was left");
                {
                    let mut p = t.lock();
                    p.identity = Some(head.identity(c));
                    p.last_seen = wall;
                }
                if !c.gzip && c.size == frontier {
                    return Ok(());
                }
                return self.open_file(c, &head, t, frontier, now).map(drop);
            }
        }

        // 4. A new file; not before a rotation recovered at start is read.
        if self.open.iter().any(|f| f.recovering) {
            return Ok(());
        }
        let offset = if self.apply_start_at && self.s.start_at == StartAt::End && !c.gzip {
            last_line_boundary(&c.path, c.size, self.s.line_cap)?
        } else {
            0
        };
        let track = Track::new(self.s.source.clone(), Some(head.identity(c)), offset);
        self.registry.add(track.clone());
        if self.scans > 0 || offset == 0 {
            tracing::info!(source = %self.s.source, path = %c.path.display(), offset, "new file");
        }
        self.open_file(c, &head, track, offset, now).map(drop)
    }

    fn open_file(
        &mut self,
        c: &Candidate,
        head: &Head,
        track: Arc<Track>,
        offset: u64,
        now: Instant,
    ) -> io::Result<Option<&mut OpenFile>> {
        let file = File::open(&c.path)?;
        let m = file.metadata()?;
        if m.dev() != c.dev || m.ino() != c.ino {
            return Ok(None); // replaced between stat and open: next scan
        }
        // Resuming in the middle of a file whose first line is a header
        // (W3C `#Fields:`): replay its header lines to restore the format state.
        let prime_limit = if offset > 0 && head.first_line.first() == Some(&b'#') {
            offset.min(PRIME_BYTES)
        } else {
            0
        };
        let mut primer = Primer::new(prime_limit, self.s.line_cap);
        let reader = if c.gzip {
            let mut dec = Box::new(MultiGzDecoder::new(BufReader::with_capacity(
                64 * 1024,
                file,
            )));
            let mut skipped = 0u64;
            let mut buf = vec![0u8; 64 * 1024];
            while skipped < offset {
                let want = (offset - skipped).min(buf.len() as u64) as usize;
                let n = read_some(dec.as_mut(), &mut buf[..want])?;
                if n == 0 {
                    break;
                }
                primer.feed(&buf[..n]);
                skipped += n as u64;
            }
            Reader::Gzip(dec)
        } else {
            if prime_limit > 0 {
                let mut buf = vec![0u8; prime_limit as usize];
                let got = read_full_at(&file, &mut buf, 0)?;
                primer.feed(&buf[..got]);
            }
            Reader::Plain(file)
        };
        let prime = primer.finish();
        let name: Arc<str> = c.path.to_string_lossy().into();
        let src = {
            let mut p = track.lock();
            p.open = true;
            p.size = if c.gzip { offset } else { c.size };
            // The key the file was first read with, whatever its name now.
            let key = *p
                .source_key
                .get_or_insert_with(|| source_ref(name.clone(), &head.first_line).key);
            footfall_parse::SourceRef { name, key }
        };
        self.open.push(OpenFile {
            track,
            src,
            path: c.path.clone(),
            dev: c.dev,
            ino: c.ino,
            gzip: c.gzip,
            reader,
            pos: offset,
            splitter: LineSplitter::new(offset, self.s.line_cap),
            head_len: head.bytes.len(),
            head_hash: hash(&head.bytes),
            matched: true,
            replaced: false,
            idle_since: Some(now),
            prime,
            recovering: false,
        });
        Ok(self.open.last_mut())
    }

    fn read_one(&mut self, i: usize, now: Instant) -> (Option<RawBatch>, Action) {
        let chunk = self.s.read_chunk;
        let follow = self.s.follow;
        let f = &mut self.open[i];
        let mut lines = LineBuf::new();
        let mut more = false;
        let mut close = None;
        let mut at_end = false;
        match &mut f.reader {
            Reader::Plain(file) => match file.metadata() {
                Err(e) => {
                    tracing::warn!(source = %self.s.source, path = %f.path.display(), "cannot stat open file: {e}");
                }
                Ok(m) => {
                    let size = m.len();
                    if size < f.pos || f.replaced {
                        tracing::info!(source = %self.s.source, path = %f.path.display(), size, position = f.pos, "file truncated or replaced; its new content is read from the start");
                        f.track.lock().size = f.pos;
                        close = Some(Action::Close { reconsider: true });
                    } else if size > f.pos {
                        let n = (size - f.pos).min(chunk as u64) as usize;
                        let mut buf = vec![0u8; n];
                        match read_full_at(file, &mut buf, f.pos) {
                            Ok(got) => {
                                f.splitter.feed(&buf[..got], &mut lines);
                                f.pos += got as u64;
                                more = f.pos < size;
                                at_end = !more;
                                f.idle_since = None;
                            }
                            Err(e) => {
                                tracing::warn!(source = %self.s.source, path = %f.path.display(), "read error: {e}")
                            }
                        }
                        f.track.lock().size = size;
                    } else {
                        // At the end of the file.
                        at_end = true;
                        let idle = *f.idle_since.get_or_insert(now);
                        let idle_for = now.saturating_duration_since(idle);
                        if !follow {
                            f.splitter.finish(&mut lines);
                            f.track.lock().complete = true;
                            close = Some(Action::Close { reconsider: false });
                        } else if !f.matched && idle_for >= self.s.rotate_wait {
                            // Rotated away and quiet: the writer has moved on.
                            f.splitter.finish(&mut lines);
                            tracing::info!(source = %self.s.source, path = %f.path.display(), "finished rotated file");
                            close = Some(Action::Close { reconsider: false });
                        } else if idle_for >= self.s.close_idle {
                            close = Some(Action::Close { reconsider: false });
                        }
                    }
                }
            },
            Reader::Gzip(dec) => {
                let mut buf = vec![0u8; chunk];
                match read_some(dec.as_mut(), &mut buf) {
                    Ok(0) => {
                        at_end = true;
                        f.splitter.finish(&mut lines);
                        f.track.lock().complete = true;
                        close = Some(Action::Close { reconsider: false });
                    }
                    Ok(n) => {
                        f.splitter.feed(&buf[..n], &mut lines);
                        f.pos += n as u64;
                        f.track.lock().size = f.pos;
                        more = true;
                    }
                    Err(e) => {
                        tracing::error!(source = %self.s.source, path = %f.path.display(), offset = f.pos, "corrupt compressed file; the rest of it is skipped: {e}");
                        at_end = true;
                        f.splitter.finish(&mut lines);
                        f.track.lock().complete = true;
                        close = Some(Action::Close { reconsider: false });
                    }
                }
            }
        }
        let batch = if lines.is_empty() && f.prime.is_empty() {
            None
        } else {
            Some(RawBatch {
                track: f.track.clone(),
                src: f.src.clone(),
                prime: std::mem::take(&mut f.prime),
                lines,
                end: f.splitter.line_start(),
            })
        };
        if at_end && f.recovering {
            // The rest of the rotated file is read: new files may follow it.
            f.recovering = false;
            self.rescan = true;
        }
        (batch, close.unwrap_or(Action::Keep { more }))
    }
}

enum Action {
    Keep { more: bool },
    Close { reconsider: bool },
}

/// Re-read the head of an open plain file: extend it while the file is short,
/// and notice when it changed (truncated and rewritten past the read position).
fn verify_head(f: &mut OpenFile) {
    let Reader::Plain(file) = &f.reader else {
        return;
    };
    let mut buf = [0u8; HEAD_BYTES];
    let Ok(n) = read_full_at(file, &mut buf, 0) else {
        return;
    };
    if n < f.head_len || hash(&buf[..f.head_len]) != f.head_hash {
        f.replaced = true;
        return;
    }
    if n > f.head_len {
        f.head_len = n;
        f.head_hash = hash(&buf[..n]);
        if let Some(id) = f.track.lock().identity.as_mut() {
            id.fingerprint = f.head_hash;
            id.head_len = n as u32;
        }
    }
}

/// Read the head of a file. `None` while the first line is incomplete (unless
/// `final_at_eof`: then a non-empty unterminated first line counts).
fn read_head(path: &Path, gzip: bool, final_at_eof: bool) -> io::Result<Option<Head>> {
    let mut buf = [0u8; HEAD_BYTES];
    let n = if gzip {
        let mut dec = MultiGzDecoder::new(File::open(path)?);
        read_full(&mut dec, &mut buf)?
    } else {
        read_full_at(&File::open(path)?, &mut buf, 0)?
    };
    let head = &buf[..n];
    let complete =
        n == HEAD_BYTES || memchr::memchr(b'\n', head).is_some() || (final_at_eof && n > 0);
    if !complete {
        return Ok(None);
    }
    Ok(Some(Head {
        bytes: head.to_vec(),
        first_line: first_line(head).to_vec(),
    }))
}

/// The file starts with the gzip magic bytes.
fn is_gzip(path: &Path) -> io::Result<bool> {
    let mut magic = [0u8; 2];
    let n = read_full_at(&File::open(path)?, &mut magic, 0)?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

fn last_line_boundary(path: &Path, size: u64, line_cap: usize) -> io::Result<u64> {
    if size == 0 {
        return Ok(0);
    }
    let file = File::open(path)?;
    let window = size.min(line_cap as u64 + 1);
    let mut buf = vec![0u8; window as usize];
    let got = read_full_at(&file, &mut buf, size - window)?;
    Ok(match memchr::memrchr(b'\n', &buf[..got]) {
        Some(i) => size - window + i as u64 + 1,
        None => size,
    })
}

fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_some(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Drive a [`Follower`] until the source is finished or `stop` is cancelled,
/// sending batches into `tx` (waiting when it is full: backpressure).
pub async fn run_files(
    mut follower: Follower,
    tx: mpsc::Sender<RawBatch>,
    stop: CancellationToken,
) {
    let poll_interval = follower.s.poll_interval;
    loop {
        if stop.is_cancelled() {
            break;
        }
        let now = tokio::time::Instant::now().into_std();
        let joined = tokio::task::spawn_blocking(move || {
            let r = follower.poll(now);
            (follower, r)
        })
        .await;
        let r;
        (follower, r) = match joined {
            Ok(x) => x,
            Err(e) => {
                tracing::error!("file reader task failed: {e}");
                return;
            }
        };
        for b in r.batches {
            tokio::select! {
                sent = tx.send(b) => if sent.is_err() { return },
                _ = stop.cancelled() => return,
            }
        }
        if r.finished {
            return;
        }
        if !r.more {
            tokio::select! {
                _ = tokio::time::sleep(poll_interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests;
