"""fruits on Apache Spark.

- `fruits.spark.featurize(df)`: a DataFrame of photos (paths, or a `binaryFile`
  DataFrame) to a DataFrame of features; `fruits.spark.write_features(spark,
  source, out)` writes them as a fruits output; `fruits.spark.read(spark, out)`
  reads an output back as a DataFrame; `fruits.spark.pca(df)` fits a PCA from
  per-partition statistics merged on the driver, `.transform(df)` adds `pca`;
  `fruits.spark.write_csv(df, path)` writes one CSV file.
- The batch job, `fruits.spark.job.run(spark, input, output, ...)` or
  `fruits-spark` / spark-submit job.py: the same outputs as `fruits run`.
"""

from fruits.spark.dataframe import (
    DEFAULT_CHUNK_IMAGES,
    FEATURES_DDL,
    PCAModel,
    featurize,
    fit_pca,
    pca,
    read,
    write_csv,
    write_features,
)

__all__ = ["featurize", "write_features", "read", "pca", "fit_pca", "PCAModel", "FEATURES_DDL", "DEFAULT_CHUNK_IMAGES",
           "write_csv"]
