"""Writes a large fruits features output from real features: rows repeated with
small Gaussian noise (sd 0.01, features are ReLU6 outputs of order 0.1-3), in the
same layout as `fruits featurize` (parts + _manifest.json), so `fruits pca fit`
and scikit-learn read the same bytes.

usage: make_big.py SOURCE_FEATURES_DIR OUT_DIR ROWS
"""

import json
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

src, out, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
manifest = json.load(open(os.path.join(src, "_manifest.json")))
table = pa.concat_tables(pq.read_table(os.path.join(src, p["file"])) for p in manifest["parts"])
base = table.column("features").combine_chunks().flatten().to_numpy().reshape(len(table), -1)
labels = table.column("label").to_pylist()
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
part_rows, parts, written = 10_000, [], 0
while written < rows:
    n = min(part_rows, rows - written)
    idx = np.arange(written, written + n) % len(base)
    feats = (base[idx] + rng.normal(0, 0.01, size=(n, base.shape[1]))).astype(np.float32)
    t = pa.table({
        "path": [f"synthetic/{i:08d}.jpg" for i in range(written, written + n)],
        "label": [labels[i] for i in idx],
        "split": pa.nulls(n, pa.string()),
        "features": pa.FixedSizeListArray.from_arrays(pa.array(feats.reshape(-1)), base.shape[1]),
    })
    name = f"part-r000-{len(parts):05d}.parquet"
    pq.write_table(t, os.path.join(out, name), compression="zstd")
    parts.append({"file": name, "rows": n})
    written += n
manifest.update(rows=written, errors=0, parts=parts, error_parts=[], written_at_unix=int(time.time()))
json.dump(manifest, open(os.path.join(out, "_manifest.json"), "w"), indent=2)
print(f"wrote {written} rows x {base.shape[1]} to {out}")
