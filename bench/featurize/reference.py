"""Reference featuriser, written the way a Python user would: Pillow + NumPy +
ONNX Runtime, one image after another, batches of 64 (or --batch N), 2
intra-op threads.

Same preprocessing as `fruits` (../shared/models/README.md): RGB, bilinear to
224x224 (square images whole, others short side 256 then centre crop 224),
/255, ImageNet mean/std, NCHW float32. Writes the features as Parquet.

usage: reference.py [--batch N] MODEL OUT.parquet FILE...   (file list also read from stdin with -)
"""

import sys
import time

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w == h:
        img = img.resize((224, 224), Image.BILINEAR)
    else:
        scale = 256 / min(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        img = img.resize((nw, nh), Image.BILINEAR)
        left, top = round((nw - 224) / 2), round((nh - 224) / 2)
        img = img.crop((left, top, left + 224, top + 224))
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - MEAN) / STD
    return x.transpose(2, 0, 1)


def main():
    argv = sys.argv[1:]
    batch_size = 64
    if argv[:1] == ["--batch"]:
        batch_size, argv = int(argv[1]), argv[2:]
    model, out, *files = argv
    if files == ["-"]:
        files = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    start = time.perf_counter()
    feats = []
    for i in range(0, len(files), batch_size):
        batch = np.stack([preprocess(f) for f in files[i : i + batch_size]])
        feats.append(sess.run(["features"], {"input": batch})[0])
    features = np.concatenate(feats)
    table = pa.table(
        {
            "path": files,
            "features": pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), features.shape[1]),
        }
    )
    pq.write_table(table, out)
    elapsed = time.perf_counter() - start
    print(f"{len(files)} images in {elapsed:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
