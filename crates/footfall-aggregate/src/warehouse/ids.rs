//! The id index of a date: the 128-bit keys ([`crate::hash::id_key`]) of the
//! `event_id`s of some of its events files, so that a run de-duplicates its
//! new events without reading every earlier file's ids again.
//!
//! ```text
//! DIR/.ids/date=YYYY-MM-DD.idx
//! ```
//!
//! Contract: an index is a cache, never the truth. It names the files it
//! covers, each with its size and modification time, and holds the keys of
//! exactly their ids. A reader may use it only while every file it names is
//! still a counting file of the date and unchanged; it then reads the ids of
//! the counting files the index does not cover. Anything else (a file removed
//! as stale, rewritten by erasure or dropped by retention, an index torn by
//! a crash or written by another format version) is reported as no index,
//! and the reader rebuilds it from the files.
//!
//! It stays in this directory (the staging directory of an object-store
//! warehouse) and is never published. It is written to a temporary name and
//! renamed into place without fsync: a checksum over the whole file tells a
//! file that a power loss left torn, and a lost index costs one rebuild.
//!
//! Format, little-endian: the magic `FFIDX` and a version byte (8 bytes in
//! all), the header length (u32), the header (file count u32; per file its
//! name length u16, name, size u64 and modification time in nanoseconds
//! since the epoch u64; then the key count u64), the keys (u128, strictly
//! ascending), and a checksum (u64, [`FxHasher`] over the header block, then
//! over each key's 16 bytes).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::hash::Hasher;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::{date_dir_name, Warehouse};
use crate::error::AggregateError;
use crate::hash::FxHasher;

/// Directory of the id indexes, relative to the warehouse root.
const IDS_DIR: &str = ".ids";
/// Magic and format version of an index file.
const MAGIC: [u8; 8] = *b"FFIDX\x01\0\0";
/// Keys read or written per buffer.
const KEYS_PER_CHUNK: usize = 4096;

/// A file an index covers: its name in the date's events directory, its size
/// and its modification time, which together tell a rewritten file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Covered {
    pub name: String,
    pub size: u64,
    pub mtime_ns: u64,
}

impl Covered {
    /// The identity of the file at `path` as it is now.
    pub(crate) fn of(path: &Path) -> Result<Covered, AggregateError> {
        let md = fs::metadata(path).map_err(AggregateError::io("stat", path))?;
        let mtime = md.modified().map_err(AggregateError::io("stat", path))?;
        let mtime_ns = mtime
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Ok(Covered {
            name: name.unwrap_or_default(),
            size: md.len(),
            mtime_ns,
        })
    }
}

/// A date's id index as read: the files it covers and their keys, ascending.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct IdIndex {
    pub files: BTreeSet<Covered>,
    pub keys: Vec<u128>,
}

impl Warehouse {
    /// Path of the id index of a date.
    pub(crate) fn id_index_path(&self, date: NaiveDate) -> PathBuf {
        self.root
            .join(IDS_DIR)
            .join(format!("{}.idx", date_dir_name(date)))
    }

    /// The id index of a date; `None` when there is none or it cannot be
    /// used (torn, another version): the caller rebuilds it.
    pub(crate) fn read_id_index(&self, date: NaiveDate) -> Result<Option<IdIndex>, AggregateError> {
        let path = self.id_index_path(date);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(AggregateError::io("open", &path)(e)),
        };
        let len = file
            .metadata()
            .map_err(AggregateError::io("stat", &path))?
            .len();
        let index = match decode(BufReader::with_capacity(1 << 20, file), len) {
            Ok(index) => index,
            // Shorter than its header says: torn.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
            Err(e) => return Err(AggregateError::io("read", &path)(e)),
        };
        if index.is_none() {
            tracing::debug!(path = %path.display(), "id index unusable: rebuilt from the files");
        }
        Ok(index)
    }

    /// Writes the id index of a date: `files`, and the keys of `a` and `b`
    /// (each ascending, disjoint) merged.
    pub(crate) fn write_id_index(
        &self,
        date: NaiveDate,
        files: &BTreeSet<Covered>,
        (a, b): (&[u128], &[u128]),
    ) -> Result<(), AggregateError> {
        let path = self.id_index_path(date);
        let tmp = super::temp_path(&path)?;
        let file = File::create(&tmp).map_err(AggregateError::io("create", &tmp))?;
        encode(
            BufWriter::with_capacity(1 << 20, file),
            files,
            merged(a, b),
            a.len() + b.len(),
        )
        .map_err(AggregateError::io("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(AggregateError::io("rename", &path))
    }

    /// Removes the id index of a date, if any (its files are about to change).
    pub(crate) fn remove_id_index(&self, date: NaiveDate) -> Result<(), AggregateError> {
        let path = self.id_index_path(date);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(AggregateError::io("remove", &path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Removes the temporary files of interrupted index writes: every one
    /// (`None`), or one date's. Returns how many were removed.
    pub(crate) fn sweep_id_index_temps(
        &self,
        date: Option<NaiveDate>,
    ) -> Result<usize, AggregateError> {
        let one = date
            .map(|d| super::temp_path(&self.id_index_path(d)))
            .transpose()?;
        let mut removed = 0;
        for entry in super::list_dir(&self.root.join(IDS_DIR))? {
            let path = entry.path();
            let name = entry.file_name();
            let ours = match &one {
                Some(tmp) => &path == tmp,
                None => name.to_str().is_some_and(super::is_temp_name),
            };
            if ours {
                fs::remove_file(&path).map_err(AggregateError::io("remove", &path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes the id indexes of the dates before `horizon`.
    pub(crate) fn remove_id_indexes_before(
        &self,
        horizon: NaiveDate,
    ) -> Result<(), AggregateError> {
        for entry in super::list_dir(&self.root.join(IDS_DIR))? {
            let name = entry.file_name();
            let date = name
                .to_str()
                .and_then(|n| n.strip_suffix(".idx"))
                .and_then(super::parse_date_dir);
            if date.is_some_and(|d| d < horizon) {
                fs::remove_file(entry.path())
                    .map_err(AggregateError::io("remove", entry.path()))?;
            }
        }
        Ok(())
    }
}

/// The keys of two ascending, disjoint slices in ascending order.
fn merged<'a>(a: &'a [u128], b: &'a [u128]) -> impl Iterator<Item = u128> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let next = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) if x < y => x,
            (Some(_), Some(&y)) => y,
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => return None,
        };
        if a.get(i) == Some(&next) {
            i += 1;
        } else {
            j += 1;
        }
        Some(next)
    })
}

fn header(files: &BTreeSet<Covered>, keys: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(64 + files.len() * 48);
    h.extend_from_slice(&(files.len() as u32).to_le_bytes());
    for f in files {
        h.extend_from_slice(&(f.name.len() as u16).to_le_bytes());
        h.extend_from_slice(f.name.as_bytes());
        h.extend_from_slice(&f.size.to_le_bytes());
        h.extend_from_slice(&f.mtime_ns.to_le_bytes());
    }
    h.extend_from_slice(&(keys as u64).to_le_bytes());
    h
}

fn encode(
    mut out: impl Write,
    files: &BTreeSet<Covered>,
    keys: impl Iterator<Item = u128>,
    count: usize,
) -> std::io::Result<()> {
    let head = header(files, count);
    let mut block = MAGIC.to_vec();
    block.extend_from_slice(&(head.len() as u32).to_le_bytes());
    block.extend_from_slice(&head);
    let mut sum = FxHasher::default();
    sum.write(&block);
    out.write_all(&block)?;
    let mut written = 0;
    for k in keys {
        let bytes = k.to_le_bytes();
        sum.write(&bytes);
        out.write_all(&bytes)?;
        written += 1;
    }
    assert_eq!(written, count, "the key count is the keys' number");
    out.write_all(&sum.finish().to_le_bytes())?;
    out.flush()
}

/// Reads an index of `len` bytes; `Ok(None)` when it is not a whole, valid
/// index of this version.
fn decode(mut r: impl Read, len: u64) -> std::io::Result<Option<IdIndex>> {
    let mut lead = [0u8; 12];
    if len < 12 || !read_exact_or_eof(&mut r, &mut lead)? || lead[..8] != MAGIC {
        return Ok(None);
    }
    let head_len = u32::from_le_bytes(lead[8..].try_into().expect("4 bytes")) as u64;
    if len < 12 + head_len + 8 {
        return Ok(None);
    }
    let mut head = vec![0u8; head_len as usize];
    r.read_exact(&mut head)?;
    let Some((files, count)) = parse_header(&head) else {
        return Ok(None);
    };
    if len != 12 + head_len + count * 16 + 8 {
        return Ok(None);
    }
    let mut sum = FxHasher::default();
    sum.write(&[&lead[..], &head].concat());
    let mut keys = Vec::with_capacity(count as usize);
    let mut buf = vec![0u8; KEYS_PER_CHUNK * 16];
    while (keys.len() as u64) < count {
        let n = (count as usize - keys.len()).min(KEYS_PER_CHUNK);
        r.read_exact(&mut buf[..n * 16])?;
        for chunk in buf[..n * 16].chunks_exact(16) {
            sum.write(chunk);
            keys.push(u128::from_le_bytes(chunk.try_into().expect("16 bytes")));
        }
    }
    let mut tail = [0u8; 8];
    r.read_exact(&mut tail)?;
    let ascending = keys.windows(2).all(|w| w[0] < w[1]);
    Ok((u64::from_le_bytes(tail) == sum.finish() && ascending).then_some(IdIndex { files, keys }))
}

fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// The covered files and the key count of a header, if it is well formed.
fn parse_header(mut h: &[u8]) -> Option<(BTreeSet<Covered>, u64)> {
    fn take<'a>(h: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (a, b) = (h.get(..n)?, h.get(n..)?);
        *h = b;
        Some(a)
    }
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let n = u32::from_le_bytes(take(&mut h, 4)?.try_into().ok()?);
    let mut files = BTreeSet::new();
    for _ in 0..n {
        let name_len = u16::from_le_bytes(take(&mut h, 2)?.try_into().ok()?) as usize;
        let name = String::from_utf8(take(&mut h, name_len)?.to_vec()).ok()?;
        let size = u64_of(take(&mut h, 8)?);
        let mtime_ns = u64_of(take(&mut h, 8)?);
        files.insert(Covered {
            name,
            size,
            mtime_ns,
        });
    }
    let count = u64_of(take(&mut h, 8)?);
    h.is_empty().then_some((files, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    }

    fn covered(name: &str, size: u64) -> Covered {
        Covered {
            name: name.into(),
            size,
            mtime_ns: 1_700_000_000_000_000_000 + size,
        }
    }

    fn sample(wh: &Warehouse) -> IdIndex {
        let files: BTreeSet<Covered> = [
            covered("part-0-0.parquet", 10),
            covered("part-1-5.parquet", 7),
        ]
        .into();
        let (a, b) = (vec![1u128, 5, 9, u128::MAX], vec![0u128, 2, 7 << 100]);
        wh.write_id_index(day(), &files, (&a, &b)).unwrap();
        let mut keys = [a, b].concat();
        keys.sort_unstable();
        IdIndex { files, keys }
    }

    #[test]
    fn an_index_reads_back_as_written_with_its_keys_merged() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::new(dir.path());
        assert_eq!(wh.read_id_index(day()).unwrap(), None, "none yet");
        let want = sample(&wh);
        assert_eq!(wh.read_id_index(day()).unwrap(), Some(want));
        let empty = BTreeSet::new();
        wh.write_id_index(day(), &empty, (&[], &[])).unwrap();
        assert_eq!(wh.read_id_index(day()).unwrap(), Some(IdIndex::default()));
    }

    #[test]
    fn a_torn_changed_or_foreign_index_is_no_index() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::new(dir.path());
        sample(&wh);
        let path = wh.id_index_path(day());
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
            ("longer", [&good[..], &[0u8; 16]].concat()),
        ];
        for at in [3, 6, 20, good.len() - 20, good.len() - 1] {
            let mut b = good.clone();
            b[at] ^= 0x10;
            cases.push(("one bit flipped", b));
        }
        for (what, bytes) in cases {
            fs::write(&path, &bytes).unwrap();
            assert_eq!(wh.read_id_index(day()).unwrap(), None, "{what}");
        }
        fs::write(&path, &good).unwrap();
        assert!(wh.read_id_index(day()).unwrap().is_some());
    }

    #[test]
    fn removal_goes_by_date() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::new(dir.path());
        let files = BTreeSet::new();
        let days: Vec<NaiveDate> = (0..3).map(|i| day() + chrono::Days::new(i)).collect();
        for &d in &days {
            wh.write_id_index(d, &files, (&[1], &[2])).unwrap();
        }
        wh.remove_id_indexes_before(days[1]).unwrap();
        assert!(wh.read_id_index(days[0]).unwrap().is_none());
        assert!(wh.read_id_index(days[1]).unwrap().is_some());
        wh.remove_id_index(days[1]).unwrap();
        wh.remove_id_index(days[1]).unwrap();
        assert!(wh.read_id_index(days[1]).unwrap().is_none());
        assert!(wh.read_id_index(days[2]).unwrap().is_some());
    }
}
