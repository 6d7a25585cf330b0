//! Cache files: what a run keeps beside the warehouse to avoid reading
//! Parquet files again (the id indexes, `ids.rs`; the visitor records,
//! `periods/records.rs`; the day states, `days.rs`). Never the truth, never published: a reader that finds one
//! missing, torn or of another version rebuilds what it holds from the
//! warehouse's files. Most hold fixed-length records (below); the day states
//! are streamed (`cache/stream.rs`), their rows appended (`cache/appended.rs`).
//!
//! A cache file is written to a temporary name and renamed into place
//! without fsync; a checksum over the whole file tells one that a power loss
//! left torn. Layout, little-endian: an 8-byte magic (kind and version), the
//! header length (u32), the header, the record count (u64), the records
//! (all of one length), and the checksum (u64, [`FxHasher`] over the magic,
//! header length, header and count, then over each record).

use std::fs::{self, File};
use std::hash::Hasher;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use chrono::NaiveDate;

use super::Warehouse;
use crate::error::AggregateError;
use crate::hash::FxHasher;

mod appended;
mod stream;
pub(crate) use appended::{append_segment, read_segments, End};
pub(crate) use stream::{read_header, read_streamed, write_streamed};

/// Directory of the id indexes (`ids.rs`), relative to the warehouse root.
pub(crate) const IDS_DIR: &str = ".ids";
/// Directory of the visitor records (`periods/records.rs`).
pub(crate) const VISITORS_DIR: &str = ".visitors";
/// Directory of the day states (`days.rs`).
pub(crate) const DAYS_DIR: &str = ".days";
/// Every directory of cache files, each holding one file per date.
const CACHE_DIRS: [&str; 3] = [IDS_DIR, VISITORS_DIR, DAYS_DIR];

/// Records read or written per buffer.
const RECORDS_PER_CHUNK: usize = 4096;

/// One kind of cache file: its magic (kind and format version) and the
/// length of its records.
#[derive(Clone, Copy)]
pub(crate) struct CacheKind {
    pub magic: [u8; 8],
    pub record_len: usize,
}

impl CacheKind {
    /// Writes `path` (via a temporary name): `header`, then `count` records.
    pub(crate) fn write<R: AsRef<[u8]>>(
        self,
        path: &Path,
        header: &[u8],
        records: impl Iterator<Item = R>,
        count: usize,
    ) -> Result<(), AggregateError> {
        let tmp = super::temp_path(path)?;
        let file = File::create(&tmp).map_err(AggregateError::io("create", &tmp))?;
        self.encode(
            BufWriter::with_capacity(1 << 20, file),
            header,
            records,
            count,
        )
        .map_err(AggregateError::io("write", &tmp))?;
        fs::rename(&tmp, path).map_err(AggregateError::io("rename", path))
    }

    /// Reads `path`: its header, each record given to `each`. `None` when
    /// there is no such file or it is not a whole, valid file of this kind
    /// (records may have been given to `each` by then: the caller drops
    /// what it gathered).
    pub(crate) fn read(
        self,
        path: &Path,
        each: impl FnMut(&[u8]),
    ) -> Result<Option<Vec<u8>>, AggregateError> {
        let Some((file, len)) = open(path)? else {
            return Ok(None);
        };
        let header = match self.decode(BufReader::with_capacity(1 << 20, file), len, each) {
            Ok(header) => header,
            // Shorter than its header says: torn.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
            Err(e) => return Err(AggregateError::io("read", path)(e)),
        };
        if header.is_none() {
            tracing::debug!(path = %path.display(), "cache file unusable: rebuilt from the warehouse");
        }
        Ok(header)
    }

    fn encode<R: AsRef<[u8]>>(
        self,
        mut out: impl Write,
        header: &[u8],
        records: impl Iterator<Item = R>,
        count: usize,
    ) -> std::io::Result<()> {
        let mut lead = self.magic.to_vec();
        lead.extend_from_slice(&(header.len() as u32).to_le_bytes());
        lead.extend_from_slice(header);
        lead.extend_from_slice(&(count as u64).to_le_bytes());
        let mut sum = FxHasher::default();
        sum.write(&lead);
        out.write_all(&lead)?;
        let mut written = 0;
        for r in records {
            let r = r.as_ref();
            assert_eq!(r.len(), self.record_len, "records of one length");
            sum.write(r);
            out.write_all(r)?;
            written += 1;
        }
        assert_eq!(written, count, "the record count is the records' number");
        out.write_all(&sum.finish().to_le_bytes())?;
        out.flush()
    }

    fn decode(
        self,
        mut r: impl Read,
        len: u64,
        mut each: impl FnMut(&[u8]),
    ) -> std::io::Result<Option<Vec<u8>>> {
        let mut lead = [0u8; 12];
        r.read_exact(&mut lead)?;
        if lead[..8] != self.magic {
            return Ok(None);
        }
        let header_len = u32::from_le_bytes(lead[8..].try_into().expect("4 bytes")) as u64;
        if len < 12 + header_len + 16 {
            return Ok(None);
        }
        let mut rest = vec![0u8; header_len as usize + 8];
        r.read_exact(&mut rest)?;
        let count = u64::from_le_bytes(rest[header_len as usize..].try_into().expect("8 bytes"));
        let record_len = self.record_len as u64;
        if count.checked_mul(record_len) != Some(len - 12 - header_len - 16) {
            return Ok(None);
        }
        let mut sum = FxHasher::default();
        sum.write(&[&lead[..], &rest].concat());
        let mut buf = vec![0u8; RECORDS_PER_CHUNK * self.record_len];
        let mut left = count as usize;
        while left > 0 {
            let n = left.min(RECORDS_PER_CHUNK);
            r.read_exact(&mut buf[..n * self.record_len])?;
            for record in buf[..n * self.record_len].chunks_exact(self.record_len) {
                sum.write(record);
                each(record);
            }
            left -= n;
        }
        let mut tail = [0u8; 8];
        r.read_exact(&mut tail)?;
        rest.truncate(header_len as usize);
        Ok((u64::from_le_bytes(tail) == sum.finish()).then_some(rest))
    }
}

/// The cache file at `path` and its length, if there is one.
fn open(path: &Path) -> Result<Option<(File, u64)>, AggregateError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AggregateError::io("open", path)(e)),
    };
    let md = file.metadata().map_err(AggregateError::io("stat", path))?;
    Ok(Some((file, md.len())))
}

/// Removes the cache file at `path`, if there is one.
pub(crate) fn remove_cache_file(path: &Path) -> Result<(), AggregateError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(AggregateError::io("remove", path)(e))
        }
        _ => Ok(()),
    }
}

impl Warehouse {
    /// Removes the cache files `DIR/date=….EXT` of the dates before `horizon`.
    pub(crate) fn remove_cache_before(
        &self,
        dir: &str,
        ext: &str,
        horizon: NaiveDate,
    ) -> Result<(), AggregateError> {
        for entry in super::list_dir(&self.root.join(dir))? {
            let name = entry.file_name();
            let date = name
                .to_str()
                .and_then(|n| n.strip_suffix(ext)?.strip_suffix('.'))
                .and_then(super::parse_date_dir);
            if date.is_some_and(|d| d < horizon) {
                fs::remove_file(entry.path())
                    .map_err(AggregateError::io("remove", entry.path()))?;
            }
        }
        Ok(())
    }

    /// Removes every cache file (the next runs rebuild them from the tables).
    pub(crate) fn remove_caches(&self) -> Result<(), AggregateError> {
        for dir in CACHE_DIRS.map(|d| self.root.join(d)) {
            match fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(AggregateError::io("remove", &dir)(e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes the temporary files of interrupted cache writes: every one
    /// (`None`), or one date's. Returns how many were removed.
    pub(crate) fn sweep_cache_temps(
        &self,
        date: Option<NaiveDate>,
    ) -> Result<usize, AggregateError> {
        let mut removed = 0;
        for dir in CACHE_DIRS {
            for entry in super::list_dir(&self.root.join(dir))? {
                let name = entry.file_name();
                let Some(name) = name.to_str().filter(|n| super::is_temp_name(n)) else {
                    continue;
                };
                let of_date =
                    |d: NaiveDate| name.starts_with(&format!(".{}.", super::date_dir_name(d)));
                if date.is_none_or(of_date) {
                    let path = entry.path();
                    fs::remove_file(&path).map_err(AggregateError::io("remove", &path))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Reads little-endian fields off the front of a header.
pub(crate) struct Fields<'a>(pub &'a [u8]);

impl<'a> Fields<'a> {
    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A string preceded by its length (u16).
    pub(crate) fn str(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }

    /// Whether every field has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.0.is_empty()
    }
}

/// Appends a string preceded by its length (u16) to a header.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: CacheKind = CacheKind {
        magic: *b"FFTEST\x01\0",
        record_len: 3,
    };

    fn read_all(path: &Path) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
        let mut records = Vec::new();
        let header = KIND.read(path, |r| records.push(r.to_vec())).unwrap()?;
        Some((header, records))
    }

    #[test]
    fn a_cache_file_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.bin");
        assert_eq!(read_all(&path), None, "none yet");
        let records: Vec<[u8; 3]> = (0..10_000u32)
            .map(|i| [i as u8, (i >> 8) as u8, 7])
            .collect();
        KIND.write(&path, b"head", records.iter(), records.len())
            .unwrap();
        let (header, got) = read_all(&path).unwrap();
        assert_eq!(header, b"head");
        assert_eq!(got, records.iter().map(|r| r.to_vec()).collect::<Vec<_>>());
        KIND.write(&path, b"", std::iter::empty::<[u8; 3]>(), 0)
            .unwrap();
        assert_eq!(read_all(&path), Some((Vec::new(), Vec::new())));
    }

    #[test]
    fn a_torn_changed_or_foreign_cache_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.bin");
        let records: Vec<[u8; 3]> = (0..100u8).map(|i| [i, i, i]).collect();
        KIND.write(&path, b"header", records.iter(), records.len())
            .unwrap();
        let good = fs::read(&path).unwrap();
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("truncated", good[..good.len() - 9].to_vec()),
            ("zeroed tail", {
                let mut b = good.clone();
                let n = b.len();
                b[n - 40..].fill(0);
                b
            }),
            ("longer", [&good[..], &[0u8; 3]].concat()),
        ];
        for at in [3, 6, 9, 14, 22, good.len() - 20, good.len() - 1] {
            let mut b = good.clone();
            b[at] ^= 0x10;
            cases.push(("one bit flipped", b));
        }
        for (what, bytes) in cases {
            fs::write(&path, &bytes).unwrap();
            assert_eq!(read_all(&path), None, "{what}");
        }
        let other = CacheKind {
            magic: *b"FFTEST\x02\0",
            ..KIND
        };
        fs::write(&path, &good).unwrap();
        assert!(
            other.read(&path, |_| {}).unwrap().is_none(),
            "another version"
        );
        assert!(read_all(&path).is_some());
    }

    #[test]
    fn header_fields_read_back_in_order() {
        let mut h = Vec::new();
        put_str(&mut h, "part-0-0.parquet");
        h.extend_from_slice(&7u32.to_le_bytes());
        h.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut f = Fields(&h);
        assert_eq!(f.str().as_deref(), Some("part-0-0.parquet"));
        assert_eq!((f.u32(), f.u64()), (Some(7), Some(u64::MAX)));
        assert!(f.is_done());
        assert_eq!(f.u16(), None, "nothing left");
    }
}
