//! Following files: globs, rotation, truncation, compressed files.
//!
//! [`Tailer`] is a synchronous state machine; [`run_files`] drives it from
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
//! complete, because that line is also the source key of every `event_id`
//! ([`footfall_parse::SourceRef::from_first_line`]).
//!
//! * **Rename rotation** (`access.log` → `access.log.1`, new `access.log`):
//!   the open descriptor keeps reading the old file to its end; when no
//!   pattern matches it any more it is closed after `rotate_wait` without
//!   growth (its unterminated last line, if any, is then emitted). If a
//!   pattern matches the renamed file, it is recognised by inode and head and
//!   not read twice. The new `access.log` is read from its beginning.
//! * **copytruncate**: the file shrinks below the read position (or its head
//!   changes): reading restarts at 0 as new content. If the copy matches a
//!   pattern, it is recognised by its head and read from where the original
//!   was left, which recovers lines written between the last read and the
//!   truncation.
//! * **Compressed rotations** (`.gz`) are read once, as a stream; when a
//!   `.gz` file's head equals that of a file read before, reading resumes at
//!   that file's offset in the uncompressed stream.
//! * A file whose head equals that of a file being read under another inode is
//!   left alone until that file is closed (a copy in progress).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use flate2::read::MultiGzDecoder;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::lines::{LineBuf, LineSplitter};
use crate::source::{first_line, source_ref, RawBatch};
use crate::track::{FileIdentity, Fingerprint, Registry, Track};

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
    pub start_at: StartAt,
    /// Keep following files for new lines (`false`: read each file once, to its end).
    pub follow: bool,
    pub poll_interval: Duration,
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

/// What one poll produced.
#[derive(Debug, Default)]
pub struct PollResult {
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
pub struct Tailer {
    s: Arc<FileSettings>,
    registry: Arc<Registry>,
    open: Vec<OpenFile>,
    /// Files seen without a complete first line: (dev, ino) → size then.
    waiting: HashMap<(u64, u64), u64>,
    /// Files with nothing to read in a source that does not follow: (dev, ino).
    done: Vec<(u64, u64)>,
    apply_start_at: bool,
    next_scan: Option<Instant>,
    scans: u64,
    warned: HashMap<PathBuf, String>,
}

impl Tailer {
    /// A tailer for `settings`. Tracks of this source already in `registry`
    /// (from checkpoints) are resumed; when there are none, `start_at` applies
    /// to the files found by the first scan.
    pub fn new(settings: Arc<FileSettings>, registry: Arc<Registry>) -> Tailer {
        let apply_start_at = registry.of_source(&settings.source).is_empty();
        Tailer {
            s: settings,
            registry,
            open: Vec::new(),
            waiting: HashMap::new(),
            done: Vec::new(),
            apply_start_at,
            next_scan: None,
            scans: 0,
            warned: HashMap::new(),
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
                }
            }
        }
        if force_scan {
            // A truncated file is new content: pick it up now, not at the next scan.
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
            if pattern.contains(['*', '?', '[']) {
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
                    self.open_file(c, &head, t.clone(), frontier, now)
                };
            }
            if c.size > frontier {
                return self.open_file(c, &head, t.clone(), frontier, now);
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

        // 2. Same head as a file being read under another inode: a copy in
        //    progress; decided once that file is closed.
        if self.open.iter().any(|f| {
            (f.dev, f.ino) != (c.dev, c.ino)
                && head.bytes.len() >= f.head_len
                && hash(&head.bytes[..f.head_len]) == f.head_hash
        }) {
            return Ok(());
        }

        // 3. Same full head as a closed file under another inode: a copy,
        //    compressed rotation or restored file: continue where that one was left.
        let mut best: Option<(Arc<Track>, u64, SystemTime)> = None;
        for t in &tracks {
            let p = t.lock();
            let Some(id) = p.identity.as_ref() else {
                continue;
            };
            if p.open || id.head_len as usize != HEAD_BYTES || !head.starts_with(id) {
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
                return self.open_file(c, &head, t, frontier, now);
            }
        }

        // 4. A new file.
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
        self.open_file(c, &head, track, offset, now)
    }

    fn open_file(
        &mut self,
        c: &Candidate,
        head: &Head,
        track: Arc<Track>,
        offset: u64,
        now: Instant,
    ) -> io::Result<()> {
        let file = File::open(&c.path)?;
        let m = file.metadata()?;
        if m.dev() != c.dev || m.ino() != c.ino {
            return Ok(()); // replaced between stat and open: next scan
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
        let src = source_ref(name, &head.first_line);
        {
            let mut p = track.lock();
            p.open = true;
            p.size = if c.gzip { offset } else { c.size };
        }
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
        });
        Ok(())
    }

    fn read_one(&mut self, i: usize, now: Instant) -> (Option<RawBatch>, Action) {
        let chunk = self.s.read_chunk;
        let follow = self.s.follow;
        let f = &mut self.open[i];
        let mut lines = LineBuf::new();
        let mut more = false;
        let mut close = None;
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
                                f.idle_since = None;
                            }
                            Err(e) => {
                                tracing::warn!(source = %self.s.source, path = %f.path.display(), "read error: {e}")
                            }
                        }
                        f.track.lock().size = size;
                    } else {
                        // At the end of the file.
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

/// Drive a [`Tailer`] until the source is finished or `stop` is cancelled,
/// sending batches into `tx` (waiting when it is full: backpressure).
pub async fn run_files(mut tailer: Tailer, tx: mpsc::Sender<RawBatch>, stop: CancellationToken) {
    let poll_interval = tailer.s.poll_interval;
    loop {
        if stop.is_cancelled() {
            break;
        }
        let now = tokio::time::Instant::now().into_std();
        let joined = tokio::task::spawn_blocking(move || {
            let r = tailer.poll(now);
            (tailer, r)
        })
        .await;
        let r;
        (tailer, r) = match joined {
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
mod tests {
    use super::*;
    use std::io::Write;

    fn settings(patterns: &[&Path]) -> FileSettings {
        FileSettings {
            source: "www".into(),
            patterns: patterns
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            exclude: Vec::new(),
            start_at: StartAt::Beginning,
            follow: true,
            poll_interval: Duration::from_millis(250),
            scan_interval: Duration::from_secs(1),
            rotate_wait: Duration::from_secs(10),
            close_idle: Duration::from_secs(300),
            forget_after: Duration::from_secs(3600),
            read_chunk: 64 * 1024,
            line_cap: 1 << 20,
        }
    }

    /// Emitted lines as (source name, offset, text).
    type Lines = Vec<(String, u64, String)>;

    struct Harness {
        tailer: Tailer,
        now: Instant,
        registry: Arc<Registry>,
        /// Acknowledge every batch right away (as if Kafka had).
        ack: bool,
    }

    impl Harness {
        fn new(s: FileSettings) -> Harness {
            let registry = Arc::new(Registry::new());
            Harness::with_registry(s, registry)
        }

        fn with_registry(s: FileSettings, registry: Arc<Registry>) -> Harness {
            Harness {
                tailer: Tailer::new(Arc::new(s), registry.clone()),
                now: Instant::now(),
                registry,
                ack: true,
            }
        }

        /// Advance the clock and poll until no file has more data ready.
        fn poll(&mut self, advance: Duration) -> Lines {
            self.now += advance;
            let mut out = Vec::new();
            for _ in 0..1000 {
                let r = self.tailer.poll(self.now);
                for b in r.batches {
                    let offsets: Vec<u64> = b.lines.iter().map(|(o, _)| o).collect();
                    b.track.register(offsets.iter().copied(), b.end);
                    for (o, l) in b.lines.iter() {
                        out.push((
                            b.src.name.to_string(),
                            o,
                            String::from_utf8_lossy(l).into_owned(),
                        ));
                    }
                    if self.ack {
                        for o in offsets {
                            b.track.ack(o);
                        }
                    }
                }
                if !r.more {
                    return out;
                }
            }
            panic!("tailer never settled");
        }

        fn texts(lines: &Lines) -> Vec<String> {
            lines.iter().map(|l| l.2.clone()).collect()
        }
    }

    fn append(path: &Path, text: &str) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Lines long enough that a file of a dozen of them has a full 1 KiB head.
    fn line(tag: &str, i: usize) -> String {
        format!("{tag}-{i:03} {}\n", "x".repeat(100))
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn reads_existing_then_appended_lines_and_holds_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "a\nbb\npart");
        let mut h = Harness::new(settings(&[&log]));
        let got = h.poll(S);
        let name = log.to_string_lossy().into_owned();
        assert_eq!(
            got,
            vec![
                (name.clone(), 0, "a".into()),
                (name.clone(), 2, "bb".into())
            ]
        );
        assert_eq!(h.poll(S), vec![], "the partial line waits for its newline");
        append(&log, "ial\r\nnext\n");
        assert_eq!(
            h.poll(S),
            vec![
                (name.clone(), 5, "partial".into()),
                (name, 14, "next".into())
            ]
        );
        let t = &h.registry.tracks()[0];
        assert_eq!(t.checkpoint(), 19);
    }

    #[test]
    fn a_file_without_a_complete_first_line_is_not_read_yet() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "no newline yet");
        let mut h = Harness::new(settings(&[&log]));
        assert_eq!(h.poll(S), vec![]);
        assert_eq!(h.tailer.open_files(), 0);
        append(&log, "\nsecond\n");
        assert_eq!(Harness::texts(&h.poll(S)), vec!["no newline yet", "second"]);
    }

    #[test]
    fn start_at_end_skips_existing_content_on_first_run_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "old1\nold2\npart");
        let mut s = settings(&[&log]);
        s.start_at = StartAt::End;
        let mut h = Harness::new(s.clone());
        assert_eq!(h.poll(S), vec![]);
        append(&log, "ial\nnew\n");
        let got = h.poll(S);
        assert_eq!(
            got.iter().map(|l| (l.1, l.2.as_str())).collect::<Vec<_>>(),
            vec![(10, "partial"), (18, "new")]
        );
        // A new file appearing later is read from its beginning.
        let other = dir.path().join("other.log");
        append(&other, "o1\n");
        s.patterns.push(other.to_string_lossy().into_owned());
        let registry = h.registry.clone();
        drop(h);
        for t in registry.tracks() {
            t.lock().open = false;
        }
        // A restart with checkpoints: start_at no longer applies.
        let mut h = Harness::with_registry(s, registry);
        append(&log, "after\n");
        assert_eq!(Harness::texts(&h.poll(S)), vec!["after", "o1"]);
    }

    #[test]
    fn rename_rotation_reads_the_old_file_to_its_end_and_the_new_one_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let old = dir.path().join("access.log.1");
        append(&log, "one\ntwo\n");
        let mut h = Harness::new(settings(&[&log]));
        assert_eq!(Harness::texts(&h.poll(S)), vec!["one", "two"]);
        fs::rename(&log, &old).unwrap();
        // The writer still has the old file open for a moment.
        append(&old, "three\nunterminated");
        append(&log, "new-one\n");
        let got = h.poll(S);
        let log_name = log.to_string_lossy().into_owned();
        assert_eq!(
            got.iter()
                .map(|l| (l.0.as_str(), l.1, l.2.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (log_name.as_str(), 8, "three"),
                (log_name.as_str(), 0, "new-one")
            ],
            "old file continued under its original name; new file from 0"
        );
        assert_eq!(h.tailer.open_files(), 2);
        // Quiet for rotate_wait: the old file is finished, its last line emitted.
        assert_eq!(h.poll(Duration::from_secs(5)), vec![]);
        assert_eq!(
            h.tailer.open_files(),
            2,
            "kept open while it might still grow"
        );
        let got = h.poll(Duration::from_secs(11));
        assert_eq!(Harness::texts(&got), vec!["unterminated"]);
        assert_eq!(h.tailer.open_files(), 1);
        append(&log, "new-two\n");
        assert_eq!(Harness::texts(&h.poll(S)), vec!["new-two"]);
    }

    #[test]
    fn a_rotated_file_matched_by_the_glob_is_not_read_twice() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, &line("a", 1));
        let mut s = settings(&[&dir.path().join("access.log*")]);
        s.close_idle = Duration::from_secs(2);
        let mut h = Harness::new(s.clone());
        assert_eq!(h.poll(S).len(), 1);
        fs::rename(&log, dir.path().join("access.log.1")).unwrap();
        append(&log, &line("b", 1));
        assert_eq!(
            Harness::texts(&h.poll(S)),
            vec![line("b", 1).trim_end().to_string()]
        );
        // Closed for idleness and reopened by later scans: still nothing twice.
        for _ in 0..5 {
            assert_eq!(h.poll(S), vec![]);
        }
        // And after a restart with the same checkpoints.
        let registry = h.registry.clone();
        drop(h);
        for t in registry.tracks() {
            t.lock().open = false;
        }
        let mut h = Harness::with_registry(s, registry);
        assert_eq!(h.poll(S), vec![]);
    }

    #[test]
    fn copytruncate_restarts_at_zero_and_recovers_the_tail_from_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let copy = dir.path().join("access.log.1");
        let mut expected = Vec::new();
        for i in 0..12 {
            append(&log, &line("a", i));
            expected.push(line("a", i).trim_end().to_string());
        }
        let mut h = Harness::new(settings(&[&dir.path().join("access.log*")]));
        let mut seen = Harness::texts(&h.poll(S));
        // Written after our last read, then copied and truncated before we look again.
        for i in 12..15 {
            append(&log, &line("a", i));
            expected.push(line("a", i).trim_end().to_string());
        }
        fs::copy(&log, &copy).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&log, &line("b", 0));
        expected.push(line("b", 0).trim_end().to_string());
        for _ in 0..3 {
            seen.extend(Harness::texts(&h.poll(S)));
        }
        seen.sort();
        expected.sort();
        assert_eq!(seen, expected, "every line exactly once");
    }

    #[test]
    fn copytruncate_without_the_copy_restarts_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "first line of the old content\nsecond\n");
        let mut h = Harness::new(settings(&[&log]));
        assert_eq!(h.poll(S).len(), 2);
        fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&log, "new\n");
        let got = h.poll(S);
        assert_eq!(
            got.iter().map(|l| (l.1, l.2.as_str())).collect::<Vec<_>>(),
            vec![(0, "new")]
        );
        // Truncated and rewritten past the old position: noticed by the head.
        append(&log, &"y".repeat(100));
        append(&log, "\n");
        h.poll(S);
        fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&log, &format!("other head {}\n", "z".repeat(200)));
        let got = h.poll(S);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, 0);
        assert!(got[0].2.starts_with("other head"));
    }

    #[test]
    fn new_files_matching_the_glob_are_picked_up_and_excludes_apply() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(&[&dir.path().join("*.log")]);
        s.exclude = vec![glob::Pattern::new(&dir.path().join("skip*").to_string_lossy()).unwrap()];
        let mut h = Harness::new(s);
        assert_eq!(h.poll(S), vec![]);
        append(&dir.path().join("a.log"), "a1\n");
        append(&dir.path().join("skip.log"), "s1\n");
        append(&dir.path().join("b.txt"), "b1\n");
        assert_eq!(Harness::texts(&h.poll(S)), vec!["a1"]);
        append(&dir.path().join("c.log"), "c1\n");
        assert_eq!(Harness::texts(&h.poll(S)), vec!["c1"]);
    }

    fn gzip(path: &Path, text: &str) {
        let f = File::create(path).unwrap();
        let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
    }

    #[test]
    fn gzip_files_are_read_once_to_their_end() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("old.log.gz");
        gzip(&gz, "g1\ng2\nlast-without-newline");
        let s = settings(&[&dir.path().join("*.gz")]);
        let mut h = Harness::new(s.clone());
        let got = h.poll(S);
        assert_eq!(
            got.iter().map(|l| (l.1, l.2.as_str())).collect::<Vec<_>>(),
            vec![(0, "g1"), (3, "g2"), (6, "last-without-newline")]
        );
        assert_eq!(h.tailer.open_files(), 0);
        for _ in 0..3 {
            assert_eq!(h.poll(S), vec![]);
        }
        let registry = h.registry.clone();
        assert!(registry.tracks()[0].lock().complete);
        drop(h);
        let mut h = Harness::with_registry(s, registry);
        assert_eq!(h.poll(S), vec![], "not read again after a restart");
    }

    #[test]
    fn a_compressed_rotation_continues_where_the_plain_file_was_left() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let mut content = String::new();
        for i in 0..12 {
            content.push_str(&line("a", i));
        }
        append(&log, &content);
        let mut s = settings(&[&dir.path().join("access.log*")]);
        s.rotate_wait = Duration::from_secs(1);
        let mut h = Harness::new(s);
        assert_eq!(h.poll(S).len(), 12);
        // Two more lines are written, then the file is compressed and removed
        // (logrotate `compress` without `delaycompress`) before we read them.
        let tail = format!("{}{}", line("a", 12), line("a", 13));
        append(&log, &tail);
        let full = format!("{content}{tail}");
        gzip(&dir.path().join("access.log.1.gz"), &full);
        fs::remove_file(&log).unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.extend(h.poll(S));
        }
        let texts = Harness::texts(&got);
        assert_eq!(
            texts,
            vec![line("a", 12).trim_end(), line("a", 13).trim_end()]
        );
    }

    #[test]
    fn checkpoints_resume_after_a_restart_and_unacknowledged_lines_are_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "l1\nl2\nl3\n");
        let s = settings(&[&log]);
        let mut h = Harness::new(s.clone());
        h.ack = false;
        let got = h.poll(S);
        assert_eq!(got.len(), 3);
        let t = h.registry.tracks()[0].clone();
        t.ack(0);
        t.ack(6); // l3 acknowledged, l2 not
        assert_eq!(t.checkpoint(), 3);
        // Restart from what the checkpoint says.
        let registry = Arc::new(Registry::new());
        let id = t.lock().identity.clone();
        registry.add(Track::new("www".into(), id, t.checkpoint()));
        let mut h = Harness::with_registry(s, registry);
        let got = h.poll(S);
        assert_eq!(
            got.iter().map(|l| (l.1, l.2.as_str())).collect::<Vec<_>>(),
            vec![(3, "l2"), (6, "l3")]
        );
    }

    #[test]
    fn replaced_content_under_the_same_path_is_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "first content\n");
        let mut s = settings(&[&log]);
        s.close_idle = Duration::from_secs(1);
        let mut h = Harness::new(s);
        assert_eq!(h.poll(S).len(), 1);
        h.poll(Duration::from_secs(2));
        h.poll(Duration::from_secs(2)); // closed for idleness
        assert_eq!(h.tailer.open_files(), 0);
        fs::remove_file(&log).unwrap();
        append(&log, "different content that is longer than before\n");
        let got = h.poll(S);
        assert_eq!(
            got.iter().map(|l| (l.1, l.2.as_str())).collect::<Vec<_>>(),
            vec![(0, "different content that is longer than before")]
        );
    }

    #[test]
    fn header_lines_are_replayed_when_resuming_mid_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("u_ex.log");
        append(&log, "#Software: IIS\n#Fields: date time cs-uri-stem\n2024-01-01 00:00:00 /a\n2024-01-01 00:00:01 /b\n");
        let registry = Arc::new(Registry::new());
        let mut h = Harness::with_registry(settings(&[&log]), registry.clone());
        h.poll(S);
        let t = registry.tracks()[0].clone();
        let id = t.lock().identity.clone();
        let resume_at = 15 + 33 + 23;
        let registry = Arc::new(Registry::new());
        registry.add(Track::new("www".into(), id, resume_at));
        let mut tailer = Tailer::new(Arc::new(settings(&[&log])), registry);
        let r = tailer.poll(Instant::now());
        let b = &r.batches[0];
        let prime: Vec<_> = b
            .prime
            .iter()
            .map(|(o, l)| (o, String::from_utf8_lossy(l).into_owned()))
            .collect();
        assert_eq!(
            prime,
            vec![
                (0, "#Software: IIS".to_string()),
                (15, "#Fields: date time cs-uri-stem".to_string())
            ]
        );
        assert_eq!(b.lines.first().unwrap().0, resume_at);
    }

    #[test]
    fn a_source_that_does_not_follow_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "a\nb");
        let mut s = settings(&[&log]);
        s.follow = false;
        let mut tailer = Tailer::new(Arc::new(s), Arc::new(Registry::new()));
        let now = Instant::now();
        let mut lines = Vec::new();
        let mut finished = false;
        for _ in 0..10 {
            let r = tailer.poll(now);
            lines.extend(r.batches.iter().flat_map(|b| {
                b.lines
                    .iter()
                    .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
                    .collect::<Vec<_>>()
            }));
            if r.finished {
                finished = true;
                break;
            }
        }
        assert!(finished);
        assert_eq!(
            lines,
            vec!["a", "b"],
            "the unterminated last line counts when the file is read once"
        );
    }

    #[test]
    fn gzip_is_recognised_by_content_whatever_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let rotated = dir.path().join("access.log.1");
        gzip(&rotated, "z1\nz2\n");
        let mut h = Harness::new(settings(&[&rotated]));
        assert_eq!(Harness::texts(&h.poll(S)), vec!["z1", "z2"]);
        assert!(
            h.registry.tracks()[0]
                .lock()
                .identity
                .as_ref()
                .unwrap()
                .gzip
        );
    }

    #[test]
    fn a_file_read_once_is_followed_from_where_it_was_left() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "a\nb\n");
        let mut once = settings(&[&log]);
        once.follow = false;
        let mut h = Harness::new(once);
        assert_eq!(Harness::texts(&h.poll(S)), vec!["a", "b"]);
        assert_eq!(h.poll(S), vec![]);
        assert_eq!(h.tailer.open_files(), 0, "read to its end and closed");
        let registry = h.registry.clone();
        drop(h);
        append(&log, "c\n");
        let mut h = Harness::with_registry(settings(&[&log]), registry);
        assert_eq!(Harness::texts(&h.poll(S)), vec!["c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_driver_polls_on_its_interval() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "first\n");
        let tailer = Tailer::new(Arc::new(settings(&[&log])), Arc::new(Registry::new()));
        let (tx, mut rx) = mpsc::channel(4);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_files(tailer, tx, stop.clone()));
        let b = rx.recv().await.unwrap();
        assert_eq!(b.lines.first().unwrap().1, b"first");
        let before = tokio::time::Instant::now();
        append(&log, "second\n");
        let b = rx.recv().await.unwrap();
        assert_eq!(b.lines.first().unwrap().1, b"second");
        let waited = before.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_millis(600),
            "{waited:?}"
        );
        stop.cancel();
        task.await.unwrap();
    }
}
