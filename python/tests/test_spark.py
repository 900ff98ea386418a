"""The job on a real Spark standalone cluster (master + 2 workers) vs `fruits run`."""

import json
import os
import re
import time

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from conftest import MODEL
from fruits.spark.local_cluster import LocalCluster
from conftest import assert_within, pca_steps
from garage import Garage

PNG = b"\x89PNG\r\n\x1a\n"


def read_output(folder, column, fs=None):
    """(sorted paths, matrix) of a dataset, read through its manifest; asserts no path twice."""
    fs = fs or pafs.LocalFileSystem()
    with fs.open_input_stream(f"{folder}/_manifest.json") as f:
        manifest = json.load(f)
    table = pa.concat_tables(pq.read_table(f"{folder}/{p['file']}", filesystem=fs) for p in manifest["parts"])
    paths = table.column("path").to_pylist()
    assert len(paths) == len(set(paths)), "an image appears twice"
    table = table.sort_by("path")
    dim = table.schema.field(column).type.list_size
    values = table.column(column).combine_chunks().flatten().to_numpy().reshape(-1, dim)
    if column == "pca":  # int8 codes: value = code x step
        values = values * pca_steps(folder, fs)
    return table.column("path").to_pylist(), values


def start_job(cluster, photos, out, summary, *extra, **submit):
    return cluster.submit(["--input", photos, "--output", out, "--summary", summary, *extra], **submit)


def finish(proc, summary):
    log, _ = proc.communicate(timeout=900)
    # Kept beside the summary: the driver's log is what explains a failure.
    with open(summary + ".driver.log", "w") as f:
        f.write(log)
    assert proc.returncode == 0, log
    return json.load(open(summary)), log


def assert_same_features(out, cli_run, fs=None):
    paths, x = read_output(f"{out}/features", "features", fs)
    ref_paths, y = read_output(os.path.join(cli_run, "features"), "features")
    assert paths == ref_paths
    np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)


def test_a_worker_killed_mid_job_loses_and_duplicates_nothing(photos, cli_run, tmp_path):
    """SIGKILL one worker (with its executor and Python worker) while chunks are being
    featurised: Spark reruns the lost tasks on the other worker and the output still
    holds every image exactly once."""
    out, summary = str(tmp_path / "spark"), str(tmp_path / "summary.json")
    features = os.path.join(out, "features")
    with LocalCluster(tmp_path / "cluster", workers=2) as cluster:
        # 16 chunks of about 19 photos: each task runs for seconds, so the kill lands inside one.
        proc = start_job(cluster, photos, out, summary, "--model", MODEL, "--chunk-images", "20")
        deadline = time.time() + 600
        def parts():
            return [f for f in os.listdir(features) if f.startswith("part-")] if os.path.isdir(features) else []
        while len(parts()) < 3:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.time() < deadline, "no parts written in 10 minutes"
            time.sleep(0.1)
        written_before_kill = len(parts())
        cluster.kill_worker(0)
        result, log = finish(proc, summary)

    assert written_before_kill < 16, "the job had finished featurising before the kill"
    # The driver saw its executor go and rescheduled the task that was running there.
    assert re.search(r"Lost executor \d+", log), log[-5000:]
    lost = re.findall(r"task (\d+)\.0 in stage \d+\.0 \(TID \d+\) failed because while it was being computed, "
                      r"its executor exited", log)
    assert lost, "no task was running on the killed worker"
    for task in lost:
        assert re.search(rf"Starting task {task}\.1 ", log), f"task {task} was not rerun"
    assert result["rows"] == 300 and result["errors"] == 1 and result["chunks"] == 16
    assert_same_features(out, cli_run)
    manifest = json.load(open(os.path.join(features, "_manifest.json")))
    assert [p["file"] for p in manifest["parts"]] == [f"part-r000-{i:05}.parquet" for i in range(16)]
    assert sum(p["rows"] for p in manifest["parts"]) == 300
    paths, _ = read_output(os.path.join(out, "reduced"), "pca")
    assert len(paths) == 300


@pytest.fixture()
def garage(tmp_path):
    server = Garage(tmp_path / "garage")
    yield server
    server.stop()


def test_the_job_reads_photos_and_model_from_s3_gives_the_cli_results_and_loads_the_model_once(
        cluster, garage, photos, cli_run):
    """Input, model and output on the S3-compatible server, as on EMR; driver and executors
    reach it through the Rust storage layer with credentials from the environment (no Hadoop
    S3A). The results are the CLI's, and each executor's Python worker builds the model once.
    (Local paths are the worker-kill test's.)"""
    garage.bucket("photos")
    garage.bucket("results")
    s3 = garage.filesystem()
    pafs.copy_files(photos, "photos/fruits-360", source_filesystem=pafs.LocalFileSystem(), destination_filesystem=s3)
    pafs.copy_files(MODEL, "photos/models/mobilenetv2.onnx", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=s3)
    env = garage.env()
    summary = os.path.join(garage.base, "summary.json")
    proc = start_job(cluster, "s3://photos/fruits-360/", "s3://results/run", summary,
                     "--model", "s3://photos/models/mobilenetv2.onnx", "--chunk-images", "40",
                     env=env, conf=[f"spark.executorEnv.{k}={v}" for k, v in env.items()])
    result, _ = finish(proc, summary)
    assert result["rows"] == 300 and result["errors"] == 1 and result["chunks"] == 8

    assert_same_features("results/run", cli_run, s3)
    with s3.open_input_stream("results/run/features/_manifest.json") as f:
        manifest = json.load(f)
    assert [p["file"] for p in manifest["parts"]] == [f"part-r000-{i:05}.parquet" for i in range(8)]
    # Image 90 in path order (Test/Kiwi 1/zz...) is in chunk 2 = images 75..111.
    assert manifest["error_parts"] == [{"file": "errors-r000-00002.parquet", "rows": 1}]
    errors = pq.read_table("results/run/features/errors-r000-00002.parquet", filesystem=s3).to_pylist()
    assert [e["path"] for e in errors] == ["Test/Kiwi 1/zz-not-a-photo.jpg"]

    ref = json.load(open(os.path.join(cli_run, "pca", "pca.json")))
    with s3.open_input_stream("results/run/pca/pca.json") as f:
        mine = json.load(f)
    assert mine["k"] == ref["k"] and mine["n"] == ref["n"]
    k = ref["k"]
    np.testing.assert_allclose(mine["explained_variance"][:k], ref["explained_variance"][:k], rtol=1e-6)
    _, zm = read_output("results/run/reduced", "pca", s3)
    _, zr = read_output(os.path.join(cli_run, "reduced"), "pca")
    # Both int8 codes of PCAs equal within 1e-9: at most one step apart.
    assert_within(np.abs(zm), np.abs(zr), pca_steps(os.path.join(cli_run, "reduced")) + 1e-4)
    # The driver drew the CLI's two plots from the rows the projection tasks kept.
    for name in ("explained_variance.png", "projection.png"):
        with s3.open_input_stream(f"results/run/pca/{name}") as f:
            assert f.read(8) == PNG

    # 8 chunks ran on executor Python workers; each built its model once.
    workers = result["workers"]
    assert workers, result
    assert all(built == 1 for _, built in workers), f"(pid, models built): {workers}"
    assert len({pid for pid, _ in workers}) <= 2, f"one reused Python worker per executor: {workers}"
