//! Parquet files shown as rows, for failure messages that say what differs
//! rather than that bytes differ (the `parquet` feature).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// How many rows, and how many differing files, a failure message shows.
const SHOWN: usize = 40;

/// The rows of a Parquet file, one line each (`{column: value, ...}`), after
/// a line with its schema; or why the bytes are not a Parquet file.
pub fn pretty_parquet(bytes: &[u8]) -> String {
    match rows(bytes) {
        Ok((schema, rows)) => {
            let mut out = schema;
            for r in rows {
                out.push('\n');
                out.push_str(&r);
            }
            out
        }
        Err(e) => format!("not a Parquet file ({e}): {} bytes", bytes.len()),
    }
}

/// The schema line and the row lines of a Parquet file.
fn rows(bytes: &[u8]) -> Result<(String, Vec<String>), String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    let mut schema = String::new();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        if schema.is_empty() {
            schema = schema_line(&batch);
        }
        out.extend(batch_rows(&batch)?);
    }
    Ok((schema, out))
}

fn schema_line(batch: &RecordBatch) -> String {
    let fields: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("schema {{{}}}", fields.join(", "))
}

fn batch_rows(batch: &RecordBatch) -> Result<Vec<String>, String> {
    let opts = FormatOptions::default().with_null("null");
    let schema = batch.schema();
    let cols = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((0..batch.num_rows())
        .map(|i| {
            let mut line = String::from("{");
            for (n, (f, c)) in schema.fields().iter().zip(&cols).enumerate() {
                let sep = if n == 0 { "" } else { ", " };
                let _ = write!(line, "{sep}{}: {}", f.name(), c.value(i));
            }
            line.push('}');
            line
        })
        .collect())
}

/// Asserts that two snapshots ([`crate::snapshot_all`]) hold the same files
/// with the same bytes.
///
/// # Panics
///
/// When they do not, naming `what` (which run, which crash point), the files
/// only one of them has, and for each Parquet file that differs the rows
/// only one version has (or that the rows are the same and the encoding is
/// not).
pub fn assert_same_files(
    want: &BTreeMap<String, Vec<u8>>,
    got: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    if want == got {
        return;
    }
    let mut msg = format!("{what}: the files differ");
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    if !missing.is_empty() {
        let _ = write!(msg, "\nmissing: {missing:?}");
    }
    if !extra.is_empty() {
        let _ = write!(msg, "\nunexpected: {extra:?}");
    }
    let changed = want
        .iter()
        .filter_map(|(k, w)| got.get(k).filter(|g| *g != w).map(|g| (k, w, g)));
    for (name, w, g) in changed.take(SHOWN) {
        let _ = write!(msg, "\n{name} differs");
        if name.ends_with(".parquet") {
            msg.push_str(&row_diff(w, g));
        }
    }
    panic!("{msg}");
}

/// The rows only one of two Parquet files has, indented, want's first.
fn row_diff(want: &[u8], got: &[u8]) -> String {
    let (w, g) = (pretty_parquet(want), pretty_parquet(got));
    let count = |s: &str| {
        let mut m: BTreeMap<String, i64> = BTreeMap::new();
        for l in s.lines() {
            *m.entry(l.to_string()).or_default() += 1;
        }
        m
    };
    let (wc, gc) = (count(&w), count(&g));
    let mut out = String::new();
    for (sign, this, other) in [("-", &wc, &gc), ("+", &gc, &wc)] {
        let only = this
            .iter()
            .filter(|(l, n)| other.get(*l).unwrap_or(&0) < n)
            .map(|(l, _)| l);
        for l in only.take(SHOWN) {
            let _ = write!(out, "\n  {sign} {l}");
        }
    }
    if out.is_empty() {
        out.push_str(" (same rows, in another order or encoding)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use std::sync::Arc;

    fn file(ids: &[i64], names: &[Option<&str>]) -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        out
    }

    #[test]
    fn parquet_files_are_shown_as_rows() {
        let shown = pretty_parquet(&file(&[1, 2], &[Some("a"), None]));
        assert_eq!(
            shown,
            "schema {id: Int64, name: Utf8}\n{id: 1, name: a}\n{id: 2, name: null}"
        );
        assert!(pretty_parquet(b"nope").starts_with("not a Parquet file"));
    }

    #[test]
    fn a_difference_names_the_rows_of_each_side() {
        let want = BTreeMap::from([("t/day.parquet".to_string(), file(&[1, 2], &[None, None]))]);
        let mut got = want.clone();
        assert_same_files(&want, &got, "same");
        got.insert("t/day.parquet".into(), file(&[1, 3], &[None, None]));
        got.insert("t/.x.tmp".into(), b"x".to_vec());
        let err =
            std::panic::catch_unwind(|| assert_same_files(&want, &got, "crash at 7")).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.starts_with("crash at 7: the files differ"), "{msg}");
        assert!(msg.contains("unexpected: [\"t/.x.tmp\"]"), "{msg}");
        assert!(msg.contains("- {id: 2, name: null}"), "{msg}");
        assert!(msg.contains("+ {id: 3, name: null}"), "{msg}");
    }
}
