"""`fruits.Classifier`: which fruit is it, how good is that answer, what does it earn."""

from __future__ import annotations

import json
import os
from typing import Any, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from fruits import _check, _native
from fruits._models import cores, onnxruntime_library
from fruits._tables import META_KEY, Featurized
from fruits.errors import InputError


def _location(data, what):
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    raise InputError(f"{what} reads a features or reduced output (a folder or s3:// prefix); got "
                     f"{type(data).__name__}: write the rows first with fruits.featurize(..., out=...)")


def _training(C, max_iter, variance, k, no_pca, cv, cv_C, colour, studio_head) -> dict[str, Any]:
    """`train`'s and `fit`'s settings, checked, as the extension's keyword arguments."""
    return dict(c=_check.positive("C", C, 1e12), max_iter=_check.count("max_iter", max_iter, 1, 1_000_000),
                variance=None if variance is None else _check.positive("variance", variance, 1.0),
                k=_check.optional_count("k", k, 1, 1_000_000), no_pca=bool(no_pca),
                cv=_check.optional_count("cv", cv, 2, _native.MAX_FOLDS),
                cv_c=[float(c) for c in cv_C] if cv_C else None, colour=bool(colour), studio_head=bool(studio_head))


def _photo(photo, i):
    """A photo as the extension takes it: its bytes, or its path (read there,
    a chunk at a time; a path that cannot be read is that photo's error)."""
    if isinstance(photo, (bytes, bytearray, memoryview)):
        return bytes(photo)
    if isinstance(photo, (str, os.PathLike)) and os.fspath(photo):
        return os.fspath(photo)
    raise InputError(f"photos[{i}] is {photo!r}: a photo is bytes, a path or an s3:// URL")


class Classifier:
    """Multinomial logistic regression (softmax, L2, L-BFGS) on the image
    features, with the PCA it needs, as ``fruits train`` makes it::

        clf = fruits.Classifier.train("out/features", split="Training", cv=5)
        report = clf.evaluate("out/features", split="Test")   # accuracy, macro-F1, net revenue
        clf.identify("apple.jpg")                             # top 5, with the fruit's names
        clf.save("out/classifier")                            # serve it: fruits serve --model out/classifier
    """

    def __init__(self, native):
        self._native = native

    @classmethod
    def train(cls, data: Union[str, Sequence[str]], *, split: Optional[str] = "Training", C: float = _native.DEFAULT_C,
              max_iter: int = _native.DEFAULT_MAX_ITER, variance: Optional[float] = None, k: Optional[int] = None,
              pca: Optional[str] = None, no_pca: bool = False, cv: Optional[int] = None,
              cv_C: Optional[Sequence[float]] = None, colour: bool = True,
              studio_head: bool = True, real: Sequence[str] = ()) -> Classifier:
        """Trains on the rows of `split` (None: every row) of the features or
        reduced output at `data`. The PCA is fitted on those rows keeping
        `variance` (default 95%) or `k` components, or taken from `pca` (a saved
        PCA's folder, for reduced data), or skipped with ``no_pca=True``.
        With ``cv=K``, C is chosen among `cv_C` by K-fold cross-validation on the
        training rows (never on other splits). The photos' colour descriptors
        (stored beside the features) go beside the PCA unless ``colour=False``.
        ``data`` may be a list of outputs; ``real`` names outputs of real photos
        (shops, kitchens: ``fruits featurize --views``) trained on beside them.
        When the rows mix studio photos with augmented copies or real photos, a
        second head trained on the studio photos alone answers for photos a gate
        sees as taken in the studio, unless ``studio_head=False``."""
        settings = _training(C, max_iter, variance, k, no_pca, cv, cv_C, colour, studio_head)
        outputs: list[Any] = list(data) if isinstance(data, (list, tuple)) else [data]
        native = _native.Classifier.train([_location(d, "train") for d in outputs], split=split,
                                          real=[_location(r, "train") for r in real],
                                          pca=os.fspath(pca) if pca is not None else None, **settings)
        return cls(native)

    @classmethod
    def fit(cls, X: Any, y: Optional[Sequence[Any]] = None, *, split: Optional[str] = None,
            C: float = _native.DEFAULT_C, max_iter: int = _native.DEFAULT_MAX_ITER,
            variance: Optional[float] = None, k: Optional[int] = None, no_pca: bool = False,
            cv: Optional[int] = None, cv_C: Optional[Sequence[float]] = None, colour: bool = True,
            studio_head: bool = True) -> Classifier:
        """`train` on rows in memory, in scikit-learn's spelling::

            features, errors = fruits.featurize("photos/")
            clf = fruits.Classifier.fit(features)                 # labels: the `label` column
            clf = fruits.Classifier.fit(features, y=my_labels)    # or one label per row

        `X` is a table `fruits.featurize` or `fruits.read` returned (a pyarrow
        Table, or the `Featurized` pair): it records the image model and the
        preprocessing that made its rows, which the classifier keeps, so it
        identifies photos, evaluates and saves as one from `train` does.
        `split` keeps the rows of one split (default: every row). The other
        arguments as for `train`."""
        settings = _training(C, max_iter, variance, k, no_pca, cv, cv_C, colour, studio_head)
        table = X.features if isinstance(X, Featurized) else X
        if not isinstance(table, pa.Table):
            raise InputError(f"fit takes the table fruits.featurize or fruits.read returns (a pyarrow Table, which "
                             f"records the image model that made its rows); got {type(X).__name__}")
        meta = (table.schema.metadata or {}).get(META_KEY)
        if not meta:
            raise InputError("this table does not say which image model made its rows (no fruits metadata): "
                             "train on a table from fruits.featurize or fruits.read")
        if y is not None:
            labels = list(y)
            if len(labels) != table.num_rows:
                raise InputError(f"y has {len(labels)} labels for {table.num_rows} rows")
            bad = [i for i, v in enumerate(labels) if not isinstance(v, str) or not v]
            if bad:
                raise InputError(f"y[{bad[0]}] is {labels[bad[0]]!r}: each label is a non-empty string")
            column = pa.array(labels, pa.string())
            if "label" in table.column_names:
                table = table.set_column(table.schema.get_field_index("label"), "label", column)
            else:
                table = table.append_column("label", column)
        native = _native.Classifier.train((table.combine_chunks().to_batches(), meta.decode()), split=split,
                                          **settings)
        return cls(native)

    @classmethod
    def load(cls, location: str) -> Classifier:
        """A classifier bundle saved by `save` or ``fruits train`` (folder or s3:// prefix)."""
        return cls(_native.Classifier.load(os.fspath(location)))

    def save(self, location: str) -> Classifier:
        """Writes the bundle (``classifier.json`` and its PCA) into `location`."""
        self._native.save(os.fspath(location))
        return self

    @property
    def classes_(self) -> list[str]:
        """Class names, in the order of the probabilities."""
        return list(self._native.classes)

    @property
    def training_(self) -> dict[str, Any]:
        """How it was trained: source, split, C, the optimiser's report, the CV scores."""
        return json.loads(self._native.file_json)["training"]

    @property
    def info_(self) -> dict[str, Any]:
        """Everything ``classifier.json`` records (features contract, PCA step, training)."""
        return json.loads(self._native.file_json)

    def evaluate(self, data: str, *, split: Optional[str] = "Test", out: Optional[str] = None,
                 revenue: Union[dict[str, float], str, None] = None) -> dict[str, Any]:
        """Scores it on the rows of `split` of the output at `data`, as
        ``fruits evaluate`` does: a dict with ``accuracy``, ``macro_f1``,
        ``per_class``, the net revenue (``revenue_always_answer``,
        ``revenue_best`` and its threshold, ``revenue_curve``), the
        ``top_confusions``, and ``confusion`` (a classes x classes array, rows
        true, columns predicted). With `out`, also writes ``report.json``,
        ``per_class.csv``, ``confusion.png`` and ``revenue.png`` there.
        `revenue` is a dict or the path of a TOML file of gain/cost values."""
        toml_text = json_text = None
        if isinstance(revenue, dict):
            # Handed over as JSON, parsed by the core like the TOML file (per-class
            # overrides under "classes" included).
            try:
                json_text = json.dumps(revenue, allow_nan=True)
            except (TypeError, ValueError) as e:
                raise InputError(f"revenue: {e}") from None
        elif revenue is not None:
            # Read by the core: a FIFO or a folder is refused, not waited on.
            toml_text = bytes(_native.read_bytes(_check.path("revenue", revenue))).decode("utf-8")
        report, counts, warnings = self._native.evaluate(_location(data, "evaluate"), split=split,
                                                         out=os.fspath(out) if out else None,
                                                         revenue_toml=toml_text, revenue_json=json_text)
        result = json.loads(report)
        k = len(self.classes_)
        result["classes"] = self.classes_
        result["confusion"] = np.asarray(counts, dtype=np.int64).reshape(k, k)
        result["warnings"] = warnings
        return result

    def identify(self, photos: Any, *, top: int = _native.DEFAULT_TOP,
                 image_model: Optional[str] = None) -> Union[dict[str, Any], list[dict[str, Any]]]:
        """What fruit is in `photos`: bytes, a path or an s3:// URL, or a list of
        them. Each answer is a dict with ``answer`` (the best class, or None when
        ``not_sure``: its probability is below the classifier's threshold, set by
        ``fruits train --abstain-below`` or ``fruits evaluate --save-threshold``),
        ``top`` (the `top` most probable
        classes, best first: ``class``, ``probability``, ``info`` with the
        English and French names, botanical name, family and description),
        ``width`` and ``height``; or ``error`` and ``kind`` for a photo that
        cannot be decoded. A single photo gives one answer, a list a list."""
        top = _check.count("top", top, 1, _native.MAX_TOP)
        single = not isinstance(photos, (list, tuple))
        items = [photos] if single else list(photos)
        answers = json.loads(self._native.identify([_photo(p, i) for i, p in enumerate(items)], top=top,
                                                   image_model=image_model, intra_threads=cores(),
                                                   ort_lib=onnxruntime_library()))
        return answers[0] if single else answers

    def __repr__(self):
        t = self.training_
        return f"Classifier({len(self.classes_)} classes, C={t['c']}, trained on {t['source']} split {t['split'] or 'all'})"
