"""`fruits.PCA`: principal component analysis of image features, shaped like scikit-learn's."""

from __future__ import annotations

import os
from typing import Any, Optional, Union

import numpy as np
import pyarrow as pa

from fruits import _check, _native
from fruits._tables import META_KEY, feature_table, read, table_meta
from fruits.errors import InputError


class PCA:
    """Keeps a share of the variance (``variance=0.95``, the default) or exactly
    ``k`` components of the image features.

    Fitted in one pass (f64 co-moments, then the eigendecomposition of the
    covariance), the same computation as ``fruits pca fit`` and the Spark job::

        pca = fruits.PCA(variance=0.95).fit("out/features")
        reduced = pca.transform(features_table)      # pyarrow Table with a `pca` column
        pca.explained_variance_ratio_[:5], pca.n_components_
        pca.save("out/pca"); pca.plot("out/pca")     # pca.json, components.parquet, PNGs
    """

    def __init__(self, variance: Optional[float] = None, k: Optional[int] = None,
                 n_components: Union[int, float, None] = None):
        if n_components is not None:
            # scikit-learn's spelling: an int keeps that many components, a
            # float in (0, 1) that share of the variance.
            if variance is not None or k is not None:
                raise InputError("give one of n_components, variance and k")
            if isinstance(n_components, (bool, np.bool_)) or not isinstance(n_components, (int, float, np.number)):
                raise InputError(f"n_components must be an int (components) or a float in (0, 1) (share of "
                                 f"the variance); got {n_components!r}")
            if isinstance(n_components, (int, np.integer)):
                k = int(n_components)
            elif 0 < float(n_components) < 1:
                variance = float(n_components)
            else:
                raise InputError(f"n_components={n_components!r}: a float must lie in (0, 1) (the share of the "
                                 "variance to keep); give an int to keep that many components")
        if variance is not None and k is not None:
            raise InputError("give variance or k, not both")
        if variance is not None:
            variance = _check.positive("variance", variance, 1.0)
        k = _check.optional_count("k", k, 1, 1_000_000)
        self.variance = variance
        self.k = k
        self._model: Optional[_native.Pca] = None

    # -- fitting ---------------------------------------------------------------------
    def fit(self, data: Any, column: str = "features") -> PCA:
        """Fits on `data`: a features output's location (folder or s3:// prefix),
        a table from `fruits.featurize`/`fruits.read`, a pandas DataFrame /
        pyarrow Table with a vector column, or a 2-D numpy array (one row per
        photo). Returns self."""
        if isinstance(data, (str, os.PathLike)):
            self._model = _native.Pca.fit_location(os.fspath(data), variance=self.variance, k=self.k)
            return self
        table = feature_table(data, column)
        sha = table_meta(table).get("model_sha256", "")
        self._model = _native.Pca.fit_batches(table.to_batches(), variance=self.variance, k=self.k,
                                              features_model_sha256=sha, source="a table")
        return self

    def transform(self, data: Any, column: str = "features") -> Any:
        """`data` projected on the kept components, in the caller's type: a 2-D
        numpy array gives an (n, k) array; a pyarrow Table (or a location, or a
        `Featurized`) a Table, and a pandas DataFrame a DataFrame, with the
        vector column replaced by ``pca``."""
        model = self._fitted()
        if isinstance(data, (str, os.PathLike)):
            data = read(data)
        table = feature_table(data, column)
        parts = [model.project(b).column(0) for b in table.to_batches()]
        if not parts:
            raise InputError("no rows to transform")
        projected = pa.chunked_array(parts)
        if isinstance(data, np.ndarray):
            flat = projected.combine_chunks().flatten().to_numpy(zero_copy_only=False)
            dtype = data.dtype if np.issubdtype(data.dtype, np.floating) else np.float32
            return flat.reshape(table.num_rows, self.n_components_).astype(dtype, copy=False)
        out = table.drop_columns(["features"]).append_column(pa.field("pca", projected.type, nullable=False), projected)
        meta = dict(table.schema.metadata or {})
        meta.pop(META_KEY, None)
        out = out.replace_schema_metadata(meta or None)
        if not isinstance(data, pa.Table) and hasattr(data, "columns") and hasattr(data, "iloc"):
            return out.to_pandas()  # a pandas DataFrame in, a DataFrame out
        return out

    def fit_transform(self, data: Any, column: str = "features") -> Any:
        """`fit(data)` then `transform(data)`."""
        return self.fit(data, column).transform(data, column)

    # -- saving ----------------------------------------------------------------------
    def save(self, location: str) -> PCA:
        """Writes ``pca.json`` and ``components.parquet`` into `location` (what
        ``fruits pca fit`` writes; ``fruits pca transform --pca`` reads it)."""
        self._fitted().save(os.fspath(location))
        return self

    @classmethod
    def load(cls, location: str) -> PCA:
        """A PCA saved by `save`, ``fruits pca fit`` or ``fruits run`` (its ``pca/`` folder)."""
        pca = cls()
        pca._model = _native.Pca.load(os.fspath(location))
        return pca

    def plot(self, location: str) -> list[str]:
        """Draws ``explained_variance.png`` and ``projection.png`` (the rows seen
        by `fit` on the first two components, one colour per class) into the
        folder `location`; returns their paths."""
        model = self._fitted()
        if not model.has_plot_sample:
            raise InputError("the projection plot needs the rows: fit this PCA (a loaded one has none)")
        location = os.fspath(location)
        model.plot(location)
        join = (lambda a, b: a.rstrip("/") + "/" + b) if location.startswith("s3://") else os.path.join
        return [join(location, "explained_variance.png"), join(location, "projection.png")]

    # -- scikit-learn's attributes ---------------------------------------------------
    def _fitted(self) -> _native.Pca:
        if self._model is None:
            raise InputError("this PCA is not fitted: call fit() first")
        return self._model

    @property
    def n_components_(self) -> int:
        """Components kept (k)."""
        return self._fitted().k

    @property
    def n_features_in_(self) -> int:
        """Input dimension (d)."""
        return self._fitted().d

    @property
    def n_samples_(self) -> int:
        """Rows it was fitted on."""
        return self._fitted().n

    @property
    def components_(self) -> np.ndarray:
        """The kept components, a (k, d) array of unit rows."""
        m = self._fitted()
        return np.asarray(m.components).reshape(m.k, m.d)

    @property
    def mean_(self) -> np.ndarray:
        """Per-feature mean subtracted before projecting, shape (d,)."""
        return np.asarray(self._fitted().mean)

    @property
    def explained_variance_(self) -> np.ndarray:
        """Variance along each kept component, shape (k,)."""
        m = self._fitted()
        return np.asarray(m.explained_variance[: m.k])

    @property
    def explained_variance_ratio_(self) -> np.ndarray:
        """Share of the total variance along each kept component, shape (k,)."""
        m = self._fitted()
        return np.asarray(m.explained_variance_ratio[: m.k])

    @property
    def explained_variance_ratio_all_(self) -> np.ndarray:
        """Share of the total variance along every one of the d components, shape
        (d,): the curve that shows how much more components would keep."""
        return np.asarray(self._fitted().explained_variance_ratio)

    @property
    def variance_kept_(self) -> float:
        """Share of the variance the kept components hold together."""
        return self._fitted().variance_kept

    @property
    def fingerprint_(self) -> str:
        """Digest of the model, recorded by reduced outputs and classifiers."""
        return self._fitted().fingerprint

    def to_bytes(self) -> bytes:
        """The fitted model as bytes (Spark broadcasts them); `PCA.from_bytes` reads them."""
        return bytes(self._fitted().to_bytes())

    def model_bytes(self) -> bytes:
        """The bare fitted model as JSON bytes: what `fruits.reduce_partition`,
        `fruits.pca_plots` and `fruits.reduced_meta_json` take (the Spark job's
        building blocks)."""
        return bytes(self._fitted().model_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> PCA:
        """A PCA from `to_bytes`."""
        pca = cls()
        pca._model = _native.Pca.from_bytes(data)
        return pca

    @classmethod
    def _from_native(cls, model):
        pca = cls()
        pca._model = model
        return pca

    def __repr__(self):
        if self._model is None:
            keep = f"k={self.k}" if self.k is not None else f"variance={self.variance or _native.DEFAULT_VARIANCE}"
            return f"PCA({keep}, not fitted)"
        m = self._model
        return f"PCA(k={m.k} of d={m.d}, {m.variance_kept:.2%} of the variance, fitted on {m.n} rows)"
