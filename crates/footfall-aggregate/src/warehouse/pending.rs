//! Parquet files written batch by batch under their temporary name, in
//! fixed-size slices, so that the same rows always give the same bytes, with
//! the writer settings of every warehouse file ([`writer_properties`]).
//!
//! A file written from one whole batch ([`PendingWriter::write_whole`]) has
//! its columns encoded side by side on a few threads, each column by its own
//! writer over the same slices, then put into place in column order: the
//! same bytes as writing the batch slice by slice
//! (`tests::columns_encoded_side_by_side_give_the_same_bytes`).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Mutex;

use arrow::array::RecordBatch;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{fsync, PendingFile};
use crate::error::AggregateError;

/// Rows per write to a [`PendingWriter`]'s Parquet writer (a multiple of the
/// writer's 1,024-row mini-batches).
pub const WRITE_SLICE_ROWS: usize = 8_192;

/// Rows from which a batch has its columns worked on side by side (encoded
/// by [`PendingWriter::write_whole`], built by the summaries): below,
/// threads cost more than they save.
pub const SIDE_BY_SIDE_ROWS: usize = 65_536;

/// The threads that work on the columns of a batch of `rows` rows side by
/// side: the run's default from [`SIDE_BY_SIDE_ROWS`] rows on, else one.
pub(crate) fn side_by_side_threads(rows: usize) -> usize {
    match rows >= SIDE_BY_SIDE_ROWS {
        true => crate::parallel::default_threads(),
        false => 1,
    }
}

/// Columns of random identifiers (every `event_id` is distinct, a
/// `visitor_id` is random within its day): min/max statistics of them prune
/// nothing, and an `event_id` dictionary never repeats a value, so both cost
/// write time and bytes for no reader.
const RANDOM_ID_COLUMNS: [(&str, bool); 2] = [("event_id", false), ("visitor_id", true)];

/// Parquet writer settings of every warehouse file: zstd, page-level
/// statistics (but none of [`RANDOM_ID_COLUMNS`]).
pub fn writer_properties() -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("zstd level 3 is valid"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page);
    for (column, dictionary) in RANDOM_ID_COLUMNS {
        let path = ColumnPath::from(column);
        props = props
            .set_column_statistics_enabled(path.clone(), EnabledStatistics::None)
            .set_column_dictionary_enabled(path, dictionary);
    }
    props.build()
}

/// A Parquet file being written, batch by batch, under its temporary name.
///
/// The rows reach the Parquet writer in slices of exactly
/// [`WRITE_SLICE_ROWS`] (the last one shorter), however the caller's batches
/// are cut: page and row-group boundaries depend on the rows alone, so the
/// same rows always give the same bytes.
pub struct PendingWriter {
    pub(super) writer: ArrowWriter<File>,
    pub(super) held: Vec<RecordBatch>,
    pub(super) held_rows: usize,
    pub(super) rows: u64,
    pub(super) tmp: PathBuf,
    pub(super) path: PathBuf,
    pub(super) publish: Option<super::Publish>,
}

impl PendingWriter {
    /// Adds `batch`'s rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), AggregateError> {
        self.rows += batch.num_rows() as u64;
        self.held_rows += batch.num_rows();
        self.held.push(batch.clone());
        if self.held_rows >= WRITE_SLICE_ROWS {
            self.write_held(false)?;
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the held rows in whole slices (and, `last`, the rest).
    fn write_held(&mut self, last: bool) -> Result<(), AggregateError> {
        if self.held.is_empty() {
            return Ok(());
        }
        let all = match self.held.len() {
            1 => self.held.pop().expect("one batch"),
            _ => arrow::compute::concat_batches(&self.held[0].schema(), &self.held)?,
        };
        self.held.clear();
        let mut at = 0;
        while all.num_rows() - at >= WRITE_SLICE_ROWS || (last && at < all.num_rows()) {
            let n = WRITE_SLICE_ROWS.min(all.num_rows() - at);
            self.writer
                .write(&all.slice(at, n))
                .map_err(AggregateError::parquet(&self.tmp))?;
            at += n;
        }
        self.held_rows = all.num_rows() - at;
        if self.held_rows > 0 {
            self.held.push(all.slice(at, self.held_rows));
        }
        Ok(())
    }

    /// Closes and fsyncs the file; it is still invisible until persisted.
    pub fn finish(mut self) -> Result<PendingFile, AggregateError> {
        self.write_held(true)?;
        let file = self
            .writer
            .into_inner()
            .map_err(AggregateError::parquet(&self.tmp))?;
        pending_file(file, self.tmp, self.path, self.publish)
    }

    /// Writes `batch` as the whole file, its columns encoded on up to
    /// `threads` threads, then closes and fsyncs it as [`Self::finish`] does:
    /// the same bytes as [`Self::write`] then [`Self::finish`]. For a writer
    /// that has nothing yet.
    pub fn write_whole(
        mut self,
        batch: &RecordBatch,
        threads: usize,
    ) -> Result<PendingFile, AggregateError> {
        let Some(row_group) = row_group_rows(batch, threads).filter(|_| self.rows == 0) else {
            self.write(batch)?;
            return self.finish();
        };
        let PendingWriter {
            writer,
            tmp,
            path,
            publish,
            ..
        } = self;
        let out = write_row_groups(writer, batch, row_group, threads)
            .map_err(AggregateError::parquet(&tmp))?;
        pending_file(out, tmp, path, publish)
    }
}

/// `batch` written by `writer` in row groups of `row_group` rows, each
/// row group's columns encoded side by side; the closed file.
fn write_row_groups(
    writer: ArrowWriter<File>,
    batch: &RecordBatch,
    row_group: usize,
    threads: usize,
) -> parquet::errors::Result<File> {
    let (mut file, columns) = writer.into_serialized_writer()?;
    for (at, n) in slices(batch.num_rows(), row_group) {
        let writers = columns.create_column_writers(file.flushed_row_groups().len())?;
        let chunks = encode_columns(writers, &batch.slice(at, n), threads)?;
        let mut group = file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut group)?;
        }
        group.close()?;
    }
    file.into_inner()
}

/// (start, length) of consecutive pieces of `size` rows (the last shorter)
/// covering `len` rows.
fn slices(len: usize, size: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..len)
        .step_by(size)
        .map(move |at| (at, size.min(len - at)))
}

/// Fsyncs the closed `file`, still invisible until persisted.
fn pending_file(
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    publish: Option<super::Publish>,
) -> Result<PendingFile, AggregateError> {
    fsync(&file).map_err(AggregateError::io("fsync", &tmp))?;
    Ok(PendingFile { tmp, path, publish })
}

/// The rows of a row group when `batch` can be written by
/// [`PendingWriter::write_whole`] side by side: flat columns, more than one
/// thread, and row groups cut by rows alone at a whole number of slices.
fn row_group_rows(batch: &RecordBatch, threads: usize) -> Option<usize> {
    let props = writer_properties();
    let schema = batch.schema();
    let flat = schema.fields().iter().all(|f| !f.data_type().is_nested());
    let rows = props.max_row_group_row_count()?;
    let by_rows = props.max_row_group_bytes().is_none() && rows % WRITE_SLICE_ROWS == 0;
    (flat && by_rows && threads > 1).then_some(rows)
}

/// One row group's columns encoded, each by its own writer over the slices
/// [`PendingWriter::write`] would give it, on up to `threads` threads; the
/// chunks in column order.
fn encode_columns(
    writers: Vec<ArrowColumnWriter>,
    batch: &RecordBatch,
    threads: usize,
) -> parquet::errors::Result<Vec<ArrowColumnChunk>> {
    let schema = batch.schema();
    let writers: Vec<_> = writers.into_iter().map(|w| Mutex::new(Some(w))).collect();
    let columns: Vec<usize> = (0..writers.len()).collect();
    let encode = |&i: &usize| {
        let taken = writers[i].lock().map(|mut w| w.take());
        let mut w = taken.ok().flatten().expect("each column is encoded once");
        for (at, n) in slices(batch.num_rows(), WRITE_SLICE_ROWS) {
            for leaf in compute_leaves(schema.field(i), &batch.column(i).slice(at, n))? {
                w.write(&leaf)?;
            }
        }
        w.close()
    };
    crate::parallel::map(&columns, threads, encode, |_| {})
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek};
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;
    use crate::testdata::Rng;

    /// Columns of each kind a summary has: repeated and random strings (with
    /// and without nulls, and the two [`RANDOM_ID_COLUMNS`]), integers,
    /// floats, booleans and timestamps.
    fn mixed(n: usize) -> RecordBatch {
        let mut rng = Rng::new(7);
        let mut ids = |p: u64| -> ArrayRef {
            let v = (0..n).map(|_| (!rng.pct(p)).then(|| format!("{:016x}", rng.next_u64())));
            Arc::new(v.collect::<StringArray>())
        };
        let (visitor, event, sparse) = (ids(0), ids(0), ids(40));
        let routes = (0..n).map(|i| format!("/r/{}", (i * 7919) % 311));
        let columns: Vec<(&str, ArrayRef, bool)> = vec![
            (
                "route",
                Arc::new(StringArray::from_iter_values(routes)),
                false,
            ),
            ("visitor_id", visitor, false),
            ("event_id", event, false),
            ("source", sparse, true),
            (
                "n",
                Arc::new(Int64Array::from_iter_values(
                    (0..n as i64).map(|i| i * i % 1009),
                )),
                false,
            ),
            (
                "s",
                Arc::new(Float64Array::from_iter_values(
                    (0..n).map(|i| i as f64 / 7.0),
                )),
                false,
            ),
            (
                "b",
                Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i % 3 == 0)))),
                false,
            ),
            (
                "t",
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        (0..n as i64).map(|i| i * 1_000_003),
                    )
                    .with_timezone("UTC"),
                ),
                false,
            ),
        ];
        RecordBatch::try_from_iter_with_nullable(columns).unwrap()
    }

    /// The bytes of `batch` written slice by slice by an [`ArrowWriter`].
    fn serial(batch: &RecordBatch, props: WriterProperties) -> Vec<u8> {
        let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).unwrap();
        for (at, n) in slices(batch.num_rows(), WRITE_SLICE_ROWS) {
            w.write(&batch.slice(at, n)).unwrap();
        }
        w.into_inner().unwrap()
    }

    #[test]
    fn columns_encoded_side_by_side_give_the_same_bytes() {
        let batch = mixed(3 * WRITE_SLICE_ROWS + 123);
        let want = serial(&batch, writer_properties());
        let dir = tempfile::tempdir().unwrap();
        let wh = super::super::Warehouse::new(dir.path());
        for threads in [1, 2, 3, 8] {
            assert_eq!(
                row_group_rows(&batch, threads).is_some(),
                threads > 1,
                "{threads} threads"
            );
            let path = dir.path().join(format!("t{threads}.parquet"));
            let w = wh.pending_writer(&path, batch.schema()).unwrap();
            let file = w.write_whole(&batch, threads).unwrap().persist().unwrap();
            assert!(std::fs::read(file).unwrap() == want, "{threads} threads");
        }
        // Several row groups, cut where the writer would cut them.
        let rows = 2 * WRITE_SLICE_ROWS;
        let small = || {
            let props = writer_properties().into_builder();
            props.set_max_row_group_row_count(Some(rows)).build()
        };
        let want = serial(&batch, small());
        for threads in [2, 3] {
            let out = tempfile::tempfile().unwrap();
            let w = ArrowWriter::try_new(out, batch.schema(), Some(small())).unwrap();
            let mut file = write_row_groups(w, &batch, rows, threads).unwrap();
            let mut got = Vec::new();
            file.rewind().unwrap();
            file.read_to_end(&mut got).unwrap();
            assert!(got == want, "{threads} threads, row groups of {rows}");
            let read = SerializedFileReader::new(file).unwrap();
            assert_eq!(read.metadata().num_row_groups(), 2);
        }
    }
}
