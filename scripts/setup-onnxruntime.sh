#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that `fruits` loads at run time.
#
# The `ort` crate's own build would download a runtime from a host these
# machines cannot reach, so we take the library from the official `onnxruntime`
# wheel on PyPI, pinned by version and sha256, and unpack it where the binary
# looks: $XDG_DATA_HOME/fruits/onnxruntime-<version>/ (default ~/.local/share).
# Idempotent: does nothing when the library is already there.
set -euo pipefail

ORT_VERSION=1.31.1
WHEEL=onnxruntime-${ORT_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl
WHEEL_SHA256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f

data_home=${XDG_DATA_HOME:-$HOME/.local/share}
dest="$data_home/fruits/onnxruntime-$ORT_VERSION"
lib="$dest/libonnxruntime.so.$ORT_VERSION"

if [[ -f "$lib" && -f "$dest/.wheel-sha256" && "$(cat "$dest/.wheel-sha256")" == "$WHEEL_SHA256" ]]; then
  echo "ONNX Runtime $ORT_VERSION already installed in $dest"
  exit 0
fi

if [[ "$(uname -sm)" != "Linux x86_64" ]]; then
  echo "error: this script pins the Linux x86_64 wheel; on $(uname -sm) install onnxruntime==$ORT_VERSION" >&2
  echo "       with pip and set FRUITS_ORT_LIB to its onnxruntime/capi/libonnxruntime.* file" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "onnxruntime==$ORT_VERSION --hash=sha256:$WHEEL_SHA256" > "$tmp/requirements.txt"
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
  --require-hashes -r "$tmp/requirements.txt" -d "$tmp"
echo "$WHEEL_SHA256  $tmp/$WHEEL" | sha256sum --check --quiet

mkdir -p "$dest"
python3 - "$tmp/$WHEEL" "$dest" "$ORT_VERSION" <<'PY'
import sys, zipfile, shutil, os
wheel, dest, ver = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in (f"onnxruntime/capi/libonnxruntime.so.{ver}", "onnxruntime/capi/libonnxruntime_providers_shared.so"):
        target = os.path.join(dest, os.path.basename(name))
        with z.open(name) as src, open(target + ".tmp", "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(target + ".tmp", target)
PY
ln -sf "libonnxruntime.so.$ORT_VERSION" "$dest/libonnxruntime.so"
echo "$WHEEL_SHA256" > "$dest/.wheel-sha256"
echo "installed ONNX Runtime $ORT_VERSION in $dest"
