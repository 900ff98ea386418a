#!/usr/bin/env bash
# Installs Garage, the S3-compatible server the S3 tests start on 127.0.0.1,
# from crates.io into target/tools/garage (no network beyond the registry).
# Pinned version, locked dependencies, only the lmdb metadata engine: a smaller,
# reproducible build. Skips the build when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.5.0
ROOT=target/tools/garage
BIN=$ROOT/bin/garage
if [[ -x $BIN ]] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "garage $VERSION already at $BIN"
  exit 0
fi
# The server only has to be correct, not fast: optimising less halves the build.
CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
  cargo install --locked garage --version "$VERSION" \
  --no-default-features --features bundled-libs,lmdb --root "$ROOT"
"$BIN" --version
