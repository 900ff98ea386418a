#!/usr/bin/env bash
# Service load benchmark: `fruits serve` under wrk at concurrency 1, 4 and 16
# (single-photo requests on loopback), side by side with the batch throughput
# of `fruits featurize` on the same photos, in the same invocation.
#
# usage: scripts/bench-serve.sh [IMAGES (default 1000)] [SECONDS per level (default 20)]
# The photos are the first IMAGES Test images of the sample in sorted path order.
# Needs wrk (Debian package `wrk`). wrk shares the machine's cores with the
# service, as a phone app's requests would not: the figures are a lower bound.
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-1000}
seconds=${2:-20}
sample=${FRUITS_SAMPLE_DIR:-../shared/data/fruits-360-sample}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
scripts/setup-onnxruntime.sh >/dev/null
cargo build --release --quiet -p fruits-cli
bin=target/release/fruits
work=$(mktemp -d)
server=
cleanup() { [[ -n "$server" ]] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

find "$sample/Test" -type f -iname '*.jpg' | LC_ALL=C sort | sed -n "1,${images}p" | while read -r f; do
  rel=${f#"$sample"/}
  mkdir -p "$work/photos/$(dirname "$rel")"
  cp "$f" "$work/photos/$rel"
done
n=$(find "$work/photos" -type f | wc -l)

echo "batch: fruits featurize on $n photos"
start=$(date +%s.%N)
"$bin" featurize "$work/photos" --out "$work/features" --quiet
end=$(date +%s.%N)
batch=$(python3 -c "print(f'{$n / ($end - $start):.1f}')")
echo "  $batch images/s (end to end, model load included)"
"$bin" train "$work/features" --out "$work/classifier" >/dev/null

"$bin" serve --model "$work/classifier" --port 0 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 600); do grep -q '^listening on' "$work/serve.log" && break; sleep 0.1; done
url=$(sed -n 's/^listening on \(http[^ ]*\).*/\1/p' "$work/serve.log")
[[ -n "$url" ]] || { cat "$work/serve.log" >&2; exit 1; }
photo=$(find "$work/photos" -type f | LC_ALL=C sort | sed -n 1p)
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
local f = assert(io.open("$photo", "rb"))
wrk.body = f:read("*a")
f:close()
LUA
curl -fsS -H 'Content-Type: image/jpeg' --data-binary @"$photo" "$url/v1/identify" >/dev/null
wrk -t 2 -c 4 -d 3s -s "$work/post.lua" "$url/v1/identify" >/dev/null   # warm-up

for c in 1 4 16; do
  threads=$(( c < 2 ? 1 : 2 ))
  echo "service: wrk -t $threads -c $c -d ${seconds}s (POST /v1/identify, one photo per request)"
  wrk -t "$threads" -c "$c" -d "${seconds}s" --latency -s "$work/post.lua" "$url/v1/identify" | tee "$work/wrk-$c.txt" | sed -n "/Latency Distribution/,/Requests\/sec/p"
done
curl -fsS "$url/metrics" | grep -E '^fruits_batch_size_(sum|count)' >"$work/batches.txt" || true
kill -TERM "$server"; wait "$server" || true; server=

python3 - "$work" "$batch" <<'PY'
import re, sys
work, batch = sys.argv[1], float(sys.argv[2])
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    x = float(m.group(1))
    return {"us": x / 1000, "ms": x, "s": x * 1000, "m": x * 60000}[m.group(2)]
print()
print(f"{'concurrency':>11}  {'requests/s':>10}  {'p50 ms':>8}  {'p99 ms':>8}  {'non-2xx':>7}  {'vs batch':>8}")
for c in (1, 4, 16):
    text = open(f"{work}/wrk-{c}.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = ms(re.search(r"50%\s+(\S+)", text).group(1))
    p99 = ms(re.search(r"99%\s+(\S+)", text).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    bad = int(bad.group(1)) if bad else 0
    print(f"{c:>11}  {rps:>10.1f}  {p50:>8.1f}  {p99:>8.1f}  {bad:>7}  {rps / batch:>7.0%}")
print(f"{'batch':>11}  {batch:>10.1f}  (fruits featurize, images/s)")
stats = dict(line.split() for line in open(f"{work}/batches.txt"))
if stats:
    mean = float(stats["fruits_batch_size_sum"]) / max(1.0, float(stats["fruits_batch_size_count"]))
    print(f"mean photos per model call over the whole run: {mean:.2f}")
PY
