"""ONNX Runtime alone: one session of 2 intra-op threads vs two sessions of 1 thread on
alternate batches (issue 17's idea), and int8 vs fp32, on random batches of 16.

usage: python3 bench/featurize/sessions.py MODELS_DIR [--batches 40] [--repeat 2]
(the venv of scripts/bench-featurize.sh has onnxruntime and NumPy)
Prints images/s per model and layout, alternating runs so machine noise hits both.
"""

import argparse
import os
import statistics
import threading
import time

import numpy as np
import onnxruntime as ort

MODELS = {"fp32": "mobilenetv2-12-dequant-fp32.onnx", "int8": "mobilenetv2-12-int8.onnx"}


def session(path, threads):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    # As fruits sets it: idle intra-op threads sleep instead of spinning.
    o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def rate(sessions, x, batches):
    name = sessions[0].get_inputs()[0].name
    for s in sessions:
        s.run(None, {name: x})  # warm-up

    def work(s, n):
        for _ in range(n):
            s.run(None, {name: x})

    threads = [threading.Thread(target=work, args=(s, batches // len(sessions))) for s in sessions]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(x) * batches / (time.perf_counter() - started)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models")
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    x = np.random.default_rng(0).random((16, 3, 224, 224), dtype=np.float32)
    best = {}
    for precision, file in MODELS.items():
        path = os.path.join(args.models, file)
        layouts = {"one session, 2 threads": lambda: [session(path, 2)],
                   "two sessions, 1 thread each": lambda: [session(path, 1), session(path, 1)]}
        rates = {name: [] for name in layouts}
        for _ in range(args.repeat):
            for name, make in layouts.items():
                rates[name].append(rate(make(), x, args.batches))
        for name, r in rates.items():
            print(f"{precision:<5} {name:<28} {statistics.median(r):7.1f} images/s")
        best[precision] = statistics.median(rates["one session, 2 threads"])
    print(f"int8 / fp32 (one session, 2 threads): {best['int8'] / best['fp32']:.2f}x")


if __name__ == "__main__":
    main()
