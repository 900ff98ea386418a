"""The Spark floor for scripts/bench-spark.sh: what any PySpark job pays on the
cluster before and after its work. It starts a session, runs one two-task
mapInArrow whose Python workers import fruits (as the real job's do), and stops:
the wall time of spark-submit on this script is start-up and teardown only.
"""

from pyspark.sql import SparkSession


def imports(batches):
    import pyarrow as pa

    import fruits

    for batch in batches:
        yield pa.RecordBatch.from_pylist([{"n": batch.num_rows, "v": fruits.__version__}])


def main():
    spark = SparkSession.builder.appName("fruits-spark-floor").getOrCreate()
    # Two tasks over plain JVM rows, as the real job makes them (no shuffle).
    df = spark.range(0, 2, numPartitions=2)
    rows = df.mapInArrow(imports, "n long, v string").collect()
    assert sum(r.n for r in rows) == 2, rows
    spark.stop()


if __name__ == "__main__":
    main()
