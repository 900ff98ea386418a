"""Times the DataFrame API (`fruits.spark.featurize`, `fruits.spark.pca`,
`PCAModel.transform`) on a local Spark (local[2]): the Python that runs per
batch on the executors, besides the core's work.

    python bench/spark/dataframe.py --photos 1000 --rows 20000 [--repeat 3]

Prints seconds per phase (best of --repeat) and rows per second. Each phase
writes to Spark's `noop` sink, so every row is computed and none is kept.
"""

import argparse
import glob
import os
import tempfile
import time

import fruits
import fruits.spark


def best(repeat, f):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sample = os.environ.get("FRUITS_SAMPLE_DIR", os.path.join(os.path.dirname(__file__), "../../../shared/data/fruits-360-sample"))
    ap.add_argument("--sample", default=sample)
    ap.add_argument("--photos", type=int, default=1000, help="photos featurised")
    ap.add_argument("--rows", type=int, default=20000, help="feature rows projected by transform")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName("fruits-dataframe-bench")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.python.worker.reuse", "true").config("spark.ui.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    paths = sorted(glob.glob(os.path.join(args.sample, "Training", "*", "*.jpg")))[: args.photos]
    photos = spark.createDataFrame([(p,) for p in paths], "path string").repartition(2).cache()
    photos.count()

    def featurize():
        fruits.spark.featurize(photos).write.format("noop").mode("overwrite").save()

    t_featurize = best(args.repeat, featurize)

    with tempfile.TemporaryDirectory() as tmp:
        features = fruits.spark.featurize(photos)
        features.write.parquet(os.path.join(tmp, "f"))
        base = spark.read.parquet(os.path.join(tmp, "f"))
        copies = -(-args.rows // base.count())
        from functools import reduce

        rows = reduce(lambda a, b: a.unionByName(b), [base] * copies).limit(args.rows).repartition(2).cache()
        n = rows.count()
        model = fruits.spark.pca(rows, variance=0.95)

        def fit():
            fruits.spark.pca(rows, variance=0.95)

        def transform():
            model.transform(rows).write.format("noop").mode("overwrite").save()

        t_fit = best(args.repeat, fit)
        t_transform = best(args.repeat, transform)
    print(f"featurize  {len(paths):>6} photos  {t_featurize:7.2f} s  {len(paths) / t_featurize:8.1f} photos/s")
    print(f"pca fit    {n:>6} rows    {t_fit:7.2f} s  {n / t_fit:8.1f} rows/s")
    print(f"transform  {n:>6} rows    {t_transform:7.2f} s  {n / t_transform:8.1f} rows/s  (k = {model.n_components_})")
    spark.stop()


if __name__ == "__main__":
    main()
