//! Parquet files written batch by batch under their temporary name, in
//! fixed-size slices, so that the same rows always give the same bytes.

use std::fs::File;
use std::path::PathBuf;

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;

use super::{fsync, PendingFile};
use crate::error::AggregateError;

/// Rows per write to a [`PendingWriter`]'s Parquet writer (a multiple of the
/// writer's 1,024-row mini-batches).
pub const WRITE_SLICE_ROWS: usize = 8_192;

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
        })
    }
}
