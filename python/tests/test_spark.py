"""The job on a real Spark standalone cluster (master + 2 workers) vs `fruits run`."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import FP32


def read_output(folder, column):
    manifest = json.load(open(os.path.join(folder, "_manifest.json")))
    table = pa.concat_tables(pq.read_table(os.path.join(folder, p["file"])) for p in manifest["parts"])
    paths = table.column("path").to_pylist()
    assert len(paths) == len(set(paths)), "an image appears twice"
    table = table.sort_by("path")
    dim = table.schema.field(column).type.list_size
    return table.column("path").to_pylist(), table.column(column).combine_chunks().flatten().to_numpy().reshape(-1, dim)


def run_job(cluster, photos, out, *extra):
    summary = os.path.join(os.path.dirname(out), os.path.basename(out) + "-summary.json")
    proc = cluster.submit(["--input", photos, "--output", out, "--model", FP32, "--summary", summary,
                           "--chunk-images", "40", *extra])
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log
    return json.load(open(summary)), log


def test_the_job_gives_the_cli_results_and_loads_the_model_once_per_worker(cluster, photos, cli_run, tmp_path):
    out = str(tmp_path / "spark")
    summary, log = run_job(cluster, photos, out)
    assert summary["rows"] == 300 and summary["errors"] == 1 and summary["chunks"] == 8

    paths, x = read_output(os.path.join(out, "features"), "features")
    ref_paths, y = read_output(os.path.join(cli_run, "features"), "features")
    assert paths == ref_paths
    np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)
    manifest = json.load(open(os.path.join(out, "features", "_manifest.json")))
    assert [p["file"] for p in manifest["parts"]] == [f"part-r000-{i:05}.parquet" for i in range(8)]
    # Image 90 in path order (Test/Kiwi 1/zz...) is in chunk 2 = images 75..111.
    assert manifest["error_parts"] == [{"file": "errors-r000-00002.parquet", "rows": 1}]
    errors = pq.read_table(os.path.join(out, "features", "errors-r000-00002.parquet")).to_pylist()
    assert [e["path"] for e in errors] == ["Test/Kiwi 1/zz-not-a-photo.jpg"]

    mine = json.load(open(os.path.join(out, "pca", "pca.json")))
    ref = json.load(open(os.path.join(cli_run, "pca", "pca.json")))
    assert mine["k"] == ref["k"] and mine["n"] == ref["n"]
    k = ref["k"]
    np.testing.assert_allclose(mine["explained_variance"][:k], ref["explained_variance"][:k], rtol=1e-6)
    _, zm = read_output(os.path.join(out, "reduced"), "pca")
    _, zr = read_output(os.path.join(cli_run, "reduced"), "pca")
    np.testing.assert_allclose(np.abs(zm), np.abs(zr), atol=1e-4)

    # 8 chunks ran on executor Python workers; each built its model once.
    workers = summary["workers"]
    assert workers, summary
    assert all(built == 1 for _, built in workers), f"(pid, models built): {workers}"
    assert len({pid for pid, _ in workers}) <= 2, f"one reused Python worker per executor: {workers}"
