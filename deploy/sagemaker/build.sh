#!/usr/bin/env bash
# Builds the SageMaker container image with podman (or docker: CONTAINER_TOOL).
#
#   deploy/sagemaker/build.sh [--platform linux/amd64|linux/arm64] [TAG]
#
# The image is built for --platform (default linux/amd64: ml.m5, ml.c5, ...;
# linux/arm64 for Graviton types, ml.m6g, ml.c7g, ...) and its tag ends with
# the architecture (`-amd64`, `-arm64`; added when TAG lacks it), which
# deploy.py checks against the instance type. Default tag:
# localhost/fruits-serve:<git short hash>-<arch>. FRUITS_BIN picks the binary
# to put in (default: a release build of this checkout, built here); the ONNX
# Runtime library comes from where scripts/setup-onnxruntime.sh installs it
# (or FRUITS_ORT_LIB). Both must be built for the platform. Prints the tag.
set -euo pipefail
platform=linux/amd64
if [[ ${1:-} == --platform ]]; then
  platform=$2
  shift 2
fi
arch=${platform#linux/}
case $arch in
  amd64) machine="X86-64" ;;
  arm64) machine="AArch64" ;;
  *) echo "build.sh: --platform $platform: linux/amd64 or linux/arm64" >&2; exit 2 ;;
esac
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tool=${CONTAINER_TOOL:-podman}
tag=${1:-localhost/fruits-serve:$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo dev)}
[[ $tag == *-"$arch" ]] || tag="$tag-$arch"
ort_version=1.31.1
ort=${FRUITS_ORT_LIB:-${XDG_DATA_HOME:-$HOME/.local/share}/fruits/onnxruntime-$ort_version/libonnxruntime.so.$ort_version}
if [[ -z "${FRUITS_BIN:-}" ]]; then
  (cd "$root" && cargo build --release --locked -p fruits-cli >&2)
  FRUITS_BIN=$(cd "$root" && cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/fruits
fi
[[ -x "$FRUITS_BIN" ]] || { echo "build.sh: no fruits binary at $FRUITS_BIN" >&2; exit 1; }
[[ -f "$ort" ]] || { echo "build.sh: no ONNX Runtime at $ort (run scripts/setup-onnxruntime.sh)" >&2; exit 1; }
# An image whose binary cannot run on its platform would only fail on SageMaker.
for file in "$FRUITS_BIN" "$ort"; do
  if ! readelf -h "$file" | grep -q "Machine:.*$machine"; then
    echo "build.sh: $file is not built for $platform ($(readelf -h "$file" | sed -n 's/ *Machine: *//p'))" >&2
    exit 1
  fi
done

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/bin" "$ctx/lib"
cp "$FRUITS_BIN" "$ctx/bin/fruits"
# Debug sections are for the build machine, not for the image.
strip --strip-debug "$ctx/bin/fruits" 2>/dev/null || true
cp "$ort" "$ctx/lib/libonnxruntime.so.$ort_version"
cp "$here/Containerfile" "$ctx/Containerfile"
pull=()
[[ $tool == podman ]] && pull=(--pull=never)   # the base image is made locally (scripts/setup-containers.sh)
"$tool" build "${pull[@]}" --platform "$platform" --quiet -t "$tag" -f "$ctx/Containerfile" "$ctx" >&2
echo "$tag"
