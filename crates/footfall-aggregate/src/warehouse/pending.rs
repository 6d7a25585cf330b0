//! Parquet files written batch by batch under their temporary name, in
//! fixed-size slices, so that the same rows always give the same bytes, with
//! the writer settings of every warehouse file ([`writer_properties`]).

use std::fs::File;
use std::path::PathBuf;

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{fsync, PendingFile};
use crate::error::AggregateError;

/// Rows per write to a [`PendingWriter`]'s Parquet writer (a multiple of the
/// writer's 1,024-row mini-batches).
pub const WRITE_SLICE_ROWS: usize = 8_192;

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
        fsync(&file).map_err(AggregateError::io("fsync", &self.tmp))?;
        Ok(PendingFile {
            tmp: self.tmp,
            path: self.path,
            publish: self.publish,
        })
    }
}
