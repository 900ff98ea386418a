"""The Python bindings without Spark: same rows as the CLI, PCA statistics merge."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fruits
from conftest import MODEL, assert_within, pca_steps


def read_output(folder, column):
    manifest = json.load(open(os.path.join(folder, "_manifest.json")))
    tables = [pq.read_table(os.path.join(folder, p["file"])) for p in manifest["parts"]]
    table = pa.concat_tables(tables).sort_by("path")
    dim = table.schema.field(column).type.list_size
    values = table.column(column).combine_chunks().flatten().to_numpy().reshape(-1, dim)
    if column == "pca":  # int8 codes: value = code x step
        values = values * pca_steps(folder)
    return table, values


def test_list_images_matches_the_layout(photos):
    batch = fruits.list_images(photos)
    assert batch.schema.names == ["path", "size", "label", "split"]
    assert batch.num_rows == 301
    paths = batch.column("path").to_pylist()
    assert paths == sorted(paths)
    row = batch.slice(0, 1).to_pylist()[0]
    assert row["label"] == "Apple Braeburn 1" and row["split"] == "Test" and row["size"] > 0


def test_a_partition_equals_the_cli(photos, cli_run, tmp_path):
    featurizer = fruits.Featurizer(open(MODEL, "rb").read(), MODEL)
    before = fruits.models_built()
    listing = fruits.list_images(photos)
    out = str(tmp_path / "features")
    halves = [listing.slice(0, 150), listing.slice(150)]
    results = [featurizer.featurize_partition(photos, out, i, b) for i, b in enumerate(halves)]
    assert fruits.models_built() == before, "featurising builds no model"
    assert [r["part"] for r in results] == ["part-r000-00000.parquet", "part-r000-00001.parquet"]
    # The bad file sorts into the first half (Test/ before Training/).
    assert results[0]["errors"] == "errors-r000-00000.parquet" and results[0]["failed"] == 1
    assert results[1]["errors"] is None and results[1]["failed"] == 0
    # Running a partition again (a retried task) rewrites the same part.
    again = featurizer.featurize_partition(photos, out, 0, halves[0])
    assert again == results[0]
    rows = fruits.write_manifest(out, featurizer.meta_json(),
                                 [(r["part"], r["part_rows"]) for r in results],
                                 [(r["errors"], r["error_rows"]) for r in results if r["errors"]])
    assert rows == 300
    mine, x = read_output(out, "features")
    cli, y = read_output(os.path.join(cli_run, "features"), "features")
    assert mine.column("path").to_pylist() == cli.column("path").to_pylist()
    np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)
    meta = json.loads(featurizer.meta_json())
    assert meta["model_sha256"] == json.load(open(os.path.join(cli_run, "features", "_manifest.json")))["meta"]["model_sha256"]


def test_pca_statistics_merge_and_match_the_cli(cli_run, tmp_path):
    features = os.path.join(cli_run, "features")
    files = [f for f, _ in fruits.dataset_parts(features)]
    batches = [b for f in files for b in fruits._native.read_part(features, f)]
    whole = fruits._native.batch_stats(batches)
    # Split rows across "tasks" differently: the merge gives the same model.
    parts = [fruits._native.batch_stats(fruits._native.read_part(features, f)) for f in files]
    halves = [fruits._native.batch_stats(batches[:1]), fruits._native.batch_stats(batches[1:])]
    assert fruits._native.batch_stats([]) is None
    manifest = json.load(open(os.path.join(features, "_manifest.json")))
    sha = manifest["meta"]["model_sha256"]
    a = fruits._native.Pca.fit_stats(whole, variance=0.95, features_model_sha256=sha, source=features)
    b = fruits._native.Pca.fit_stats(fruits.pca_merge(parts), variance=0.95)
    c = fruits._native.Pca.fit_stats(fruits.pca_merge([h for h in halves if h]), variance=0.95)
    assert a.k == b.k == c.k
    cli = json.load(open(os.path.join(cli_run, "pca", "pca.json")))
    assert a.k == cli["k"] and a.n == cli["n"] == 300
    k = a.k  # the rest are rank-deficient noise (300 rows, 1280 features)
    ref = cli["explained_variance_ratio"][:k]
    for model in (a, b, c):
        np.testing.assert_allclose(model.explained_variance_ratio[:k], ref, rtol=1e-9)
    a.save(str(tmp_path / "a"))
    assert json.load(open(tmp_path / "a" / "pca.json"))["features_model_sha256"] == sha
    model_a = a.model_bytes()
    # Projecting a part equals the CLI's reduced output.
    out = str(tmp_path / "reduced")
    first_rows = np.cumsum([0] + [rows for _, rows in fruits.dataset_parts(features)])
    got = [fruits.reduce_partition(features, f, bytes(model_a), out, i, first_row=int(first_rows[i]), stride=7)
           for i, f in enumerate(files)]
    fruits.write_manifest(out, fruits.reduced_meta_json(features, bytes(model_a)), [g[:2] for g in got], [])
    table, mine = read_output(out, "pca")
    _, ref = read_output(os.path.join(cli_run, "reduced"), "pca")
    # Both stored as int8 codes: at most one step apart (two fits of one PCA).
    steps = pca_steps(out)
    assert_within(np.abs(mine), np.abs(ref), steps + 1e-4)

    # The plot sample: every 7th row in part (= path) order, on PC1 and PC2.
    points = np.array([p for g in got for p in g[2]])
    labels = [label for g in got for label in g[3]]
    # The plot keeps the exact projection; the stored rows are within half a step.
    assert_within(points, mine[::7, :2], steps[:2] / 2 + 1e-5)
    assert labels == table.column("label").to_pylist()[::7]
    assert fruits.plot_stride(300) == 1 and fruits.plot_stride(8192 * 3 + 1) == 4
    plots = str(tmp_path / "plots")
    fruits.pca_plots(plots, bytes(model_a), points.tolist(), labels, 300)
    for name in ("explained_variance.png", "projection.png"):
        assert open(os.path.join(plots, name), "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_every_class_the_core_maps_errors_to_exists_and_is_documented():
    # The extension maps every variant of every core error enum (an exhaustive
    # match, checked by the compiler) to one of these; each must exist, derive
    # from FruitsError, and have its row in docs/python.md.
    from conftest import ROOT
    import fruits.errors
    from fruits import _native

    docs = open(os.path.join(ROOT, "docs", "python.md")).read()
    assert len(_native.ERROR_CLASSES) == len(set(_native.ERROR_CLASSES)) >= 10
    for name in _native.ERROR_CLASSES:
        cls = getattr(fruits.errors, name)
        assert issubclass(cls, fruits.FruitsError), name
        assert getattr(fruits, name) is cls, name
        assert f"| `fruits.{name}` |" in docs, f"{name} has no row in docs/python.md's table of errors"


def test_errors_are_typed_python_exceptions(tmp_path):
    # One class per kind of failure, each also the builtin it means.
    with pytest.raises(fruits.NotFound, match="missing") as e:
        fruits.list_images(str(tmp_path / "missing"))
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, fruits.StorageError)
    with pytest.raises(fruits.ModelError, match="junk.onnx"):
        fruits.Featurizer(b"not a model", "junk.onnx")
    with pytest.raises(fruits.InputError, match="no statistics") as e:
        fruits.pca_merge([])
    assert isinstance(e.value, ValueError)
    with pytest.raises(fruits.InputError, match="not a usable location"):
        fruits.list_images("gs://bucket/photos")
    assert issubclass(fruits.RegionNotAllowed, fruits.StorageError)
    assert issubclass(fruits.AccessDenied, PermissionError)
