//! The run's batch on local disk: what keeps a run's memory flat whatever
//! its size.
//!
//! Contract:
//!
//! * Each partition a run reads has its own spill directory
//!   (`<warehouse>/.spill/p<partition>/`; a temporary directory for a dry run
//!   without a warehouse). Only the run that owns the partition (the
//!   warehouse lock, or in shared mode the partition's lock) touches it: it is
//!   emptied when the partition is assigned and removed when the run is done
//!   with it. A crash leaves it behind for the next owner to empty. Nothing in
//!   it counts: it is scratch, never read by another run or by analysts.
//! * Decoded events arrive as events batches of one date each
//!   ([`by_date`], built where they were decoded), are buffered per date in
//!   offset order, and are written as Arrow IPC files
//!   (`date=YYYY-MM-DD/<seq>.arrow`) whenever the run's buffers together reach
//!   [`SPILL_EVENTS`] events, and once more at the end of consuming. The
//!   buffers hold at most that many events (plus one decoded chunk).
//! * [`Spill::read`] gives a date's events back in offset order, one spilled
//!   file at a time. Where the batch boundaries fall changes nothing
//!   downstream: the events files are written in fixed-size slices
//!   ([`crate::warehouse::PendingWriter`]).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use chrono::NaiveDate;

use crate::error::AggregateError;
use crate::schema::{events_schema, events_to_batch, KafkaEvent};

/// Decoded events a run holds in memory before it spills them to disk (as
/// Arrow columns, about 1 KB each).
pub(crate) const SPILL_EVENTS: usize = 32_768;

/// One partition's spilled batch.
#[derive(Default)]
pub(crate) struct Spill {
    dir: Option<PathBuf>,
    buffers: BTreeMap<NaiveDate, Vec<RecordBatch>>,
    files: BTreeMap<NaiveDate, Vec<PathBuf>>,
    rows: BTreeMap<NaiveDate, u64>,
    seq: u64,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill")
            .field("dir", &self.dir)
            .field("rows", &self.rows)
            .finish()
    }
}

impl Spill {
    /// An empty spill in `dir`, which is emptied first (a crashed run's leftovers).
    pub(crate) fn new(dir: PathBuf) -> Result<Spill, AggregateError> {
        remove_dir(&dir)?;
        let mut spill = Spill::default();
        spill.dir = Some(dir);
        Ok(spill)
    }

    /// The spill directory of `partition` under `root`.
    pub(crate) fn dir_of(root: &Path, partition: i32) -> PathBuf {
        root.join(format!("p{partition}"))
    }

    /// Adds a batch of decoded events of `date`, the next in offset order
    /// (the caller spills when the run's buffers are full).
    pub(crate) fn push(&mut self, date: NaiveDate, batch: RecordBatch) {
        *self.rows.entry(date).or_default() += batch.num_rows() as u64;
        self.buffers.entry(date).or_default().push(batch);
    }

    /// Adds decoded events, in offset order, whatever their dates (the run's
    /// decoder threads build the batches themselves, [`by_date`]).
    #[cfg(test)]
    pub(crate) fn push_events(&mut self, events: &[KafkaEvent]) -> Result<(), AggregateError> {
        for (date, batch) in by_date(events)? {
            self.push(date, batch);
        }
        Ok(())
    }

    /// Writes every buffered event to disk and empties the buffers.
    pub(crate) fn flush(&mut self) -> Result<(), AggregateError> {
        let buffers = std::mem::take(&mut self.buffers);
        for (date, batches) in buffers {
            let dir = self.dir.as_ref().ok_or_else(|| {
                AggregateError::Config("a spill without a directory cannot spill".into())
            })?;
            let dir = dir.join(format!("date={date}"));
            fs::create_dir_all(&dir).map_err(AggregateError::io("create directory", &dir))?;
            let path = dir.join(format!("{:08}.arrow", self.seq));
            self.seq += 1;
            write_ipc(&path, &batches)?;
            self.files.entry(date).or_default().push(path);
        }
        Ok(())
    }

    /// The dates of the spilled events, with how many events each has.
    pub(crate) fn dates(&self) -> &BTreeMap<NaiveDate, u64> {
        &self.rows
    }

    /// How many events the spill holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.rows.values().sum()
    }

    /// The events of `date`, in offset order, one spilled file at a time
    /// (after [`Spill::flush`]).
    pub(crate) fn read(
        &self,
        date: NaiveDate,
    ) -> impl Iterator<Item = Result<RecordBatch, AggregateError>> + '_ {
        self.files
            .get(&date)
            .into_iter()
            .flatten()
            .flat_map(|path| match read_ipc(path) {
                Ok(batches) => batches.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            if let Err(e) = remove_dir(dir) {
                tracing::warn!(error = %e, "could not remove a spill directory");
            }
        }
    }
}

fn remove_dir(dir: &Path) -> Result<(), AggregateError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(AggregateError::io("remove", dir)(e))
        }
        _ => Ok(()),
    }
}

/// Events (in offset order) as one events batch per date, dates in order of
/// first appearance, offset order kept within each.
pub(crate) fn by_date(
    events: &[KafkaEvent],
) -> Result<Vec<(NaiveDate, RecordBatch)>, AggregateError> {
    let dates: Vec<NaiveDate> = events.iter().map(|e| e.event.local_date()).collect();
    let mut distinct: Vec<NaiveDate> = Vec::new();
    for &d in &dates {
        if !distinct.contains(&d) {
            distinct.push(d);
        }
    }
    let all = events_to_batch(events)?;
    if distinct.len() == 1 {
        return Ok(vec![(distinct[0], all)]);
    }
    distinct
        .into_iter()
        .map(|date| {
            let mask = BooleanArray::from_iter(dates.iter().map(|&d| Some(d == date)));
            Ok((date, filter_record_batch(&all, &mask)?))
        })
        .collect()
}

fn write_ipc(path: &Path, batches: &[RecordBatch]) -> Result<(), AggregateError> {
    let file = File::create(path).map_err(AggregateError::io("create", path))?;
    let mut w = FileWriter::try_new(BufWriter::new(file), &events_schema())?;
    for batch in batches {
        w.write(batch)?;
    }
    w.finish()?;
    Ok(())
}

fn read_ipc(path: &Path) -> Result<Vec<RecordBatch>, AggregateError> {
    let file = File::open(path).map_err(AggregateError::io("open", path))?;
    FileReader::try_new(BufReader::new(file), None)?
        .map(|b| b.map_err(AggregateError::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn by_date_splits_events_by_date_keeping_their_order() {
        let day = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let mut events: Vec<KafkaEvent> = testdata::events(7, day, 3, 5)
            .into_iter()
            .enumerate()
            .map(|(i, event)| KafkaEvent {
                partition: 1,
                offset: i as i64,
                event,
            })
            .collect();
        // Interleave the dates.
        events.sort_by_key(|e| (e.offset % 4, e.offset));
        let split = by_date(&events).unwrap();
        assert_eq!(split.len(), 3);
        let mut seen = Vec::new();
        for (date, batch) in &split {
            let want: Vec<&KafkaEvent> = events
                .iter()
                .filter(|e| e.event.local_date() == *date)
                .collect();
            let back = crate::schema::batch_to_events(batch).unwrap();
            assert_eq!(back.len(), want.len());
            assert!(back.iter().zip(&want).all(|(b, w)| b == *w), "{date}");
            seen.push(*date);
        }
        let mut first = Vec::new();
        for e in &events {
            if !first.contains(&e.event.local_date()) {
                first.push(e.event.local_date());
            }
        }
        assert_eq!(seen, first, "dates in order of first appearance");
        assert!(by_date(&[]).unwrap().is_empty());
    }

    #[test]
    fn spilled_events_come_back_by_date_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let events = testdata::events(
            7,
            chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
            3,
            5,
        );
        let mut spill = Spill::new(Spill::dir_of(dir.path(), 3)).unwrap();
        for (i, e) in events.iter().enumerate() {
            let event = KafkaEvent {
                partition: 3,
                offset: i as i64,
                event: e.clone(),
            };
            spill.push_events(&[event]).unwrap();
            if i % 7 == 0 {
                spill.flush().unwrap();
            }
        }
        spill.flush().unwrap();
        assert_eq!(spill.len(), events.len() as u64);
        let mut back = 0;
        for (&date, &n) in spill.dates() {
            let batches: Vec<RecordBatch> = spill.read(date).collect::<Result<_, _>>().unwrap();
            let offsets: Vec<i64> = batches
                .iter()
                .flat_map(|b| {
                    crate::schema::Cols::new(b)
                        .i64("kafka_offset")
                        .unwrap()
                        .values()
                        .to_vec()
                })
                .collect();
            assert_eq!(offsets.len() as u64, n);
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
            for &o in &offsets {
                assert_eq!(events[o as usize].local_date(), date);
            }
            back += n;
        }
        assert_eq!(back, events.len() as u64);
        let root = Spill::dir_of(dir.path(), 3);
        assert!(root.exists());
        drop(spill);
        assert!(!root.exists(), "the spill directory goes with the spill");
    }
}
