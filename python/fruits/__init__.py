"""The fruits core for Python: thin wrappers over the Rust crates (module `fruits._native`).

Locations are local paths or s3:// URLs (credentials from the standard AWS chain,
buckets outside eu-west-3 refused unless FRUITS_ALLOW_REGIONS lists their region).
Tables are pyarrow RecordBatches; models cross as bytes so Spark can broadcast them.
"""

import glob
import importlib.util
import os

from fruits import _native
from fruits.errors import (  # noqa: F401  (re-exported)
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
from fruits._native import (  # noqa: F401  (re-exported)
    dataset_parts,
    list_images,
    models_built,
    pca_fit,
    pca_merge,
    pca_plots,
    pca_partition_stats,
    plot_stride,
    read_bytes,
    reduce_partition,
    reduced_meta_json,
    write_manifest,
)

__version__ = _native.__version__
DEFAULT_BATCH_SIZE = _native.DEFAULT_BATCH_SIZE
DEFAULT_VARIANCE = _native.DEFAULT_VARIANCE
DEFAULT_MAX_MEGAPIXELS = _native.DEFAULT_MAX_MEGAPIXELS
DEFAULT_MODEL_FILE = _native.DEFAULT_MODEL_FILE


def onnxruntime_library():
    """Path of libonnxruntime from the installed `onnxruntime` wheel (FRUITS_ORT_LIB overrides)."""
    explicit = os.environ.get("FRUITS_ORT_LIB")
    if explicit:
        return explicit
    # Locate the package without importing it: its import (numpy, the pybind
    # module) costs every Spark Python worker about 0.2 s for a path.
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("no onnxruntime package: is the onnxruntime wheel installed?")
    capi = os.path.join(spec.submodule_search_locations[0], "capi")
    found = sorted(glob.glob(os.path.join(capi, "libonnxruntime.so*")) + glob.glob(os.path.join(capi, "libonnxruntime*.dylib")))
    if not found:
        raise FileNotFoundError(f"no libonnxruntime in {capi}: is the onnxruntime wheel installed?")
    return found[0]


class Featurizer:
    """The image model built once from its file's bytes; featurises one partition at a time."""

    def __init__(self, model_bytes, source, intra_threads=1, batch_size=DEFAULT_BATCH_SIZE, decode_threads=1,
                 max_megapixels=DEFAULT_MAX_MEGAPIXELS):
        self._inner = _native.Featurizer(
            model_bytes, source, intra_threads=intra_threads, batch_size=batch_size,
            decode_threads=decode_threads, max_megapixels=max_megapixels, ort_lib=onnxruntime_library(),
        )

    def meta_json(self):
        """Metadata the parts record (model sha256, preprocessing, ...), as JSON."""
        return self._inner.meta_json()

    def featurize_partition(self, input, out, index, batch):
        """Featurises the images of `batch` (columns path, size; relative to `input`)
        into part `index` of the output `out`. Returns a dict of file names and counts."""
        return self._inner.featurize_partition(input, out, index, batch)
