"""fruits.spark.featurize / fruits.spark.pca on the standalone cluster, local
folders and Garage S3: the same vectors as the CLI, one model per worker."""

import json
import os

import numpy as np
import pytest

import fruits
import fruits.spark
from conftest import MODEL, assert_within, pca_steps
from garage import Garage


@pytest.fixture(scope="module")
def garage(tmp_path_factory):
    """An S3 server for the module; driver and executors get its environment."""
    server = Garage(tmp_path_factory.mktemp("garage"))
    patch = pytest.MonkeyPatch()
    for key, value in server.env().items():
        patch.setenv(key, value)
    yield server
    patch.undo()
    server.stop()


@pytest.fixture(scope="module")
def spark(cluster, garage):
    """A driver in this process on the cluster; stopped before the job tests
    (which need the cluster's cores for their own application)."""
    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.master(cluster.url).appName("fruits-dataframe-tests")
               .config("spark.python.worker.reuse", "true")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
               .config("spark.executorEnv.FRUITS_MODELS_DIR", os.path.dirname(MODEL)))
    for key, value in garage.env().items():
        builder = builder.config(f"spark.executorEnv.{key}", value)
    session = builder.getOrCreate()
    yield session
    session.stop()


def vectors_by_path(rows, column):
    rows = sorted(rows, key=lambda r: r["path"])
    return [r["path"] for r in rows], np.array([r[column] for r in rows], dtype=np.float32)


def cli_vectors(cli_run, photos, prefix):
    table = fruits.read(os.path.join(cli_run, "features")).sort_by("path")
    paths = [prefix + os.path.join(photos, p) for p in table.column("path").to_pylist()]
    col = table.column("features").combine_chunks()
    return paths, col.flatten().to_numpy().reshape(len(col), -1)


def test_featurize_a_binary_file_dataframe_equals_the_cli(spark, photos, cli_run):
    df = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(photos)
    out = fruits.spark.featurize(df, model=MODEL).cache()
    assert out.columns == ["path", "label", "split", "sha256", "width", "height", "features", "colour",
                           "error_kind", "error"]
    rows = out.collect()
    assert len(rows) == 301  # one row per input row, the broken photo included
    bad = [r for r in rows if r["error"] is not None]
    assert len(bad) == 1 and bad[0]["path"].endswith("zz-not-a-photo.jpg")
    assert bad[0]["error_kind"] == "unsupported_format" and bad[0]["features"] is None
    good = [r for r in rows if r["error"] is None]
    paths, x = vectors_by_path(good, "features")
    ref_paths, y = cli_vectors(cli_run, photos, "file:")
    assert paths == ref_paths
    np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)
    kiwi = next(r for r in good if "Kiwi" in r["path"])
    assert kiwi["label"] == "Kiwi 1" and kiwi["split"] in ("Training", "Test") and len(kiwi["sha256"]) == 64

    # The PCA from per-partition statistics equals the CLI's, and transform adds `pca`.
    model = fruits.spark.pca(out, variance=0.95)
    cli = json.load(open(os.path.join(cli_run, "pca", "pca.json")))
    assert model.n_components_ == cli["k"] and model.n_samples_ == 300
    np.testing.assert_allclose(model.explained_variance_ratio_, cli["explained_variance_ratio"][:cli["k"]], rtol=1e-6)
    reduced = model.transform(out).collect()
    assert all((r["pca"] is None) == (r["features"] is None) for r in reduced)
    _, z = vectors_by_path([r for r in reduced if r["pca"] is not None], "pca")
    ref = fruits.read(os.path.join(cli_run, "reduced")).sort_by("path").column("pca").combine_chunks()
    # The stored output is int8 codes (decoded by fruits.read): within half a step.
    steps = pca_steps(os.path.join(cli_run, "reduced"))
    assert_within(np.abs(z), np.abs(ref.flatten().to_numpy().reshape(len(ref), -1)), steps / 2 + 1e-4)


def models_built_per_worker(spark):
    """{pid: models built} of the cluster's Python workers (two one-core executors)."""

    def built(batches):
        import pyarrow as pa

        for _ in batches:
            yield pa.RecordBatch.from_pydict({"pid": [os.getpid()], "models": [fruits.models_built()]})

    rows = spark.range(0, 2, numPartitions=2).mapInArrow(built, "pid long, models long").collect()
    return {r.pid: r.models for r in rows}


def test_featurize_a_path_column_builds_one_model_per_worker(spark, photos, cli_run):
    table = fruits.read(os.path.join(cli_run, "features")).sort_by("path")
    paths = [os.path.join(photos, p) for p in table.column("path").to_pylist()]
    df = spark.createDataFrame([(p,) for p in paths], "photo string").repartition(6)
    before = models_built_per_worker(spark)
    out = fruits.spark.featurize(df, path_col="photo")  # the default model, found in FRUITS_MODELS_DIR
    got, x = vectors_by_path(out.collect(), "features")
    ref_paths, y = cli_vectors(cli_run, photos, "")
    assert got == ref_paths
    np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)
    # Six partitions on two executors: each Python worker built one session,
    # however many partitions it ran.
    after = models_built_per_worker(spark)
    assert sum(after.values()) - sum(before.get(pid, 0) for pid in after) <= len(after), (before, after)


def test_bad_input_gives_typed_errors(spark):
    df = spark.createDataFrame([("a.jpg",)], "photo string")
    with pytest.raises(fruits.InputError, match="no column 'path'"):
        fruits.spark.featurize(df)
    with pytest.raises(fruits.InputError, match="no column 'features'"):
        fruits.spark.pca(df)
    with pytest.raises(fruits.NotFound):
        fruits.spark.featurize(df, path_col="photo", model="/nonexistent/model.onnx")


def test_featurize_reads_photos_from_s3(spark, garage, photos, cli_run):
    import pyarrow.fs as pafs

    garage.bucket("photos")
    pafs.copy_files(photos, "photos/in", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=garage.filesystem())
    table = fruits.read(os.path.join(cli_run, "features")).sort_by("path")
    rels = table.column("path").to_pylist()[:20]
    df = spark.createDataFrame([(f"s3a://photos/in/{p}",) for p in rels], "path string")
    rows = fruits.spark.featurize(df, model=MODEL).collect()
    assert [r["error"] for r in rows] == [None] * 20
    assert [r["path"] for r in rows] == [f"s3a://photos/in/{p}" for p in rels]
    assert rows[0]["label"] == table.column("label")[0].as_py()
    col = table.column("features").combine_chunks()
    ref = col.flatten().to_numpy().reshape(len(col), -1)[:20]
    np.testing.assert_allclose(np.array([r["features"] for r in rows], dtype=np.float32), ref, atol=1e-5)


def test_write_features_keeps_listing_problems_and_reads_back(spark, photos, tmp_path):
    """Entries that cannot be listed as files (a broken link) are rows of the
    errors table, as with `fruits featurize`; the output reads back as a DataFrame."""
    import shutil
    import subprocess

    from conftest import fruits_bin

    folder = tmp_path / "photos"
    shutil.copytree(os.path.join(photos, "Test", "Kiwi 1"), folder / "Test" / "Kiwi 1")
    os.symlink(str(tmp_path / "gone.jpg"), folder / "Test" / "Kiwi 1" / "broken-link.jpg")
    out = str(tmp_path / "spark-features")
    summary = fruits.spark.write_features(spark, str(folder), out, model=MODEL, chunk_images=10)
    assert summary["rows"] == 30 and summary["errors"] == 2 and summary["chunks"] == 4
    cli = str(tmp_path / "cli-features")
    proc = subprocess.run([fruits_bin(), "featurize", str(folder), "--out", cli, "--model", MODEL],
                          capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr  # 3: some photos failed
    mine = fruits.read(out, table="errors").sort_by("path")
    theirs = fruits.read(cli, table="errors").sort_by("path")
    assert mine.to_pylist() == theirs.to_pylist()
    assert "broken-link.jpg" in mine.column("path").to_pylist()[0]

    df = fruits.spark.read(spark, out)
    assert df.count() == 30
    assert dict(df.dtypes)["features"] == "array<float>" and dict(df.dtypes)["sha256"] == "string"
    row = df.orderBy("path").first()
    ref = fruits.read(cli).sort_by("path").slice(0, 1).to_pylist()[0]
    assert row["path"] == ref["path"] and row["sha256"] == ref["sha256"].hex()
    np.testing.assert_allclose(row["features"], ref["features"], atol=1e-5)

    # fit_pca reads the parts in the tasks, not through DataFrames: the same model
    # (the summaries merge in another order: the last bit may differ).
    direct = fruits.spark.fit_pca(spark, out, k=5).pca
    through = fruits.spark.pca(df, k=5).pca
    np.testing.assert_allclose(direct.mean_, through.mean_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(direct.components_, through.components_, atol=1e-12)
    assert direct.n_samples_ == 30


def test_write_features_from_a_binary_file_dataframe(spark, photos, tmp_path):
    df = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(
        os.path.join(photos, "Training", "Banana 1"))
    out = str(tmp_path / "features")
    summary = fruits.spark.write_features(spark, df.repartition(3), out, model=MODEL)
    assert summary["rows"] == 30 and summary["errors"] == 0 and summary["parts"] == 3
    table = fruits.read(out)
    assert set(table.column("label").to_pylist()) == {"Banana 1"}
    assert all(p.startswith("file:") for p in table.column("path").to_pylist())
