"""Runs the fruits pipeline on a Spark cluster: photos in, the same outputs as
`fruits run` out (features/, pca/, reduced/), local folders or s3:// prefixes.

    fruits-spark --master spark://HOST:7077 --input s3://photos/ --output s3://results/run/ --variance 0.95

Built on the DataFrame API (fruits.spark): `write_features` featurises the
photos into features/, `fit_pca` fits the PCA from per-task statistics
merged on the driver; tasks then project the parts into reduced/. How it
works, and why: docs/spark.md.
"""

import argparse
import json
import sys
import time

import pyarrow as pa

import fruits
import fruits.spark

_REDUCE_RESULT = "chunk int, part string, rows long, sample string"


def _child(root, name):
    return root.rstrip("/") + "/" + name


def _task_each(spark, count, compute, ddl):
    """Runs `compute(i)` for i in 0..count-1, one Spark task each, and collects the
    rows it returns (lists of dicts of the `ddl` columns).

    The tasks' inputs are `spark.range` rows, plain JVM rows: a DataFrame made from
    a Python RDD would start a second Python worker beside every task's."""
    schema = fruits.spark.dataframe.arrow_schema(ddl)

    def tasks(batches):
        for batch in batches:
            for i in batch.column("id").to_pylist():
                yield pa.RecordBatch.from_pylist(compute(i), schema=schema)

    return spark.range(0, count, numPartitions=max(1, count)).mapInArrow(tasks, ddl).collect()


def run(spark, input, output, variance=None, k=None, model=None, precision=None,
        chunk_images=fruits.spark.DEFAULT_CHUNK_IMAGES,
        batch_size=fruits.DEFAULT_BATCH_SIZE, intra_threads=1, decode_threads=1, log=print):
    """Runs the job; returns a summary dict. `output` gets features/, pca/ and reduced/."""
    started = time.perf_counter()
    features_out = _child(output, "features")
    written = fruits.spark.write_features(spark, input, features_out, model=model, precision=precision,
                                          chunk_images=chunk_images, batch_size=batch_size,
                                          intra_threads=intra_threads, decode_threads=decode_threads)
    rows_written, failed = written["rows"], written["errors"]
    featurised_at = time.perf_counter()
    log(f"features: {rows_written} rows, {failed} errors in {written['chunks']} chunks, "
        f"{featurised_at - started:.1f} s")

    # PCA: per-partition statistics of the features, merged on the driver.
    model_sha = json.loads(written["meta"])["model_sha256"]
    fitted = fruits.spark.fit_pca(spark, features_out, variance=variance, k=k, model_sha256=model_sha)
    fitted.save(_child(output, "pca"))
    pca = fitted.pca
    log(f"pca: n = {pca.n_samples_}, k = {pca.n_components_} ({pca.variance_kept_:.2%} of the variance)")
    pca_bytes = pca.model_bytes()
    fitted_at = time.perf_counter()
    pca_broadcast = spark.sparkContext.broadcast(pca_bytes)
    reduced_out = _child(output, "reduced")

    # Each part is projected in the CLI's layout, keeping its rows of the
    # projection plot: every `stride`-th row of the whole output, as
    # `fruits pca fit` samples them.
    plan, stride = fruits.reduce_plan(features_out)  # (file, first row), manifest order

    # A task projects several parts, one after the other: a task costs about
    # 0.2 s of Spark and Python start-up, as much as projecting a part.
    groups = max(1, min(len(plan), 2 * spark.sparkContext.defaultParallelism))

    def reduce(group):
        rows = []
        for chunk in range(group, len(plan), groups):
            file, first_row = plan[chunk]
            r = fruits.reduce_partition(features_out, file, pca_broadcast.value, reduced_out, chunk,
                                        first_row=first_row, stride=stride)
            part, part_rows, points, labels = r if r else (None, 0, [], [])
            rows.append({"chunk": chunk, "part": part, "rows": part_rows,
                         "sample": json.dumps({"points": points, "labels": labels})})
        return rows

    reduced = sorted(_task_each(spark, groups, reduce, _REDUCE_RESULT), key=lambda r: r.chunk)
    reduced_meta = fruits.reduced_meta_json(features_out, pca_bytes)
    fruits.write_manifest(reduced_out, reduced_meta, [(r.part, r.rows) for r in reduced if r.part], [])
    samples = [json.loads(r.sample) for r in reduced]
    try:
        # Plots help people judge k; a missing font must not cost the results (as in the CLI).
        fruits.pca_plots(_child(output, "pca"), pca_bytes, [p for s in samples for p in s["points"]],
                         [label for s in samples for label in s["labels"]], rows_written)
    except (OSError, ValueError) as e:
        log(f"warning: PCA plots not written: {e}")
    finished = time.perf_counter()
    log(f"reduced: {sum(r.rows for r in reduced)} rows; total {finished - started:.1f} s")
    return {
        "images": rows_written + failed, "rows": rows_written, "errors": failed, "chunks": written["chunks"],
        "k": pca.n_components_, "variance_kept": pca.variance_kept_,
        "explained_variance_ratio": pca.explained_variance_ratio_.tolist(),
        "workers": written["workers"],
        "featurize_seconds": featurised_at - started, "pca_seconds": fitted_at - featurised_at,
        "reduce_seconds": finished - fitted_at, "total_seconds": finished - started,
    }


def parser():
    """The job's command line (no Spark needed: `fruits-spark --help` reads it
    without starting a JVM)."""
    ap = argparse.ArgumentParser(prog="fruits-spark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="folder or s3:// prefix of photos, one folder per class")
    ap.add_argument("--output", required=True, help="folder or s3:// prefix for features/, pca/, reduced/")
    keep = ap.add_mutually_exclusive_group()
    keep.add_argument("--variance", type=float,
                      help=f"keep this share of the variance [{fruits.DEFAULT_VARIANCE}]")
    keep.add_argument("--k", type=int, help="keep exactly K components")
    ap.add_argument("--model", help=f"ONNX model file or s3:// object [{fruits.DEFAULT_MODEL_FILE} in "
                                    "FRUITS_MODELS_DIR, ../shared/models or ~/.cache/fruits/models]")
    ap.add_argument("--precision", choices=sorted(fruits.MODEL_FILES),
                    help="use the shared model of this precision instead of --model "
                         f"[{fruits.DEFAULT_MODEL_FILE}]")
    ap.add_argument("--chunk-images", type=int, default=fruits.spark.DEFAULT_CHUNK_IMAGES,
                    help=f"images per part (task) [{fruits.spark.DEFAULT_CHUNK_IMAGES}]")
    ap.add_argument("--batch-size", type=int, default=fruits.DEFAULT_BATCH_SIZE,
                    help=f"images per inference call [{fruits.DEFAULT_BATCH_SIZE}]")
    ap.add_argument("--intra-threads", type=int, default=1, help="ONNX Runtime threads per task [1]")
    ap.add_argument("--decode-threads", type=int, default=1, help="decoding threads per task [1]")
    ap.add_argument("--summary", help="write the run's summary as JSON to this local file")
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("fruits").getOrCreate()
    try:
        summary = run(spark, args.input, args.output, variance=args.variance, k=args.k, model=args.model,
                      precision=args.precision, chunk_images=args.chunk_images, batch_size=args.batch_size,
                      intra_threads=args.intra_threads, decode_threads=args.decode_threads)
    finally:
        spark.stop()
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
