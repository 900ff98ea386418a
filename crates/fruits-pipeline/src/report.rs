//! The files an evaluation leaves behind: `report.json` (every figure),
//! `per_class.csv` (precision, recall, F1 and support per class),
//! `confusion.png` and `revenue.png`.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use fruits_store::Location;

use crate::PipelineError;
use crate::classify::Evaluation;

/// Name of the JSON report.
pub const REPORT_JSON: &str = "report.json";
/// Name of the per-class table.
pub const PER_CLASS_CSV: &str = "per_class.csv";
/// Name of the confusion matrix chart.
pub const CONFUSION_PNG: &str = "confusion.png";
/// Name of the net-revenue chart.
pub const REVENUE_PNG: &str = "revenue.png";

/// The per-class scores as a table: class, support, precision, recall, f1.
pub fn per_class_table(eval: &Evaluation) -> Result<RecordBatch, PipelineError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("class", DataType::Utf8, false),
        Field::new("support", DataType::UInt64, false),
        Field::new("precision", DataType::Float64, false),
        Field::new("recall", DataType::Float64, false),
        Field::new("f1", DataType::Float64, false),
    ]));
    let rows = &eval.per_class;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(c, _)| c.as_str()),
        )),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|(_, s)| s.support),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(_, s)| s.precision),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(_, s)| s.recall),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(_, s)| s.f1),
        )),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| PipelineError::Internal(e.to_string()))
}

/// Writes the evaluation's files into `out`. The report and the table are
/// required; a chart that cannot be drawn (no font, say) is returned as a
/// warning instead of failing the evaluation.
pub fn write_evaluation(
    eval: &Evaluation,
    classes: &[String],
    out: &Location,
) -> Result<Vec<PipelineError>, PipelineError> {
    let json =
        serde_json::to_vec_pretty(eval).map_err(|e| PipelineError::Internal(e.to_string()))?;
    out.put(REPORT_JSON, json.into())?;
    let mut csv = Vec::new();
    {
        let mut writer = arrow_csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut csv);
        writer
            .write(&per_class_table(eval)?)
            .map_err(|e| PipelineError::Internal(e.to_string()))?;
    }
    out.put(PER_CLASS_CSV, csv.into())?;

    let mut warnings = Vec::new();
    let title = format!(
        "{} (rows: true class, columns: predicted)",
        eval.headline("photos")
    );
    match fruits_report::confusion_png(&eval.confusion.counts, classes, &title) {
        Ok(png) => out.put(CONFUSION_PNG, png.into())?,
        Err(e) => warnings.push(e.into()),
    }
    let curve: Vec<(f64, f64)> = eval
        .revenue_curve
        .iter()
        .map(|p| (p.threshold, p.net_per_photo))
        .collect();
    let best = (eval.revenue_best.threshold, eval.revenue_best.net_per_photo);
    match fruits_report::revenue_png(&curve, best) {
        Ok(png) => out.put(REVENUE_PNG, png.into())?,
        Err(e) => warnings.push(e.into()),
    }
    Ok(warnings)
}
