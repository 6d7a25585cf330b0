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
//! A state is two cache files, read side by side on two threads: the rows,
//! appended to by each run that adds rows (`cache/appended.rs`), and the
//! rest, streamed (`cache/stream.rs`) and written last, which names where
//! the rows file ends (its length and checksum). A reader reads the rows
//! file exactly that far; a pair that does not match (a run that stopped
//! between the two writes, a rows file rewritten since) is no state. The
//! `.state` file's header is the rows file's end (length u64, checksum u64)
//! and size (rows and strings, u64 each), the fingerprint (u64), then the
//! covered files of the date and of the previous date (`ids.rs`,
//! [`put_covered`]).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;

use chrono::NaiveDate;

use super::cache::{
    append_segment, read_header, read_segments, read_streamed, remove_cache_file, write_streamed,
    End, Fields, DAYS_DIR,
};
use super::ids::{put_covered, take_covered};
use super::{Covered, Warehouse};
use crate::error::AggregateError;

/// The day states' magic: kind and format version.
const MAGIC: [u8; 8] = *b"FFDAY\x07\0\0";
/// The rows files' magic.
const ROWS_MAGIC: [u8; 8] = *b"FFROWS\x02\0";
/// The extensions of a state's two files.
const STATE_EXT: &str = "state";
const ROWS_EXT: &str = "rows";

/// What a `.state` file says of its rows file: where it ends, and its size
/// in its reader's units (rows and strings), so that the reader makes room
/// for all of it at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowsOf {
    pub end: End,
    pub size: [u64; 2],
}

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

    /// The day state of a date: its rows file's segments given to `rows`
    /// (each with what the `.state` file says of the rows file, its payload
    /// and the payload's length) on a thread of their own
    /// while `rest` decodes the rest (given what it covers too); with what it
    /// covers and where its rows file ends. `None` when there is none or it
    /// cannot be used (torn, another version, the two files not of one
    /// state, a decoder refused it: a decoder that refuses the cover reads no
    /// further).
    pub(crate) fn read_day_state<S>(
        &self,
        date: NaiveDate,
        mut rows: impl FnMut(&RowsOf, &mut dyn Read, u64) -> Option<()> + Send,
        rest: impl FnOnce(&DayCover, &mut dyn Read, u64) -> Option<S>,
    ) -> Result<Option<(DayCover, End, S)>, AggregateError> {
        let [rows_path, rest_path] = self.day_state_paths(date);
        let header = read_header(&rest_path, MAGIC)?;
        let Some((of, _)) = header.as_deref().and_then(parse_header) else {
            return Ok(None);
        };
        let end = of.end;
        let (rows, rest) = crate::parallel::both(
            || read_segments(&rows_path, ROWS_MAGIC, end, |r, len| rows(&of, r, len)),
            || {
                read_streamed(&rest_path, MAGIC, |header, r, len| {
                    let (named, cover) = parse_header(header)?;
                    (named == of).then_some(())?;
                    Some((cover.clone(), rest(&cover, r, len)?))
                })
            },
        );
        Ok(match (rest?, rows?) {
            (Some(((cover, s), _)), Some(())) => Some((cover, end, s)),
            _ => None,
        })
    }

    /// Writes the day state of a date: what `rows` writes, appended to the
    /// rows file after `after` (`rows` is told `true`) or as a new one
    /// (`false`: when `after` is `None` or no longer fits the file), then
    /// `between` (given the rows file: a crash-injection point), then the
    /// rows file's end and `size`, `cover` and what `rest` writes.
    pub(crate) fn write_day_state(
        &self,
        date: NaiveDate,
        (cover, size): (&DayCover, [u64; 2]),
        (after, rows): (
            Option<End>,
            impl FnOnce(&mut dyn Write, bool) -> std::io::Result<()>,
        ),
        between: impl FnOnce(&std::path::Path) -> Result<(), AggregateError>,
        rest: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), AggregateError> {
        let [rows_path, rest_path] = self.day_state_paths(date);
        let end = append_segment(&rows_path, ROWS_MAGIC, after, rows)?;
        between(&rows_path)?;
        let mut h = Vec::new();
        for word in [end.len, end.sum, size[0], size[1], cover.fingerprint] {
            h.extend(word.to_le_bytes());
        }
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

/// What the rows file is and the cover, from a `.state` header.
fn parse_header(h: &[u8]) -> Option<(RowsOf, DayCover)> {
    let mut f = Fields(h);
    let rows_of = RowsOf {
        end: End {
            len: f.u64()?,
            sum: f.u64()?,
        },
        size: [f.u64()?, f.u64()?],
    };
    let cover = DayCover {
        fingerprint: f.u64()?,
        day: take_covered(&mut f)?,
        prev: take_covered(&mut f)?,
    };
    f.is_done().then_some((rows_of, cover))
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

    /// What a state holds: what it covers, each segment of its rows file and
    /// the rest, with where its rows file ends.
    type Parts = (DayCover, Vec<Vec<u8>>, Vec<u8>);

    fn body(r: &mut dyn Read, len: u64) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        r.read_to_end(&mut body).ok()?;
        (body.len() as u64 == len).then_some(body)
    }

    fn read_end(wh: &Warehouse, d: NaiveDate) -> Option<(Parts, End)> {
        let mut rows = Vec::new();
        let read = wh.read_day_state(
            d,
            |of, r, len| {
                assert_eq!(of.size, [3, 4]);
                body(r, len).map(|b| rows.push(b))
            },
            |_, r, len| body(r, len),
        );
        read.unwrap()
            .map(|(cover, end, rest)| ((cover, rows, rest), end))
    }

    fn read(wh: &Warehouse, d: NaiveDate) -> Option<Parts> {
        read_end(wh, d).map(|(parts, _)| parts)
    }

    /// Writes a state whose rows segment is `rows`, after `after`; gives
    /// whether it continued the rows file.
    fn write_after(
        wh: &Warehouse,
        d: NaiveDate,
        after: Option<End>,
        rows: &[u8],
        rest: &[u8],
    ) -> bool {
        let mut continued = false;
        let write_rows = |w: &mut dyn Write, c| {
            continued = c;
            w.write_all(rows)
        };
        let state = (&cover(), [3, 4]);
        let none = |_: &std::path::Path| Ok(());
        wh.write_day_state(d, state, (after, write_rows), none, |w| w.write_all(rest))
            .unwrap();
        continued
    }

    fn write(wh: &Warehouse, d: NaiveDate, rows: &[u8], rest: &[u8]) {
        assert!(!write_after(wh, d, None, rows, rest));
    }

    fn parts(rows: &[&[u8]], rest: &[u8]) -> Option<Parts> {
        let rows = rows.iter().map(|r| r.to_vec()).collect();
        Some((cover(), rows, rest.to_vec()))
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
        assert_eq!(read(&wh, day()), parts(&[b"rows"], b"rest"));
        let refused = wh
            .read_day_state(
                day(),
                |_, r, len| body(r, len).map(drop),
                |_, _, _| None::<()>,
            )
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
        assert_eq!(
            read(&wh, day()),
            parts(&[b"rows 1"], b"rest 1"),
            "the old pair"
        );
        std::fs::remove_file(&rows).unwrap();
        assert_eq!(read(&wh, day()), None, "no rows");
    }

    #[test]
    fn rows_are_appended_and_read_as_far_as_the_rest_names() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::new(dir.path());
        write(&wh, day(), b"a", b"rest 1");
        let (_, one) = read_end(&wh, day()).unwrap();
        assert!(write_after(&wh, day(), Some(one), b"bb", b"rest 2"));
        let (got, two) = read_end(&wh, day()).unwrap();
        assert_eq!(Some(got), parts(&[b"a", b"bb"], b"rest 2"));
        let rest = std::fs::read(&wh.day_state_paths(day())[1]).unwrap();
        // A run appends and stops before it writes its rest: the rows file
        // is longer than the rest names, and reads as before.
        assert!(write_after(&wh, day(), Some(two), b"lost", b"rest 3"));
        std::fs::write(&wh.day_state_paths(day())[1], &rest).unwrap();
        assert_eq!(read(&wh, day()), parts(&[b"a", b"bb"], b"rest 2"));
        // The next run appends after the end it read.
        assert!(write_after(&wh, day(), Some(two), b"ccc", b"rest 4"));
        assert_eq!(read(&wh, day()), parts(&[b"a", b"bb", b"ccc"], b"rest 4"));
    }
}
