"""Type stubs of `fruits._native`, the Rust extension (crates/fruits-py).

The public API is `fruits` (featurize, read, PCA, Classifier) and `fruits.spark`;
these are the building blocks they and the Spark job call. Checked against the
built module by `mypy.stubtest` in python/tests/test_stubs.py.
"""

from typing import Optional, Union, final

import pyarrow as pa

__all__ = [
    "Classifier",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_C",
    "DEFAULT_CV_GRID",
    "DEFAULT_DECODE_THREADS",
    "DEFAULT_MAX_ITER",
    "DEFAULT_MAX_MEGAPIXELS",
    "DEFAULT_MODEL_FILE",
    "DEFAULT_TOP",
    "DEFAULT_VARIANCE",
    "ERROR_CLASSES",
    "FP32_MODEL_FILE",
    "Featurizer",
    "INT8_MODEL_FILE",
    "MAX_BATCH_SIZE",
    "MAX_COPIES",
    "MAX_FOLDS",
    "MAX_THREADS",
    "MAX_TOP",
    "Pca",
    "__version__",
    "available_cores",
    "batch_stats",
    "chunk_bounds",
    "dataset_parts",
    "for_frames",
    "list_images",
    "list_images_and_problems",
    "models_built",
    "model_from_env",
    "models_dir",
    "pca_merge",
    "pca_plots",
    "plot_stride",
    "read_bytes",
    "read_dataset",
    "read_part",
    "reduce_partition",
    "reduce_plan",
    "reduced_meta_json",
    "rows_in_order",
    "runtime_library_from_env",
    "throughput_layout",
    "write_manifest",
    "write_part",
]
__version__: str
DEFAULT_BATCH_SIZE: int
DEFAULT_VARIANCE: float
DEFAULT_MAX_MEGAPIXELS: float
DEFAULT_MODEL_FILE: str
DEFAULT_DECODE_THREADS: int
DEFAULT_C: float
DEFAULT_MAX_ITER: int
DEFAULT_TOP: int
DEFAULT_CV_GRID: list[float]
ERROR_CLASSES: list[str]
FP32_MODEL_FILE: str
INT8_MODEL_FILE: str
MAX_BATCH_SIZE: int
MAX_THREADS: int
MAX_COPIES: int
MAX_TOP: int
MAX_FOLDS: int

@final
class Featurizer:
    """The image model, built once from its file's bytes, and the featurisation settings."""

    def __new__(
        cls,
        model_bytes: bytes,
        source: str,
        intra_threads: int = 1,
        sessions: int = 1,
        batch_size: int = ...,
        decode_threads: int = 1,
        max_megapixels: float = ...,
        ort_lib: Optional[str] = None,
        augment: int = 0,
        augment_seed: int = ...,
        views: bool = False,
    ) -> Featurizer: ...
    def meta_json(self) -> str: ...
    def featurize_partition(self, input: str, out: str, index: int, batch: pa.RecordBatch) -> dict[str, object]: ...
    def featurize_location(self, root: str) -> tuple[list[pa.RecordBatch], list[pa.RecordBatch], str]: ...
    def featurize_paths(self, root: str, paths: list[str]) -> tuple[list[pa.RecordBatch], list[pa.RecordBatch], str]: ...
    def featurize_bytes(
        self, paths: list[str], contents: list[bytes]
    ) -> tuple[list[pa.RecordBatch], list[pa.RecordBatch], str]: ...
    def featurize_into(self, input: str, out: str) -> str: ...

@final
class Pca:
    """A fitted PCA (wrapped by `fruits.PCA`)."""

    @staticmethod
    def fit_location(location: str, variance: Optional[float] = None, k: Optional[int] = None) -> Pca: ...
    @staticmethod
    def fit_batches(
        batches: list[pa.RecordBatch],
        variance: Optional[float] = None,
        k: Optional[int] = None,
        features_model_sha256: str = ...,
        source: str = ...,
    ) -> Pca: ...
    @staticmethod
    def fit_stats(
        stats: bytes,
        variance: Optional[float] = None,
        k: Optional[int] = None,
        features_model_sha256: str = ...,
        source: str = ...,
    ) -> Pca: ...
    @staticmethod
    def load(location: str) -> Pca: ...
    @staticmethod
    def from_bytes(bytes: bytes) -> Pca: ...
    def save(self, location: str) -> None: ...
    def plot(self, location: str) -> None: ...
    def project(self, batch: pa.RecordBatch) -> pa.RecordBatch: ...
    def project_column(self, column: pa.Array) -> pa.Array: ...
    def to_bytes(self) -> bytes: ...
    def model_bytes(self) -> bytes: ...
    @property
    def has_plot_sample(self) -> bool: ...
    @property
    def n(self) -> int: ...
    @property
    def d(self) -> int: ...
    @property
    def k(self) -> int: ...
    @property
    def variance_kept(self) -> float: ...
    @property
    def explained_variance_ratio(self) -> list[float]: ...
    @property
    def explained_variance(self) -> list[float]: ...
    @property
    def components(self) -> list[float]: ...
    @property
    def mean(self) -> list[float]: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def features_model_sha256(self) -> str: ...

@final
class Classifier:
    """A trained classifier bundle (wrapped by `fruits.Classifier`)."""

    @staticmethod
    def train(
        data: Union[list[str], tuple[list[pa.RecordBatch], str]],
        split: Optional[str] = None,
        c: float = ...,
        max_iter: int = ...,
        variance: Optional[float] = None,
        k: Optional[int] = None,
        no_pca: bool = False,
        pca: Optional[str] = None,
        cv: Optional[int] = None,
        cv_c: Optional[list[float]] = None,
        colour: bool = True,
        studio_head: bool = True,
        real: list[str] = ...,
    ) -> Classifier: ...
    @staticmethod
    def load(location: str) -> Classifier: ...
    def save(self, location: str) -> None: ...
    def evaluate(
        self,
        location: str,
        split: Optional[str] = None,
        out: Optional[str] = None,
        revenue_toml: Optional[str] = None,
        revenue_json: Optional[str] = None,
    ) -> tuple[str, list[int], list[str]]: ...
    def identify(
        self,
        photos: list[bytes | str],
        top: int = ...,
        image_model: Optional[str] = None,
        intra_threads: int = 1,
        ort_lib: Optional[str] = None,
    ) -> str: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def file_json(self) -> str: ...

def list_images(root: str) -> pa.RecordBatch: ...
def throughput_layout(sessions: Optional[int] = None, intra_threads: Optional[int] = None) -> tuple[int, int]: ...
def list_images_and_problems(root: str) -> tuple[pa.RecordBatch, pa.RecordBatch]: ...
def models_built() -> int: ...
def models_dir() -> str: ...
def available_cores() -> int: ...
def chunk_bounds(rows: int, chunk: int) -> list[tuple[int, int]]: ...
def for_frames(batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]: ...
def rows_in_order(paths: list[str], features: list[pa.RecordBatch], errors: list[pa.RecordBatch]) -> pa.RecordBatch: ...
def reduce_plan(root: str) -> tuple[list[tuple[str, int]], int]: ...
def model_from_env() -> Optional[str]: ...
def runtime_library_from_env() -> Optional[str]: ...
def write_manifest(
    out: str, meta_json: str, parts: list[tuple[str, int]], error_parts: list[tuple[str, int]]
) -> int: ...
def write_part(out: str, kind: str, index: int, batch: pa.RecordBatch, meta_json: str) -> tuple[str, int]: ...
def dataset_parts(root: str) -> list[tuple[str, int]]: ...
def read_part(root: str, file: str) -> list[pa.RecordBatch]: ...
def read_dataset(location: str, table: str = "features") -> tuple[list[pa.RecordBatch], str]: ...
def pca_merge(stats: list[bytes]) -> bytes: ...
def batch_stats(batches: list[pa.RecordBatch]) -> Optional[bytes]: ...
def reduce_partition(
    features: str,
    file: str,
    model_bytes: bytes,
    out: str,
    index: int,
    first_row: int = 0,
    stride: int = 0,
) -> Optional[tuple[str, int, list[tuple[float, float]], list[str]]]: ...
def plot_stride(rows: int) -> int: ...
def pca_plots(
    out: str, model_bytes: bytes, points: list[tuple[float, float]], labels: list[str], rows: int
) -> None: ...
def reduced_meta_json(features: str, model_bytes: bytes) -> str: ...
def read_bytes(spec: str) -> bytes: ...
