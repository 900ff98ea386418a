"""scikit-learn's PCA on a fruits features output, as a Python user would run it.

usage: sklearn_fit.py FEATURES_DIR SOLVER   (SOLVER: auto (PCA() default) or covariance_eigh)
Reads the parts with pyarrow (included in the time), fits PCA(n_components=0.95).
"""

import json
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.decomposition import PCA

folder, solver = sys.argv[1:]
start = time.perf_counter()
manifest = json.load(open(os.path.join(folder, "_manifest.json")))
table = pa.concat_tables(pq.read_table(os.path.join(folder, p["file"]), columns=["features"]) for p in manifest["parts"])
X = table.column("features").combine_chunks().flatten().to_numpy().reshape(len(table), -1)
pca = PCA(n_components=0.95, svd_solver=solver).fit(X)
print(json.dumps({"k": int(pca.n_components_), "seconds": time.perf_counter() - start, "dtype": str(X.dtype)}))
