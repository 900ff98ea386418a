//! The two plots written beside a fitted PCA (`pca/`), by `fruits pca fit` and
//! `fruits run` from their pass over the features, and by the Spark job from
//! the rows its tasks kept while projecting parts.

use fruits_pca::{Keep, PcaModel};
use fruits_store::Location;

use crate::PipelineError;

/// The cumulative explained variance against k, with the chosen k marked.
pub const VARIANCE_PNG: &str = "explained_variance.png";
/// The sampled rows on the first two components, coloured by class.
pub const PROJECTION_PNG: &str = "projection.png";

/// Classes named in the projection plot's legend (the largest ones); the
/// others are drawn grey as "other classes".
pub const LEGEND_CLASSES: usize = 12;

/// Writes [`VARIANCE_PNG`] and, when k >= 2, [`PROJECTION_PNG`] into `out`.
/// `points` are (PC1, PC2) of the sampled rows, `labels` their classes; `rows`
/// is the size of the whole dataset (the title says how many are shown).
pub fn write_pca_plots(
    out: &Location,
    model: &PcaModel,
    points: &[(f32, f32)],
    labels: &[String],
    rows: u64,
) -> Result<(), PipelineError> {
    let target = match model.keep {
        Keep::Variance(v) => Some(v),
        Keep::K(_) => None,
    };
    let png =
        fruits_report::cumulative_variance_png(&model.explained_variance_ratio, model.k, target)?;
    out.put(VARIANCE_PNG, png.into())?;
    if model.k < 2 || points.is_empty() {
        return Ok(());
    }
    // The largest classes get a colour and a legend entry; the rest are "other".
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for label in labels {
        *counts.entry(label.as_str()).or_default() += 1;
    }
    let total_classes = counts.len();
    let mut by_size: Vec<(&str, usize)> = counts.into_iter().collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut named: Vec<String> = by_size
        .iter()
        .take(LEGEND_CLASSES)
        .map(|(name, _)| name.to_string())
        .collect();
    named.sort();
    let indexed: Vec<(f32, f32, usize)> = points
        .iter()
        .zip(labels)
        .map(|(&(x, y), label)| {
            let c = named.binary_search(label).unwrap_or(usize::MAX);
            (x, y, c)
        })
        .collect();
    let shown = if indexed.len() as u64 == rows {
        format!("{rows} images")
    } else {
        format!("{} of {rows} images (evenly spaced)", indexed.len())
    };
    let title = format!("{shown} on the first two components, {total_classes} classes");
    let axis = |i: usize| {
        format!(
            "PC{} ({:.1}% of the variance)",
            i + 1,
            model.explained_variance_ratio[i] * 100.0
        )
    };
    let png = fruits_report::scatter_png(&indexed, &named, &title, (&axis(0), &axis(1)))?;
    out.put(PROJECTION_PNG, png.into())?;
    Ok(())
}
