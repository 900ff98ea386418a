#!/usr/bin/env bash
# The project's test command (README and CI run exactly this): installs the
# ONNX Runtime library and the Garage S3 server if missing, checks formatting
# and lints, runs every test (the S3 tests start Garage on 127.0.0.1 themselves,
# the service tests `fruits serve`, the browser test chromedriver + chromium),
# the whole job on the whole sample against scikit-learn, and the Python
# bindings and Spark job on a local standalone cluster.
#
# Build outputs and virtualenvs live in a cache outside the clone
# (FRUITS_CACHE, default ~/.cache/fruits): a clean clone on a machine that has
# run this before rebuilds only what changed. Delete the folder to start cold.
# Tests read the shared models and sample from ../shared (override with
# FRUITS_MODELS_DIR and FRUITS_SAMPLE_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${FRUITS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fruits}
mkdir -p "$cache"
# The cache's target directory belongs to this script alone: a clean clone's
# files get back the times they had at the last build where their content is
# unchanged (scripts/keep-mtimes.py), so cargo rebuilds only what changed
# instead of the whole workspace. A target directory of your own is left alone.
if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
  export CARGO_TARGET_DIR=$cache/target
  python3 scripts/keep-mtimes.py "$cache/source-times.json"
fi
# mold links the dozen test binaries (each the whole dependency graph, with
# line tables) several times faster than GNU ld; .ci/run installs it (Debian's
# package). Without it, the default linker is used.
if command -v mold >/dev/null; then
  export RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-fuse-ld=mold"
fi
# Tests skip, saying why, when Garage, chromium or ../shared are missing
# (`cargo test` in a bare checkout); here every test must run, so a missing
# need fails the test instead.
export FRUITS_REQUIRE_ALL=1
started=$SECONDS
step() { printf '== %s (at %d s)\n' "$1" $((SECONDS - started)); }
# "passed failed" from pytest's last line ("5 passed in 3.1s", "1 failed, 4
# passed, 1 error in ..."); a failing exit status counts as one failure at least.
# A skipped test counts as failed: here every test must run (each skip prints
# its reason, pytest -rs).
pytest_counts() {
  tail -n 5 "$1" | awk -v rc="$2" '
    { for (i = 2; i <= NF; i++) { w = $i; gsub(/[,=]/, "", w)
        if (w == "passed") p = $(i-1)
        if (w == "failed" || w == "error" || w == "errors" || w == "skipped") f += $(i-1) } }
    END { if (rc != 0 && f == 0) f = 1; print p + 0, f + 0 }'
}

tmp=$(mktemp -d)
log=$tmp/cargo-test.log
# Background jobs (and what they started: cargo, pip, apt) are stopped if the
# script ends early, when a lint or a test failed.
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
trap 'for job in $(jobs -p); do kill_tree "$job"; done; rm -rf "$tmp"' EXIT
# Prints the output of the background job $1 (pid $2, output $3) once it is
# done, and fails when it did.
await() {
  local rc=0
  wait "$2" || rc=$?
  if [[ $rc -ne 0 ]]; then
    cat "$3"
    echo "$1 failed (exit status $rc)" >&2
    return "$rc"
  fi
}

# Work that mostly waits on the network and the disk (the test virtualenv's
# pinned wheels, podman and its base image) and the Garage build (only its
# source is on crates.io) run in the background, at a lower priority, while
# cargo builds the workspace: they fill the cores cargo leaves idle and are
# awaited where their results are first needed. Measured in the README (CI times).
step "tools (ONNX Runtime; Garage, the virtualenv and podman in the background)"
scripts/setup-onnxruntime.sh
nice -n 10 scripts/install-garage.sh >"$tmp/garage.log" 2>&1 &
garage_pid=$!
# Independent reference checks, the Python bindings and the cloud rehearsals
# (pinned in tests/reference/requirements.txt and tests/cloud/requirements.txt), in
# one virtualenv kept in the cache and rebuilt when the pins change.
venv=$cache/py-venv
# make_venv DIR STAMP REQUIREMENTS...: a virtualenv in DIR holding the pins of the
# requirements files, made again when they change (their text is kept in DIR/STAMP).
make_venv() {
  local dir=$1 stamp=$2 pins req
  shift 2
  pins=$(cat "$@")
  if [[ ! -x "$dir/bin/python" ]] || [[ "$pins" != "$(cat "$dir/$stamp" 2>/dev/null)" ]]; then
    rm -rf "$dir"
    python3 -m venv "$dir"
    for req in "$@"; do set -- "$@" -r "$req"; shift; done
    "$dir/bin/pip" install --quiet "$@"
    printf '%s\n' "$pins" >"$dir/$stamp"
  fi
}
(renice -n 10 "$BASHPID" >/dev/null || true
 make_venv "$venv" requirements.txt tests/reference/requirements.txt tests/cloud/requirements.txt) \
  >"$tmp/venv.log" 2>&1 &
venv_pid=$!
nice -n 10 scripts/setup-containers.sh >"$tmp/containers.env" 2>"$tmp/containers.log" &
containers_pid=$!
# The AWS stack's CDK app and checkov (tests/cloud/test_stack.py), in a virtualenv of
# their own: checkov pins a boto3 older than the one the moto server needs.
# (Its stamp is not requirements.txt: deploy/stack/python.sh keeps that one.)
stack_venv=$cache/stack-venv
(renice -n 10 "$BASHPID" >/dev/null || true
 make_venv "$stack_venv" pins.txt deploy/stack/requirements.txt tests/cloud/stack-requirements.txt) \
  >"$tmp/stack-venv.log" 2>&1 &
stack_venv_pid=$!

# Clippy lints the workspace's crates while they are built for the tests
# (clippy-driver as cargo's workspace wrapper, with `cargo clippy`'s arguments):
# the same lints as `cargo clippy --workspace --all-targets -- -D warnings`
# (there are no bench or example targets), without a second compile of every
# dependency in check mode (3 min 22 s cold). Every cargo command below runs
# with the same wrapper, so nothing is built twice.
step "fmt"
cargo fmt --all -- --check
# A crate whose unit tests are switched off (`test = false`) must hold none:
# tests that are never compiled pass silently.
for manifest in crates/*/Cargo.toml; do
  crate=$(dirname "$manifest")
  if grep -q '^test = false' "$manifest" && grep -rlq '#\[cfg(test)\]' "$crate/src"; then
    echo "$crate sets test = false but holds #[cfg(test)] modules: they would never run" >&2
    exit 1
  fi
done
# The online path (the service and what it links) reads no Parquet or Arrow:
# a bundle's PCA is a NumPy file and the feature contract sits below storage.
step "the service's dependency tree (no Parquet, no Arrow)"
if cargo tree -p fruits-serve -e normal --prefix none --locked | grep -E '^(parquet|arrow)'; then
  echo "fruits-serve links the crates above: the online path must not depend on Parquet or Arrow" >&2
  exit 1
fi
RUSTC_WORKSPACE_WRAPPER=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
if [[ ! -x $RUSTC_WORKSPACE_WRAPPER ]]; then
  echo "clippy-driver not found: rustup component add clippy" >&2
  exit 1
fi
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# Also builds the Python extension (fruits-py's cdylib, which no Rust test links)
# with the very dependency builds the tests use: a build of fruits-py alone
# (`maturin develop`) resolves fewer features and compiled ~90 crates again (12 min).
step "build + clippy"
cargo build --workspace --lib --tests --profile test --locked
# The wheel users install (docs/python.md), built as they build it; python/tests
# installs it into a fresh virtualenv. Release profile: compiled once, then
# only what changed.
step "the wheel (scripts/build-wheel.sh)"
FRUITS_WHEEL=$(scripts/build-wheel.sh)
export FRUITS_WHEEL
step "setup made in the background (Garage, the virtualenv, podman)"
await "scripts/install-garage.sh" "$garage_pid" "$tmp/garage.log"
await "the virtualenv" "$venv_pid" "$tmp/venv.log"
await scripts/setup-containers.sh "$containers_pid" "$tmp/containers.log"
await "the stack's virtualenv" "$stack_venv_pid" "$tmp/stack-venv.log"
# shellcheck disable=SC1091
source "$tmp/containers.env"

# The binary the build above made for the end-to-end tests (test profile:
# dependencies at opt-level 3), not a new build: the run is bound by ONNX
# Runtime and the decoders (measured 88 vs 86 images/s for release), and any
# other build (release, or `cargo build` without dev-dependencies' features) is
# another long compile.
fruits=$CARGO_TARGET_DIR/debug/fruits
sample=${FRUITS_SAMPLE_DIR:-../shared/data/fruits-360-sample}
run=$CARGO_TARGET_DIR/test-run
# Runs $2... and prints its wall and CPU time labelled $1 (on stderr): the side-by-side
# phase below shares 2 cores, and CPU time tells which part holds them, which waits.
timed() {
  /usr/bin/time -f "$1: %e s wall, %U s user, %S s system" "${@:2}"
}
# The whole job on the whole sample, checked against NumPy and scikit-learn:
# `fruits run`, then train on Training with the default settings, evaluate on
# Test, and check the accuracy targets and scikit-learn's logistic regression
# on the same rows. Prints each check and an "N passed, N failed" line per script.
whole_sample() {
  rm -rf "$run"
  echo "== the whole sample: fruits run (at $((SECONDS - started)) s)"
  timed "fruits run" "$fruits" run "$sample" --out "$run" --quiet &&
    "$venv/bin/python" tests/reference/pca_vs_sklearn.py "$run" &&
    echo "== the whole sample: train + evaluate (at $((SECONDS - started)) s)" &&
    "$fruits" train "$run/features" --split Training --out "$run/classifier" &&
    "$fruits" evaluate "$run/classifier" --on "$run/features" --split Test --json >"$run/evaluation-Test.json" &&
    "$venv/bin/python" -c 'import json, sys; r = json.load(open(sys.argv[1])); print("Test accuracy {:.4f}, macro-F1 {:.4f}".format(r["accuracy"], r["macro_f1"]))' \
      "$run/evaluation-Test.json" &&
    "$venv/bin/python" tests/reference/classifier_vs_sklearn.py "$run" "$run/classifier" "$run/evaluation-Test.json" &&
    echo "== the whole sample: done (at $((SECONDS - started)) s)"
}

# The Python bindings and the Spark job (python/): the extension built above goes
# next to the package as fruits/_native.abi3.so and the venv finds python/ through
# a .pth file, as `maturin develop` installs it (editable); then pytest runs the
# bindings against `fruits run` and the job on a Spark standalone cluster it starts
# on 127.0.0.1 (master + 2 workers, separate JVMs from pyspark's spark-class; Java 17).
# Runs pytest on one folder with the binary, the sample and the venv's tools
# (the AWS CLI) at hand, its output into the file $2; returns pytest's status.
# Each run's slowest tests are printed, so the side-by-side phase below can be read.
pytest_args=(-q -p no:cacheprovider --durations=8 -rs)
run_pytest() {
  FRUITS_STACK_PYTHON="$stack_venv/bin/python" FRUITS_BIN="$fruits" FRUITS_SAMPLE_DIR="$(cd "$sample" && pwd)" PATH="$venv/bin:$PATH" \
    timed "pytest $1" "$venv/bin/pytest" "${pytest_args[@]}" "$1" >"$2" 2>&1
}
# Waits for the pytest run on folder $1 (pid $2, output $3), prints its output
# and adds its counts to the totals.
finish_pytest() {
  local rc=0 passed failed
  wait "$2" || rc=$?
  cat "$3"
  read -r passed failed < <(pytest_counts "$3" "$rc")
  echo "$1: $passed passed, $failed failed"
  py_passed=$((py_passed + passed))
  py_failed=$((py_failed + failed))
}
cp "$CARGO_TARGET_DIR/debug/libfruits_native.so" python/fruits/_native.abi3.so
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$PWD/python" >"$site/fruits.pth"

# The cloud, rehearsed (tests/cloud): the EMR kit's scripts against moto, the
# pipeline's IAM policy enforced by moto on a real `fruits run`, the policies
# linted by parliament, the SageMaker container built and run with podman, and
# its deploy script against moto with a real local registry. podman, runc and
# the base image come from scripts/setup-containers.sh (Debian's packages).
# cargo test, python/tests, the cloud rehearsals and the whole sample run side
# by side: the pytest runs mostly wait (JVM start-ups, moto, podman, the
# registry), which the whole sample's inference and cargo's tests fill; the
# outputs of the three in the background are printed when they are done.
# Measured in the README (CI times).
py_passed=0
py_failed=0
step "cargo test, with python/tests, tests/cloud and the whole sample beside it"
py_log=$tmp/python.log
sample_log=$tmp/sample.log
cloud_log=$tmp/cloud.log
run_pytest python/tests "$py_log" &
py_pid=$!
run_pytest tests/cloud "$cloud_log" &
cloud_pid=$!
whole_sample >"$sample_log" 2>&1 &
sample_pid=$!
cargo_rc=0
cargo test --workspace --locked 2>&1 | tee "$log" || cargo_rc=$?
# One closing line for the whole workspace: cargo prints one per test binary;
# a cargo that failed before its tests (a build error) counts as one failure.
read -r rust_passed rust_failed < <(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$log")
if [[ $cargo_rc -ne 0 && $rust_failed -eq 0 ]]; then rust_failed=1; fi
echo "cargo: $rust_passed passed, $rust_failed failed"

step "python/tests (ran beside cargo test)"
finish_pytest python/tests "$py_pid" "$py_log"

step "tests/cloud (ran beside cargo test)"
finish_pytest tests/cloud "$cloud_pid" "$cloud_log"

step "the whole sample (ran beside cargo test)"
sample_rc=0
wait "$sample_pid" || sample_rc=$?
cat "$sample_log"
read -r passed failed < <(awk '/passed, .* failed$/ { p += $(NF-3); f += $(NF-1) } END { print p + 0, f + 0 }' "$sample_log")
# A command that failed before its checks counts as one failure at least.
if [[ $sample_rc -ne 0 && $failed -eq 0 ]]; then failed=1; fi
echo "the whole sample: $passed passed, $failed failed"
py_passed=$((py_passed + passed))
py_failed=$((py_failed + failed))

# One closing line for everything above (each runner prints its own too).
step "done"
echo "total: $((rust_passed + py_passed)) passed, $((rust_failed + py_failed)) failed"
[[ $((rust_failed + py_failed)) -eq 0 ]]
