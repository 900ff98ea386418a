"""Spark DataFrames in, Spark DataFrames out: `featurize` and `pca`.

Both run the Rust core inside `mapInArrow`: rows cross between the JVM and the
Python workers as Arrow batches, with no per-row Python (ordering rows, null-aware
projection, type conversion and chunk planning are the core's,
`fruits_pipeline::frames`); this module is Spark plumbing. The image model's
bytes are broadcast once; each Python worker builds its ONNX Runtime session
on first use and keeps it for every later batch (`fruits.spark.worker`).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Optional

import pyarrow as pa

import fruits
from fruits import _native
from fruits._models import model_path
from fruits._tables import feature_table, featurize_paths
from fruits.errors import InputError
from fruits.spark import worker

#: The columns `featurize` returns, as Spark DDL: one row per input row.
FEATURES_DDL = ("path string, label string, split string, sha256 string, width int, height int, "
                "features array<float>, colour array<float>, error_kind string, error string")


#: The Spark DDL types these functions exchange, and their Arrow types:
#: mapInArrow needs the batches' types to be exactly the declared ones.
_TYPES = {"string": pa.string(), "int": pa.int32(), "long": pa.int64(), "binary": pa.binary(),
          "array<float>": pa.list_(pa.float32())}
_DDL = {arrow: ddl for ddl, arrow in _TYPES.items()}



# Photos per task (and per output part) when the source is a folder or prefix.
# Each task pays a fixed cost (scheduling, a Python worker's call, a part
# written and listed): on the whole sample, int8, tasks of 1,000 photos took the
# job 69.3 s against 96.1 s with 250 (scripts/bench-spark.sh, docs/spark.md).
DEFAULT_CHUNK_IMAGES = 1024

def arrow_schema(ddl):
    """The pyarrow schema of a Spark DDL string of the `_TYPES` columns."""
    return pa.schema([(name, _TYPES[kind]) for name, kind in (c.split(" ", 1) for c in ddl.split(", "))])


_FEATURES_SCHEMA = arrow_schema(FEATURES_DDL)


def _model_broadcast(sc, precision, model):
    """(broadcast of the model's bytes, its source, sha256): read once on the driver."""
    source = model_path(precision, model)
    model_bytes = bytes(_native.read_bytes(source))
    return sc.broadcast(model_bytes), source, hashlib.sha256(model_bytes).hexdigest()


def _featurized(featurizer, paths, contents, root):
    """Featurises one batch of photos in the core: (features, errors) tables in
    the store's schema, paths as given (relative to `root` when it is set)."""
    if contents is not None:
        f, e, _ = featurizer.featurize_bytes(paths, contents)
        return pa.Table.from_batches(f), pa.Table.from_batches(e)
    if root is not None:
        f, e, _ = featurizer.featurize_paths(root, paths)
        return pa.Table.from_batches(f), pa.Table.from_batches(e)
    return featurize_paths(featurizer, paths)


def _frame(featurizer, paths, contents, root):
    """One DataFrame batch whose row i answers `paths[i]`, ordered by the core."""
    features, errors = _featurized(featurizer, paths, contents, root)
    return _native.rows_in_order(paths, features.to_batches(), errors.to_batches())


def _batch_inputs(batch, content):
    """The batch's paths (and contents) as the core's calls take them;
    converted by Arrow, not row by row in Python (a null content reads as an
    empty file, which the core reports as such)."""
    paths = batch.column(0).cast(pa.string()).to_pylist()
    contents = batch.column(1).cast(pa.binary()).fill_null(b"").to_pylist() if content else None
    return paths, contents


def _check_columns(df, *names):
    for col in names:
        if col and col not in df.columns:
            raise InputError(f"the DataFrame has no column {col!r} (columns: {df.columns})")


def featurize(df: Any, *, path_col: str = "path", content_col: Optional[str] = None, root: Optional[str] = None,
              precision: Optional[str] = None, model: Optional[str] = None,
              batch_size: int = _native.DEFAULT_BATCH_SIZE, intra_threads: int = 1, decode_threads: int = 1) -> Any:
    """Featurises the photos of a Spark DataFrame: one output row per input row,
    with columns ``path, label, split, sha256, width, height, features
    (array<float>), colour (the colour descriptor, array<float>), error_kind, error``. A photo that cannot be read or decoded
    keeps its row, with null features and the reason in ``error``.

    The photos are read from the paths in ``path_col`` (local paths, ``file:``
    URIs, or ``s3://`` / ``s3a://`` URLs, read by the Rust core, so executors
    need no Hadoop S3 connector; relative to ``root`` when it is given), or
    taken from the bytes in ``content_col``. A
    ``spark.read.format("binaryFile")`` DataFrame works as is (its ``content``
    column is used). Label and split come from each path's folders.

    ``precision`` ("int8", the default, or "fp32") picks the shared model, ``model`` another
    ONNX file (read once on the driver and broadcast). Each Python worker
    builds one ONNX Runtime session with ``intra_threads`` threads.

    >>> df = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load("photos/")
    >>> fruits.spark.featurize(df).where("error is null").count()
    """
    if content_col is None and "content" in df.columns and path_col in df.columns and root is None:
        content_col = "content"
    _check_columns(df, path_col, content_col)
    broadcast, source, digest = _model_broadcast(df.sparkSession.sparkContext, precision, model)
    settings = {"intra_threads": intra_threads, "batch_size": batch_size, "decode_threads": decode_threads}

    def run(batches):
        featurizer = worker.featurizer(broadcast, source, settings, digest)
        for batch in batches:
            paths, contents = _batch_inputs(batch, content_col)
            if paths:
                yield _frame(featurizer, paths, contents, root)

    return df.select(*[c for c in (path_col, content_col) if c]).mapInArrow(run, FEATURES_DDL)


def write_features(spark: Any, source: Any, out: str, *, path_col: str = "path", content_col: Optional[str] = None,
                   root: Optional[str] = None, precision: Optional[str] = None, model: Optional[str] = None,
                   chunk_images: int = DEFAULT_CHUNK_IMAGES, batch_size: int = _native.DEFAULT_BATCH_SIZE, intra_threads: int = 1,
                   decode_threads: int = 1) -> dict[str, Any]:
    """Featurises photos on the cluster into the fruits output `out` (folder or
    s3:// prefix): the layout ``fruits featurize`` writes, readable by every
    command and by `fruits.read`. Each Spark partition becomes one part written
    by its task (a retried task rewrites the same part with the same rows); the
    driver writes the manifest once every part is in. Returns a summary dict
    (``rows``, ``errors``, ``parts``, ``workers``: (pid, models built) per Python worker).

    `source` is a folder or s3:// prefix (listed on the driver and cut into
    chunks of `chunk_images` photos; entries that cannot be listed as files land
    in the errors table), or a DataFrame as `featurize` takes it.
    """
    sc = spark.sparkContext
    broadcast, model_source, digest = _model_broadcast(sc, precision, model)
    settings = {"intra_threads": intra_threads, "batch_size": batch_size, "decode_threads": decode_threads}
    problems = None
    if isinstance(source, str):
        listing, problems = _native.list_images_and_problems(source)
        if listing.num_rows == 0 and problems.num_rows == 0:
            raise InputError(f"found no images under {source}")
        root = source
        bounds = _native.chunk_bounds(listing.num_rows, chunk_images)
        chunks = len(bounds)
        listing_broadcast = sc.broadcast(listing.select(["path"]))
        tasks = spark.range(0, chunks, numPartitions=chunks)
        content_col = None

        def inputs(batches):
            for batch in batches:
                for i in batch.column("id").to_pylist():
                    a, b = bounds[i]
                    yield i, listing_broadcast.value.slice(a, b - a).column("path").to_pylist(), None
    else:
        df = source
        if content_col is None and "content" in df.columns and path_col in df.columns and root is None:
            content_col = "content"
        _check_columns(df, path_col, content_col)
        tasks = df.select(*[c for c in (path_col, content_col) if c])

        def inputs(batches):
            from pyspark import TaskContext

            index = TaskContext.get().partitionId()
            paths, contents = [], [] if content_col else None
            for batch in batches:
                p, c = _batch_inputs(batch, content_col)
                paths += p
                if contents is not None:
                    contents += c
            yield index, paths, contents

    def run(batches):
        featurizer = worker.featurizer(broadcast, model_source, settings, digest)
        meta_json = featurizer.meta_json()
        for index, paths, contents in inputs(batches):
            features, errors = _featurized(featurizer, paths, contents, root) if paths else (None, None)
            row = {"part": None, "part_rows": 0, "errors": None, "error_rows": 0}
            if features is not None and features.num_rows:
                row["part"], row["part_rows"] = _native.write_part(out, "features", index,
                                                                   features.combine_chunks().to_batches()[0], meta_json)
            if errors is not None and errors.num_rows:
                row["errors"], row["error_rows"] = _native.write_part(out, "errors", index,
                                                                      errors.combine_chunks().to_batches()[0], meta_json)
            yield pa.RecordBatch.from_pylist([dict(row, chunk=index, meta=meta_json, pid=os.getpid(),
                                                   models_built=_native.models_built())], schema=_WRITE_SCHEMA)

    results = sorted(tasks.mapInArrow(run, _WRITE_DDL).collect(), key=lambda r: r.chunk)
    if not results:
        raise InputError("no photos to featurise")
    meta = results[0].meta
    parts = [(r.part, r.part_rows) for r in results if r.part]
    error_parts = [(r.errors, r.error_rows) for r in results if r.errors]
    if problems is not None and problems.num_rows:
        # The listing's problems: one more errors part, after the chunks' ones.
        error_parts.append(_native.write_part(out, "errors", len(results), problems, meta))
    rows = _native.write_manifest(out, meta, parts, error_parts)
    return {
        "rows": rows, "errors": sum(n for _, n in error_parts), "parts": len(parts), "chunks": len(results),
        "meta": meta, "workers": sorted({(r.pid, r.models_built) for r in results}),
    }


_WRITE_DDL = ("chunk int, part string, part_rows long, errors string, error_rows long, meta string, "
              "pid int, models_built long")
_WRITE_SCHEMA = arrow_schema(_WRITE_DDL)


def _spark_table(table):
    """A store table in the types Spark's Arrow exchange takes (converted by
    the core): vectors as ``list<float>``, ``sha256`` as hex text, sizes as int32."""
    return pa.Table.from_batches(_native.for_frames(table.to_batches()))


def read(spark: Any, location: str) -> Any:
    """The rows of a fruits output (features or reduced; folder or s3://
    prefix) as a Spark DataFrame, one partition per part, read by the Rust core
    on the executors (no Hadoop S3 connector). Vectors become ``array<float>``,
    ``sha256`` hex text. The errors table is small: read it with
    ``fruits.read(location, table="errors")``."""
    files = [f for f, _ in _native.dataset_parts(location)]
    if not files:
        raise InputError(f"{location} has no rows")
    first = _spark_table(pa.Table.from_batches(_native.read_part(location, files[0])))
    ddl = ", ".join(f"{f.name} {_DDL[f.type]}" for f in first.schema)

    def run(batches):
        for batch in batches:
            for i in batch.column("id").to_pylist():
                table = _spark_table(pa.Table.from_batches(_native.read_part(location, files[i])))
                yield from table.to_batches()

    return spark.range(0, len(files), numPartitions=len(files)).mapInArrow(run, ddl)


class PCAModel:
    """A PCA fitted by `fruits.spark.pca`: a `fruits.PCA` (``.pca``) and `transform`."""

    def __init__(self, pca):
        self.pca = pca

    def transform(self, df: Any, input_col: str = "features", output_col: str = "pca") -> Any:
        """`df` with `output_col` (array<float>, k long) added: the projection of
        `input_col`; null where `input_col` is null (photos that failed)."""
        if input_col not in df.columns:
            raise InputError(f"the DataFrame has no column {input_col!r} (columns: {df.columns})")
        sc = df.sparkSession.sparkContext
        model_bytes = self.pca.to_bytes()
        digest = hashlib.sha256(model_bytes).hexdigest()
        broadcast = sc.broadcast(model_bytes)
        from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

        schema = StructType(df.schema.fields + [StructField(output_col, ArrayType(FloatType()), True)])

        def run(batches):
            model = worker.pca(broadcast, digest)
            for batch in batches:
                # Null-aware projection of the whole column, in the core.
                column = model.project_column(batch.column(input_col))
                yield batch.append_column(pa.field(output_col, column.type), column)

        return df.mapInArrow(run, schema)

    def __getattr__(self, name):
        # explained_variance_ratio_, components_, n_components_, save, ...
        return getattr(self.pca, name)

    def __repr__(self):
        return f"PCAModel({self.pca!r})"


def pca(df: Any, *, variance: Optional[float] = None, k: Optional[int] = None, input_col: str = "features",
        model_sha256: str = "", source: str = "a Spark DataFrame") -> PCAModel:
    """Fits a PCA on the vectors of `input_col` (rows with null vectors are
    skipped): each partition summarises its rows (count, mean, co-moments in
    f64) in the Rust core, the driver merges the summaries and decomposes. The
    result equals a fit over all rows in one pass. Keeps `variance` (default
    95%) of the variance or exactly `k` components. Returns a `PCAModel` whose
    ``transform(df)`` adds the projection as a ``pca`` column. `model_sha256`
    and `source` (the image model and the data) are recorded when it is saved."""
    if variance is not None and k is not None:
        raise InputError("give variance or k, not both")
    if input_col not in df.columns:
        raise InputError(f"the DataFrame has no column {input_col!r} (columns: {df.columns})")

    def stats(batches):
        yield from _summary((pa.Table.from_batches([b]) for b in batches), input_col)

    # One summary per task, a few tasks: each summary holds d x d co-moments in
    # f64 (13 MB for d = 1280), and one per part of a large output would not fit
    # the driver (84 parts of the whole sample: 1.1 GB, measured out of memory).
    tasks = max(1, min(df.rdd.getNumPartitions(), df.sparkSession.sparkContext.defaultParallelism))
    summaries = df.select(input_col).coalesce(tasks).mapInArrow(stats, "stats binary")
    return _fit(summaries, f"no rows with a {input_col!r} vector to fit a PCA on", variance, k, model_sha256,
                source)


def _summary(tables, column: str):
    """One record batch holding the merged PCA statistics (count, mean,
    co-moments) of the non-null `column` vectors of `tables`; none when they hold no row."""
    summaries = []
    for table in tables:
        table = table.filter(table.column(column).is_valid())
        stats = _native.batch_stats(feature_table(table, column).to_batches()) if table.num_rows else None
        if stats is not None:
            summaries.append(bytes(stats))
    if summaries:
        yield pa.RecordBatch.from_pydict({"stats": [bytes(_native.pca_merge(summaries))]}, schema=_STATS_SCHEMA)


_STATS_SCHEMA = pa.schema([("stats", pa.binary())])


def _fit(summaries: Any, empty: str, variance, k, model_sha256: str, source: str) -> PCAModel:
    """Merges the tasks' statistics (a DataFrame of `_summary` batches) on the
    driver and decomposes them; `empty` is the error when there are none."""
    partials = [bytes(r.stats) for r in summaries.collect()]
    if not partials:
        raise InputError(empty)
    native = _native.Pca.fit_stats(bytes(_native.pca_merge(partials)), variance=variance, k=k,
                                   features_model_sha256=model_sha256, source=source)
    return PCAModel(fruits.PCA._from_native(native))


def fit_pca(spark: Any, location: str, *, variance: Optional[float] = None, k: Optional[int] = None,
            model_sha256: str = "") -> PCAModel:
    """Fits a PCA on a fruits features output (folder or s3:// prefix), as
    ``pca(read(spark, location))`` does but without passing the rows through
    the JVM: each of `defaultParallelism` tasks reads its share of the parts
    with the Rust core and summarises them (count, mean, co-moments in f64),
    the driver merges the summaries and decomposes. The same model (up to the
    last bit: the summaries merge in another order) from one read of the data
    instead of a trip through the JVM and back (the 94,110-photo Fruits-360 on
    2 cores: 21.7 s through DataFrames)."""
    if variance is not None and k is not None:
        raise InputError("give variance or k, not both")
    files = [f for f, _ in _native.dataset_parts(location)]
    if not files:
        raise InputError(f"{location} has no rows")
    groups = max(1, min(len(files), spark.sparkContext.defaultParallelism))

    def run(batches):
        for batch in batches:
            for g in batch.column("id").to_pylist():
                yield from _summary((pa.Table.from_batches(_native.read_part(location, f))
                                     for f in files[g::groups]), "features")

    summaries = spark.range(0, groups, numPartitions=groups).mapInArrow(run, "stats binary")
    return _fit(summaries, f"no rows with a features vector in {location} to fit a PCA on", variance, k,
                model_sha256, location)


def write_csv(df: Any, path: str) -> str:
    """Writes `df` as ONE CSV file at `path` (a header, then the rows), locally
    or on S3: Spark writes a folder of part files, so the rows go through one
    task into a folder beside `path`, whose single part is then renamed to
    `path` through Hadoop's FileSystem (the one Spark wrote with). Returns `path`.

    For exports a person opens (``result_with_pca.csv``); one task writes every
    row, so keep the big outputs as Parquet."""
    spark = df.sparkSession
    jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()
    Path = jvm.org.apache.hadoop.fs.Path
    staging = path.rstrip("/") + ".parts"
    df.coalesce(1).write.mode("overwrite").option("header", True).csv(staging)
    folder = Path(staging)
    fs = folder.getFileSystem(conf)
    parts = [s.getPath() for s in fs.listStatus(folder) if s.getPath().getName().startswith("part-")]
    if len(parts) != 1:
        raise InputError(f"expected one part file in {staging}, found {len(parts)}")
    target = Path(path)
    if fs.exists(target):
        fs.delete(target, True)
    if not fs.rename(parts[0], target):
        raise OSError(f"cannot rename {parts[0].toString()} to {path}")
    fs.delete(folder, True)
    return path


__all__ = ["featurize", "write_features", "read", "pca", "PCAModel", "FEATURES_DDL", "write_csv"]
