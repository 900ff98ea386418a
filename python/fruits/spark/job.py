"""The fruits job on Apache Spark: the same outputs as `fruits run`, computed by a cluster.

    spark-submit --master spark://HOST:7077 job.py --input s3://photos/ --output s3://results/run/ --variance 0.95

1. The driver lists the input (fruits-location: folder or s3:// prefix), cuts the
   sorted paths into chunks (chunk i becomes part i of the output) and broadcasts
   the listing; task i of `spark.range(chunks)` featurises the rows of chunk i
   (`_task_each`: plain JVM rows as the tasks' inputs; a DataFrame made from a
   Python RDD would start a second Python worker beside every task's, about 0.1 s
   per task, 1 s for a cold executor).
2. The driver reads the model file once and broadcasts its bytes. Each executor
   Python worker builds the ONNX Runtime session from the broadcast once and reuses
   it for every chunk it is given (`mapInArrow`; PySpark reuses Python workers).
3. Each chunk is featurised by the Rust core and written straight to the output
   as `features/part-r000-{i}` and `errors-r000-{i}`: the same layout as the CLI.
   A retried or speculative task rewrites the same names with the same rows, and
   puts are atomic, so every image lands exactly once; the driver writes the
   manifest (which names the parts) only when every chunk has succeeded.
4. PCA: each task summarises some parts (count, mean, co-moments in f64), the driver
   merges the summaries and decomposes, broadcasts the components, and each task
   projects its part into `reduced/`. Merged statistics equal one pass over all rows.
   The projection tasks also return their part's rows of the projection plot
   (every stride-th row, as `fruits pca fit` picks them); the driver draws
   `pca/explained_variance.png` and `pca/projection.png`.
"""

import argparse
import hashlib
import json
import math
import os
import sys
import time

import pyarrow as pa

import fruits
from fruits.spark import worker

_FEATURIZE_RESULT = (
    "chunk int, part string, part_rows long, errors string, error_rows long, "
    "featurised long, failed long, meta string, pid int, models_built long"
)
_STATS_RESULT = "task int, stats binary"
_REDUCE_RESULT = "chunk int, part string, rows long, sample string"


def _arrow_schema(ddl):
    """The pyarrow schema of a Spark DDL string of int/long/string/binary columns:
    mapInArrow needs the batches' types to be exactly the declared ones."""
    types = {"int": pa.int32(), "long": pa.int64(), "string": pa.string(), "binary": pa.binary()}
    return pa.schema([(name, types[kind]) for name, kind in (c.split() for c in ddl.split(", "))])


def default_model():
    """The shared default model: FRUITS_MODEL, else fruits.DEFAULT_MODEL_FILE in
    FRUITS_MODELS_DIR or ../shared/models."""
    if os.environ.get("FRUITS_MODEL"):
        return os.environ["FRUITS_MODEL"]
    models = os.environ.get("FRUITS_MODELS_DIR", os.path.join("..", "shared", "models"))
    return os.path.join(models, fruits.DEFAULT_MODEL_FILE)


def _child(root, name):
    return root.rstrip("/") + "/" + name


def _task_each(spark, count, compute, ddl):
    """Runs `compute(i)` for i in 0..count-1, one Spark task each, and collects the
    rows it returns (dicts of the `ddl` columns).

    The tasks' inputs are `spark.range` rows, plain JVM rows: a DataFrame made from
    a Python RDD would start a second Python worker beside every task's."""
    schema = _arrow_schema(ddl)

    def tasks(batches):
        for batch in batches:
            for i in batch.column("id").to_pylist():
                yield pa.RecordBatch.from_pylist([compute(i)], schema=schema)

    return spark.range(0, count, numPartitions=max(1, count)).mapInArrow(tasks, ddl).collect()


def run(spark, input, output, variance=None, k=None, model=None, chunk_images=256,
        batch_size=fruits.DEFAULT_BATCH_SIZE, intra_threads=1, log=print):
    """Runs the job; returns a summary dict. `output` gets features/, pca/ and reduced/."""
    sc = spark.sparkContext
    started = time.perf_counter()
    listing = fruits.list_images(input)
    n = listing.num_rows
    if n == 0:
        raise ValueError(f"found no images under {input}")
    chunks = max(1, math.ceil(n / chunk_images))
    bounds = [(i * n // chunks, (i + 1) * n // chunks) for i in range(chunks)]
    # Each executor receives the listing once; a task slices its chunk out of it.
    listing_broadcast = sc.broadcast(listing.select(["path", "size"]))
    model = model or default_model()
    model_bytes = fruits.read_bytes(model)
    broadcast = sc.broadcast(model_bytes)
    digest = hashlib.sha256(model_bytes).hexdigest()
    settings = {"intra_threads": intra_threads, "batch_size": batch_size}
    features_out = _child(output, "features")
    log(f"{n} images in {chunks} chunks; model {model} ({len(model_bytes)} bytes) broadcast")

    def featurize(i):
        # Built from the broadcast on the worker's first chunk, then taken from its cache.
        featurizer = worker.featurizer(broadcast, model, settings, digest)
        a, b = bounds[i]
        r = featurizer.featurize_partition(input, features_out, i, listing_broadcast.value.slice(a, b - a))
        return {
            "chunk": i, "part": r["part"], "part_rows": r["part_rows"],
            "errors": r["errors"], "error_rows": r["error_rows"],
            "featurised": r["featurised"], "failed": r["failed"], "meta": featurizer.meta_json(),
            "pid": os.getpid(), "models_built": fruits.models_built(),
        }

    results = sorted(_task_each(spark, chunks, featurize, _FEATURIZE_RESULT), key=lambda r: r.chunk)
    if [r.chunk for r in results] != list(range(chunks)):
        raise RuntimeError(f"expected results for chunks 0..{chunks - 1}, got {[r.chunk for r in results]}")
    meta = results[0].meta
    parts = [(r.part, r.part_rows) for r in results if r.part]
    errors = [(r.errors, r.error_rows) for r in results if r.errors]
    rows_written = fruits.write_manifest(features_out, meta, parts, errors)
    featurised_at = time.perf_counter()
    failed = sum(r.failed for r in results)
    log(f"features: {rows_written} rows, {failed} errors, {featurised_at - started:.1f} s")

    # PCA: per-task statistics over the parts, merged on the driver.
    parts_written = fruits.dataset_parts(features_out)  # (file, rows), manifest order
    files = [f for f, _ in parts_written]
    tasks = max(1, min(len(files), sc.defaultParallelism))

    def stats(t):
        return {"task": t, "stats": bytes(fruits.pca_partition_stats(features_out, files[t::tasks]))}

    partials = [bytes(r.stats) for r in _task_each(spark, tasks, stats, _STATS_RESULT)]
    merged = fruits.pca_merge(partials)
    model_sha = json.loads(meta)["model_sha256"]
    pca_bytes, summary = fruits.pca_fit(merged, _child(output, "pca"), model_sha, features_out,
                                        variance=variance, k=k)
    log(f"pca: n = {summary['n']}, k = {summary['k']} ({summary['variance_kept']:.2%} of the variance)")
    pca_broadcast = sc.broadcast(bytes(pca_bytes))
    reduced_out = _child(output, "reduced")

    # Each task also keeps its part's rows of the projection plot: every
    # `stride`-th row of the whole output, as `fruits pca fit` samples them.
    stride = fruits.plot_stride(rows_written)
    first_rows = [0]
    for _, part_rows in parts_written:
        first_rows.append(first_rows[-1] + part_rows)

    def reduce(chunk):
        r = fruits.reduce_partition(features_out, files[chunk], pca_broadcast.value, reduced_out, chunk,
                                    first_row=first_rows[chunk], stride=stride)
        part, part_rows, points, labels = r if r else (None, 0, [], [])
        return {
            "chunk": chunk, "part": part, "rows": part_rows,
            "sample": json.dumps({"points": points, "labels": labels}),
        }

    reduced = sorted(_task_each(spark, len(files), reduce, _REDUCE_RESULT), key=lambda r: r.chunk)
    reduced_meta = fruits.reduced_meta_json(features_out, bytes(pca_bytes))
    fruits.write_manifest(reduced_out, reduced_meta, [(r.part, r.rows) for r in reduced if r.part], [])
    samples = [json.loads(r.sample) for r in reduced]
    try:
        # Plots help people judge k; a missing font must not cost the results (as in the CLI).
        fruits.pca_plots(_child(output, "pca"), bytes(pca_bytes), [p for s in samples for p in s["points"]],
                         [label for s in samples for label in s["labels"]], rows_written)
    except (OSError, ValueError) as e:
        log(f"warning: PCA plots not written: {e}")
    finished = time.perf_counter()
    log(f"reduced: {sum(r.rows for r in reduced)} rows; total {finished - started:.1f} s")
    return {
        "images": n, "rows": rows_written, "errors": failed, "chunks": chunks,
        "k": summary["k"], "variance_kept": summary["variance_kept"],
        "explained_variance_ratio": summary["explained_variance_ratio"],
        "workers": sorted({(r.pid, r.models_built) for r in results}),
        "featurize_seconds": featurised_at - started, "total_seconds": finished - started,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="folder or s3:// prefix of photos, one folder per class")
    ap.add_argument("--output", required=True, help="folder or s3:// prefix for features/, pca/, reduced/")
    keep = ap.add_mutually_exclusive_group()
    keep.add_argument("--variance", type=float,
                      help=f"keep this share of the variance [{fruits.DEFAULT_VARIANCE}]")
    keep.add_argument("--k", type=int, help="keep exactly K components")
    ap.add_argument("--model", help=f"ONNX model file or s3:// object [{fruits.DEFAULT_MODEL_FILE} in "
                                    "FRUITS_MODELS_DIR or ../shared/models]")
    ap.add_argument("--chunk-images", type=int, default=256, help="images per part (task) [256]")
    ap.add_argument("--batch-size", type=int, default=fruits.DEFAULT_BATCH_SIZE,
                    help=f"images per inference call [{fruits.DEFAULT_BATCH_SIZE}]")
    ap.add_argument("--intra-threads", type=int, default=1, help="ONNX Runtime threads per task [1]")
    ap.add_argument("--summary", help="write the run's summary as JSON to this local file")
    args = ap.parse_args(argv)
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("fruits").getOrCreate()
    try:
        summary = run(spark, args.input, args.output, variance=args.variance, k=args.k, model=args.model,
                      chunk_images=args.chunk_images, batch_size=args.batch_size, intra_threads=args.intra_threads)
    finally:
        spark.stop()
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
