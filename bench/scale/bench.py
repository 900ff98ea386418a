"""Scale benchmark: the whole Fruits-360 (94,110 photos) against the 20,889-photo
sample, side by side in one invocation, on one machine and read from S3.

Sections (--only picks some; scripts/bench-scale.sh runs them all, and the
Spark benchmark on the whole dataset after them):

  machine  `fruits run` on the sample, then on the whole dataset: wall time,
           images/s, each stage, peak RSS, bytes of features/ and reduced/, k;
           then `fruits train --split Training` and `fruits evaluate --split Test`
           on each (default settings): accuracy, macro-F1, net revenue, time, RSS.
  resume   `fruits run` on the whole dataset killed (SIGKILL, as a crash) once
           half the photos are saved, then run again: what the second run costs
           against the share that was left.
  s3       the whole dataset uploaded to a local Garage (S3) server as one
           object per photo, then `fruits run s3://...` with its output on
           local disk: listing time, images/s against local disk, the S3
           requests it made (counted in Garage's request log) and their price
           per million photos at eu-west-3 list prices.

  phone    photos the size a phone takes (12 MP, about 3 MB): --phone-photos
           Fruits-360 Test photos upscaled to 4032 x 3024 with Gaussian noise
           (sigma 10, so the JPEG is as large as a real one), then
           `fruits featurize` on them: the per-core rate the plan to 10
           million a day needs for the app's photos, against 100 x 100 ones.

Every fruits command is the release binary (target/release/fruits), int8 model
(the default), both cores. Peak RSS is /usr/bin/time's maximum resident set.

usage: python bench/scale/bench.py --whole DIR [--sample DIR] [--only machine,resume,s3,phone]
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SAMPLE = os.environ.get("FRUITS_SAMPLE_DIR", os.path.join(ROOT, "..", "shared", "data", "fruits-360-sample"))
MODELS = os.environ.get("FRUITS_MODELS_DIR", os.path.join(ROOT, "..", "shared", "models"))
WORK = os.path.join(ROOT, "target", "bench-scale")
FRUITS = os.path.join(ROOT, "target", "release", "fruits")
# Rows per part file of `fruits run` (its --part-rows default).
PART_ROWS = 2048
# The machine's cores (every fruits command uses them all by default).
CORES = os.cpu_count()

# Amazon S3 Standard, Europe (Paris), USD per 1,000 requests (aws.amazon.com/s3/pricing,
# read 2026-12): PUT, COPY, POST, LIST; GET, SELECT and all other requests.
PRICE_PUT_LIST_PER_1000 = 0.0053
PRICE_GET_PER_1000 = 0.00042


def photos_in(folder):
    return sum(1 for _, _, files in os.walk(folder) for f in files if f.lower().endswith((".jpg", ".jpeg", ".png")))


def tree_bytes(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files
               if f.endswith(".parquet"))


def timed(args, log, env=None):
    """Runs a fruits command under /usr/bin/time; returns (wall s, peak RSS MiB, its output)."""
    cmd = ["/usr/bin/time", "-f", "TIME %e %M", FRUITS, *args]
    with open(log, "w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
    text = open(log).read()
    if code not in (0, 3):  # 3: finished, some photos in the errors table
        sys.exit(f"failed ({code}): {' '.join(cmd)}; see {log}")
    wall, rss = re.findall(r"^TIME ([\d.]+) (\d+)$", text, re.M)[-1]
    return float(wall), int(rss) / 1024, text


def stages(text):
    """The `stages:` line of `fruits run`: {listing, featurise, PCA fit, transform} in seconds."""
    line = re.search(r"^stages: (.*)$", text, re.M).group(1)
    return {k.strip(): float(v) for v, k in ((m.group(2), m.group(1)) for m in re.finditer(r"([A-Za-z ]+?) ([\d.]+) s", line))}


def machine(name, photos):
    """One dataset's run, train and evaluate; returns the figures."""
    out = os.path.join(WORK, f"run-{name}")
    shutil.rmtree(out, ignore_errors=True)
    n = photos_in(photos)
    print(f"[{name}] fruits run on {n} photos ...", flush=True)
    wall, rss, text = timed(["run", photos, "--out", out], os.path.join(WORK, f"run-{name}.log"))
    st = stages(text)
    k = json.load(open(os.path.join(out, "pca", "pca.json")))["k"]
    r = {"photos": n, "run s": wall, "images/s": n / wall, "featurise img/s": n / st["featurise"],
         "listing s": st["listing"], "featurise s": st["featurise"], "PCA fit s": st["PCA fit"],
         "transform s": st["transform"], "peak RSS MiB": rss,
         "features MB": tree_bytes(os.path.join(out, "features")) / 1e6,
         "reduced MB": tree_bytes(os.path.join(out, "reduced")) / 1e6, "k (95%)": k}
    r["reduced/features"] = r["reduced MB"] / r["features MB"]
    clf = os.path.join(WORK, f"classifier-{name}")
    shutil.rmtree(clf, ignore_errors=True)
    print(f"[{name}] fruits train --split Training ...", flush=True)
    wall, rss, _ = timed(["train", os.path.join(out, "features"), "--split", "Training", "--out", clf],
                         os.path.join(WORK, f"train-{name}.log"))
    r["train s"], r["train RSS MiB"] = wall, rss
    print(f"[{name}] fruits evaluate --split Test ...", flush=True)
    wall, rss, text = timed(["evaluate", clf, "--on", os.path.join(out, "features"), "--split", "Test", "--json"],
                            os.path.join(WORK, f"evaluate-{name}.log"))
    report = json.loads(text[text.index("{"):text.rindex("}") + 1])
    r["evaluate s"] = wall
    r["Test rows"] = report["rows"]
    r["Test accuracy %"] = 100 * report["accuracy"]
    r["Test macro-F1 %"] = 100 * report["macro_f1"]
    r["net revenue / photo"] = report["revenue_always_answer"]["net_per_photo"]
    return r


def resume(photos, full):
    """Kills a run (SIGKILL, as a crash) once half the photos are in its saved
    parts, resumes it; returns the figures."""
    out = os.path.join(WORK, "run-resume")
    shutil.rmtree(out, ignore_errors=True)
    n = photos_in(photos)
    log = os.path.join(WORK, "resume-killed.log")
    print(f"[resume] fruits run, killed once {n // 2} photos are saved ...", flush=True)
    features = os.path.join(out, "features")
    with open(log, "w") as f:
        proc = subprocess.Popen([FRUITS, "run", photos, "--out", out], stdout=f, stderr=subprocess.STDOUT)
        started = time.perf_counter()
        # Parts are renamed into place when complete, PART_ROWS rows each.
        while proc.poll() is None:
            parts = [p for p in os.listdir(features)] if os.path.isdir(features) else []
            if sum(p.startswith("part-") and p.endswith(".parquet") for p in parts) * PART_ROWS >= n / 2:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_after = time.perf_counter() - started
    print("[resume] the same command again ...", flush=True)
    wall, rss, text = timed(["run", photos, "--out", out], os.path.join(WORK, "resume-second.log"))
    skipped = int(re.search(r"skipped \(done before\): (\d+)", text).group(1))
    left = 1 - skipped / n
    # What the left share costs in a run from scratch: its featurising, plus the
    # listing, fit and transform every complete run does once.
    fair = full["featurise s"] * left + full["listing s"] + full["PCA fit s"] + full["transform s"]
    return {"killed after s": killed_after, "done before the kill %": 100 * skipped / n, "second run s": wall,
            "full run s": full["run s"], "second run / (full run x share left)": wall / (full["run s"] * left),
            "left share of a full run s": fair, "second run / left share": wall / fair}


def garage_requests(log, start=0):
    """S3 requests in Garage's request log from byte `start`, by kind; and the end offset."""
    counts = {}
    with open(log, "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
        end = start + len(text.encode())
    for m in re.finditer(r"generic_server\S*: \S+(?: \(key \S+\))? (GET|HEAD|PUT|POST|DELETE) (\S+)$", re.sub(r"\x1b\[[0-9;]*m", "", text), re.M):
        method, target = m.groups()
        path, _, query = target.partition("?")
        if method == "GET" and (path.count("/") <= 1 or "list-type" in query or "prefix=" in query):
            kind = "LIST"
        else:
            kind = method
        counts[kind] = counts.get(kind, 0) + 1
    return counts, end


def s3(photos, local):
    sys.path.insert(0, os.path.join(ROOT, "python", "tests"))
    from garage import Garage  # the tests' single-node server

    base = os.path.join(WORK, "garage")
    shutil.rmtree(base, ignore_errors=True)
    garage = Garage(base, log_requests=True)
    try:
        garage.bucket("photos")
        import pyarrow.fs as pafs

        n = photos_in(photos)
        print(f"[s3] uploading {n} photos to Garage, one object each ...", flush=True)
        started = time.perf_counter()
        pafs.copy_files(photos, "photos/whole", destination_filesystem=garage.filesystem(), use_threads=True)
        upload = time.perf_counter() - started
        _, mark = garage_requests(garage.log)
        out = os.path.join(WORK, "run-s3")
        shutil.rmtree(out, ignore_errors=True)
        print("[s3] fruits run s3://photos/whole (output on local disk) ...", flush=True)
        wall, rss, text = timed(["run", "s3://photos/whole", "--out", out], os.path.join(WORK, "run-s3.log"),
                                env=garage.env())
        made, _ = garage_requests(garage.log, mark)
    finally:
        garage.stop()
    st = stages(text)
    gets = made.get("GET", 0) + made.get("HEAD", 0)
    lists = made.get("LIST", 0)
    per_million = 1e6 / n
    cost = (gets * PRICE_GET_PER_1000 + lists * PRICE_PUT_LIST_PER_1000) / 1000 * per_million
    return {"photos": n, "upload s": upload, "upload objects/s": n / upload, "listing s": st["listing"],
            "objects listed/s": n / max(st["listing"], 0.01), "run s": wall, "featurise img/s": n / st["featurise"],
            "vs local disk": (n / st["featurise"]) / local["featurise img/s"] if local else float("nan"),
            "peak RSS MiB": rss, "requests": made, "GET per photo": gets / n, "LIST per 1,000 photos": lists / n * 1000,
            "read requests USD per million photos": cost,
            "PUT USD per million photos (uploading them)": PRICE_PUT_LIST_PER_1000 * 1000}


def phone(whole, count):
    """Featurises `count` phone-sized photos (made once, from whole's Test photos)."""
    import numpy as np
    from PIL import Image

    folder = os.path.join(WORK, f"phone-photos-{count}")
    if photos_in(folder) != count:
        shutil.rmtree(folder, ignore_errors=True)
        sources = sorted(os.path.join(d, f) for d, _, files in os.walk(os.path.join(whole, "Test")) for f in files)
        rng = np.random.default_rng(0)
        print(f"[phone] making {count} photos of 4032 x 3024 ...", flush=True)
        for i, src in enumerate(sources[:: max(1, len(sources) // count)][:count]):
            label = os.path.basename(os.path.dirname(src))
            os.makedirs(os.path.join(folder, "Test", label), exist_ok=True)
            big = np.asarray(Image.open(src).convert("RGB").resize((4032, 3024), Image.BILINEAR), dtype=np.int16)
            noisy = np.clip(big + rng.normal(0, 10, big.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(os.path.join(folder, "Test", label, f"phone_{i}.jpg"), "JPEG", quality=90)
    n = photos_in(folder)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files) / n
    out = os.path.join(WORK, "phone-features")
    shutil.rmtree(out, ignore_errors=True)
    print(f"[phone] fruits featurize on {n} photos ...", flush=True)
    wall, rss, text = timed(["featurize", folder, "--out", out], os.path.join(WORK, "phone.log"))
    rate = float(re.search(r"throughput: ([\d.]+) images/s", text).group(1))
    return {"photos": n, "MB a photo": size / 1e6, "featurise img/s": rate, "per core img/s": rate / CORES,
            "peak RSS MiB": rss, "wall s": wall}


def table(title, cols):
    """Prints {column: {row: value}} side by side, with a ratio column when there are two."""
    names = list(cols)
    rows = [r for r in next(iter(cols.values())) if not isinstance(next(iter(cols.values()))[r], dict)]
    print(f"\n{title}")
    print(f"{'':40}" + "".join(f"{c:>14}" for c in names) + (f"{'ratio':>10}" if len(names) == 2 else ""))
    for r in rows:
        vals = [cols[c].get(r) for c in names]
        line = f"{r:40}" + "".join(f"{v:14.4g}" if isinstance(v, (int, float)) else f"{str(v):>14}" for v in vals)
        if len(vals) == 2 and all(isinstance(v, (int, float)) and v for v in vals):
            line += f"{vals[1] / vals[0]:9.2f}x"
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--whole", required=True, help="the extracted Fruits-360 (scripts/fetch-fruits360.sh)")
    ap.add_argument("--sample", default=SAMPLE)
    ap.add_argument("--only", default="machine,resume,s3,phone")
    ap.add_argument("--phone-photos", type=int, default=300)
    args = ap.parse_args()
    only = set(args.only.split(","))
    os.makedirs(WORK, exist_ok=True)
    results_file = os.path.join(WORK, "results.json")
    results = json.load(open(results_file)) if os.path.exists(results_file) else {}

    def save():
        json.dump(results, open(results_file, "w"), indent=2)

    if "machine" in only:
        results["sample"] = machine("sample", args.sample)
        save()
        results["whole"] = machine("whole", args.whole)
        save()
    if "sample" in results and "whole" in results:
        table("One machine (2 cores): sample vs whole Fruits-360", {"sample": results["sample"], "whole": results["whole"]})
    if "resume" in only:
        w = results["whole"]
        results["resume"] = resume(args.whole, w)
        save()
        table("Resume after a kill at half the featurising", {"whole": results["resume"]})
    if "s3" in only:
        results["s3"] = s3(args.whole, results.get("whole"))
        save()
        table("Read from S3 (Garage on this machine) vs local disk", {"whole from S3": results["s3"]})
        print("  requests made:", results["s3"]["requests"])
    if "phone" in only:
        results["phone"] = phone(args.whole, args.phone_photos)
        save()
        cols = {"phone (12 MP)": results["phone"]}
        if "whole" in results:
            w = results["whole"]
            cols = {"Fruits-360 (100 x 100)": {"featurise img/s": w["featurise img/s"],
                                               "per core img/s": w["featurise img/s"] / CORES,
                                               "MB a photo": 0.0045, "peak RSS MiB": w["peak RSS MiB"]},
                    "phone (12 MP)": {k: results["phone"][k] for k in
                                      ("featurise img/s", "per core img/s", "MB a photo", "peak RSS MiB")}}
        table("Phone-sized photos", cols)
    print(f"\nfigures kept in {results_file}")


if __name__ == "__main__":
    main()
