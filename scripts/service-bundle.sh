#!/usr/bin/env bash
# Builds the classifier bundle the service ships, from the Fruits-360 sample
# and the public real-photo datasets (data/real-photos/), and prints its
# evaluation: studio Test photos, augmented copies of them, and the Test
# split of every real-photo dataset, by class and by fruit, plus the
# service's latency on real photos.
#
#   scripts/service-bundle.sh OUT
#
# Environment: FRUITS_SAMPLE_DIR (../shared/data/fruits-360-sample),
# FRUITS_MODELS_DIR (../shared/models), FRUITS_REAL_PHOTOS (where
# scripts/real-photos.py extracted the photos; ~/.cache/fruits/real-photos;
# extracted first when missing, which clones the pinned repositories from
# GitHub), FRUITS_BIN (a fruits binary; built with cargo --release
# otherwise), FRUITS_WORK (features kept between runs, so a rerun only
# trains; ~/.cache/fruits/service-bundle).
#
# The recipe, each part measured in docs/identify.md:
#   - studio photos featurised as they are (int8 model, colour descriptor),
#     with 2 augmented copies of each Training photo (--augment 2: turned,
#     reframed, relit, on other backgrounds), trained on as photos in the wild;
#   - real photos featurised in 6 views (--views), with 2 augmented copies of
#     each Training photo (--augment 2: turned, reframed, relit), and trained
#     on as photos in the wild (--real), their Test splits never trained on;
#   - the main head on the raw features (--no-pca), the studio head on its
#     own PCA of the studio photos, the gate choosing per photo;
#   - "not sure" below 0.75, the break-even confidence of the default
#     net-revenue values (gain 1, cost 5, 0.5 for "not sure").
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -ne 1 ]]; then
  echo "usage: scripts/service-bundle.sh OUT" >&2
  exit 2
fi
out=$1
sample=${FRUITS_SAMPLE_DIR:-../shared/data/fruits-360-sample}
export FRUITS_MODELS_DIR=${FRUITS_MODELS_DIR:-$(cd ../shared/models 2>/dev/null && pwd || echo ../shared/models)}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/fruits
real=${FRUITS_REAL_PHOTOS:-$cache/real-photos}
work=${FRUITS_WORK:-$cache/service-bundle}
sources=(grocerystore fruteria hcmus-fruits)
mkdir -p "$work"

if [[ -n "${FRUITS_BIN:-}" ]]; then
  fruits=$FRUITS_BIN
else
  scripts/setup-onnxruntime.sh >/dev/null
  cargo build --release --locked -p fruits-cli
  fruits=target/release/fruits
fi
step() { printf '== %s\n' "$*"; }

step "real photos (data/real-photos/) in $real"
missing=()
for s in "${sources[@]}"; do
  [[ -d "$real/$s/Training" && -d "$real/$s/Test" ]] || missing+=("$s")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  python3 scripts/real-photos.py --out "$real" "${missing[@]}"
fi

step "featurise (resumes: photos done before are skipped)"
"$fruits" featurize "$sample" --out "$work/studio-aug2" --augment 2 --quiet || [[ $? -eq 3 ]]
for s in "${sources[@]}"; do
  "$fruits" featurize "$real/$s" --out "$work/$s" --views --augment 2 --quiet || [[ $? -eq 3 ]]
done
# Augmented copies of the studio Test photos (another seed than any
# training copies): the studio photos "in the wild".
if [[ ! -f "$work/augmented-test/_manifest.json" ]]; then
  "$fruits" augment "$sample/Test" --out "$work/augmented-photos/Test" --copies 1 --seed 2
  "$fruits" featurize "$work/augmented-photos" --out "$work/augmented-test" --quiet || [[ $? -eq 3 ]]
fi

step "train (Training splits only)"
real_args=()
for s in "${sources[@]}"; do real_args+=(--real "$work/$s"); done
"$fruits" train "$work/studio-aug2" "${real_args[@]}" --split Training --no-pca \
  --abstain-below 0.75 --out "$out"

step "evaluate (Test splits; never trained on)"
report=$work/evaluation
rm -rf "$report"
mkdir -p "$report"
evaluate() {
  "$fruits" evaluate "$out" --on "$2" --split Test --json --out "$report/$1" >"$report/$1.json"
}
evaluate studio "$work/studio-aug2"  # its Test rows: the photos as they are
evaluate augmented "$work/augmented-test"
for s in "${sources[@]}"; do evaluate "$s" "$work/$s"; done
python3 - "$report" studio augmented "${sources[@]}" <<'PY'
import json, sys
report, names = sys.argv[1], sys.argv[2:]
print(f"{'Test set':<16} {'photos':>7} {'class':>8} {'fruit':>8} {'top-5':>8} {'answered':>9} {'right':>8}")
for name in names:
    r = json.load(open(f"{report}/{name}.json"))
    f = r.get("fruit") or {}
    print(f"{name:<16} {f.get('rows', r['rows']):>7} {r['accuracy']:>8.2%} {f.get('accuracy', 0):>8.2%} "
          f"{f.get('top5', 0):>8.2%} {f.get('answered', 0):>9.2%} {f.get('right_when_answered', 0):>8.2%}")
print("class: right class (of photos whose class the bundle knows); fruit, top-5: right fruit whatever")
print("the variety; answered / right: photos given an answer (a fruit at confidence >= the bundle's")
print("threshold) and the share of them that is right.")
PY

step "latency: fruits serve, one real photo per request, one client"
python3 - "$fruits" "$out" "$real/grocerystore/Test" <<'PY'
import os, statistics, subprocess, sys, time, urllib.request
fruits, bundle, photos = sys.argv[1:4]
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(photos) for f in fs)[::17][:60]
server = subprocess.Popen([fruits, "serve", "--model", bundle, "--port", "0"], stdout=subprocess.PIPE, text=True)
try:
    url = None
    for line in server.stdout:
        if line.startswith("listening on "):
            url = line.split()[2]
        if line.startswith("ready"):
            break
    times = []
    for i, path in enumerate(files):
        body = open(path, "rb").read()
        req = urllib.request.Request(url + "/v1/identify", data=body, headers={"Content-Type": "image/jpeg"})
        started = time.perf_counter()
        urllib.request.urlopen(req).read()
        if i >= 5:  # warm-up
            times.append((time.perf_counter() - started) * 1e3)
    times.sort()
    print(f"{len(times)} requests: p50 {statistics.median(times):.1f} ms, p90 {times[int(len(times) * 0.9)]:.1f} ms")
finally:
    server.terminate()
    server.wait()
PY
echo "bundle: $out (evaluation reports in $report)"
