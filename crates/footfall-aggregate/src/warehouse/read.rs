//! Reading the warehouse's Parquet files back: whole, or one batch at a
//! time with a row filter evaluated before the other columns are decoded.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, ParquetRecordBatchReaderBuilder, RowFilter};
use parquet::arrow::ProjectionMask;

use crate::error::AggregateError;

/// Reads a Parquet file, optionally only some columns (by name).
pub fn read_parquet(
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, AggregateError> {
    read_parquet_iter(path, columns, None)?.collect()
}

/// A row filter for [`read_parquet_iter`]: the columns it reads, and which
/// rows of a batch of them to keep.
pub(crate) type RowKeep = (
    &'static [&'static str],
    Box<dyn FnMut(&RecordBatch) -> Result<arrow::array::BooleanArray, AggregateError> + Send>,
);

/// The batches of a Parquet file one at a time (of `columns`, or all), with
/// only the rows `keep` keeps: its columns are decoded first, the others only
/// for the rows kept.
pub(crate) fn read_parquet_iter(
    path: &Path,
    columns: Option<&[&str]>,
    keep: Option<RowKeep>,
) -> Result<impl Iterator<Item = Result<RecordBatch, AggregateError>>, AggregateError> {
    let file = File::open(path).map_err(AggregateError::io("open", path))?;
    let mut builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(AggregateError::parquet(path))?;
    if let Some(cols) = columns {
        let mask = ProjectionMask::columns(builder.parquet_schema(), cols.iter().copied());
        builder = builder.with_projection(mask);
    }
    if let Some((cols, mut f)) = keep {
        let mask = ProjectionMask::columns(builder.parquet_schema(), cols.iter().copied());
        let predicate = ArrowPredicateFn::new(mask, move |b| {
            f(&b).map_err(|e| arrow::error::ArrowError::ExternalError(Box::new(e)))
        });
        builder = builder.with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
    }
    let reader = builder
        .with_batch_size(64 * 1024)
        .build()
        .map_err(AggregateError::parquet(path))?;
    let path = path.to_path_buf();
    Ok(reader.map(move |b| {
        b.map_err(|e| AggregateError::Parquet {
            path: path.clone(),
            source: e.into(),
        })
    }))
}

/// The batches of several Parquet files, one file after another, each with
/// its own row filter (see [`read_parquet_iter`]); a file that cannot be
/// opened is an error item in its place.
pub(crate) fn read_parquet_each<'a, P: AsRef<Path> + 'a>(
    files: impl Iterator<Item = (P, Option<RowKeep>)> + Send + 'a,
    columns: Option<&'a [&'a str]>,
) -> impl Iterator<Item = Result<RecordBatch, AggregateError>> + Send + 'a {
    files.flat_map(move |(path, keep)| {
        type Batches = Box<dyn Iterator<Item = Result<RecordBatch, AggregateError>> + Send>;
        match read_parquet_iter(path.as_ref(), columns, keep) {
            Ok(it) => Box::new(it) as Batches,
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    })
}

/// Concatenates batches of one schema (an empty list gives an empty batch of `schema`).
pub(crate) fn concat(
    schema: &arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<RecordBatch, AggregateError> {
    match batches {
        [] => Ok(RecordBatch::new_empty(Arc::clone(schema))),
        [one] => Ok(one.clone()),
        many => Ok(arrow::compute::concat_batches(schema, many)?),
    }
}
