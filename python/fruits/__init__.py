"""fruits for Python: featurise fruit photos with MobileNetV2, reduce with PCA,
identify the fruit; the Rust core behind thin bindings.

    import fruits
    features, errors = fruits.featurize("photos/")          # pyarrow Tables
    pca = fruits.PCA(variance=0.95).fit(features)
    reduced = pca.transform(features)
    clf = fruits.Classifier.train("out/features", split="Training")
    clf.evaluate("out/features", split="Test")["accuracy"]
    clf.identify("apple.jpg")["top"][0]["class"]

Spark DataFrames: `fruits.spark.featurize(df)` and `fruits.spark.pca(df)`.

Locations are local paths or s3:// URLs (credentials from the standard AWS chain,
buckets outside eu-west-3 refused unless FRUITS_ALLOW_REGIONS lists their region).
Errors are `fruits.FruitsError` subclasses (`fruits.errors`); a photo that
cannot be read is a row of the errors table, never an exception.
"""

from fruits import _native
from fruits._classifier import Classifier
from fruits._models import DEFAULT_PRECISION, MODEL_FILES, Featurizer, model_path, models_dir, onnxruntime_library
from fruits._pca import PCA
from fruits._tables import Featurized, featurize, read
from fruits.errors import (
    AccessDenied,
    CredentialsError,
    FruitsError,
    InputError,
    ModelError,
    ModelMismatch,
    NotFound,
    RegionNotAllowed,
    StorageError,
    Unreachable,
)

# The building blocks of the Spark job (one call into the core each).
from fruits._native import (  # noqa: F401  (re-exported)
    dataset_parts,
    list_images,
    models_built,
    pca_merge,
    pca_plots,
    plot_stride,
    read_bytes,
    reduce_partition,
    reduce_plan,
    reduced_meta_json,
    write_manifest,
)

__version__ = _native.__version__
# The defaults, defined once in the Rust crates.
DEFAULT_BATCH_SIZE = _native.DEFAULT_BATCH_SIZE
DEFAULT_VARIANCE = _native.DEFAULT_VARIANCE
DEFAULT_MAX_MEGAPIXELS = _native.DEFAULT_MAX_MEGAPIXELS
DEFAULT_MODEL_FILE = _native.DEFAULT_MODEL_FILE
DEFAULT_C = _native.DEFAULT_C
DEFAULT_TOP = _native.DEFAULT_TOP

__all__ = [
    "featurize", "read", "PCA", "Classifier", "Featurized", "Featurizer",
    "model_path", "models_dir", "onnxruntime_library", "MODEL_FILES", "DEFAULT_PRECISION",
    "FruitsError", "InputError", "ModelError", "ModelMismatch", "StorageError", "NotFound",
    "AccessDenied", "CredentialsError", "RegionNotAllowed", "Unreachable",
    "DEFAULT_BATCH_SIZE", "DEFAULT_VARIANCE", "DEFAULT_MAX_MEGAPIXELS", "DEFAULT_MODEL_FILE",
    "DEFAULT_C", "DEFAULT_TOP",
]
