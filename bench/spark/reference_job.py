"""Reference job for scripts/bench-spark.sh (bench/spark/bench.py): the photo pipeline written the usual
PySpark + Keras way, to compare our Rust-backed Spark job against.

  1. read photos with the binaryFile source, label = parent folder name;
  2. featurise with MobileNetV2 (weights=None: no weight downloads here) in a
     scalar-iterator pandas_udf, model weights shipped with sc.broadcast;
  3. write path/label/features (1280 floats) to OUTPUT/features;
  4. fit Spark ML PCA, keep the smallest k reaching --variance, write
     OUTPUT/reduced;
  5. write a JSON summary of timings (--summary) and print it.

Run with spark-submit (the master comes from there), e.g.
  spark-submit --master spark://host:7077 reference_job.py --input DIR \
      --output DIR --variance 0.95 --summary summary.json
"""
import argparse
import io
import json
import os
import time
from typing import Iterator

START = time.perf_counter()  # wall time includes Spark startup
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
from pyspark.ml.feature import PCA
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import ArrayType, FloatType

SIZE = 224
_MODEL = None  # per Python worker cache of the keras model


def build_model():
    import tensorflow as tf
    return tf.keras.applications.MobileNetV2(
        weights=None, include_top=False, pooling="avg", input_shape=(SIZE, SIZE, 3))


def worker_model(bc):
    """The model for this Python worker, built once per worker (workers are reused
    across tasks) and loaded with the broadcast weights. Called on executors via
    `import reference_job`, so that this module-level cache outlives one task."""
    global _MODEL
    if _MODEL is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        try:  # 1 core per executor: no oversubscription
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TF runtime already initialised in this worker
            pass
        model = build_model()
        model.set_weights(bc.value)
        _MODEL = model
    return _MODEL


def load_image(data: bytes):
    """Decoded, RGB, 224x224 bilinear, as float32 HWC; None if undecodable."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
            return np.asarray(im, dtype=np.float32)
    except Exception:
        return None


def make_featurize_udf(bc):
    @pandas_udf(ArrayType(FloatType()))
    def featurize(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        import reference_job  # shipped with sc.addPyFile; holds the worker cache
        model = reference_job.worker_model(bc)  # sets TF threads before any TF use
        from tensorflow.keras.applications.mobilenet_v2 import preprocess_input
        for contents in batches:
            images = [load_image(b) for b in contents]
            ok = [i for i, im in enumerate(images) if im is not None]
            out = [None] * len(images)  # bad images -> null features
            if ok:
                batch = preprocess_input(np.stack([images[i] for i in ok]))
                vectors = model.predict(batch, verbose=0)
                for i, v in zip(ok, vectors):
                    out[i] = v.astype(np.float32)
            yield pd.Series(out)
    return featurize


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--variance", type=float, default=0.95)
    ap.add_argument("--summary")
    args = ap.parse_args()

    spark = (SparkSession.builder.appName("fruits-reference-keras")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
             .config("spark.executorEnv.TF_CPP_MIN_LOG_LEVEL", "2")
             .getOrCreate())
    sc = spark.sparkContext
    sc.addPyFile(os.path.abspath(__file__))
    t0 = time.perf_counter()

    # --- featurise ------------------------------------------------------------
    bc = sc.broadcast(build_model().get_weights())  # driver-side model, weights out
    photos = (spark.read.format("binaryFile")
              .option("recursiveFileLookup", "true")
              .option("pathGlobFilter", "*.{jpg,jpeg,png,JPG,JPEG,PNG}")
              .load(args.input)
              .select("path", F.regexp_extract("path", r"([^/]+)/[^/]+$", 1).alias("label"),
                      "content"))
    features_dir = os.path.join(args.output, "features")
    (photos.select("path", "label", make_featurize_udf(bc)("content").alias("features"))
     .write.mode("overwrite").parquet(features_dir))
    t1 = time.perf_counter()

    # --- PCA: fit wide, pick k from the explained variance, refit with k ------
    feats = spark.read.parquet(features_dir)
    images = feats.count()
    data = (feats.where(F.col("features").isNotNull())
            .withColumn("vec", array_to_vector("features")).cache())
    rows = data.count()
    full = PCA(k=min(1280, rows), inputCol="vec", outputCol="pca").fit(data)
    cumulative = np.cumsum(full.explainedVariance.toArray())
    k = int(min(np.searchsorted(cumulative, args.variance) + 1, len(cumulative)))
    model = PCA(k=k, inputCol="vec", outputCol="pca").fit(data)
    (model.transform(data)
     .select("path", "label", vector_to_array("pca", "float32").alias("features"))
     .write.mode("overwrite").parquet(os.path.join(args.output, "reduced")))
    data.unpersist()
    t2 = time.perf_counter()

    summary = {
        "images": images, "rows": rows, "failed": images - rows, "k": k,
        "variance": args.variance, "explained": float(cumulative[k - 1]),
        "featurize_seconds": round(t1 - t0, 3), "pca_seconds": round(t2 - t1, 3),
        "total_seconds": round(t2 - t0, 3),
        "wall_seconds": round(time.perf_counter() - START, 3),
    }
    print(json.dumps(summary, indent=2))
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=2)
    spark.stop()


if __name__ == "__main__":
    main()
