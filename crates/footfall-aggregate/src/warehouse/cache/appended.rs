//! Appended cache files: a file that grows by segments, for a cache whose
//! contents only grow (the rows of a day state, `days.rs`), so that a run
//! writes what it added rather than the whole file again.
//!
//! Layout, little-endian: an 8-byte magic (kind and version), then the
//! segments, each its payload's length (u64), the payload, and the chained
//! checksum (u64: [`FxHasher`] over the previous segment's checksum, 0 for
//! the first, then over each 64 KiB block of the payload, as `stream.rs`
//! sums its blocks).
//!
//! Contract: a file's [`End`] (its length and last checksum) names exactly
//! one content, and is recorded elsewhere (a day state's `.state` file). A
//! reader is given that end and reads exactly that far: bytes after it (a
//! segment appended by a run that stopped before recording its end) are
//! never read, and the next append cuts them off before it writes. The first
//! segment is written under a temporary name and renamed into place; later
//! ones are appended in place. Neither is fsynced, as every cache file
//! (`cache.rs`): a segment a power loss tore fails its checksum, and the file
//! is then no cache.

use std::fs::{self, File, OpenOptions};
use std::hash::Hasher;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::stream::{Checked, Summed, BLOCK};
use crate::error::AggregateError;
use crate::hash::FxHasher;

/// Where an appended file ends: its length and its last segment's checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct End {
    pub len: u64,
    pub sum: u64,
}

/// The checksum of a segment that follows one summed `prev`, before its
/// payload.
fn seeded(prev: u64) -> FxHasher {
    let mut h = FxHasher::default();
    h.write_u64(prev);
    h
}

/// Writes one segment of what `payload` writes at the end of `path`: after
/// `after` (cutting off what follows it) when the file is at least that
/// long, else as a new file. `payload` is told which (`true`: it continues
/// the file). Gives the file's new end.
pub(crate) fn append_segment(
    path: &Path,
    magic: [u8; 8],
    after: Option<End>,
    payload: impl FnOnce(&mut dyn Write, bool) -> std::io::Result<()>,
) -> Result<End, AggregateError> {
    let kept = after.filter(|e| fs::metadata(path).is_ok_and(|m| m.len() >= e.len));
    let Some(after) = kept else {
        let tmp = super::super::temp_path(path)?;
        let mut file = File::create(&tmp).map_err(AggregateError::io("create", &tmp))?;
        let first = End { len: 8, sum: 0 };
        let end = (|| {
            file.write_all(&magic)?;
            write_segment(&mut file, first, |w| payload(w, false))
        })()
        .map_err(AggregateError::io("write", &tmp))?;
        fs::rename(&tmp, path).map_err(AggregateError::io("rename", path))?;
        return Ok(end);
    };
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(AggregateError::io("open", path))?;
    (|| {
        file.set_len(after.len)?;
        file.seek(SeekFrom::Start(after.len))?;
        write_segment(&mut file, after, |w| payload(w, true))
    })()
    .map_err(AggregateError::io("append to", path))
}

/// Writes a segment at the file's position `after.len`: a length left to
/// fill, the payload, its checksum, then the length.
fn write_segment(
    file: &mut File,
    after: End,
    payload: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<End> {
    file.write_all(&[0u8; 8])?;
    let mut w = Summed::new(&mut *file, seeded(after.sum));
    payload(&mut w)?;
    let sum = w.finish()?;
    drop(w);
    let len = file.stream_position()?;
    file.seek(SeekFrom::Start(after.len))?;
    file.write_all(&(len - after.len - 16).to_le_bytes())?;
    Ok(End { len, sum })
}

/// Reads the segments of `path` up to `end`, giving each (a reader of its
/// payload and the payload's length) to `segment`: `Some` when the file
/// reaches `end` and every segment up to it checks out and was read whole,
/// `None` when there is no such file, it is of another kind or version, or
/// a segment is torn, changed or refused by `segment`.
pub(crate) fn read_segments(
    path: &Path,
    magic: [u8; 8],
    end: End,
    mut segment: impl FnMut(&mut dyn Read, u64) -> Option<()>,
) -> Result<Option<()>, AggregateError> {
    let Some((file, len)) = super::open(path)? else {
        return Ok(None);
    };
    if len < end.len {
        return Ok(None);
    }
    let mut r = BufReader::with_capacity(BLOCK, file);
    let mut read = || -> Option<()> {
        let mut word = [0u8; 8];
        r.read_exact(&mut word).ok()?;
        (word == magic).then_some(())?;
        let mut at = End { len: 8, sum: 0 };
        while at.len < end.len {
            r.read_exact(&mut word).ok()?;
            let n = u64::from_le_bytes(word);
            let next = at.len.checked_add(n)?.checked_add(16)?;
            (next <= end.len).then_some(())?;
            let mut payload = Checked::new(&mut r, seeded(at.sum), n);
            segment(&mut payload, n)?;
            (payload.is_done()).then_some(())?;
            let sum = payload.sum();
            r.read_exact(&mut word).ok()?;
            (u64::from_le_bytes(word) == sum).then_some(())?;
            at = End { len: next, sum };
        }
        (at == end).then_some(())
    };
    let got = read();
    if got.is_none() {
        tracing::debug!(path = %path.display(), "cache file unusable: rebuilt from the warehouse");
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 8] = *b"FFTEST\x05\0";

    /// Every segment's payload up to `end`.
    fn read_all(path: &Path, end: End) -> Option<Vec<Vec<u8>>> {
        let mut all = Vec::new();
        read_segments(path, MAGIC, end, |r, len| {
            let mut body = Vec::new();
            r.read_to_end(&mut body).ok()?;
            (body.len() as u64 == len).then(|| all.push(body))
        })
        .unwrap()
        .map(|()| all)
    }

    fn append(path: &Path, after: Option<End>, body: &[u8]) -> (End, bool) {
        let mut continued = None;
        let end = append_segment(path, MAGIC, after, |w, c| {
            continued = Some(c);
            body.chunks(1000).try_for_each(|c| w.write_all(c))
        })
        .unwrap();
        (end, continued.unwrap())
    }

    fn body(size: usize, seed: usize) -> Vec<u8> {
        (0..size).map(|i| ((i + seed) * 7 % 251) as u8).collect()
    }

    #[test]
    fn segments_read_back_up_to_the_end_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        let sizes = [0, 1, BLOCK - 20, BLOCK, 3 * BLOCK + 5];
        let (mut end, mut want, mut ends) = (None, Vec::new(), Vec::new());
        for (i, size) in sizes.into_iter().enumerate() {
            let (e, continued) = append(&path, end, &body(size, i));
            assert_eq!(continued, i > 0, "{size}: the first one starts the file");
            want.push(body(size, i));
            assert_eq!(read_all(&path, e), Some(want.clone()), "{size}");
            assert_eq!(e.len, fs::metadata(&path).unwrap().len());
            ends.push(e);
            end = Some(e);
        }
        for (i, &e) in ends.iter().enumerate() {
            assert_eq!(
                read_all(&path, e),
                Some(want[..=i].to_vec()),
                "an earlier end"
            );
        }
        let mixed = End {
            len: ends[3].len,
            sum: ends[2].sum,
        };
        assert_eq!(read_all(&path, mixed), None, "an end of no content");
    }

    #[test]
    fn an_append_cuts_off_what_follows_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        let (one, _) = append(&path, None, b"one");
        // A run appended "two" and stopped before it recorded the new end.
        append(&path, Some(one), b"two");
        let (three, continued) = append(&path, Some(one), b"three");
        assert!(continued);
        assert_eq!(
            read_all(&path, three),
            Some(vec![b"one".to_vec(), b"three".to_vec()])
        );
        assert_eq!(three.len, fs::metadata(&path).unwrap().len());
        let beyond = End {
            len: three.len + 100,
            sum: three.sum,
        };
        let (restarted, continued) = append(&path, Some(beyond), b"anew");
        assert!(!continued, "a file shorter than the end is written anew");
        assert_eq!(read_all(&path, restarted), Some(vec![b"anew".to_vec()]));
    }

    #[test]
    fn a_torn_or_changed_segment_is_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        let (one, _) = append(&path, None, &body(BLOCK + 9, 1));
        let (two, _) = append(&path, Some(one), &body(40, 2));
        let good = fs::read(&path).unwrap();
        let mut cases = vec![("truncated", good[..good.len() - 1].to_vec())];
        for at in [2, 9, 17, BLOCK + 3, one.len as usize + 3, good.len() - 3] {
            let mut b = good.clone();
            b[at] ^= 0x04;
            cases.push(("one bit flipped", b));
        }
        for (what, bytes) in cases {
            fs::write(&path, &bytes).unwrap();
            assert_eq!(read_all(&path, two), None, "{what}");
        }
        fs::write(&path, &good).unwrap();
        let other = read_segments(&path, *b"FFTEST\x06\0", two, |_, _| Some(())).unwrap();
        assert_eq!(other, None, "another version");
        let refused = read_segments(&path, MAGIC, two, |_, _| None).unwrap();
        assert_eq!(refused, None, "a segment refused");
        fs::remove_file(&path).unwrap();
        assert_eq!(read_all(&path, two), None, "no file");
    }
}
