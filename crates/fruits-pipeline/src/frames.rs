//! Tables for DataFrame engines (Spark's `mapInArrow`, pandas): the work on
//! whole Arrow batches that the Python layer would otherwise do row by row.
//!
//! - [`rows_in_order`]: a batch of photos featurised, as one row per input
//!   row in input order (features and a null error, or null features and the
//!   error), in the types a DataFrame column takes;
//! - [`project_column`]: a PCA projection of a column of vectors with nulls
//!   (photos that failed) kept as nulls;
//! - [`for_frames`]: a stored table in those types (vectors as variable
//!   lists, sha256 as hex text, sizes as int32);
//! - [`chunk_bounds`]: how a listing is cut into tasks (and output parts).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{
    Array, ArrayRef, Float32Array, ListArray, RecordBatch, StringArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use fruits_pca::PcaModel;
use fruits_store::columns;

use crate::PipelineError;

/// Column of a frame row's error kind (null for a featurised photo).
pub const ERROR_KIND: &str = "error_kind";
/// Column of a frame row's error message (null for a featurised photo).
pub const ERROR: &str = "error";

fn internal(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Internal(e.to_string())
}

fn float_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Float32, true)))
}

/// The schema of [`rows_in_order`]: `path, label, split, sha256 (hex),
/// width, height, features, colour, error_kind, error`, every column nullable.
pub fn frame_schema() -> SchemaRef {
    let s = |name: &str| Field::new(name, DataType::Utf8, true);
    let i = |name: &str| Field::new(name, DataType::Int32, true);
    Arc::new(Schema::new(vec![
        s(columns::PATH),
        s(columns::LABEL),
        s(columns::SPLIT),
        s(columns::SHA256),
        i(columns::WIDTH),
        i(columns::HEIGHT),
        Field::new(columns::FEATURES, float_list(), true),
        Field::new(columns::COLOUR, float_list(), true),
        s(ERROR_KIND),
        s(ERROR),
    ]))
}

/// Which row of `table` answers each input row: the rows of `table` are
/// matched to the inputs of the same path, in order (a path given twice
/// takes two rows).
fn place(
    slots: &mut HashMap<&str, VecDeque<u32>>,
    table: &RecordBatch,
    taken: &mut [Option<u32>],
) -> Result<(), PipelineError> {
    let Some(paths) = table
        .column_by_name(columns::PATH)
        .and_then(|c| c.as_string_opt::<i32>())
    else {
        return Err(internal("a featurised table has no text path column"));
    };
    for (j, path) in paths.iter().enumerate() {
        let path = path.unwrap_or_default();
        let i = slots
            .get_mut(path)
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| {
                internal(format!(
                    "the core returned a row for {path:?}, which was not asked for"
                ))
            })?;
        taken[i as usize] = Some(j as u32);
    }
    Ok(())
}

/// The rows of `features` and `errors` (a featurised batch, the store's
/// schemas) as one batch of [`frame_schema`] whose row i answers `paths[i]`.
pub fn rows_in_order(
    paths: &[String],
    features: &RecordBatch,
    errors: &RecordBatch,
) -> Result<RecordBatch, PipelineError> {
    let mut slots: HashMap<&str, VecDeque<u32>> = HashMap::new();
    for (i, p) in paths.iter().enumerate() {
        slots.entry(p.as_str()).or_default().push_back(i as u32);
    }
    let n = paths.len();
    let mut feature_row = vec![None; n];
    let mut error_row = vec![None; n];
    if features.num_rows() > 0 {
        place(&mut slots, features, &mut feature_row)?;
    }
    if errors.num_rows() > 0 {
        place(&mut slots, errors, &mut error_row)?;
    }
    let feature_take = UInt32Array::from(feature_row);
    let error_take = UInt32Array::from(error_row);
    let pick =
        |table: &RecordBatch, name: &str, rows: &UInt32Array| -> Result<ArrayRef, PipelineError> {
            let column = table
                .column_by_name(name)
                .ok_or_else(|| internal(format!("a featurised table has no {name} column")))?;
            arrow_select::take::take(column.as_ref(), rows, None).map_err(internal)
        };
    let frame = frame_schema();
    let mut out: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(paths))];
    for name in [
        columns::LABEL,
        columns::SPLIT,
        columns::SHA256,
        columns::WIDTH,
        columns::HEIGHT,
        columns::FEATURES,
        columns::COLOUR,
    ] {
        let field = frame.field_with_name(name).map_err(internal)?;
        let column = if features.num_rows() > 0 {
            pick(features, name, &feature_take)?
        } else {
            arrow_array::new_null_array(field.data_type(), n)
        };
        out.push(to_frame_type(column, field.data_type())?);
    }
    // error_kind and error, from the errors table's kind and message.
    for stored in [columns::KIND, columns::MESSAGE] {
        out.push(if errors.num_rows() > 0 {
            to_frame_type(pick(errors, stored, &error_take)?, &DataType::Utf8)?
        } else {
            arrow_array::new_null_array(&DataType::Utf8, n)
        });
    }
    RecordBatch::try_new(frame, out).map_err(internal)
}

/// `column` in a DataFrame's type `to`: fixed-size lists become lists,
/// fixed-size binary (sha256) hex text, unsigned sizes int32.
fn to_frame_type(column: ArrayRef, to: &DataType) -> Result<ArrayRef, PipelineError> {
    if column.data_type() == to {
        return Ok(column);
    }
    if let DataType::FixedSizeBinary(_) = column.data_type() {
        return Ok(Arc::new(fruits_store::hex_column(
            column.as_fixed_size_binary(),
        )));
    }
    arrow_cast::cast(column.as_ref(), to).map_err(internal)
}

/// A stored table (features or reduced) in the types DataFrames exchange:
/// vectors as `list<float>`, `sha256` as hex text, unsigned sizes as int32.
pub fn for_frames(batch: &RecordBatch) -> Result<RecordBatch, PipelineError> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut out = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let to = match field.data_type() {
            DataType::FixedSizeList(_, _) => float_list(),
            DataType::FixedSizeBinary(_) => DataType::Utf8,
            t if t.is_unsigned_integer() => DataType::Int32,
            t => t.clone(),
        };
        out.push(to_frame_type(column.clone(), &to)?);
        fields.push(Field::new(field.name(), to, field.is_nullable()));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), out).map_err(internal)
}

/// The PCA projection of a column of vectors (`list<float>` or fixed-size
/// lists, as a DataFrame holds them): a `list<float>` column of `k` values
/// per row, null where the input row is null (a photo that failed).
pub fn project_column(model: &PcaModel, column: &dyn Array) -> Result<ArrayRef, PipelineError> {
    let n = column.len();
    let (values, offsets): (&[f32], Vec<usize>) = match column.data_type() {
        DataType::List(item) if item.data_type() == &DataType::Float32 => {
            let list = column.as_list::<i32>();
            let values = list.values().as_primitive::<Float32Type>().values();
            (
                values,
                list.value_offsets().iter().map(|o| *o as usize).collect(),
            )
        }
        DataType::FixedSizeList(item, d) if item.data_type() == &DataType::Float32 => {
            let list = column.as_fixed_size_list();
            let d = *d as usize;
            let values = list.values().as_primitive::<Float32Type>().values();
            let start = list.offset() * d;
            (values, (0..=n).map(|i| start + i * d).collect())
        }
        other => {
            return Err(PipelineError::WrongColumnType {
                dataset: "a DataFrame".into(),
                column: columns::FEATURES,
                found: other.to_string(),
            });
        }
    };
    let mut present = Vec::with_capacity(n * model.d);
    for i in (0..n).filter(|&i| column.is_valid(i)) {
        let row = &values[offsets[i]..offsets[i + 1]];
        if row.len() != model.d {
            return Err(PipelineError::WrongDimension {
                what: format!("row {i} of a DataFrame"),
                got: row.len(),
                expected: model.d,
            });
        }
        present.extend_from_slice(row);
    }
    let projected = model.transform(&present)?;
    let k = model.k;
    let mut out_offsets = Vec::with_capacity(n + 1);
    out_offsets.push(0i32);
    let mut valid = Vec::with_capacity(n);
    let mut at = 0i32;
    for i in 0..n {
        let ok = column.is_valid(i);
        if ok {
            at += k as i32;
        }
        out_offsets.push(at);
        valid.push(ok);
    }
    let list = ListArray::try_new(
        Arc::new(Field::new("item", DataType::Float32, true)),
        arrow_buffer::OffsetBuffer::new(out_offsets.into()),
        Arc::new(Float32Array::from(projected)),
        Some(valid.into()),
    )
    .map_err(internal)?;
    Ok(Arc::new(list))
}

/// Cuts `rows` inputs into tasks of at most about `chunk` rows, as evenly as
/// possible: the `(start, end)` of each, in order (one, empty, for no rows).
pub fn chunk_bounds(rows: usize, chunk: usize) -> Vec<(usize, usize)> {
    let chunks = rows.div_ceil(chunk.max(1)).max(1);
    (0..chunks)
        .map(|i| (i * rows / chunks, (i + 1) * rows / chunks))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fruits_store::{ErrorKind, ErrorRows, FeatureRows};

    fn featurised() -> (RecordBatch, RecordBatch) {
        let mut f = FeatureRows::new(2);
        let colour = [0.0; fruits_image::COLOUR_BINS];
        for (path, v) in [("b.jpg", 2.0), ("a.jpg", 1.0), ("a.jpg", 3.0)] {
            f.push(
                path,
                "Kiwi",
                Some("Test"),
                &[v as u8; 32],
                4,
                3,
                &[v, -v],
                &colour,
            )
            .expect("row");
        }
        let mut e = ErrorRows::default();
        e.push("c.jpg", ErrorKind::Decode, "bad");
        (f.finish().expect("features"), e.finish().expect("errors"))
    }

    #[test]
    fn rows_answer_their_inputs_in_order_with_nulls_where_they_failed() {
        let (features, errors) = featurised();
        let paths: Vec<String> = ["a.jpg", "c.jpg", "b.jpg", "a.jpg"]
            .map(String::from)
            .to_vec();
        let out = rows_in_order(&paths, &features, &errors).expect("frame");
        assert_eq!(out.schema(), frame_schema());
        let vectors = out
            .column_by_name(columns::FEATURES)
            .expect("features")
            .as_list::<i32>();
        let first = |i: usize| vectors.value(i).as_primitive::<Float32Type>().value(0);
        // The same path twice takes its rows in order.
        assert_eq!((first(0), first(2), first(3)), (1.0, 2.0, 3.0));
        assert!(vectors.is_null(1));
        let kinds = out
            .column_by_name(ERROR_KIND)
            .expect("kind")
            .as_string::<i32>();
        assert_eq!(
            kinds.iter().collect::<Vec<_>>(),
            [None, Some("decode"), None, None]
        );
        let sha = out
            .column_by_name(columns::SHA256)
            .expect("sha")
            .as_string::<i32>();
        assert_eq!(sha.value(2), "02".repeat(32));
        // A row for a path not asked for is the core's bug, said as such.
        let err = rows_in_order(&paths[..1], &features, &errors).expect_err("extra rows");
        assert!(err.to_string().contains("not asked for"), "{err}");
    }

    #[test]
    fn projection_keeps_nulls_and_checks_lengths() {
        let mut stats = fruits_pca::PcaStats::new(2);
        stats
            .update(&[1.0, 0.0, 0.0, 1.0, 2.0, 2.0])
            .expect("stats");
        let model = fruits_pca::fit(&stats, fruits_pca::Keep::K(1)).expect("fit");
        let column = ListArray::from_iter_primitive::<Float32Type, _, _>([
            Some(vec![Some(1.0), Some(0.0)]),
            None,
            Some(vec![Some(2.0), Some(2.0)]),
        ]);
        let out = project_column(&model, &column).expect("project");
        let out = out.as_list::<i32>();
        assert_eq!((out.len(), out.null_count()), (3, 1));
        assert!(out.is_null(1));
        let expected = model.transform(&[1.0, 0.0, 2.0, 2.0]).expect("transform");
        let got: Vec<f32> = [0, 2]
            .iter()
            .map(|&i| out.value(i).as_primitive::<Float32Type>().value(0))
            .collect();
        assert_eq!(got, expected);
        let short = ListArray::from_iter_primitive::<Float32Type, _, _>([Some(vec![Some(1.0)])]);
        assert!(matches!(
            project_column(&model, &short),
            Err(PipelineError::WrongDimension {
                got: 1,
                expected: 2,
                ..
            })
        ));
    }

    #[test]
    fn chunks_cover_every_row_once_and_evenly() {
        assert_eq!(chunk_bounds(0, 1024), vec![(0, 0)]);
        assert_eq!(chunk_bounds(10, 4), vec![(0, 3), (3, 6), (6, 10)]);
        for (rows, chunk) in [(1, 1), (1025, 1024), (20_889, 1024), (7, 100)] {
            let b = chunk_bounds(rows, chunk);
            assert_eq!(b.first().map(|c| c.0), Some(0));
            assert_eq!(b.last().map(|c| c.1), Some(rows));
            assert!(b.windows(2).all(|w| w[0].1 == w[1].0));
            assert!(b.iter().all(|(a, e)| e - a <= chunk));
        }
    }
}
