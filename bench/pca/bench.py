"""PCA benchmark: `fruits pca fit` vs scikit-learn on the same Parquet, side by side.

For each dataset (the sample's features, and 100,000 x 1280 rows made from them),
runs alternating: fruits pca fit --variance 0.95, scikit-learn PCA(0.95) with its
default solver, and with svd_solver="covariance_eigh" (pyarrow read included).
Prints seconds (median of --repeat), peak RSS of each process, k and ratios.

usage: bench.py FRUITS_BIN SAMPLE_FEATURES BIG_FEATURES [--repeat N]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def measured_rss(cmd):
    """(seconds, peak RSS MiB, stdout) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return elapsed, usage.ru_maxrss / 1024, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fruits")
    ap.add_argument("sample")
    ap.add_argument("big")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fruits-pca-bench-")
    py = sys.executable
    print(f"PCA fit benchmark, {os.cpu_count()} cores, median of {args.repeat} alternating runs, "
          "Parquet read included, peak RSS per process\n")
    header = f"{'dataset':<28} {'runner':<34} {'seconds':>8} {'peak RSS':>10} {'k':>5} {'fruits is':>11}"
    print(header)
    print("-" * len(header))
    for name, folder in [("sample", args.sample), ("synthetic", args.big)]:
        manifest = json.load(open(os.path.join(folder, "_manifest.json")))
        runners = {
            "fruits pca fit --variance 0.95": lambda: [args.fruits, "pca", "fit", folder, "--out", os.path.join(work, "m"), "--json"],
            "sklearn PCA(0.95) default solver": lambda: [py, os.path.join(HERE, "sklearn_fit.py"), folder, "auto"],
            "sklearn PCA(0.95) covariance_eigh": lambda: [py, os.path.join(HERE, "sklearn_fit.py"), folder, "covariance_eigh"],
        }
        secs = {r: [] for r in runners}
        rss = {r: 0.0 for r in runners}
        ks = {}
        for _ in range(args.repeat):
            for r, make in runners.items():
                s, m, out = measured_rss(make())
                secs[r].append(s)
                rss[r] = max(rss[r], m)
                ks[r] = json.loads(out)["k"]
        ours = statistics.median(secs["fruits pca fit --variance 0.95"])
        label = f"{name} ({manifest['rows']} rows)"
        for r in runners:
            t = statistics.median(secs[r])
            ratio = "" if r.startswith("fruits") else f"{t / ours:.1f}x faster"
            print(f"{label:<28} {r:<34} {t:>8.2f} {rss[r]:>6.0f} MiB {ks[r]:>5} {ratio:>11}")
            label = ""
    print("\nfruits' time includes writing the model and both plots (one pass over the rows; the projection")
    print("plot uses at most 8,192 evenly spaced rows kept during the pass: 40 MiB). d = 1280: each d x d f64")
    print("matrix is 12.5 MiB; one batch of 1024 rows is 5 MiB of f32 + 10 MiB of f64.")


if __name__ == "__main__":
    main()
