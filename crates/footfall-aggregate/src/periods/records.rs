//! Visitor records: one date's `visits` summed per (site, visitor), what a
//! week or month needs of them, kept beside the warehouse so that a period
//! is refreshed without reading the `visits` files of all its dates again.
//!
//! ```text
//! DIR/.visitors/date=YYYY-MM-DD.rec
//! ```
//!
//! Contract: a date's records are written whenever its `visits` file is (and
//! removed with it), and name that file's size and modification time. A
//! reader uses them only while the `visits` file is the one they name; else
//! it reads that file. They are a cache file (`warehouse/cache.rs`: local,
//! never published, checksummed) and hold nothing the `visits` file does not:
//! visitor ids as their 128-bit keys, and sums of its columns.
//!
//! Header: the `visits` file's size and modification time (u64 each), then
//! the sites (count u32; per site its name and its record count u64), in
//! name order. Records, by site then key: the visitor's key (u128), visits,
//! page views and bounces (u32 each), whether any visit was a bot's (u8, then
//! 3 bytes of padding), and the visits' duration in microseconds (i64).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;

use super::Visitor;
use crate::error::AggregateError;
use crate::warehouse::{
    put_str, remove_cache_file, CacheKind, Covered, Fields, Warehouse, VISITORS_DIR,
};

/// The visitor records' kind of cache file.
const KIND: CacheKind = CacheKind {
    magic: *b"FFVIS\x01\0\0",
    record_len: 40,
};

/// One date's visitors by site, each site's by key (ascending); their
/// [`Visitor::days`] is 0.
#[derive(Debug, Default, PartialEq)]
pub(super) struct DateRecords {
    pub sites: BTreeMap<String, Vec<(u128, Visitor)>>,
}

fn path(wh: &Warehouse, date: NaiveDate) -> PathBuf {
    wh.date_cache_path(VISITORS_DIR, date, "rec")
}

impl DateRecords {
    /// The records of `date` if they are those of its `visits` file `source`.
    pub(super) fn read(
        wh: &Warehouse,
        date: NaiveDate,
        source: &Covered,
    ) -> Result<Option<DateRecords>, AggregateError> {
        let mut all = Vec::new();
        let Some(header) = KIND.read(&path(wh, date), |r| all.push(decode(r)))? else {
            return Ok(None);
        };
        let mut f = Fields(&header);
        let (size, mtime_ns) = (f.u64(), f.u64());
        if (size, mtime_ns) != (Some(source.size), Some(source.mtime_ns)) {
            return Ok(None);
        }
        let mut out = DateRecords::default();
        let mut rest = &all[..];
        for _ in 0..f.u32().unwrap_or(0) {
            let (Some(site), Some(n)) = (f.str(), f.u64()) else {
                return Ok(None);
            };
            let Some((mine, after)) = rest.split_at_checked(n as usize) else {
                return Ok(None);
            };
            out.sites.insert(site, mine.to_vec());
            rest = after;
        }
        Ok((f.is_done() && rest.is_empty()).then_some(out))
    }

    /// Writes the records of `date`, those of its `visits` file `source`.
    pub(super) fn write(
        &self,
        wh: &Warehouse,
        date: NaiveDate,
        source: &Covered,
    ) -> Result<(), AggregateError> {
        let mut header = Vec::new();
        header.extend_from_slice(&source.size.to_le_bytes());
        header.extend_from_slice(&source.mtime_ns.to_le_bytes());
        header.extend_from_slice(&(self.sites.len() as u32).to_le_bytes());
        for (site, records) in &self.sites {
            put_str(&mut header, site);
            header.extend_from_slice(&(records.len() as u64).to_le_bytes());
        }
        let records = self.sites.values().flatten().map(encode);
        let count = self.sites.values().map(Vec::len).sum();
        KIND.write(&path(wh, date), &header, records, count)
    }

    /// Removes the records of `date`, if any (its `visits` file is gone).
    pub(super) fn remove(wh: &Warehouse, date: NaiveDate) -> Result<(), AggregateError> {
        remove_cache_file(&path(wh, date))
    }
}

fn encode(&(key, v): &(u128, Visitor)) -> [u8; 40] {
    let mut r = [0u8; 40];
    r[..16].copy_from_slice(&key.to_le_bytes());
    r[16..20].copy_from_slice(&v.visits.to_le_bytes());
    r[20..24].copy_from_slice(&v.page_views.to_le_bytes());
    r[24..28].copy_from_slice(&v.bounces.to_le_bytes());
    r[28] = u8::from(v.bot);
    r[32..].copy_from_slice(&v.duration_us.to_le_bytes());
    r
}

fn decode(r: &[u8]) -> (u128, Visitor) {
    let u32_at = |i: usize| u32::from_le_bytes(r[i..i + 4].try_into().expect("4 bytes"));
    let key = u128::from_le_bytes(r[..16].try_into().expect("16 bytes"));
    let v = Visitor {
        visits: u32_at(16),
        page_views: u32_at(20),
        bounces: u32_at(24),
        bot: r[28] != 0,
        duration_us: i64::from_le_bytes(r[32..].try_into().expect("8 bytes")),
        days: 0,
    };
    (key, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_back_only_for_the_visits_file_they_name() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::new(dir.path());
        let date = NaiveDate::from_ymd_opt(2015, 5, 17).unwrap();
        let v = |visits, bot| Visitor {
            duration_us: -5,
            visits,
            page_views: 7,
            bounces: 1,
            days: 0,
            bot,
        };
        let mut records = DateRecords::default();
        records.sites.insert(
            "a.example".into(),
            vec![(1, v(1, false)), (u128::MAX, v(3, true))],
        );
        records
            .sites
            .insert("b.example".into(), vec![(2, v(2, false))]);
        let source = Covered {
            name: "day.parquet".into(),
            size: 10,
            mtime_ns: 5,
        };
        assert_eq!(DateRecords::read(&wh, date, &source).unwrap(), None);
        records.write(&wh, date, &source).unwrap();
        assert_eq!(
            DateRecords::read(&wh, date, &source).unwrap(),
            Some(records)
        );
        for other in [
            Covered {
                size: 11,
                ..source.clone()
            },
            Covered {
                mtime_ns: 6,
                ..source.clone()
            },
        ] {
            assert_eq!(DateRecords::read(&wh, date, &other).unwrap(), None);
        }
        DateRecords::remove(&wh, date).unwrap();
        DateRecords::remove(&wh, date).unwrap();
        assert_eq!(DateRecords::read(&wh, date, &source).unwrap(), None);
    }
}
