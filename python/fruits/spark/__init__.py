"""The PySpark job: `fruits.spark.job.run(spark, input, output, ...)`, or `fruits-spark` / spark-submit job.py."""
