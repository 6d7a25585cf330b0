//! Streamed cache files: one payload written and read as a stream, for
//! caches too large to hold twice in memory (the day states, `days.rs`).
//!
//! Layout, little-endian: an 8-byte magic (kind and version), the header
//! length (u32), the header, the payload, and the checksum (u64,
//! [`FxHasher`] over each 64 KiB block of everything before it, the last
//! block shorter). Written to a temporary name and renamed into place
//! without fsync, as every cache file (`cache.rs`).

use std::fs::{self, File};
use std::hash::Hasher;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use crate::error::AggregateError;
use crate::hash::FxHasher;

/// Bytes per checksummed block.
pub(super) const BLOCK: usize = 1 << 16;

/// Writes `path` (via a temporary name): `magic`, `header`, then what
/// `payload` writes. Gives the file's checksum.
pub(crate) fn write_streamed(
    path: &Path,
    magic: [u8; 8],
    header: &[u8],
    payload: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<u64, AggregateError> {
    let tmp = super::super::temp_path(path)?;
    let file = File::create(&tmp).map_err(AggregateError::io("create", &tmp))?;
    let mut w = Summed::new(file, FxHasher::default());
    let written = (|| {
        w.write_all(&magic)?;
        w.write_all(&(header.len() as u32).to_le_bytes())?;
        w.write_all(header)?;
        payload(&mut w)?;
        w.finish()
    })();
    let sum = written.map_err(AggregateError::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(AggregateError::io("rename", path))?;
    Ok(sum)
}

/// Reads `path`: `payload` gets the header, the payload and its length, and
/// what it gives is kept, with the file's checksum, if the file is whole and
/// checks out. `None` when there is no such file, it is of another kind or
/// version, torn, or `payload` gives `None`.
pub(crate) fn read_streamed<T>(
    path: &Path,
    magic: [u8; 8],
    payload: impl FnOnce(&[u8], &mut dyn Read, u64) -> Option<T>,
) -> Result<Option<(T, u64)>, AggregateError> {
    let Some((file, len)) = super::open(path)? else {
        return Ok(None);
    };
    let Some(body) = len.checked_sub(8) else {
        return Ok(None);
    };
    let inner = BufReader::with_capacity(BLOCK, file);
    let mut r = Checked::new(inner, FxHasher::default(), body);
    let got = read_body(&mut r, (magic, body), payload);
    let mut tail = [0u8; 8];
    let whole = r.is_done() && r.inner.read_exact(&mut tail).is_ok();
    let sum = r.sum();
    let ok = whole && u64::from_le_bytes(tail) == sum;
    if got.is_some() && !ok {
        tracing::debug!(path = %path.display(), "cache file unusable: rebuilt from the warehouse");
    }
    Ok(got.filter(|_| ok).map(|t| (t, sum)))
}

fn read_body<T>(
    r: &mut Checked<BufReader<File>>,
    (magic, body): ([u8; 8], u64),
    payload: impl FnOnce(&[u8], &mut dyn Read, u64) -> Option<T>,
) -> Option<T> {
    let header = take_header(r, magic, body)?;
    payload(&header, r, body - 12 - header.len() as u64)
}

/// The header of a streamed file from `r` at its start, of `len` bytes in
/// all: `None` when it is of another kind or version, or shorter than its
/// header (checked before the header is read, so that a torn length cannot
/// reserve memory the file does not hold).
fn take_header(r: &mut impl Read, magic: [u8; 8], len: u64) -> Option<Vec<u8>> {
    let mut lead = [0u8; 12];
    r.read_exact(&mut lead).ok()?;
    (lead[..8] == magic).then_some(())?;
    let header_len = u32::from_le_bytes(lead[8..].try_into().ok()?) as u64;
    (header_len <= len.checked_sub(12)?).then_some(())?;
    let mut header = vec![0u8; header_len as usize];
    r.read_exact(&mut header).ok()?;
    Some(header)
}

/// Reads the magic and the header of a streamed file at `path`, and
/// nothing more (what the header says is checked only by reading the whole
/// file); `None` when there is no such file or it is of another kind or
/// version, or shorter than its header.
pub(crate) fn read_header(path: &Path, magic: [u8; 8]) -> Result<Option<Vec<u8>>, AggregateError> {
    let Some((file, len)) = super::open(path)? else {
        return Ok(None);
    };
    Ok(take_header(
        &mut BufReader::with_capacity(4096, file),
        magic,
        len,
    ))
}

/// A writer that checksums each block before passing it on.
pub(super) struct Summed<W: Write> {
    inner: W,
    sum: FxHasher,
    block: Vec<u8>,
}

impl<W: Write> Summed<W> {
    /// Writes to `inner`, summing into `sum` (which may hold a seed).
    pub(super) fn new(inner: W, sum: FxHasher) -> Self {
        Summed {
            inner,
            sum,
            block: Vec::with_capacity(BLOCK),
        }
    }

    fn flush_block(&mut self) -> std::io::Result<()> {
        self.sum.write(&self.block);
        self.inner.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }

    /// Writes the last block and the checksum; gives the checksum.
    pub(super) fn finish(&mut self) -> std::io::Result<u64> {
        if !self.block.is_empty() {
            self.flush_block()?;
        }
        let sum = self.sum.finish();
        self.inner.write_all(&sum.to_le_bytes())?;
        self.inner.flush()?;
        Ok(sum)
    }
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.flush_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reader of the blocks of [`Summed`], checksumming each as it is read;
/// `left` bytes of the body are still to be read from `inner`.
pub(super) struct Checked<R: Read> {
    pub(super) inner: R,
    sum: FxHasher,
    block: Vec<u8>,
    at: usize,
    left: u64,
}

impl<R: Read> Checked<R> {
    /// Reads `body` bytes of blocks from `inner`, summing into `sum` (which
    /// may hold a seed).
    pub(super) fn new(inner: R, sum: FxHasher, body: u64) -> Self {
        Checked {
            inner,
            sum,
            block: Vec::with_capacity(BLOCK),
            at: 0,
            left: body,
        }
    }

    /// Whether every byte of the body was read.
    pub(super) fn is_done(&self) -> bool {
        self.left == 0 && self.at == self.block.len()
    }

    /// The checksum of what was read.
    pub(super) fn sum(&self) -> u64 {
        self.sum.finish()
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.block.len() {
            let n = self.left.min(BLOCK as u64) as usize;
            self.block.resize(n, 0);
            self.inner.read_exact(&mut self.block)?;
            self.sum.write(&self.block);
            self.left -= n as u64;
            self.at = 0;
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 8] = *b"FFTEST\x03\0";

    fn read_all(path: &Path) -> Option<(Vec<u8>, Vec<u8>)> {
        read_streamed(path, MAGIC, |h, r, len| {
            let mut body = Vec::new();
            r.read_to_end(&mut body).ok()?;
            (body.len() as u64 == len).then(|| (h.to_vec(), body))
        })
        .unwrap()
        .map(|(read, _)| read)
    }

    #[test]
    fn a_streamed_file_reads_back_and_a_damaged_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.bin");
        assert_eq!(read_all(&path), None, "none yet");
        for size in [0, 1, BLOCK - 20, BLOCK, 3 * BLOCK + 5] {
            let body: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let sum = write_streamed(&path, MAGIC, b"head", |w| {
                body.chunks(1000).try_for_each(|c| w.write_all(c))
            })
            .unwrap();
            assert_eq!(read_all(&path), Some((b"head".to_vec(), body)), "{size}");
            let read = read_streamed(&path, MAGIC, |_, r, _| r.read_to_end(&mut vec![]).ok());
            let read_sum = read.unwrap().map(|(_, sum)| sum);
            assert_eq!(read_sum, Some(sum), "{size}: the checksum written is read");
        }
        let good = fs::read(&path).unwrap();
        let mut cases = vec![
            ("empty", Vec::new()),
            ("truncated", good[..good.len() - 1].to_vec()),
            ("longer", [&good[..], &[0u8]].concat()),
        ];
        for at in [2, 9, 13, BLOCK + 3, good.len() - 3] {
            let mut b = good.clone();
            b[at] ^= 0x04;
            cases.push(("one bit flipped", b));
        }
        for (what, bytes) in cases {
            fs::write(&path, &bytes).unwrap();
            assert_eq!(read_all(&path), None, "{what}");
        }
        fs::write(&path, &good).unwrap();
        let other = read_streamed(&path, *b"FFTEST\x04\0", |_, _, _| Some(())).unwrap();
        assert_eq!(other, None, "another version");
    }
}
