//! Rotation while stopped: finding a checkpointed file among its rotations
//! (the rule is in the [module documentation](super)).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use footfall_parse::lineage::same_lineage_name;

use super::{is_gzip, read_head, Candidate, Follower, Head};
use crate::track::{FileIdentity, Track};

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
            match find(&id, offset) {
                Ok(Some((c, head))) => {
                    self.resume_rotated(track, &id, &c, &head, offset, candidates, now, wall)
                }
                Ok(None) => self.unaccounted(&track, &id, size.saturating_sub(offset), candidates),
                Err(e) => self.warn_once(
                    &id.path,
                    format!("cannot look for the rotations of this checkpointed file: {e}"),
                ),
            }
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
            p.identity = Some(head.identity(c));
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

/// The rotation of `id` in its directory (a file whose name is in its
/// lineage and whose head has its fingerprint) that can hold `offset`: the
/// same inode first, then the most recently modified.
fn find(id: &FileIdentity, offset: u64) -> io::Result<Option<(Candidate, Head)>> {
    let Some(name) = id.path.file_name() else {
        return Ok(None);
    };
    let dir = match id.path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut best: Option<((bool, SystemTime), Candidate, Head)> = None;
    for entry in entries.flatten() {
        if !same_lineage_name(&entry.file_name(), name) {
            continue;
        }
        let Some((c, head, modified)) = examine(&entry.path(), id, offset) else {
            continue;
        };
        let rank = ((c.dev, c.ino) == (id.dev, id.ino), modified);
        if best.as_ref().is_none_or(|b| rank > b.0) {
            best = Some((rank, c, head));
        }
    }
    Ok(best.map(|(_, c, head)| (c, head)))
}

/// `path` as a rotation of `id`: a regular file whose (uncompressed) head has
/// `id`'s fingerprint and, when not compressed, at least `offset` bytes.
fn examine(path: &Path, id: &FileIdentity, offset: u64) -> Option<(Candidate, Head, SystemTime)> {
    let m = fs::metadata(path).ok().filter(|m| m.is_file())?;
    let gzip = is_gzip(path).ok()?;
    if !gzip && m.len() < offset {
        return None;
    }
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
