//! `fruits._native.Pca`: a fitted PCA, from an output, rows in memory, or
//! merged Spark statistics; what `fruits.PCA` wraps.

use arrow_array::{Array, RecordBatch};
use arrow_pyarrow::PyArrowType;
use fruits_pca::{Keep, PcaModel, PcaStats};
use fruits_pipeline::reduce::{self, PlotSample};
use fruits_store::Dataset;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::{Error, Result};
use crate::{json_err, open};

/// What to keep: exactly `k` components, else `variance` (default 95%).
fn keep(variance: Option<f64>, k: Option<usize>) -> Result<Keep> {
    match (k, variance) {
        (Some(_), Some(_)) => Err(Error::input("give variance or k, not both")),
        (Some(k), None) => Ok(Keep::K(k)),
        (None, Some(v)) => Ok(Keep::Variance(v)),
        (None, None) => Ok(Keep::Variance(reduce::DEFAULT_VARIANCE)),
    }
}

/// A fitted PCA with what it needs to be saved and plotted.
#[pyclass(frozen)]
pub struct Pca {
    model: PcaModel,
    /// sha256 of the image model whose features it was fitted on ("" unknown).
    features_model_sha256: String,
    /// Where the rows came from.
    source: String,
    /// Sampled rows on the first two components, for the projection plot.
    sample: PlotSample,
}

impl Pca {
    fn new(model: PcaModel, sha: String, source: String, pass: Option<&reduce::Pass>) -> Self {
        let sample = pass
            .and_then(|p| reduce::first_two_components(p, &model).ok())
            .unwrap_or_default();
        Pca {
            model,
            features_model_sha256: sha,
            source,
            sample,
        }
    }
}

#[pymethods]
impl Pca {
    /// Fits on every row of the features output at `location`.
    #[staticmethod]
    #[pyo3(signature = (location, variance=None, k=None))]
    fn fit_location(
        py: Python<'_>,
        location: &str,
        variance: Option<f64>,
        k: Option<usize>,
    ) -> Result<Pca> {
        let keep = keep(variance, k)?;
        let root = open(location)?;
        py.detach(|| {
            let ds = Dataset::open(&root)?;
            let (model, pass) = reduce::fit_dataset(&ds, keep)?;
            let sha = ds.manifest().meta.spec.model_sha256.clone();
            Ok(Pca::new(model, sha, root.to_string(), Some(&pass)))
        })
    }

    /// Fits on rows in memory (a `features` column of fixed-size float lists).
    #[staticmethod]
    #[pyo3(signature = (batches, variance=None, k=None, features_model_sha256=String::new(), source=String::from("a table")))]
    fn fit_batches(
        py: Python<'_>,
        batches: Vec<PyArrowType<RecordBatch>>,
        variance: Option<f64>,
        k: Option<usize>,
        features_model_sha256: String,
        source: String,
    ) -> Result<Pca> {
        let keep = keep(variance, k)?;
        let batches: Vec<RecordBatch> = batches.into_iter().map(|b| b.0).collect();
        py.detach(|| {
            let (model, pass) = reduce::fit_batches(&batches, keep, &source)?;
            Ok(Pca::new(model, features_model_sha256, source, Some(&pass)))
        })
    }

    /// Fits from statistics merged across partitions (`pca_merge`).
    #[staticmethod]
    #[pyo3(signature = (stats, variance=None, k=None, features_model_sha256=String::new(), source=String::from("a Spark DataFrame")))]
    fn fit_stats(
        py: Python<'_>,
        stats: &[u8],
        variance: Option<f64>,
        k: Option<usize>,
        features_model_sha256: String,
        source: String,
    ) -> Result<Pca> {
        let keep = keep(variance, k)?;
        let stats = PcaStats::from_bytes(stats)?;
        if stats.count() < 2 {
            return Err(Error::input(format!(
                "a PCA needs at least 2 rows; {source} has {}",
                stats.count()
            )));
        }
        let model = py.detach(|| fruits_pca::fit(&stats, keep))?;
        Ok(Pca::new(model, features_model_sha256, source, None))
    }

    /// Loads a PCA saved by `save`, `fruits pca fit` or `fruits run` (its folder).
    #[staticmethod]
    fn load(py: Python<'_>, location: &str) -> Result<Pca> {
        let dir = open(location)?;
        let file = py.detach(|| fruits_pca::load(&dir))?;
        Ok(Pca::new(
            file.model,
            file.features_model_sha256,
            file.source,
            None,
        ))
    }

    /// Saves into the folder `location` (`pca.json`, `components.parquet`) as
    /// `fruits pca fit` does.
    fn save(&self, py: Python<'_>, location: &str) -> Result<()> {
        let dir = open(location)?;
        py.detach(|| {
            fruits_pca::save(&dir, &self.model, &self.features_model_sha256, &self.source)
        })?;
        Ok(())
    }

    /// Draws `explained_variance.png` and `projection.png` into `location`.
    fn plot(&self, py: Python<'_>, location: &str) -> Result<()> {
        let dir = open(location)?;
        py.detach(|| {
            fruits_pipeline::plots::write_pca_plots(
                &dir,
                &self.model,
                &self.sample.points,
                &self.sample.labels,
                self.model.n,
            )
        })?;
        Ok(())
    }

    /// Whether the projection plot has rows to show (a PCA fitted from rows,
    /// not loaded or merged from statistics).
    #[getter]
    fn has_plot_sample(&self) -> bool {
        !self.sample.points.is_empty()
    }

    /// The `features` of `batch` projected: a batch of one column, `pca`.
    fn project(
        &self,
        py: Python<'_>,
        batch: PyArrowType<RecordBatch>,
    ) -> Result<PyArrowType<RecordBatch>> {
        let list = py.detach(|| reduce::project_vectors(&batch.0, &self.model, &"a batch"))?;
        let column: arrow_array::ArrayRef = std::sync::Arc::new(list);
        RecordBatch::try_from_iter([(fruits_store::columns::PCA, column)])
            .map(PyArrowType)
            .map_err(Error::input)
    }

    /// A column of vectors (`list<float>` or fixed-size lists, nulls for
    /// photos that failed) projected: `list<float>`, k values a row, nulls
    /// kept (`fruits_pipeline::frames::project_column`).
    fn project_column(
        &self,
        py: Python<'_>,
        column: PyArrowType<arrow_data::ArrayData>,
    ) -> Result<PyArrowType<arrow_data::ArrayData>> {
        let array = arrow_array::make_array(column.0);
        let out = py.detach(|| fruits_pipeline::frames::project_column(&self.model, &array))?;
        Ok(PyArrowType(out.to_data()))
    }

    /// The model as bytes (to broadcast), read back by `from_bytes`.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        let bytes = serde_json::to_vec(&(&self.model, &self.features_model_sha256, &self.source))
            .map_err(json_err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The bare model as JSON bytes: what `reduce_partition`, `pca_plots`
    /// and `reduced_meta_json` take.
    fn model_bytes<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        let bytes = serde_json::to_vec(&self.model).map_err(json_err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// A PCA from `to_bytes`.
    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> Result<Pca> {
        let (model, sha, source): (PcaModel, String, String) =
            serde_json::from_slice(bytes).map_err(json_err)?;
        Ok(Pca::new(model, sha, source, None))
    }

    /// Rows it was fitted on.
    #[getter]
    fn n(&self) -> u64 {
        self.model.n
    }
    /// Input dimension.
    #[getter]
    fn d(&self) -> usize {
        self.model.d
    }
    /// Components kept.
    #[getter]
    fn k(&self) -> usize {
        self.model.k
    }
    /// Share of the variance the kept components hold.
    #[getter]
    fn variance_kept(&self) -> f64 {
        self.model.variance_kept()
    }
    /// Share of the variance along each of the d components.
    #[getter]
    fn explained_variance_ratio(&self) -> Vec<f64> {
        self.model.explained_variance_ratio.clone()
    }
    /// Variance along each of the d components.
    #[getter]
    fn explained_variance(&self) -> Vec<f64> {
        self.model.explained_variance.clone()
    }
    /// The k x d components, row-major.
    #[getter]
    fn components(&self) -> Vec<f64> {
        self.model.components.clone()
    }
    /// The column means subtracted before projecting.
    #[getter]
    fn mean(&self) -> Vec<f64> {
        self.model.mean.clone()
    }
    /// A digest of the model: what reduced outputs and classifiers record.
    #[getter]
    fn fingerprint(&self) -> String {
        self.model.fingerprint()
    }
    /// sha256 of the image model whose features it was fitted on ("" unknown).
    #[getter]
    fn features_model_sha256(&self) -> String {
        self.features_model_sha256.clone()
    }
}

/// PCA statistics (`PcaStats::to_bytes`) of the `features` of rows in memory:
/// one Spark partition's share of a fit; None when there are no rows.
#[pyfunction]
pub fn batch_stats<'py>(
    py: Python<'py>,
    batches: Vec<PyArrowType<RecordBatch>>,
) -> Result<Option<Bound<'py, PyBytes>>> {
    let batches: Vec<RecordBatch> = batches.into_iter().map(|b| b.0).collect();
    let stats = py.detach(|| reduce::batch_stats(&batches, "a partition"))?;
    Ok(stats.map(|s| PyBytes::new(py, &s.to_bytes())))
}
