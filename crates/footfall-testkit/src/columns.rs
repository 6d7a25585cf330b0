//! A record batch's columns as plain vectors, by name, for assertions: each
//! panics when the batch has no such column or it is of another type.

use arrow::array::{Array, ArrowPrimitiveType, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type};

/// The values of a primitive column (nulls read as their slot's value).
fn values<T: ArrowPrimitiveType>(b: &RecordBatch, name: &str) -> Vec<T::Native> {
    let col = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    col.as_primitive::<T>().values().to_vec()
}

/// An `Int64` column.
pub fn i64s(b: &RecordBatch, name: &str) -> Vec<i64> {
    values::<Int64Type>(b, name)
}

/// An `Int32` column.
pub fn i32s(b: &RecordBatch, name: &str) -> Vec<i32> {
    values::<Int32Type>(b, name)
}

/// A `Float64` column.
pub fn f64s(b: &RecordBatch, name: &str) -> Vec<f64> {
    values::<Float64Type>(b, name)
}

/// A `Utf8` column, nulls as `None`.
pub fn strs(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let col = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let a = col
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap_or_else(|| panic!("column {name} is not Utf8"));
    (0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
        .collect()
}
