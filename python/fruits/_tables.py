"""Tables in and out: `fruits.featurize` and `fruits.read`, and the helpers that
turn pandas / pyarrow / path lists into what the Rust core takes."""

from __future__ import annotations

import json
import os
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from fruits import _check, _native
from fruits._models import featurizer
from fruits.errors import InputError

#: Schema metadata key holding the dataset's metadata (image model sha256,
#: preprocessing, PCA fingerprint) as JSON, on every table fruits returns.
META_KEY = b"fruits.meta"


class Featurized:
    """What `fruits.featurize` returns: ``features, errors = fruits.featurize(...)``.

    ``features`` has one row per photo (path, label, split, sha256, width,
    height, features); ``errors`` one row per input that could not be featurised
    (path, kind, message). ``summary`` is the run's summary when ``out=`` was given.
    """

    def __init__(self, features: pa.Table, errors: pa.Table, summary: Optional[dict[str, Any]] = None):
        self.features = features
        self.errors = errors
        self.summary = summary

    def __iter__(self) -> Iterator[pa.Table]:
        return iter((self.features, self.errors))

    def __repr__(self):
        return f"Featurized(features={self.features.num_rows} rows, errors={self.errors.num_rows} rows)"


def _table(batches, meta_json):
    table = pa.Table.from_batches(batches)
    return table.replace_schema_metadata({META_KEY: meta_json.encode()})


def table_meta(table: pa.Table) -> dict[str, Any]:
    """The dataset metadata a fruits table carries (dict), or {} for other tables."""
    raw = (table.schema.metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def _split_path(path):
    """(root prefix, components) of a local path or s3:// URL."""
    if path.startswith("s3a://") or path.startswith("s3n://"):
        path = "s3://" + path.split("://", 1)[1]
    if path.startswith("s3://"):
        bucket, _, key = path[len("s3://"):].partition("/")
        return f"s3://{bucket}", [p for p in key.split("/") if p]
    if path.startswith("file:"):
        path = path[len("file:"):]
        while path.startswith("//"):
            path = path[1:]
    path = os.path.abspath(path)
    return os.sep, [p for p in path.split(os.sep) if p]


def common_root(paths: Sequence[str]) -> tuple[str, list[str]]:
    """The deepest folder (or s3:// prefix) holding every path with its two
    parent folders (label and, when present, split), and each path relative to it."""
    if not paths:
        raise InputError("no photos given")
    split = [_split_path(p) for p in paths]
    prefixes = {prefix for prefix, _ in split}
    if len(prefixes) != 1:
        raise InputError(f"photos must all be local or all in one bucket; got {sorted(prefixes)}")
    prefix = prefixes.pop()
    # Keep each photo's file name and two folders below the root.
    common = split[0][1][:-3] if len(split[0][1]) > 3 else []
    for _, parts in split[1:]:
        limit = min(len(common), max(0, len(parts) - 3))
        n = 0
        while n < limit and common[n] == parts[n]:
            n += 1
        common = common[:n]
    if prefix.startswith("s3://"):
        root = "/".join([prefix] + common) + "/"
    else:
        root = os.path.join(os.sep, *common)
    return root, ["/".join(parts[len(common):]) for _, parts in split]


def _paths_of(source, path_col):
    """The list of paths in `source`: a list of paths, or a table's path column
    (a null or non-text cell is an InputError, never the path "None" or "nan")."""
    if isinstance(source, (list, tuple)):
        return [_check.path(f"source[{i}]", p) for i, p in enumerate(source)]
    if isinstance(source, pa.Table):
        if path_col not in source.column_names:
            raise InputError(f"the table has no column {path_col!r} (columns: {source.column_names})")
        values = source.column(path_col).to_pylist()
    else:
        columns = getattr(source, "columns", None)
        if columns is None:
            values = None
        elif path_col not in columns:
            raise InputError(f"the DataFrame has no column {path_col!r} (columns: {list(columns)})")
        else:  # a pandas DataFrame: missing cells are None or NaN
            values = [None if v != v else v for v in source[path_col].tolist()]
    if values is not None:
        return [_check.path(f"row {i} of column {path_col!r}", p) for i, p in enumerate(values)]
    raise InputError(
        "source must be a folder, an s3:// prefix, a list of paths, or a pyarrow Table / "
        f"pandas DataFrame with a {path_col!r} column; got {type(source).__name__}"
    )


def _restore_paths(table, rel_to_original):
    """`table` with its path column mapped back to the paths the caller gave."""
    paths = [rel_to_original.get(p, p) for p in table.column("path").to_pylist()]
    index = table.schema.get_field_index("path")
    return table.set_column(index, table.schema.field(index), pa.array(paths, pa.string()))


#: What `featurize` takes: a folder or s3:// prefix, a list of paths, or a table with a path column.
Source = Union[str, "os.PathLike[str]", Sequence[str], pa.Table, Any]


def featurize_paths(featurizer, paths):
    """(features, errors) of the photos at `paths` (local, file:, s3:// or
    s3a://), read from their common root; path columns as the caller gave them."""
    root, rels = common_root(paths)
    batches, errors, meta = featurizer.featurize_paths(root, rels)
    originals = dict(zip(rels, paths))
    return (_restore_paths(_table(batches, meta), originals),
            _restore_paths(_table(errors, meta), originals))


def featurize(source: Source, *, precision: Optional[str] = None, model: Optional[str] = None,
              batch_size: Optional[int] = None, out: Optional[str] = None, path_col: str = "path",
              intra_threads: Optional[int] = None, decode_threads: Optional[int] = None,
              max_megapixels: Optional[float] = None, augment: int = 0,
              augment_seed: Optional[int] = None, sessions: Optional[int] = None,
              views: bool = False) -> Featurized:
    """Featurises photos with MobileNetV2: one 1280-d vector per photo.

    ``source`` is a folder or ``s3://`` prefix (every photo under it; the label
    is each photo's folder, the split ``Training``/``Test`` its parent's), a
    list of paths, or a pyarrow Table / pandas DataFrame with a ``path_col``
    column. Returns ``Featurized``: ``features, errors = fruits.featurize(...)``,
    two pyarrow Tables. A photo that cannot be read or decoded lands in
    ``errors`` with the reason; nothing is raised for it.

    With ``out=`` (a folder or ``s3://`` prefix; source must be a folder or
    prefix), also writes the same Parquet output as ``fruits featurize`` and
    resumes an interrupted run there: photos already done are skipped.

    ``precision`` is ``"int8"`` (default) or ``"fp32"`` and picks the shared
    model file; ``model`` names another ONNX file (path or s3:// URL).

    ``augment=N`` also featurises N augmented copies of each ``Training``
    photo (every photo when there are no split folders), as ``fruits
    featurize --augment N``: photos as in the wild, rows named ``PHOTO.jpg-aug0.jpg``;
    ``augment_seed`` picks other draws.

    ``views=True`` also stores each photo's vectors in the views the
    identifier averages (``fruits featurize --views``), for real photos.

    ``sessions`` and ``intra_threads`` split the cores between ONNX Runtime
    sessions running batches side by side and each one's threads; by default
    one single-threaded session per core, as ``fruits featurize``.

    >>> features, errors = fruits.featurize("../shared/data/fruits-360-sample/Test")
    >>> features.num_rows, features.schema.field("features").type
    (13839, FixedSizeListType(fixed_size_list<item: float not null>[1280]))
    """
    batch_size = _check.optional_count("batch_size", batch_size, 1, _native.MAX_BATCH_SIZE)
    intra_threads = _check.optional_count("intra_threads", intra_threads, 1, _native.MAX_THREADS)
    decode_threads = _check.optional_count("decode_threads", decode_threads, 1, _native.MAX_THREADS)
    sessions = _check.optional_count("sessions", sessions, 1, _native.MAX_THREADS)
    augment = _check.count("augment", augment, 0, _native.MAX_COPIES)
    augment_seed = _check.optional_count("augment_seed", augment_seed, 0, 2**64 - 1)
    if max_megapixels is not None:
        max_megapixels = _check.positive("max_megapixels", max_megapixels, 10_000)
    f = featurizer(precision=precision, model=model, batch_size=batch_size, intra_threads=intra_threads,
                   decode_threads=decode_threads, max_megapixels=max_megapixels, augment=augment,
                   augment_seed=augment_seed, sessions=sessions, views=views)
    if isinstance(source, (str, os.PathLike)):
        source = os.fspath(source)
        if out is not None:
            summary = json.loads(f.featurize_into(source, os.fspath(out)))
            return Featurized(read(out), read(out, table="errors"), summary)
        batches, errors, meta = f.featurize_location(source)
        return Featurized(_table(batches, meta), _table(errors, meta))
    if out is not None:
        raise InputError("out= writes a resumable output of a folder or s3:// prefix; "
                         "for other sources, write the returned table yourself")
    return Featurized(*featurize_paths(f, _paths_of(source, path_col)))


def read(location: Union[str, "os.PathLike[str]"], *, table: str = "features") -> pa.Table:
    """Reads a committed fruits output (features or reduced, local or ``s3://``)
    as a pyarrow Table; ``table="errors"`` reads its errors table instead.
    ``.to_pandas()`` gives a DataFrame (vectors as numpy arrays)."""
    batches, meta = _native.read_dataset(os.fspath(location), table)
    return _table(batches, meta)


def feature_table(data: Any, column: str = "features") -> pa.Table:
    """`data` (a fruits Table, a `Featurized`, a pandas DataFrame or pyarrow
    Table with a vector column, or a 2-D numpy array) as a pyarrow Table whose `column` holds
    fixed-size float32 lists, renamed `features`, as the core reads them."""
    if isinstance(data, Featurized):
        data = data.features
    if isinstance(data, np.ndarray):
        if data.ndim != 2 or data.shape[1] == 0:
            raise InputError(f"a numpy array of features must be 2-D (rows, dims); got shape {data.shape}")
        if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
            raise InputError(f"a numpy array of features must hold numbers; got dtype {data.dtype}")
        values = pa.array(np.ascontiguousarray(data, dtype=np.float32).reshape(-1), pa.float32())
        col = pa.FixedSizeListArray.from_arrays(values, data.shape[1])
        return pa.table({"features": col}, schema=pa.schema([pa.field("features", col.type, nullable=False)]))
    if not isinstance(data, pa.Table):
        if getattr(data, "columns", None) is None:
            raise InputError(f"expected a table, a DataFrame or a location; got {type(data).__name__}")
        data = pa.Table.from_pandas(data, preserve_index=False)
    if column not in data.column_names:
        raise InputError(f"the table has no column {column!r} (columns: {data.column_names})")
    col = data.column(column).combine_chunks()
    if not pa.types.is_fixed_size_list(col.type):
        if col.null_count:
            raise InputError(f"column {column!r} has {col.null_count} null rows: drop them first")
        lengths = set(col.value_lengths().to_pylist()) if len(col) else {0}
        if len(lengths) != 1:
            raise InputError(f"the vectors of column {column!r} have different lengths: {sorted(lengths)[:5]}")
        values = col.flatten().cast(pa.float32())
        col = pa.FixedSizeListArray.from_arrays(values, lengths.pop())
    elif col.type.value_type != pa.float32():
        col = pa.FixedSizeListArray.from_arrays(col.flatten().cast(pa.float32()), col.type.list_size)
    names = [n for n in data.column_names if n != column]
    out = data.select(names).append_column(pa.field("features", col.type, nullable=False), col)
    for name in ("path", "label", "split"):
        if name in out.column_names and out.schema.field(name).type != pa.string():
            i = out.schema.get_field_index(name)
            out = out.set_column(i, name, out.column(name).cast(pa.string()))
    return out.replace_schema_metadata(data.schema.metadata)
