"""Spark benchmark: the fruits job on a local Spark cluster vs `fruits run` vs the
usual PySpark + Keras reference, on the same photos, side by side.

The photos are the first --images (2,000) Test images of the sample in sorted
path order, copied to target/bench-spark/input. One standalone cluster (a master
and two 1-core workers, separate JVMs on 127.0.0.1) serves both Spark jobs.
Every figure is the wall time of one whole command, Spark start-up and PCA
included, as a user would wait for it:

  fruits run       target/release/fruits run INPUT --out OUT (both cores)
  fruits on Spark  spark-submit python/fruits/spark/job.py (release wheel)
  reference        spark-submit bench/spark/reference_job.py: binaryFile +
                   pandas_udf + TF/Keras MobileNetV2 (weights=None, broadcast)
                   + Spark ML PCA

The fruits runs alternate (--repeat, median); the reference runs once (minutes).
"Spark floor" is an empty job (bench/spark/empty_job.py) on the same cluster:
what any PySpark job pays to start and stop. Both Spark jobs get the same
settings: by default SHORT_JOB below (--default-settings leaves them out).
The Spark job's features are checked against `fruits run`'s (within 1e-5).

usage: scripts/bench-spark.sh [--images 2000] [--repeat 2] [--skip-reference]
                              [--default-settings] [--conf KEY=VALUE ...]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fruits.spark.local_cluster import LocalCluster

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SAMPLE = os.environ.get("FRUITS_SAMPLE_DIR", os.path.join(ROOT, "..", "shared", "data", "fruits-360-sample"))
MODELS = os.environ.get("FRUITS_MODELS_DIR", os.path.join(ROOT, "..", "shared", "models"))
WORK = os.path.join(ROOT, "target", "bench-spark")

# Applied to both Spark jobs alike. On 2 cores, start-up is CPU-bound: five JVMs
# (master, 2 workers, driver, 2 executors) compile Spark's code with C2 while the
# job starts. The JVMs here only schedule and move Arrow batches (Python and Rust,
# or TensorFlow, do the work), so the quick C1 compiler and the serial collector
# are enough, and a short batch job has no use for the web UI.
JVM_SHORT = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
SHORT_JOB = [f"spark.driver.extraJavaOptions={JVM_SHORT}", f"spark.executor.extraJavaOptions={JVM_SHORT}",
             "spark.ui.enabled=false"]


def prepare_input(n):
    """Copies the first n Test images (sorted relative paths) to WORK/input; returns its path."""
    test = os.path.join(SAMPLE, "Test")
    rel = sorted(os.path.join(c, f) for c in os.listdir(test) for f in os.listdir(os.path.join(test, c)))[:n]
    dest = os.path.join(WORK, f"input-{n}")
    if not os.path.isdir(dest):
        for r in rel:
            os.makedirs(os.path.join(dest, "Test", os.path.dirname(r)), exist_ok=True)
            shutil.copy(os.path.join(test, r), os.path.join(dest, "Test", r))
    return dest, len(rel)


def timed(cmd, log, env=None):
    """Runs cmd to completion, output to `log`; returns wall seconds (exits on failure)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - start
    if code not in (0, 3):  # 3: fruits finished with some bad images
        sys.exit(f"failed ({code}): {' '.join(cmd)}; see {log}")
    return seconds


def read_features(folder):
    manifest = json.load(open(os.path.join(folder, "_manifest.json")))
    table = pa.concat_tables(pq.read_table(os.path.join(folder, p["file"])) for p in manifest["parts"]).sort_by("path")
    return table.column("path").to_pylist(), np.stack(table.column("features").to_numpy(zero_copy_only=False))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each fruits command (median)")
    ap.add_argument("--chunk-images", type=int, default=250, help="images per Spark task of the fruits job")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                    help="a Spark setting for both Spark jobs (repeatable), besides the short-job settings")
    ap.add_argument("--default-settings", action="store_true",
                    help="leave out the short-job settings (SHORT_JOB), as a plain spark-submit runs")
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    photos, n = prepare_input(args.images)
    model = os.path.join(MODELS, "mobilenetv2-12-dequant-fp32.onnx")
    fruits_bin = os.path.join(ROOT, "target", "release", "fruits")
    env = dict(os.environ, FRUITS_MODELS_DIR=MODELS)
    print(f"{n} photos in {photos}; cluster: master + 2 workers x 1 core", flush=True)
    print("Spark settings: " + ("defaults" if args.default_settings else "short-job (" + "; ".join(SHORT_JOB) + ")")
          + "".join(f"; {c}" for c in args.conf), flush=True)

    times = {"fruits run": [], "fruits on Spark": [], "reference": [], "Spark floor": []}
    phases = {}
    with LocalCluster(os.path.join(WORK, "cluster"), workers=2, cores=1, worker_memory="3g") as cluster:
        submit = [os.path.join(cluster.home, "bin", "spark-submit"), "--master", cluster.url]
        for setting in ([] if args.default_settings else SHORT_JOB) + args.conf:
            submit += ["--conf", setting]
        # The floor: a job that starts, runs two Python tasks importing fruits, and stops.
        times["Spark floor"] = [timed(submit + [os.path.join(HERE, "empty_job.py")],
                                      os.path.join(WORK, "empty-job.log"), cluster.env)]
        print(f"Spark floor       {times['Spark floor'][-1]:7.1f} s  (empty job: start-up and teardown)", flush=True)
        job = os.path.join(ROOT, "python", "fruits", "spark", "job.py")
        for i in range(args.repeat):
            out = os.path.join(WORK, "fruits-run")
            shutil.rmtree(out, ignore_errors=True)
            times["fruits run"].append(timed([fruits_bin, "run", photos, "--out", out, "--quiet"],
                                             os.path.join(WORK, "fruits-run.log"), env))
            print(f"fruits run        {times['fruits run'][-1]:7.1f} s", flush=True)
            spark_out = os.path.join(WORK, "fruits-spark")
            shutil.rmtree(spark_out, ignore_errors=True)
            summary = os.path.join(WORK, "fruits-spark.json")
            import fruits.spark.job as installed
            times["fruits on Spark"].append(timed(
                submit + [installed.__file__, "--input", photos, "--output", spark_out, "--model", model,
                          "--chunk-images", str(args.chunk_images), "--summary", summary],
                os.path.join(WORK, "fruits-spark.log"), dict(cluster.env, FRUITS_MODELS_DIR=MODELS)))
            s = json.load(open(summary))
            phases["fruits on Spark"] = (s["featurize_seconds"], s["total_seconds"] - s["featurize_seconds"])
            print(f"fruits on Spark   {times['fruits on Spark'][-1]:7.1f} s  (featurise {s['featurize_seconds']:.1f} s, "
                  f"PCA + reduce {s['total_seconds'] - s['featurize_seconds']:.1f} s after the session started)",
                  flush=True)
        paths, x = read_features(os.path.join(spark_out, "features"))
        ref_paths, y = read_features(os.path.join(out, "features"))
        assert paths == ref_paths and len(paths) == n, "the Spark job and fruits run featurised different photos"
        diff = float(np.abs(x - y).max())
        assert diff <= 1e-5, f"features differ by {diff}"
        print(f"same {len(paths)} rows, features within {diff:.1e}; k = {s['k']}", flush=True)

        if not args.skip_reference:
            ref_out = os.path.join(WORK, "reference")
            shutil.rmtree(ref_out, ignore_errors=True)
            summary = os.path.join(WORK, "reference.json")
            times["reference"].append(timed(
                submit + ["--conf", "spark.executor.memory=2g", os.path.join(HERE, "reference_job.py"),
                          "--input", photos, "--output", ref_out, "--variance", "0.95", "--summary", summary],
                os.path.join(WORK, "reference.log"), cluster.env))
            r = json.load(open(summary))
            assert r["images"] == n, r
            phases["reference"] = (r["featurize_seconds"], r["pca_seconds"])
            print(f"reference         {times['reference'][-1]:7.1f} s  (featurise {r['featurize_seconds']:.1f} s, "
                  f"PCA {r['pca_seconds']:.1f} s)", flush=True)

    print(f"\n{n} images, wall time of each whole command (median of {args.repeat} for fruits):")
    print(f"{'':18}{'seconds':>9}{'images/s':>10}{'featurise img/s':>17}")
    median = {k: statistics.median(v) for k, v in times.items() if v}
    for name, t in median.items():
        if name == "Spark floor":
            continue
        feat = f"{n / phases[name][0]:17.1f}" if name in phases else f"{'':>17}"
        print(f"{name:18}{t:9.1f}{n / t:10.1f}{feat}")
    overhead = median["fruits on Spark"] / median["fruits run"]
    print(f"\nSpark overhead: fruits on Spark / fruits run = {overhead:.2f}x time (target < 1.5x)")
    floor = median["Spark floor"]
    print(f"  of which the Spark floor: {floor:.1f} s; fruits on Spark minus the floor = "
          f"{(median['fruits on Spark'] - floor) / median['fruits run']:.2f}x fruits run")
    if "reference" in median:
        speedup = median["reference"] / median["fruits on Spark"]
        print(f"fruits on Spark vs reference: {speedup:.1f}x the throughput (target >= 5x)")


if __name__ == "__main__":
    main()
