"""Reference featuriser, the way a careful Python user writes it: Pillow +
NumPy + ONNX Runtime, 2 intra-op threads, at its best.

Same preprocessing as `fruits` (../shared/models/README.md): RGB, bilinear to
224x224 (square images whole, others short side 256 then centre crop 224),
/255, ImageNet mean/std, NCHW float32. Tuned: each photo is only decoded and
resized by Pillow (uint8); the whole batch is stacked as uint8 and normalised
in one NumPy pass into an NCHW float32 buffer (no per-image float work).
--threaded also decodes the next batch in a thread while ONNX Runtime runs
the current one (Pillow releases the GIL while it decodes and resizes).
Writes the features as Parquet.

    reference.py [--batch N] [--threaded] MODEL OUT.parquet FILE...   (the list from stdin with -)
    reference.py --inference-only [--batch N] [--sessions S] MODEL N_IMAGES
        the engine's limit: session.run alone on one prepared batch, repeated
        for N_IMAGES images; prints "images/s" on stdout. --sessions 2 runs two
        sessions of one thread each side by side (the layout fruits uses)
        instead of one session of 2 threads.
"""

import queue
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# x / 255 - mean) / std as one multiply and one subtract per value.
SCALE = (1.0 / (255.0 * STD)).reshape(1, 3, 1, 1).astype(np.float32)
SHIFT = (MEAN / STD).reshape(1, 3, 1, 1).astype(np.float32)


def decode(path):
    """The photo resized and cropped to 224 x 224 RGB, uint8 HWC."""
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
    return np.asarray(img, dtype=np.uint8)


def tensor(paths):
    """One NCHW float32 batch: decoded as uint8, normalised in one pass."""
    u8 = np.stack([decode(p) for p in paths])  # N x 224 x 224 x 3, uint8
    x = np.empty((len(paths), 3, 224, 224), dtype=np.float32)
    np.copyto(x, u8.transpose(0, 3, 1, 2), casting="unsafe")
    x *= SCALE
    x -= SHIFT
    return x


def session(model, threads=2):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def batches(files, batch_size, threaded):
    chunks = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
    if not threaded:
        for chunk in chunks:
            yield tensor(chunk)
        return
    ready = queue.Queue(maxsize=2)

    def produce():
        for chunk in chunks:
            ready.put(tensor(chunk))
        ready.put(None)

    threading.Thread(target=produce, daemon=True).start()
    while (batch := ready.get()) is not None:
        yield batch


def inference_only(model, batch_size, n_images, sessions=1):
    # One session of 2 threads, or 2 of one thread each (ONNX Runtime releases
    # the GIL in run, so the two run side by side).
    runners = [session(model, 2 // sessions) for _ in range(sessions)]
    x = np.random.default_rng(0).standard_normal((batch_size, 3, 224, 224)).astype(np.float32)
    for sess in runners:
        sess.run(["features"], {"input": x})  # warm-up
    runs = max(1, n_images // batch_size // sessions)

    def work(sess):
        for _ in range(runs):
            sess.run(["features"], {"input": x})

    threads = [threading.Thread(target=work, args=(sess,)) for sess in runners]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{runs * batch_size * sessions / (time.perf_counter() - start):.1f}")


def main():
    argv = sys.argv[1:]
    batch_size, threaded, only, sessions = 64, False, False, 1
    while argv and argv[0].startswith("--"):
        flag, argv = argv[0], argv[1:]
        if flag == "--batch":
            batch_size, argv = int(argv[0]), argv[1:]
        elif flag == "--threaded":
            threaded = True
        elif flag == "--inference-only":
            only = True
        elif flag == "--sessions":
            sessions, argv = int(argv[0]), argv[1:]
        else:
            sys.exit(f"reference.py: unknown flag {flag}")
    if only:
        model, n = argv
        return inference_only(model, batch_size, int(n), sessions)
    model, out, *files = argv
    if files == ["-"]:
        files = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    sess = session(model)
    start = time.perf_counter()
    feats = [sess.run(["features"], {"input": x})[0] for x in batches(files, batch_size, threaded)]
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
