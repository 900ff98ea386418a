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
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
images=${1:-1000}
seconds=${2:-20}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
scripts/setup-onnxruntime.sh >/dev/null
cargo build --release --quiet -p fruits-cli
bin=target/release/fruits
work=$(mktemp -d)
server=
cleanup() { [[ -n "$server" ]] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

copy_test_photos "$images" "$work/photos"
n=$(find "$work/photos" -type f | wc -l)

echo "batch: fruits featurize on $n photos"
start=$(date +%s.%N)
"$bin" featurize "$work/photos" --out "$work/features" --quiet
end=$(date +%s.%N)
batch=$(python3 -c "print(f'{$n / ($end - $start):.1f}')")
echo "  $batch images/s (end to end, model load included)"
"$bin" train "$work/features" --out "$work/classifier" >/dev/null

"$bin" serve --model "$work/classifier" --port 0 >"$work/serve.log" 2>&1 &
server=$!
# The service logs on standard output: `listening on URL`, then `ready` once the model is in.
for _ in $(seq 1 600); do grep -q '^ready' "$work/serve.log" && break; sleep 0.1; done
url=$(sed -n 's/^listening on \(http[^ ]*\).*/\1/p' "$work/serve.log")
[[ -n "$url" ]] || { cat "$work/serve.log" >&2; exit 1; }
photo=$(find "$work/photos" -type f | LC_ALL=C sort | sed -n 1p)
post_lua "$photo" >"$work/post.lua"
curl -fsS -H 'Content-Type: image/jpeg' --data-binary @"$photo" "$url/v1/identify" >/dev/null
wrk -t 2 -c 4 -d 3s -s "$work/post.lua" "$url/v1/identify" >/dev/null   # warm-up

for c in 1 4 16; do
  threads=$(( c < 2 ? 1 : 2 ))
  echo "service: wrk -t $threads -c $c -d ${seconds}s (POST /v1/identify, one photo per request)"
  wrk -t "$threads" -c "$c" -d "${seconds}s" --latency -s "$work/post.lua" "$url/v1/identify" | tee "$work/wrk-$c.txt" | sed -n "/Latency Distribution/,/Requests\/sec/p"
done
curl -fsS "$url/metrics" | grep -E '^fruits_batch_size_(sum|count)' >"$work/batches.txt" || true
kill -TERM "$server"; wait "$server" || true; server=

printf '\n%11s  %10s  %8s  %8s  %7s  %8s\n' concurrency requests/s "p50 ms" "p99 ms" non-2xx "vs batch"
for c in 1 4 16; do
  read -r rps p50 p99 bad < <(wrk_summary "$work/wrk-$c.txt")
  printf '%11s  %10s  %8s  %8s  %7s  %7.0f%%\n' "$c" "$rps" "$p50" "$p99" "$bad" \
    "$(python3 -c "print(100 * $rps / $batch)")"
done
printf '%11s  %10s  (fruits featurize, images/s)\n' batch "$batch"
if [[ -s "$work/batches.txt" ]]; then
  python3 -c 'import sys; s = dict(l.split() for l in open(sys.argv[1]))
print("mean photos per model call over the whole run: {:.2f}".format(
    float(s["fruits_batch_size_sum"]) / max(1.0, float(s["fruits_batch_size_count"]))))' "$work/batches.txt"
fi
