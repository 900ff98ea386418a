//! CSV export: the same rows as the Parquet output, vectors spread over columns.

use std::io::Write;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::{Dataset, PartKind, StoreError, columns};

/// Column-name prefix used for the elements of a vector column.
fn element_prefix(column: &str) -> &str {
    match column {
        columns::FEATURES => "f",
        columns::PCA => "pc",
        other => other,
    }
}

/// Flattens one batch: vector columns become `f0..fN` (or `<name>0..`), binary
/// hashes become hex strings; other columns pass through.
fn flatten(batch: &RecordBatch) -> Result<RecordBatch, StoreError> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        // The other views' vectors are for the identifier: the CSV keeps one
        // vector per photo, as it always has.
        if field.name() == columns::VIEWS {
            continue;
        }
        match field.data_type() {
            DataType::FixedSizeList(_, dim) => {
                let list = column.as_fixed_size_list();
                let values = list
                    .values()
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .ok_or_else(|| {
                        StoreError::Arrow(format!("{} is not a float vector", field.name()))
                    })?;
                let dim = *dim as usize;
                let prefix = element_prefix(field.name());
                let base = list.offset() * dim;
                for j in 0..dim {
                    let col: Float32Array = (0..list.len())
                        .map(|i| values.value(base + i * dim + j))
                        .collect();
                    fields.push(Field::new(format!("{prefix}{j}"), DataType::Float32, false));
                    columns.push(Arc::new(col));
                }
            }
            DataType::FixedSizeBinary(_) => {
                let hexes = crate::hex_column(column.as_fixed_size_binary());
                fields.push(Field::new(
                    field.name(),
                    DataType::Utf8,
                    field.is_nullable(),
                ));
                columns.push(Arc::new(hexes));
            }
            DataType::Utf8 => {
                let text = column.as_string::<i32>();
                let safe: StringArray = text.iter().map(|v| v.map(neutralise)).collect();
                fields.push(field.as_ref().clone());
                columns.push(Arc::new(safe));
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| StoreError::Arrow(e.to_string()))
}

/// A text cell as a spreadsheet will show it, not run it: a cell starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return (a folder named
/// `=HYPERLINK(...)`) gets a leading `'`, as OWASP's CSV-injection advice
/// says. Numbers are written as numbers and never touched.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// Writes the `kind` rows of `dataset` as CSV with a header; returns the row count.
pub fn export_csv(dataset: &Dataset, kind: PartKind, out: impl Write) -> Result<u64, StoreError> {
    let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(out);
    let mut rows = 0;
    for batch in dataset.batches(kind, 1024) {
        let flat = flatten(&batch?)?;
        rows += flat.num_rows() as u64;
        writer
            .write(&flat)
            .map_err(|e| StoreError::Arrow(e.to_string()))?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_other_text_kept() {
        assert_eq!(
            neutralise("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        for bad in ["+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(neutralise(bad).starts_with('\''), "{bad}");
        }
        assert_eq!(
            neutralise("Training/Apple 1/r_1.jpg"),
            "Training/Apple 1/r_1.jpg"
        );
        assert_eq!(neutralise(""), "");
    }
}
