"""Spark DataFrames in, Spark DataFrames out: `featurize` and `pca`.

Both run the Rust core inside `mapInArrow`: rows cross between the JVM and the
Python workers as Arrow batches, with no per-row Python. The image model's
bytes are broadcast once; each Python worker builds its ONNX Runtime session
on first use and keeps it for every later batch (`fruits.spark.worker`).
"""

import hashlib

import pyarrow as pa

import fruits
from fruits import _native
from fruits._models import model_path
from fruits._tables import _restore_paths, common_root, feature_table
from fruits.errors import InputError
from fruits.spark import worker

#: The columns `featurize` returns, as Spark DDL: one row per input row.
FEATURES_DDL = ("path string, label string, split string, sha256 string, width int, height int, "
                "features array<float>, error_kind string, error string")


def _arrow_type(ddl_type):
    return {"string": pa.string(), "int": pa.int32(), "array<float>": pa.list_(pa.float32())}[ddl_type]


_FEATURES_SCHEMA = pa.schema([(c.split(" ", 1)[0], _arrow_type(c.split(" ", 1)[1]))
                              for c in FEATURES_DDL.split(", ")])


def _rows_in_order(paths, features, errors):
    """One output batch whose row i is the outcome of input row i: its features
    (and a null error) or its error (and null features)."""
    slots = {}
    for i, p in enumerate(paths):
        slots.setdefault(p, []).append(i)
    n = len(paths)
    columns = {name: [None] * n for name in _FEATURES_SCHEMA.names}

    def place(path):
        queue = slots.get(path)
        if not queue:
            raise RuntimeError(f"the core returned a row for {path!r}, which was not asked for")
        return queue.pop(0)

    f = features.to_pydict() if features.num_rows else None
    if f:
        vectors = features.column("features").combine_chunks()
        flat = vectors.flatten().to_numpy(zero_copy_only=False)
        dim = vectors.type.list_size
        for j, path in enumerate(f["path"]):
            i = place(path)
            columns["path"][i] = path
            columns["label"][i] = f["label"][j]
            columns["split"][i] = f["split"][j]
            columns["sha256"][i] = f["sha256"][j].hex()
            columns["width"][i] = f["width"][j]
            columns["height"][i] = f["height"][j]
            columns["features"][i] = flat[j * dim:(j + 1) * dim]
    for path, kind, message in zip(*(errors.column(c).to_pylist() for c in ("path", "kind", "message"))):
        i = place(path)
        columns["path"][i] = path
        columns["error_kind"][i] = kind
        columns["error"][i] = message
    return pa.RecordBatch.from_pydict(columns, schema=_FEATURES_SCHEMA)


def featurize(df, *, path_col="path", content_col=None, precision=None, model=None,
              batch_size=_native.DEFAULT_BATCH_SIZE, intra_threads=1, decode_threads=1):
    """Featurises the photos of a Spark DataFrame: one output row per input row,
    with columns ``path, label, split, sha256, width, height, features
    (array<float>), error_kind, error``. A photo that cannot be read or decoded
    keeps its row, with null features and the reason in ``error``.

    The photos are read from the paths in ``path_col`` (local paths, ``file:``
    URIs, or ``s3://`` / ``s3a://`` URLs, read by the Rust core, so executors
    need no Hadoop S3 connector), or taken from the bytes in ``content_col``.
    A ``spark.read.format("binaryFile")`` DataFrame works as is (its
    ``content`` column is used). Label and split come from each path's folders.

    ``precision`` ("fp32" or "int8") picks the shared model, ``model`` another
    ONNX file (read once on the driver and broadcast). Each Python worker
    builds one ONNX Runtime session with ``intra_threads`` threads.

    >>> df = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load("photos/")
    >>> fruits.spark.featurize(df).where("error is null").count()
    """
    if content_col is None and "content" in df.columns and path_col in df.columns:
        content_col = "content"
    for col in [path_col] + ([content_col] if content_col else []):
        if col not in df.columns:
            raise InputError(f"the DataFrame has no column {col!r} (columns: {df.columns})")
    source = model_path(precision, model)
    model_bytes = bytes(_native.read_bytes(source))
    digest = hashlib.sha256(model_bytes).hexdigest()
    broadcast = df.sparkSession.sparkContext.broadcast(model_bytes)
    settings = {"intra_threads": intra_threads, "batch_size": batch_size, "decode_threads": decode_threads}

    def run(batches):
        featurizer = worker.featurizer(broadcast, source, settings, digest)
        for batch in batches:
            paths = [str(p) for p in batch.column(0).to_pylist()]
            if not paths:
                continue
            if content_col:
                contents = [bytes(c) if c is not None else b"" for c in batch.column(1).to_pylist()]
                f, e, meta = featurizer.featurize_bytes(paths, contents)
                yield _rows_in_order(paths, pa.Table.from_batches(f), pa.Table.from_batches(e))
            else:
                root, rels = common_root(paths)
                f, e, meta = featurizer.featurize_paths(root, rels)
                originals = dict(zip(rels, paths))
                features = _restore_paths(pa.Table.from_batches(f), originals)
                errors = _restore_paths(pa.Table.from_batches(e), originals)
                yield _rows_in_order(paths, features, errors)

    columns = [path_col] + ([content_col] if content_col else [])
    return df.select(*columns).mapInArrow(run, FEATURES_DDL)


class PCAModel:
    """A PCA fitted by `fruits.spark.pca`: a `fruits.PCA` (``.pca``) and `transform`."""

    def __init__(self, pca):
        self.pca = pca

    def transform(self, df, input_col="features", output_col="pca"):
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
                vectors = batch.column(input_col)
                valid = vectors.is_valid()
                present = batch.filter(valid)
                projected = [None] * batch.num_rows
                if present.num_rows:
                    table = feature_table(pa.Table.from_batches([present.select([input_col])]), input_col)
                    out = model.project(table.to_batches(max_chunksize=present.num_rows)[0]).column(0)
                    flat = out.flatten().to_numpy(zero_copy_only=False)
                    k = out.type.list_size
                    rows = [i for i, ok in enumerate(valid.to_pylist()) if ok]
                    for j, i in enumerate(rows):
                        projected[i] = flat[j * k:(j + 1) * k]
                column = pa.array(projected, pa.list_(pa.float32()))
                yield batch.append_column(pa.field(output_col, column.type), column)

        return df.mapInArrow(run, schema)

    def __getattr__(self, name):
        # explained_variance_ratio_, components_, n_components_, save, ...
        return getattr(self.pca, name)

    def __repr__(self):
        return f"PCAModel({self.pca!r})"


def pca(df, *, variance=None, k=None, input_col="features"):
    """Fits a PCA on the vectors of `input_col` (rows with null vectors are
    skipped): each partition summarises its rows (count, mean, co-moments in
    f64) in the Rust core, the driver merges the summaries and decomposes. The
    result equals a fit over all rows in one pass. Keeps `variance` (default
    95%) of the variance or exactly `k` components. Returns a `PCAModel` whose
    ``transform(df)`` adds the projection as a ``pca`` column."""
    if variance is not None and k is not None:
        raise InputError("give variance or k, not both")
    if input_col not in df.columns:
        raise InputError(f"the DataFrame has no column {input_col!r} (columns: {df.columns})")

    def stats(batches):
        summaries = []
        for batch in batches:
            batch = batch.filter(batch.column(0).is_valid())
            if batch.num_rows:
                table = feature_table(pa.Table.from_batches([batch]), input_col)
                summaries.append(bytes(_native.batch_stats(table.to_batches())))
        if summaries:
            yield pa.RecordBatch.from_pydict({"stats": [bytes(_native.pca_merge(summaries))]},
                                             schema=pa.schema([("stats", pa.binary())]))

    partials = [bytes(r.stats) for r in df.select(input_col).mapInArrow(stats, "stats binary").collect()]
    if not partials:
        raise InputError(f"no rows with a {input_col!r} vector to fit a PCA on")
    merged = _native.pca_merge(partials)
    native = _native.Pca.fit_stats(bytes(merged), variance=variance, k=k)
    return PCAModel(fruits.PCA._from_native(native))


__all__ = ["featurize", "pca", "PCAModel", "FEATURES_DDL"]
