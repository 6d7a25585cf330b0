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
//! * Decoded events are buffered per date, in offset order, and written as
//!   Arrow IPC files (`date=YYYY-MM-DD/<seq>.arrow`) whenever the run's
//!   buffers together reach [`SPILL_EVENTS`] events, and once more at the end
//!   of consuming. The buffers hold at most that many decoded events.
//! * [`Spill::read`] gives a date's events back in offset order, one spilled
//!   file at a time. Where the batch boundaries fall changes nothing
//!   downstream: the events files are written in fixed-size slices
//!   ([`crate::warehouse::PendingWriter`]).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use chrono::NaiveDate;

use crate::error::AggregateError;
use crate::schema::{events_schema, events_to_batch, KafkaEvent};

/// Decoded events a run holds in memory before it spills them to disk (about
/// 2 KB each).
pub(crate) const SPILL_EVENTS: usize = 32_768;

/// One partition's spilled batch.
#[derive(Default)]
pub(crate) struct Spill {
    dir: Option<PathBuf>,
    buffers: BTreeMap<NaiveDate, Vec<KafkaEvent>>,
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

    /// Adds one decoded event (the caller spills when the run's buffers are full).
    pub(crate) fn push(&mut self, event: KafkaEvent) {
        let date = event.event.local_date();
        *self.rows.entry(date).or_default() += 1;
        self.buffers.entry(date).or_default().push(event);
    }

    /// Writes every buffered event to disk and empties the buffers.
    pub(crate) fn flush(&mut self) -> Result<(), AggregateError> {
        let buffers = std::mem::take(&mut self.buffers);
        for (date, events) in buffers {
            let dir = self.dir.as_ref().ok_or_else(|| {
                AggregateError::Config("a spill without a directory cannot spill".into())
            })?;
            let dir = dir.join(format!("date={date}"));
            fs::create_dir_all(&dir).map_err(AggregateError::io("create directory", &dir))?;
            let path = dir.join(format!("{:08}.arrow", self.seq));
            self.seq += 1;
            write_ipc(&path, &events_to_batch(&events)?)?;
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

fn write_ipc(path: &Path, batch: &RecordBatch) -> Result<(), AggregateError> {
    let file = File::create(path).map_err(AggregateError::io("create", path))?;
    let mut w = FileWriter::try_new(BufWriter::new(file), &events_schema())?;
    w.write(batch)?;
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
            spill.push(KafkaEvent {
                partition: 3,
                offset: i as i64,
                event: e.clone(),
            });
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
