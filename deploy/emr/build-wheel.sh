#!/usr/bin/env bash
# Builds the `fruits` wheel for Amazon EMR 7 nodes (Amazon Linux 2023, glibc 2.34) and
# prints its path. Runs on any Linux or macOS machine with rustup: the native module is
# cross-linked by zig against glibc 2.28, so the wheel is manylinux_2_28 and abi3 (one
# wheel for every CPython >= 3.11, what onnxruntime 1.31 supports).
#
#   deploy/emr/build-wheel.sh                      # x86_64 (m6i, m7i, c6i, ...)
#   deploy/emr/build-wheel.sh --arch aarch64       # Graviton (m7g, c7g, ...)
#   deploy/emr/build-wheel.sh --wheelhouse         # also download every dependency for
#                                                  # Python 3.11 on that arch (private subnets)
#
# Tools go into a throwaway venv (target/emr-build-venv): maturin and zig from PyPI.
# Environment: FRUITS_ZIGLANG (default 0.14.1, see below), PYTHON (default python3).
set -euo pipefail

arch=x86_64
wheelhouse=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --arch) arch="${2:-}"; shift 2 ;;
    --arch=*) arch="${1#--arch=}"; shift ;;
    --wheelhouse) wheelhouse=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "build-wheel.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
case "$arch" in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) echo "build-wheel.sh: --arch must be x86_64 or aarch64, not '$arch'" >&2; exit 2 ;;
esac
target="$arch-unknown-linux-gnu"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="$root/target/wheels"
venv="$root/target/emr-build-venv"
mkdir -p "$out"

for tool in rustup cargo "${PYTHON:-python3}"; do
  command -v "$tool" >/dev/null || { echo "build-wheel.sh: '$tool' not found on PATH" >&2; exit 1; }
done

echo "==> Rust target $target" >&2
rustup target add "$target" >&2

# zig 0.16.0's `ar` cannot create new archives, which breaks the C parts of ring and
# aws-lc-sys (aws/aws-lc-rs#993); 0.14.1 is known to work. Override with FRUITS_ZIGLANG.
ziglang="${FRUITS_ZIGLANG:-0.14.1}"
if [[ ! -x "$venv/bin/maturin" ]] || ! "$venv/bin/python" -c "import ziglang" 2>/dev/null \
   || [[ "$(cat "$venv/.ziglang" 2>/dev/null)" != "$ziglang" ]]; then
  echo "==> build tools in $venv (maturin, ziglang==$ziglang)" >&2
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet "maturin>=1.9,<2" "ziglang==$ziglang" >&2
  echo "$ziglang" > "$venv/.ziglang"
fi

# aws-lc-sys (TLS for S3) compiles its jitter-entropy source with flags `zig cc` rejects
# (-Wp,-U_FORTIFY_SOURCE); without it the DRBG is still seeded from the OS (getrandom).
export AWS_LC_SYS_NO_JITTER_ENTROPY="${AWS_LC_SYS_NO_JITTER_ENTROPY:-1}"
export PATH="$venv/bin:$PATH"

# maturin runs from python/ so that it reads python/pyproject.toml, whose [tool.maturin]
# names the crate (../crates/fruits-py/Cargo.toml), the module fruits._native and the
# Python sources; `-m` would take a Cargo.toml and not find that pyproject.toml.
stamp="$(mktemp)"
trap 'rm -f "$stamp"' EXIT
echo "==> maturin build --release --zig --compatibility manylinux_2_28 --target $target" >&2
(cd python && maturin build --release --zig --compatibility manylinux_2_28 \
   --target "$target" --out "$out") >&2

wheel="$(find "$out" -maxdepth 1 -name "fruits-*manylinux_2_28_${arch}.whl" -newer "$stamp" | sort | tail -n 1)"
[[ -n "$wheel" ]] || { echo "build-wheel.sh: maturin finished but no new fruits-*manylinux_2_28_${arch}.whl in $out" >&2; exit 1; }

if [[ "$wheelhouse" == 1 ]]; then
  # Everything bootstrap.sh installs, pinned in node-requirements.txt, for CPython 3.11
  # on manylinux x86_64/aarch64, so nodes install with `pip --no-index` and the same
  # versions on every node. The lock file travels in the wheelhouse.
  house="$out/wheelhouse-$arch"
  rm -rf "$house"
  mkdir -p "$house"
  platforms=()
  for p in manylinux_2_34 manylinux_2_28 manylinux_2_27 manylinux_2_26 manylinux_2_24 manylinux_2_17 manylinux2014; do
    platforms+=(--platform "${p}_${arch}")
  done
  echo "==> wheelhouse $house (CPython 3.11, manylinux <= 2.34, $arch)" >&2
  "$venv/bin/python" -m pip download --quiet --dest "$house" --only-binary=:all: \
    --python-version 3.11 --implementation cp "${platforms[@]}" \
    "$wheel" -r "$root/deploy/emr/node-requirements.txt" >&2
  cp -f "$wheel" "$root/deploy/emr/node-requirements.txt" "$house/"
  echo "==> $(find "$house" -name '*.whl' | wc -l) wheels in $house" >&2
fi

echo "$wheel"
