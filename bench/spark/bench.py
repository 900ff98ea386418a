"""Spark benchmark: the fruits job on a local Spark cluster vs `fruits run` vs the
usual PySpark + Keras reference, on the same photos, side by side.

The photos are the first --images (2,000) images of the sample in sorted path
order (Test/ sorts before Training/; 20889 is the whole sample, used in place),
copied to target/bench-spark/input-N. One standalone cluster (a master and two
workers of --worker-cores cores, separate JVMs on 127.0.0.1) serves both Spark
jobs. The reference may run on fewer photos (--reference-images) and its rate
be extrapolated: it is said so beside its figure.
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

--photos DIR runs on every photo of another folder instead (the whole
Fruits-360: scripts/bench-scale.sh). --event-log DIR keeps the fruits job's
Spark event log and prints its timeline: where the job's time goes between
the driver, task start-up and the tasks' own work.

usage: scripts/bench-spark.sh [--images 2000 | --photos DIR] [--repeat 2] [--skip-reference]
                              [--event-log DIR]
                              [--reference-images N] [--worker-cores 1]
                              [--intra-threads 1] [--decode-threads 1]
                              [--default-settings] [--conf KEY=VALUE ...]

Memory: peak resident memory of each executor (its JVM and the Python workers
it started), sampled every 0.5 s from /proc, and of `fruits run`.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
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
    """The first n images of the sample (sorted relative paths): the sample
    itself when n covers it, else a copy in WORK/input-n. Returns (path, count)."""
    every = sorted(os.path.join(split, c, f) for split in ("Test", "Training")
                   for c in os.listdir(os.path.join(SAMPLE, split))
                   for f in os.listdir(os.path.join(SAMPLE, split, c)))
    if n >= len(every):
        return os.path.abspath(SAMPLE), len(every)
    rel = every[:n]
    dest = os.path.join(WORK, f"input-{n}")
    if not os.path.isdir(dest):
        for r in rel:
            os.makedirs(os.path.join(dest, os.path.dirname(r)), exist_ok=True)
            shutil.copy(os.path.join(SAMPLE, r), os.path.join(dest, r))
    return dest, len(rel)


class PeakMemory:
    """Samples /proc every 0.5 s while running: the peak resident memory (MiB)
    of each process tree rooted at a process whose command line contains
    `marker` (an executor JVM and its Python workers; `fruits run`)."""

    def __init__(self, marker):
        self.marker, self.peaks, self._stop = marker, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(0.5):
            parent, rss, roots = {}, {}, []
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read()
                except OSError:
                    continue
                parent[int(pid)] = int(fields[1])
                rss[int(pid)] = int(fields[21]) * page
                if self.marker.encode() in cmd:
                    roots.append(int(pid))
            for root in roots:
                total = 0
                for pid in rss:
                    p = pid
                    while p and p != root:
                        p = parent.get(p)
                    total += rss[pid] if p == root else 0
                self.peaks[root] = max(self.peaks.get(root, 0), total / 2**20)


def timed(cmd, log, env=None):
    """Runs cmd to completion, output to `log`; returns wall seconds (exits on failure)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - start
    if code not in (0, 3):  # 3: fruits finished with some bad images
        sys.exit(f"failed ({code}): {' '.join(cmd)}; see {log}")
    return seconds


def event_timeline(folder, started):
    """Prints where the job's time went, from the Spark event log of the one
    application in `folder`: the driver before the first task, and for each
    stage its wall time, its tasks' summed run time (executorRunTime: the
    Python worker, the Rust core and Arrow transfer, as Spark sees the task),
    start-up (deserialisation), result serialisation and JVM GC.
    `started`: the wall clock (s) when spark-submit was launched."""
    logs = [os.path.join(folder, f) for f in os.listdir(folder)]
    if len(logs) != 1:
        print(f"event log: expected one application in {folder}, found {len(logs)}")
        return
    stages, app_start, app_end, first_task = {}, None, None, None
    with open(logs[0]) as f:
        for line in f:
            e = json.loads(line)
            kind = e["Event"]
            if kind == "SparkListenerApplicationStart":
                app_start = e["Timestamp"] / 1000
            elif kind == "SparkListenerApplicationEnd":
                app_end = e["Timestamp"] / 1000
            elif kind == "SparkListenerStageCompleted":
                info = e["Stage Info"]
                # (its tasks' end events came first: keep their sums)
                stages.setdefault(info["Stage ID"], {"run": 0.0, "deser": 0.0, "ser": 0.0, "gc": 0.0, "cpu": 0.0}).update(
                    name=info["Stage Name"].split(" at ")[0], tasks=info["Number of Tasks"],
                    submitted=info["Submission Time"] / 1000, completed=info["Completion Time"] / 1000)
            elif kind == "SparkListenerTaskEnd":
                m, t = e.get("Task Metrics") or {}, e["Task Info"]
                launch = t["Launch Time"] / 1000
                first_task = launch if first_task is None else min(first_task, launch)
                st = stages.setdefault(e["Stage ID"], {"run": 0.0, "deser": 0.0, "ser": 0.0, "gc": 0.0, "cpu": 0.0})
                st["run"] += m.get("Executor Run Time", 0) / 1000
                st["deser"] += m.get("Executor Deserialize Time", 0) / 1000
                st["ser"] += m.get("Result Serialization Time", 0) / 1000
                st["gc"] += m.get("JVM GC Time", 0) / 1000
                st["cpu"] += m.get("Executor CPU Time", 0) / 1e9
    print("\ntimeline of the fruits job (Spark event log; seconds from spark-submit):")
    print(f"  {app_start - started:7.1f}  driver JVM up, SparkContext started")
    if first_task is not None:
        print(f"  {first_task - started:7.1f}  first task launched (executors registered, input listed on the driver)")
    print(f"  {'stage':34}{'wall':>7}{'tasks':>6}{'task run':>10}{'JVM cpu':>9}{'start-up':>9}{'result ser':>11}{'GC':>6}")
    busy = 0.0
    for sid in sorted(stages):
        st = stages[sid]
        if "name" not in st:
            continue
        wall = st["completed"] - st["submitted"]
        busy += wall
        print(f"  {st['name'][:33]:34}{wall:7.1f}{st['tasks']:6d}{st['run']:10.1f}{st['cpu']:9.1f}{st['deser']:9.1f}"
              f"{st['ser']:11.1f}{st['gc']:6.1f}")
    if app_end is not None:
        print(f"  {app_end - started:7.1f}  application end; stages ran {busy:.1f} s of the "
              f"{app_end - app_start:.1f} s the application lived (the rest: driver-side work between stages)")


def read_features(folder):
    manifest = json.load(open(os.path.join(folder, "_manifest.json")))
    table = pa.concat_tables(pq.read_table(os.path.join(folder, p["file"])) for p in manifest["parts"]).sort_by("path")
    return table.column("path").to_pylist(), np.stack(table.column("features").to_numpy(zero_copy_only=False))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--photos", help="run on every photo of this folder instead of the sample's first --images")
    ap.add_argument("--event-log", help="keep the fruits job's Spark event log here and print its timeline")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each fruits command (median)")
    ap.add_argument("--chunk-images", type=int, default=None,
                    help="images per Spark task of the fruits job [the job's default]")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--reference-images", type=int, default=2000,
                    help="photos the reference runs on (its rate is extrapolated to --images)")
    ap.add_argument("--worker-cores", type=int, default=1, help="cores of each of the two workers")
    ap.add_argument("--intra-threads", type=int, default=1, help="ONNX Runtime threads per fruits task")
    ap.add_argument("--decode-threads", type=int, default=1, help="decode threads per fruits task")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                    help="a Spark setting for both Spark jobs (repeatable), besides the short-job settings")
    ap.add_argument("--default-settings", action="store_true",
                    help="leave out the short-job settings (SHORT_JOB), as a plain spark-submit runs")
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    if args.photos:
        photos = os.path.abspath(args.photos)
        n = sum(1 for d, _, files in os.walk(photos) for f in files if f.lower().endswith((".jpg", ".jpeg", ".png")))
    else:
        photos, n = prepare_input(args.images)
    # Both fruits runners get the same model file, the default one (int8 since
    # issue 17): the feature check below compares their vectors.
    model = os.path.join(MODELS, "mobilenetv2-12-int8.onnx")
    fruits_bin = os.path.join(ROOT, "target", "release", "fruits")
    env = dict(os.environ, FRUITS_MODELS_DIR=MODELS)
    print(f"{n} photos in {photos}; cluster: master + 2 workers x {args.worker_cores} core(s); fruits tasks: "
          f"{args.intra_threads} inference + {args.decode_threads} decode thread(s)", flush=True)
    print("Spark settings: " + ("defaults" if args.default_settings else "short-job (" + "; ".join(SHORT_JOB) + ")")
          + "".join(f"; {c}" for c in args.conf), flush=True)

    times = {"fruits run": [], "fruits on Spark": [], "reference": [], "Spark floor": []}
    phases = {}
    memory = {}
    with LocalCluster(os.path.join(WORK, "cluster"), workers=2, cores=args.worker_cores,
                      worker_memory="3g") as cluster:
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
            with PeakMemory(f"{fruits_bin}\0run") as peak:
                times["fruits run"].append(timed([fruits_bin, "run", photos, "--out", out, "--model", model],
                                                 os.path.join(WORK, "fruits-run.log"), env))
            memory["fruits run"] = max(peak.peaks.values(), default=0)
            # Its featurise phase, as it reports it ("elapsed: 12.3 s").
            log = open(os.path.join(WORK, "fruits-run.log")).read()
            phases["fruits run"] = (float(log.split("elapsed: ", 1)[1].split(" s", 1)[0]), 0.0)
            stages = log.split("stages: ", 1)[1].split("\n", 1)[0] if "stages: " in log else ""
            print(f"fruits run        {times['fruits run'][-1]:7.1f} s  ({stages})", flush=True)
            spark_out = os.path.join(WORK, "fruits-spark")
            shutil.rmtree(spark_out, ignore_errors=True)
            summary = os.path.join(WORK, "fruits-spark.json")
            import fruits.spark.job as installed
            events = []
            if args.event_log:
                shutil.rmtree(args.event_log, ignore_errors=True)
                os.makedirs(args.event_log)
                events = ["--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir={args.event_log}"]
            launched = time.time()
            with PeakMemory("CoarseGrainedExecutorBackend") as peak:
                times["fruits on Spark"].append(timed(
                    submit + events + [installed.__file__, "--input", photos, "--output", spark_out, "--model", model,
                              *(["--chunk-images", str(args.chunk_images)] if args.chunk_images else []),
                              "--summary", summary,
                              "--intra-threads", str(args.intra_threads),
                              "--decode-threads", str(args.decode_threads)],
                    os.path.join(WORK, "fruits-spark.log"), dict(cluster.env, FRUITS_MODELS_DIR=MODELS)))
            memory["fruits on Spark"] = sorted(peak.peaks.values())
            s = json.load(open(summary))
            phases["fruits on Spark"] = (s["featurize_seconds"], s["total_seconds"] - s["featurize_seconds"])
            print(f"fruits on Spark   {times['fruits on Spark'][-1]:7.1f} s  (after the session started: featurise "
                  f"{s['featurize_seconds']:.1f} s, PCA fit {s['pca_seconds']:.1f} s, reduce {s['reduce_seconds']:.1f} s)",
                  flush=True)
        paths, x = read_features(os.path.join(spark_out, "features"))
        ref_paths, y = read_features(os.path.join(out, "features"))
        assert paths == ref_paths and len(paths) == n, "the Spark job and fruits run featurised different photos"
        diff = float(np.abs(x - y).max())
        assert diff <= 1e-5, f"features differ by {diff}"
        print(f"same {len(paths)} rows, features within {diff:.1e}; k = {s['k']}", flush=True)
        import fruits
        a, b = fruits.PCA.load(os.path.join(spark_out, "pca")), fruits.PCA.load(os.path.join(out, "pca"))
        assert a.n_components_ == b.n_components_, (a.n_components_, b.n_components_)
        # Components are defined up to sign; compare each with the sign that matches.
        ca, cb = a.components_, b.components_
        signs = np.sign(np.sum(ca * cb, axis=1, keepdims=True))
        pca_diff = max(float(np.abs(a.mean_ - b.mean_).max()), float(np.abs(ca - signs * cb).max()))
        print(f"PCA: same k, mean and components within {pca_diff:.1e} (target 1e-9)", flush=True)
        if args.event_log:
            event_timeline(args.event_log, launched)

        if not args.skip_reference:
            ref_photos, ref_n = prepare_input(min(n, args.reference_images)) if args.reference_images < n else (photos, n)
            ref_out = os.path.join(WORK, "reference")
            shutil.rmtree(ref_out, ignore_errors=True)
            summary = os.path.join(WORK, "reference.json")
            times["reference"].append(timed(
                submit + ["--conf", "spark.executor.memory=2g", os.path.join(HERE, "reference_job.py"),
                          "--input", ref_photos, "--output", ref_out, "--variance", "0.95", "--summary", summary],
                os.path.join(WORK, "reference.log"), cluster.env))
            r = json.load(open(summary))
            assert r["images"] == ref_n, r
            if ref_n < n:
                # Timed on fewer photos: scale its time to n photos at the same rate.
                print(f"reference         {times['reference'][-1]:7.1f} s on {ref_n} photos; "
                      f"extrapolated to {n} at the same rate", flush=True)
                # Only the per-photo part grows with the photos: the start-up
                # (the empty job's floor) is paid once whatever their number.
                scale = n / ref_n
                floor = times["Spark floor"][0]
                times["reference"][-1] = floor + (times["reference"][-1] - floor) * scale
                r["featurize_seconds"] *= scale
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
    if "reference" in median and args.reference_images < n:
        print(f"(reference: timed on {args.reference_images} photos; its time minus the Spark floor, and its "
              f"featurise phase, extrapolated to {n} photos at the same rate)")
    overhead = median["fruits on Spark"] / median["fruits run"]
    print(f"\nSpark overhead: fruits on Spark / fruits run = {overhead:.2f}x time (targets: <= 1.25x at 20889, <= 1.15x at 94110)")
    cores = 2  # both on the machine's two cores
    job_phase, run_phase = phases["fruits on Spark"][0], phases["fruits run"][0]
    print(f"featurise phase per core: job {n / job_phase / cores:.1f} vs fruits run {n / run_phase / cores:.1f} "
          f"images/s = {run_phase / job_phase:.0%} (targets: >= 90% at 20889, >= 95% at 94110)")
    print("peak memory: fruits run {:.0f} MiB; per executor (JVM + Python workers) {}".format(
        memory.get("fruits run", 0), ", ".join(f"{m:.0f} MiB" for m in memory.get("fruits on Spark", []))))
    floor = median["Spark floor"]
    print(f"  of which the Spark floor: {floor:.1f} s; fruits on Spark minus the floor = "
          f"{(median['fruits on Spark'] - floor) / median['fruits run']:.2f}x fruits run")
    if "reference" in median:
        speedup = median["reference"] / median["fruits on Spark"]
        print(f"fruits on Spark vs reference: {speedup:.1f}x the throughput (target >= 5x)")


if __name__ == "__main__":
    main()
