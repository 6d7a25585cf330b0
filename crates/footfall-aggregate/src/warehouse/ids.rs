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
//! It is a cache file (`cache.rs`: local, never published, checksummed; a
//! lost index costs one rebuild). Its header lists the covered files (count
//! u32; per file its name, size u64 and modification time in nanoseconds
//! since the epoch u64); its records are the keys (u128, strictly
//! ascending).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::cache::{put_str, remove_cache_file, CacheKind, Fields, IDS_DIR};
use super::Warehouse;
use crate::error::AggregateError;

/// The id indexes' kind of cache file.
const KIND: CacheKind = CacheKind {
    magic: *b"FFIDX\x01\0\0",
    record_len: 16,
};

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

/// The identities of `files` as they are now, each with its path.
pub(crate) fn identities(
    files: &[PathBuf],
) -> Result<std::collections::BTreeMap<Covered, PathBuf>, AggregateError> {
    files
        .iter()
        .map(|p| Ok((Covered::of(p)?, p.clone())))
        .collect()
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
        self.date_cache_path(IDS_DIR, date, "idx")
    }

    /// The id index of a date; `None` when there is none or it cannot be
    /// used (torn, another version): the caller rebuilds it.
    pub(crate) fn read_id_index(&self, date: NaiveDate) -> Result<Option<IdIndex>, AggregateError> {
        let mut keys = Vec::new();
        let header = KIND.read(&self.id_index_path(date), |r| {
            keys.push(u128::from_le_bytes(r.try_into().expect("16 bytes")));
        })?;
        let ascending = keys.windows(2).all(|w| w[0] < w[1]);
        Ok(header
            .and_then(|h| parse_header(&h))
            .filter(|_| ascending)
            .map(|files| IdIndex { files, keys }))
    }

    /// Writes the id index of a date: `files`, and the keys of `a` and `b`
    /// (each ascending, disjoint) merged.
    pub(crate) fn write_id_index(
        &self,
        date: NaiveDate,
        files: &BTreeSet<Covered>,
        (a, b): (&[u128], &[u128]),
    ) -> Result<(), AggregateError> {
        let keys = merged(a, b).map(u128::to_le_bytes);
        KIND.write(
            &self.id_index_path(date),
            &header(files),
            keys,
            a.len() + b.len(),
        )
    }

    /// Removes the id index of a date, if any (its files are about to change).
    pub(crate) fn remove_id_index(&self, date: NaiveDate) -> Result<(), AggregateError> {
        remove_cache_file(&self.id_index_path(date))
    }

    /// Removes the id indexes of the dates before `horizon`.
    pub(crate) fn remove_id_indexes_before(
        &self,
        horizon: NaiveDate,
    ) -> Result<(), AggregateError> {
        self.remove_cache_before(IDS_DIR, "idx", horizon)
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

fn header(files: &BTreeSet<Covered>) -> Vec<u8> {
    let mut h = Vec::new();
    put_covered(&mut h, files);
    h
}

/// The covered files of a header, if it is well formed.
fn parse_header(h: &[u8]) -> Option<BTreeSet<Covered>> {
    let mut f = Fields(h);
    let files = take_covered(&mut f)?;
    f.is_done().then_some(files)
}

/// Appends covered files to a cache file's header: their count (u32), then
/// per file its name, size (u64) and modification time in nanoseconds (u64).
pub(super) fn put_covered(h: &mut Vec<u8>, files: &BTreeSet<Covered>) {
    h.extend_from_slice(&(files.len() as u32).to_le_bytes());
    for f in files {
        put_str(h, &f.name);
        h.extend_from_slice(&f.size.to_le_bytes());
        h.extend_from_slice(&f.mtime_ns.to_le_bytes());
    }
}

/// The covered files of [`put_covered`], read off a header.
pub(super) fn take_covered(f: &mut Fields<'_>) -> Option<BTreeSet<Covered>> {
    let n = f.u32()?;
    let mut files = BTreeSet::new();
    for _ in 0..n {
        files.insert(Covered {
            name: f.str()?,
            size: f.u64()?,
            mtime_ns: f.u64()?,
        });
    }
    Some(files)
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
    fn an_index_whose_keys_are_not_ascending_or_that_is_torn_is_no_index() {
        // Torn files in general: `cache.rs`.
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::new(dir.path());
        let files = sample(&wh).files;
        let path = wh.id_index_path(day());
        let good = fs::read(&path).unwrap();
        fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert_eq!(wh.read_id_index(day()).unwrap(), None, "torn");
        for keys in [[2u128, 1], [1, 1]] {
            let records = keys.iter().map(|k| k.to_le_bytes());
            KIND.write(&path, &header(&files), records, 2).unwrap();
            assert_eq!(wh.read_id_index(day()).unwrap(), None, "{keys:?}");
        }
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
