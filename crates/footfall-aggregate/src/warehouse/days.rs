//! The day states: per date, what a run keeps so that it summarises only
//! what its new events change (`summaries/state.rs` holds the contents).
//!
//! ```text
//! DIR/.days/date=YYYY-MM-DD.state
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
//! It is a streamed cache file (`cache/stream.rs`). Its header is the
//! fingerprint (u64), then the covered files of the date and of the previous
//! date (`ids.rs`, [`put_covered`]).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;

use chrono::NaiveDate;

use super::cache::{read_streamed, remove_cache_file, write_streamed, Fields, DAYS_DIR};
use super::ids::{put_covered, take_covered};
use super::{Covered, Warehouse};
use crate::error::AggregateError;

/// The day states' magic: kind and format version.
const MAGIC: [u8; 8] = *b"FFDAY\x04\0\0";

/// What a day state covers: the files of its date and of the previous date
/// whose rows it holds, and the fingerprint of the rules it was counted with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DayCover {
    pub fingerprint: u64,
    pub day: BTreeSet<Covered>,
    pub prev: BTreeSet<Covered>,
}

impl Warehouse {
    /// Path of the day state of a date.
    pub(crate) fn day_state_path(&self, date: NaiveDate) -> PathBuf {
        self.date_cache_path(DAYS_DIR, date, "state")
    }

    /// The day state of a date, decoded by `decode` (given what it covers,
    /// the payload and its length), with what it covers; `None` when there
    /// is none or it cannot be used (torn, another version, `decode` refused
    /// it: a decoder that refuses the cover reads no further).
    pub(crate) fn read_day_state<T>(
        &self,
        date: NaiveDate,
        decode: impl FnOnce(&DayCover, &mut dyn Read, u64) -> Option<T>,
    ) -> Result<Option<(DayCover, T)>, AggregateError> {
        read_streamed(&self.day_state_path(date), MAGIC, |header, r, len| {
            let cover = parse_header(header)?;
            let state = decode(&cover, r, len)?;
            Some((cover, state))
        })
    }

    /// Writes the day state of a date: `cover`, then what `encode` writes.
    pub(crate) fn write_day_state(
        &self,
        date: NaiveDate,
        cover: &DayCover,
        encode: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), AggregateError> {
        let mut h = cover.fingerprint.to_le_bytes().to_vec();
        put_covered(&mut h, &cover.day);
        put_covered(&mut h, &cover.prev);
        write_streamed(&self.day_state_path(date), MAGIC, &h, encode)
    }

    /// Removes the day state of a date, if any.
    pub(crate) fn remove_day_state(&self, date: NaiveDate) -> Result<(), AggregateError> {
        remove_cache_file(&self.day_state_path(date))
    }

    /// Removes the day states of the dates before `horizon`.
    pub(crate) fn remove_day_states_before(
        &self,
        horizon: NaiveDate,
    ) -> Result<(), AggregateError> {
        self.remove_cache_before(DAYS_DIR, "state", horizon)
    }
}

fn parse_header(h: &[u8]) -> Option<DayCover> {
    let mut f = Fields(h);
    let cover = DayCover {
        fingerprint: f.u64()?,
        day: take_covered(&mut f)?,
        prev: take_covered(&mut f)?,
    };
    f.is_done().then_some(cover)
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

    fn read(wh: &Warehouse, d: NaiveDate) -> Option<(DayCover, Vec<u8>)> {
        wh.read_day_state(d, |_, r, len| {
            let mut body = Vec::new();
            r.read_to_end(&mut body).ok()?;
            (body.len() as u64 == len).then_some(body)
        })
        .unwrap()
    }

    #[test]
    fn a_day_state_reads_back_as_written_and_goes_by_date() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::new(dir.path());
        assert_eq!(read(&wh, day()), None, "none yet");
        let days: Vec<NaiveDate> = (0..3).map(|i| day() + chrono::Days::new(i)).collect();
        for &d in &days {
            wh.write_day_state(d, &cover(), |w| w.write_all(b"rows"))
                .unwrap();
        }
        assert_eq!(read(&wh, day()), Some((cover(), b"rows".to_vec())));
        let refused = wh.read_day_state(day(), |_, _, _| None::<()>).unwrap();
        assert_eq!(refused, None, "the decoder refused it");
        wh.remove_day_states_before(days[1]).unwrap();
        assert_eq!(read(&wh, days[0]), None);
        wh.remove_day_state(days[1]).unwrap();
        wh.remove_day_state(days[1]).unwrap();
        assert_eq!(read(&wh, days[1]), None);
        assert!(read(&wh, days[2]).is_some());
    }
}
