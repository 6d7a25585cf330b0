//! Finding a file among its rotations: a checkpointed file rotated while
//! ingest was stopped, the generations rotated after it, and the copy of a
//! file truncated while it was read (the rules are in the
//! [module documentation](super)).

use std::cmp::Reverse;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use footfall_parse::lineage::{lineage_name, same_lineage_name};

use super::{is_gzip, read_head, Candidate, Follower, Head};
use crate::track::{FileIdentity, Track};

/// What the search for a file among its rotations found.
enum Found {
    /// A rotation with its fingerprint that holds the offset.
    At(Candidate, Head, AgeKey),
    /// Only rotations with its fingerprint that end before the offset: it was
    /// read past their end (a copy taken before the last read).
    ReadAlready,
}

/// Orders the rotations of one log from oldest to newest: by modification
/// time, then by name (a numbered rotation, `.1`, `.2.gz`, is older the
/// higher its number; other names, dated ones, are newer the later they sort).
type AgeKey = (SystemTime, Reverse<u64>, OsString);

fn age_key(path: &Path, modified: SystemTime) -> AgeKey {
    let name = path.file_name().unwrap_or_default();
    let base = lineage_name(name).len();
    let mut rest = &name.as_bytes()[base.min(name.len())..];
    for ext in [&b".gz"[..], b".bz2", b".xz", b".zst"] {
        if let Some(r) = rest.strip_suffix(ext) {
            rest = r;
            break;
        }
    }
    let counter = match rest {
        [b'.', digits @ ..] if (1..=4).contains(&digits.len()) => std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok()),
        _ => None,
    };
    (modified, Reverse(counter.unwrap_or(0)), name.to_os_string())
}

impl Follower {
    /// On start: every unfinished checkpointed file that is no longer where
    /// it was is looked for among its rotations, and read from its
    /// checkpoint when found; otherwise what it held unread is reported.
    pub(super) fn recover_rotated(
        &mut self,
        candidates: &[Candidate],
        now: Instant,
        wall: SystemTime,
    ) {
        // The newest recovered file of each log: (live path, its age).
        let mut recovered: Vec<(PathBuf, AgeKey)> = Vec::new();
        for track in self.registry.of_source(&self.s.source) {
            let (id, offset, size) = {
                let p = track.lock();
                if p.complete || p.open {
                    continue;
                }
                (p.identity.clone(), p.frontier(), p.size)
            };
            let Some(id) = id else { continue };
            if in_place(&id, candidates) {
                continue;
            }
            match find(&id, offset, None) {
                Ok(Some(Found::At(c, head, age))) => {
                    let live = live_path(&c.path);
                    match recovered.iter_mut().find(|r| r.0 == live) {
                        Some(r) => r.1 = r.1.clone().max(age),
                        None => recovered.push((live, age)),
                    }
                    self.resume_rotated(track, &id, &c, &head, offset, candidates, now, wall)
                }
                Ok(Some(Found::ReadAlready)) => {
                    tracing::debug!(source = %self.s.source, path = %id.path.display(), "a rotation of this file read past its end holds nothing more");
                    track.lock().complete = true;
                }
                Ok(None) => self.unaccounted(&track, &id, size.saturating_sub(offset), candidates),
                Err(e) => self.warn_once(
                    &id.path,
                    format!("cannot look for the rotations of this checkpointed file: {e}"),
                ),
            }
        }
        for (live, after) in recovered {
            match self.newer_rotations(&live, &after, candidates) {
                Ok(newer) => self.queued.extend(newer),
                Err(e) => self.warn_once(
                    &live,
                    format!("cannot look for the rotations of this file: {e}"),
                ),
            }
        }
        self.open_queued(candidates, now);
    }

    /// The rotations of the log `live` newer than `after` that no checkpoint
    /// knows (generations rotated away before ingest checkpointed them),
    /// oldest first. Live files and files being read are left out.
    fn newer_rotations(
        &self,
        live: &Path,
        after: &AgeKey,
        candidates: &[Candidate],
    ) -> io::Result<Vec<(Candidate, Head)>> {
        let Some(name) = live.file_name() else {
            return Ok(Vec::new());
        };
        let tracks = self.registry.of_source(&self.s.source);
        let mut out = Vec::new();
        for entry in fs::read_dir(dir_of(live))?.flatten() {
            if !same_lineage_name(&entry.file_name(), name) {
                continue;
            }
            let path = entry.path();
            let Ok(m) = fs::metadata(&path) else { continue };
            let inode = (m.dev(), m.ino());
            if !m.is_file()
                || candidates.iter().any(|c| (c.dev, c.ino) == inode)
                || self.open.iter().any(|f| (f.dev, f.ino) == inode)
            {
                continue;
            }
            let age = age_key(&path, m.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            // Strictly newer: a rotation as old as the recovered file may be
            // one read before whose checkpoint was forgotten. Of two with one
            // modification time, the lower rotation number (or the later
            // name) is the newer.
            if age <= *after {
                continue;
            }
            let Ok(gzip) = is_gzip(&path) else { continue };
            let Ok(Some(head)) = read_head(&path, gzip, true) else {
                continue;
            };
            let known = tracks.iter().any(|t| {
                let p = t.lock();
                p.identity.as_ref().is_some_and(|id| head.starts_with(id))
            });
            if known {
                continue;
            }
            let c = Candidate {
                path,
                dev: m.dev(),
                ino: m.ino(),
                size: m.len(),
                gzip,
            };
            out.push((age, c, head));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, c, head)| (c, head)).collect())
    }

    /// Open the next queued rotation, from its beginning, once no recovered
    /// file is being read: one at a time, oldest first, before new files.
    pub(super) fn open_queued(&mut self, candidates: &[Candidate], now: Instant) {
        while !self.open.iter().any(|f| f.recovering) {
            let Some((c, head)) = self.queued.pop_front() else {
                return;
            };
            tracing::warn!(source = %self.s.source, path = %c.path.display(), "rotation of a generation ingest never checkpointed (rotated more than once while ingest was stopped); reading it from its start");
            // Known under its live name, as a file rotated while followed is,
            // so that it is looked for among the rotations after a restart.
            let identity = FileIdentity {
                path: live_path(&c.path),
                ..head.identity(&c)
            };
            let track = Track::new(self.s.source.clone(), Some(identity), 0);
            self.registry.add(track.clone());
            let matched = candidates.iter().any(|x| (x.dev, x.ino) == (c.dev, c.ino));
            match self.open_file(&c, &head, track, 0, now) {
                Ok(Some(f)) => {
                    f.recovering = true;
                    f.matched = matched;
                }
                Ok(None) => {}
                Err(e) => self.warn_once(&c.path, format!("cannot read: {e}")),
            }
        }
    }

    /// While running: the file `track` was read from, at `live`, was
    /// truncated or replaced. Its old content is looked for among its
    /// rotations (a copy, copytruncate): the copy's tail, from where the file
    /// was left, is read before the new content of the file.
    pub(super) fn recover_copy(
        &mut self,
        track: Arc<Track>,
        live: &Path,
        inode: (u64, u64),
        now: Instant,
    ) {
        let (id, offset) = {
            let p = track.lock();
            match p.identity.clone() {
                Some(id) => (id, p.frontier()),
                None => return,
            }
        };
        let (c, head) = match find(&id, offset, Some(inode)) {
            Ok(Some(Found::At(c, head, _))) if c.gzip || c.size > offset => (c, head),
            Ok(_) => return,
            Err(e) => {
                return self.warn_once(
                    live,
                    format!("cannot look for the copy of this truncated file: {e}"),
                )
            }
        };
        tracing::info!(source = %self.s.source, from = %live.display(), to = %c.path.display(), offset, "the old content of the truncated file is in a copy; reading the rest of it first");
        track.lock().identity = Some(FileIdentity {
            path: live.to_path_buf(),
            ..head.identity(&c)
        });
        match self.open_file(&c, &head, track, offset, now) {
            Ok(Some(f)) => {
                f.recovering = true;
                f.matched = false;
            }
            Ok(None) => {}
            Err(e) => self.warn_once(&c.path, format!("cannot read: {e}")),
        }
    }

    /// Read the rotation `c` of the checkpointed file `id` from `offset`,
    /// before any new file of the source.
    #[allow(clippy::too_many_arguments)]
    fn resume_rotated(
        &mut self,
        track: Arc<Track>,
        id: &FileIdentity,
        c: &Candidate,
        head: &Head,
        offset: u64,
        candidates: &[Candidate],
        now: Instant,
        wall: SystemTime,
    ) {
        tracing::info!(source = %self.s.source, from = %id.path.display(), to = %c.path.display(), offset, "file rotated while ingest was stopped; reading the rest of it first");
        {
            let mut p = track.lock();
            // Still known under its live name, so that a restart before it is
            // read to its end looks for it among the rotations again.
            p.identity = Some(FileIdentity {
                path: live_path(&c.path),
                ..head.identity(c)
            });
            p.last_seen = wall;
        }
        let matched = candidates.iter().any(|x| (x.dev, x.ino) == (c.dev, c.ino));
        match self.open_file(c, head, track, offset, now) {
            Ok(Some(f)) => {
                f.recovering = true;
                f.matched = matched;
            }
            Ok(None) => {}
            Err(e) => self.warn_once(&c.path, format!("cannot read: {e}")),
        }
    }

    /// The checkpointed file `id` is nowhere: count the `lost` bytes it was
    /// known to hold after its checkpoint, and warn when anything may be lost.
    fn unaccounted(&mut self, track: &Track, id: &FileIdentity, lost: u64, c: &[Candidate]) {
        track.lock().complete = true;
        // Its path holds another file now: it was the live file, and what was
        // appended to it while ingest was stopped is unknown.
        let replaced = c.iter().any(|c| c.path == id.path);
        if lost == 0 && !replaced {
            tracing::debug!(source = %self.s.source, path = %id.path.display(), "a file read to its end is gone");
            return;
        }
        self.counters.unaccounted_bytes.fetch_add(lost, Relaxed);
        let dir = id.path.parent().unwrap_or(Path::new("."));
        tracing::warn!(
            source = %self.s.source,
            path = %id.path.display(),
            unaccounted_bytes = lost,
            "file rotated or removed while ingest was stopped, and no rotation of it in {} has its fingerprint: \
             {lost} bytes after its checkpoint are unaccounted for, and so is anything written to it after ingest stopped",
            dir.display()
        );
    }
}

/// Whether the file `id` is still where it was: under a matched path or its
/// recorded one, with the same inode and head.
fn in_place(id: &FileIdentity, candidates: &[Candidate]) -> bool {
    let inode = (id.dev, id.ino);
    let path = candidates
        .iter()
        .find(|c| (c.dev, c.ino) == inode)
        .map(|c| c.path.as_path())
        .or_else(|| {
            fs::metadata(&id.path)
                .ok()
                .filter(|m| (m.dev(), m.ino()) == inode)
                .map(|_| id.path.as_path())
        });
    path.is_some_and(|p| matches!(read_head(p, id.gzip, true), Ok(Some(h)) if h.starts_with(id)))
}

/// The directory of `path` (`.` for a bare name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The live name of the log the rotation `path` belongs to.
fn live_path(path: &Path) -> PathBuf {
    let name: &OsStr = path.file_name().unwrap_or_default();
    path.with_file_name(lineage_name(name))
}

/// The rotation of `id` in its directory (a file whose name is in its
/// lineage and whose head has its fingerprint; not the inode `skip`) that can
/// hold `offset`: the same inode first, then the most recently modified.
/// When the only ones with its fingerprint end before `offset`: read already.
fn find(id: &FileIdentity, offset: u64, skip: Option<(u64, u64)>) -> io::Result<Option<Found>> {
    let Some(name) = id.path.file_name() else {
        return Ok(None);
    };
    let entries = match fs::read_dir(dir_of(&id.path)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut best: Option<((bool, SystemTime), Candidate, Head)> = None;
    let mut short = false;
    for entry in entries.flatten() {
        if !same_lineage_name(&entry.file_name(), name) {
            continue;
        }
        let Some((c, head, modified)) = examine(&entry.path(), id) else {
            continue;
        };
        if skip == Some((c.dev, c.ino)) {
            continue;
        }
        if !c.gzip && c.size < offset {
            short = true;
            continue;
        }
        let rank = ((c.dev, c.ino) == (id.dev, id.ino), modified);
        if best.as_ref().is_none_or(|b| rank > b.0) {
            best = Some((rank, c, head));
        }
    }
    Ok(match best {
        Some(((_, modified), c, head)) => {
            let age = age_key(&c.path, modified);
            Some(Found::At(c, head, age))
        }
        None => short.then_some(Found::ReadAlready),
    })
}

/// `path` as a rotation of `id`: a regular file whose (uncompressed) head has
/// `id`'s fingerprint.
fn examine(path: &Path, id: &FileIdentity) -> Option<(Candidate, Head, SystemTime)> {
    let m = fs::metadata(path).ok().filter(|m| m.is_file())?;
    let gzip = is_gzip(path).ok()?;
    let head = read_head(path, gzip, true).ok()??;
    if !head.starts_with(id) {
        return None;
    }
    let c = Candidate {
        path: path.to_path_buf(),
        dev: m.dev(),
        ino: m.ino(),
        size: m.len(),
        gzip,
    };
    Some((c, head, m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}
