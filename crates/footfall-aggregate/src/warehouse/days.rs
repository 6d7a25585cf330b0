//! The day states: per date, what a run keeps so that it summarises only
//! what its new events change (`summaries/state.rs` holds the contents).
//!
//! ```text
//! DIR/.days/date=YYYY-MM-DD.state   what the state covers; order, tallies
//! DIR/.days/date=YYYY-MM-DD.rows    the state's rows
//! ```
//!
//! Contract: a day state is a cache, never the truth. It names the events
//! files of the date and of the previous date whose rows it holds (each with
//! its size and modification time, as the id index does, `ids.rs`) and the
//! fingerprint of the rules it was counted with. A reader may use it only
//! while the fingerprint is the same and every file it names is still a
//! counting file, unchanged; it then adds the rows of the files it does not
//! name. Anything else is reported as no state, and the reader builds one
//! from every file.
//!
//! A state is two streamed cache files (`cache/stream.rs`), read side by
//! side on two threads: the rows, then the rest, which is written last and
//! names the rows file's checksum. A pair that does not match (a run that
//! stopped between the two writes) is no state. The `.state` file's header
//! is the rows file's checksum (u64), the fingerprint (u64), then the covered
//! files of the date and of the previous date (`ids.rs`, [`put_covered`]).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;

use chrono::NaiveDate;

use super::cache::{read_streamed, remove_cache_file, write_streamed, Fields, DAYS_DIR};
use super::ids::{put_covered, take_covered};
use super::{Covered, Warehouse};
use crate::error::AggregateError;

/// The day states' magic: kind and format version.
const MAGIC: [u8; 8] = *b"FFDAY\x05\0\0";
/// The rows files' magic.
const ROWS_MAGIC: [u8; 8] = *b"FFROWS\x01\0";
/// The extensions of a state's two files.
const STATE_EXT: &str = "state";
const ROWS_EXT: &str = "rows";

/// What a day state covers: the files of its date and of the previous date
/// whose rows it holds, and the fingerprint of the rules it was counted with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DayCover {
    pub fingerprint: u64,
    pub day: BTreeSet<Covered>,
    pub prev: BTreeSet<Covered>,
}

impl Warehouse {
    /// The two files of the day state of a date: the rows, and the rest.
    pub(crate) fn day_state_paths(&self, date: NaiveDate) -> [PathBuf; 2] {
        [ROWS_EXT, STATE_EXT].map(|ext| self.date_cache_path(DAYS_DIR, date, ext))
    }

    /// The day state of a date, its rows decoded by `rows` (given the
    /// payload and its length) on a thread of their own while `rest` decodes
    /// the rest (given what it covers too), with what it covers; `None` when
    /// there is none or it cannot be used (torn, another version, the two
    /// files not of one state, a decoder refused it: a decoder that refuses
    /// the cover reads no further).
    pub(crate) fn read_day_state<R: Send, S>(
        &self,
        date: NaiveDate,
        rows: impl FnOnce(&mut dyn Read, u64) -> Option<R> + Send,
        rest: impl FnOnce(&DayCover, &mut dyn Read, u64) -> Option<S>,
    ) -> Result<Option<(DayCover, R, S)>, AggregateError> {
        let [rows_path, rest_path] = self.day_state_paths(date);
        let (rows, rest) = crate::parallel::both(
            || read_streamed(&rows_path, ROWS_MAGIC, |_, r, len| rows(r, len)),
            || {
                read_streamed(&rest_path, MAGIC, |header, r, len| {
                    let (rows_sum, cover) = parse_header(header)?;
                    let state = rest(&cover, r, len)?;
                    Some((rows_sum, cover, state))
                })
            },
        );
        Ok(match (rest?, rows?) {
            (Some(((want, cover, s), _)), Some((r, sum))) if want == sum => Some((cover, r, s)),
            _ => None,
        })
    }

    /// Writes the day state of a date: what `rows` writes, then `cover` and
    /// what `rest` writes.
    pub(crate) fn write_day_state(
        &self,
        date: NaiveDate,
        cover: &DayCover,
        rows: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
        rest: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), AggregateError> {
        let [rows_path, rest_path] = self.day_state_paths(date);
        let rows_sum = write_streamed(&rows_path, ROWS_MAGIC, &[], rows)?;
        let mut h = rows_sum.to_le_bytes().to_vec();
        h.extend(cover.fingerprint.to_le_bytes());
        put_covered(&mut h, &cover.day);
        put_covered(&mut h, &cover.prev);
        write_streamed(&rest_path, MAGIC, &h, rest)?;
        Ok(())
    }

    /// Removes the day state of a date, if any.
    pub(crate) fn remove_day_state(&self, date: NaiveDate) -> Result<(), AggregateError> {
        self.day_state_paths(date)
            .iter()
            .try_for_each(|p| remove_cache_file(p))
    }

    /// Removes the day states of the dates before `horizon`.
    pub(crate) fn remove_day_states_before(
        &self,
        horizon: NaiveDate,
    ) -> Result<(), AggregateError> {
        self.remove_cache_before(DAYS_DIR, STATE_EXT, horizon)?;
        self.remove_cache_before(DAYS_DIR, ROWS_EXT, horizon)
    }
}

/// The rows file's checksum and the cover, from a `.state` header.
fn parse_header(h: &[u8]) -> Option<(u64, DayCover)> {
    let mut f = Fields(h);
    let rows_sum = f.u64()?;
    let cover = DayCover {
        fingerprint: f.u64()?,
        day: take_covered(&mut f)?,
        prev: take_covered(&mut f)?,
    };
    f.is_done().then_some((rows_sum, cover))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    }

    fn cover() -> DayCover {
        let file = |name: &str, size| Covered {
            name: name.into(),
            size,
            mtime_ns: 1_700_000_000_000_000_000,
        };
        DayCover {
            fingerprint: 42,
            day: [file("part-0-0.parquet", 10), file("part-1-0.parquet", 3)].into(),
            prev: [file("part-0-0.parquet", 99)].into(),
        }
    }

    /// The payload of each part of a state, with what it covers.
    type Parts = (DayCover, Vec<u8>, Vec<u8>);

    fn body(r: &mut dyn Read, len: u64) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        r.read_to_end(&mut body).ok()?;
        (body.len() as u64 == len).then_some(body)
    }

    fn read(wh: &Warehouse, d: NaiveDate) -> Option<Parts> {
        wh.read_day_state(d, body, |_, r, len| body(r, len))
            .unwrap()
    }

    fn write(wh: &Warehouse, d: NaiveDate, rows: &[u8], rest: &[u8]) {
        wh.write_day_state(d, &cover(), |w| w.write_all(rows), |w| w.write_all(rest))
            .unwrap();
    }

    #[test]
    fn a_day_state_reads_back_as_written_and_goes_by_date() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::new(dir.path());
        assert_eq!(read(&wh, day()), None, "none yet");
        let days: Vec<NaiveDate> = (0..3).map(|i| day() + chrono::Days::new(i)).collect();
        for &d in &days {
            write(&wh, d, b"rows", b"rest");
        }
        let whole = Some((cover(), b"rows".to_vec(), b"rest".to_vec()));
        assert_eq!(read(&wh, day()), whole);
        let refused = wh
            .read_day_state(day(), body, |_, _, _| None::<()>)
            .unwrap();
        assert_eq!(refused, None, "the decoder refused it");
        wh.remove_day_states_before(days[1]).unwrap();
        assert_eq!(read(&wh, days[0]), None);
        assert!(wh.day_state_paths(days[0]).iter().all(|p| !p.exists()));
        wh.remove_day_state(days[1]).unwrap();
        wh.remove_day_state(days[1]).unwrap();
        assert_eq!(read(&wh, days[1]), None);
        assert!(wh.day_state_paths(days[1]).iter().all(|p| !p.exists()));
        assert!(read(&wh, days[2]).is_some());
    }

    #[test]
    fn the_two_files_of_a_state_are_used_only_together() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::new(dir.path());
        write(&wh, day(), b"rows 1", b"rest 1");
        let [rows, rest] = wh.day_state_paths(day());
        let first = (std::fs::read(&rows).unwrap(), std::fs::read(&rest).unwrap());
        write(&wh, day(), b"rows 2", b"rest 2");
        // A run that stopped between the two writes leaves new rows beside
        // the old rest, which names the old rows.
        std::fs::write(&rest, &first.1).unwrap();
        assert_eq!(read(&wh, day()), None, "new rows, old rest");
        std::fs::write(&rows, &first.0).unwrap();
        let old = Some((cover(), b"rows 1".to_vec(), b"rest 1".to_vec()));
        assert_eq!(read(&wh, day()), old, "the old pair");
        std::fs::remove_file(&rows).unwrap();
        assert_eq!(read(&wh, day()), None, "no rows");
    }
}
