"""Where the image model and ONNX Runtime come from, and one featurizer per
model and settings per process (building an ONNX Runtime session costs ~0.3 s)."""

import glob
import hashlib
import importlib.util
import os

from fruits import _native
from fruits.errors import InputError

#: The precisions of the shared models, and their files.
MODEL_FILES = {"fp32": _native.FP32_MODEL_FILE, "int8": _native.INT8_MODEL_FILE}
#: The precision used when none is named (the Rust crates' default).
DEFAULT_PRECISION = next(p for p, f in MODEL_FILES.items() if f == _native.DEFAULT_MODEL_FILE)


def onnxruntime_library():
    """Path of libonnxruntime from the installed `onnxruntime` wheel (FRUITS_ORT_LIB overrides,
    read by the Rust core as the `fruits` binary reads it)."""
    explicit = _native.runtime_library_from_env()
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


def models_dir():
    """The models folder, found as the `fruits` binary finds it (the Rust core's
    lookup): FRUITS_MODELS_DIR, else ../shared/models from the working directory
    or its nearest parent that has one, else the user's models cache."""
    return _native.models_dir()


def model_path(precision=None, model=None):
    """The image model to use: `model` if given, else FRUITS_MODEL, else the
    shared file of `precision` ("fp32" or "int8") in `models_dir()`."""
    if model:
        return os.fspath(model)
    from_env = _native.model_from_env() if precision is None else None
    if from_env:
        return from_env
    precision = precision or DEFAULT_PRECISION
    if precision not in MODEL_FILES:
        raise InputError(f"precision must be one of {sorted(MODEL_FILES)}, not {precision!r}")
    path = os.path.join(models_dir(), MODEL_FILES[precision])
    if not os.path.exists(path):
        from fruits.errors import NotFound

        raise NotFound(f"no {precision} image model at {path}: set FRUITS_MODELS_DIR to the folder of "
                       f"{MODEL_FILES[precision]}, fetch it into the cache (fruits models fetch {precision} "
                       "--from URL), or name the model file (model= in Python, --model on a command line)")
    return path


def cores():
    """The cores this process may use, counted by the Rust core."""
    return _native.available_cores()


class Featurizer:
    """The image model built once from its file's bytes; featurises one partition at a time."""

    def __init__(self, model_bytes, source, intra_threads=1, batch_size=_native.DEFAULT_BATCH_SIZE, decode_threads=1,
                 max_megapixels=_native.DEFAULT_MAX_MEGAPIXELS, sessions=1, **augment):
        # augment / augment_seed: augmented copies of the Training photos (fruits.featurize).
        self._inner = _native.Featurizer(
            model_bytes, source, intra_threads=intra_threads, sessions=sessions, batch_size=batch_size,
            decode_threads=decode_threads, max_megapixels=max_megapixels, ort_lib=onnxruntime_library(), **augment,
        )

    def meta_json(self):
        """Metadata the parts record (model sha256, preprocessing, ...), as JSON."""
        return self._inner.meta_json()

    def featurize_partition(self, input, out, index, batch):
        """Featurises the images of `batch` (columns path, size; relative to `input`)
        into part `index` of the output `out`. Returns a dict of file names and counts."""
        return self._inner.featurize_partition(input, out, index, batch)

    def __getattr__(self, name):
        # featurize_location / featurize_paths / featurize_bytes / featurize_into
        return getattr(self._inner, name)


_CACHE: dict[tuple, Featurizer] = {}


def featurizer(precision=None, model=None, batch_size=None, intra_threads=None, decode_threads=None,
               max_megapixels=None, model_bytes=None, augment=0, augment_seed=None, sessions=None, views=False):
    """A featurizer for these settings, built once per process and reused.
    On one machine the defaults split the cores as `fruits featurize` does."""
    path = model_path(precision, model)
    sessions, intra_threads = _native.throughput_layout(sessions, intra_threads)
    settings = dict(
        batch_size=batch_size or _native.DEFAULT_BATCH_SIZE,
        intra_threads=intra_threads,
        sessions=sessions,
        decode_threads=decode_threads or _native.DEFAULT_DECODE_THREADS,
        max_megapixels=max_megapixels or _native.DEFAULT_MAX_MEGAPIXELS,
        augment=augment,
        views=bool(views),
    )
    if augment_seed is not None:
        settings["augment_seed"] = augment_seed
    if model_bytes is None:
        model_bytes = bytes(_native.read_bytes(path))
    key = (path, hashlib.sha256(model_bytes).hexdigest(), tuple(sorted(settings.items())))
    if key not in _CACHE:
        _CACHE.clear()  # one session at a time: each holds the model's weights
        _CACHE[key] = Featurizer(model_bytes, path, **settings)
    return _CACHE[key]
