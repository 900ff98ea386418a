#!/usr/bin/env bash
# Installs Garage, the S3-compatible server the S3 tests start on 127.0.0.1,
# from crates.io into $XDG_DATA_HOME/fruits/garage-<version> (default
# ~/.local/share), beside ONNX Runtime: outside the clone, so a clean clone on a
# machine that built it once does not spend 5 minutes building it again.
# Pinned version, locked dependencies, only the lmdb metadata engine: a smaller,
# reproducible build. Skips the build when the pinned version is already there.
# Prints nothing but errors when it has nothing to do.
set -euo pipefail
VERSION=2.5.0
ROOT=${XDG_DATA_HOME:-$HOME/.local/share}/fruits/garage-$VERSION
BIN=$ROOT/bin/garage
if [[ -x $BIN ]] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "garage $VERSION already at $BIN"
  exit 0
fi
# The server only has to be correct, not fast: it is built unoptimised, which
# is the cheapest build, except for the hashes it runs over every byte stored
# (block hashes, S3 checksums, request signatures), which stay fully optimised.
# Its own target directory, so it never invalidates the project's builds.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
hashes=(sha2 sha1 md-5 blake2 crc32fast crc-fast xxhash-rust)
optimised=()
for h in "${hashes[@]}"; do optimised+=(--config "profile.release.package.$h.opt-level=3"); done
CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_TARGET_DIR="$tmp" \
  cargo "${optimised[@]}" install --locked garage --version "$VERSION" \
  --no-default-features --features bundled-libs,lmdb --root "$ROOT"
"$BIN" --version
