#!/usr/bin/env bash
# The SageMaker container against `fruits serve` outside it, side by side in one
# invocation: image size, start to the first 200 from /ping, and POST
# /invocations latency and throughput under wrk at concurrency 1 and 8.
#
# usage: scripts/bench-sagemaker.sh [SECONDS per load level (default 20)] [STARTS (default 5)]
#
# Builds the release binary and the image (deploy/sagemaker/build.sh), trains a
# classifier on the first 1,000 Test photos of the sample (sorted path order),
# packs it with package_model.py and mounts the extracted archive at
# /opt/ml/model, as SageMaker does. The native service reads the same folder.
# Both are measured one after the other on the same 2 cores (never at once),
# with the same photo, the same wrk settings and a warm-up each. Needs wrk,
# podman (scripts/setup-containers.sh) and the shared models.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
seconds=${1:-20}
starts=${2:-5}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
scripts/setup-onnxruntime.sh >/dev/null
eval "$(scripts/setup-containers.sh 2>/dev/null)"
cargo build --release --quiet --locked -p fruits-cli
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/fruits
work=$(mktemp -d)
tag=localhost/fruits-serve:bench-$$
container=fruits-bench-$$
server=
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null
  podman rm -f -t 0 "$container" >/dev/null 2>&1 || true
  podman rmi -f "$tag" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

copy_test_photos 1000 "$work/photos"
"$bin" featurize "$work/photos" --out "$work/features" --quiet
"$bin" train "$work/features" --out "$work/classifier" >/dev/null
deploy/sagemaker/package_model.py "$work/classifier" "$work/model.tar.gz" >/dev/null
mkdir -p "$work/model"
tar -C "$work/model" -xzf "$work/model.tar.gz"
chmod -R a+rX "$work/model"

FRUITS_BIN=$bin deploy/sagemaker/build.sh "$tag" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$tag")
base=$(podman image inspect --format '{{.Size}}' docker.io/library/debian:bookworm-slim)

# Seconds from starting the service to its first 200 from /ping.
ready_after() { # url started_at
  local url=$1 t0=$2 end=$(( $(date +%s) + 120 ))
  until curl -fsS --max-time 1 "$url/ping" >/dev/null 2>&1; do
    [[ $(date +%s) -lt $end ]] || { echo "no 200 from $url/ping" >&2; return 1; }
    sleep 0.02
  done
  python3 -c "print(f'{$(now) - $t0:.2f}')"
}
: >"$work/starts-container"; : >"$work/starts-native"
for _ in $(seq 1 "$starts"); do
  port=$(free_port)
  t0=$(now)
  podman run -d --pull=never --name "$container" -p "127.0.0.1:$port:8080" \
    -v "$work/model:/opt/ml/model:ro" "$tag" serve >/dev/null
  ready_after "http://127.0.0.1:$port" "$t0" >>"$work/starts-container"
  podman rm -f -t 0 "$container" >/dev/null
  port=$(free_port)
  t0=$(now)
  "$bin" serve --model "$work/model" --models-dir "$work/model" --port "$port" >/dev/null 2>&1 &
  server=$!
  ready_after "http://127.0.0.1:$port" "$t0" >>"$work/starts-native"
  kill -TERM "$server"; wait "$server" || true; server=
done

photo=$(find "$work/photos" -type f | LC_ALL=C sort | sed -n 1p)
post_lua "$photo" >"$work/post.lua"
load() { # name url
  wrk -t 2 -c 4 -d 3s -s "$work/post.lua" "$2/invocations" >/dev/null   # warm-up
  for c in 1 8; do
    threads=$(( c < 2 ? 1 : 2 ))
    wrk -t "$threads" -c "$c" -d "${seconds}s" --latency -s "$work/post.lua" "$2/invocations" >"$work/wrk-$1-$c.txt"
  done
}
port=$(free_port)
podman run -d --pull=never --name "$container" -p "127.0.0.1:$port:8080" \
  -v "$work/model:/opt/ml/model:ro" "$tag" serve >/dev/null
ready_after "http://127.0.0.1:$port" "$(now)" >/dev/null
load container "http://127.0.0.1:$port"
podman rm -f -t 0 "$container" >/dev/null
port=$(free_port)
"$bin" serve --model "$work/model" --models-dir "$work/model" --port "$port" >/dev/null 2>&1 &
server=$!
ready_after "http://127.0.0.1:$port" "$(now)" >/dev/null
load native "http://127.0.0.1:$port"
kill -TERM "$server"; wait "$server" || true; server=

median() { python3 -c 'import statistics, sys; xs = [float(x) for x in open(sys.argv[1]).read().split()]
print("median {:.2f} s (min {:.2f}, max {:.2f}, {} starts)".format(statistics.median(xs), min(xs), max(xs), len(xs)))' "$1"; }
mb() { python3 -c "print(f'{$1 / 1e6:.1f} MB')"; }
echo "image: $(mb "$size") (base debian:bookworm-slim $(mb "$base"), fruits $(mb "$((size - base))"))"
echo "start, podman run -> first /ping 200: $(median "$work/starts-container")"
echo "start, fruits serve -> first /ping 200: $(median "$work/starts-native")"
printf '\nPOST /invocations, one photo per request, wrk %s s per level\n' "$seconds"
printf '%10s  %11s  %10s  %8s  %8s  %7s\n' "" concurrency requests/s "p50 ms" "p99 ms" non-2xx
for name in container native; do
  for c in 1 8; do
    read -r rps p50 p99 bad < <(wrk_summary "$work/wrk-$name-$c.txt")
    printf '%10s  %11s  %10s  %8s  %8s  %7s\n' "$name" "$c" "$rps" "$p50" "$p99" "$bad"
    echo "$rps $p50" >"$work/sum-$name-$c"
  done
done
for c in 1 8; do
  read -r rc pc <"$work/sum-container-$c"
  read -r rn pn <"$work/sum-native-$c"
  python3 -c "print(f'container vs native at concurrency $c: throughput {$rc / $rn:.2f}x, p50 {$pc / $pn:.2f}x')"
done
