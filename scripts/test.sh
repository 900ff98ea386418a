#!/usr/bin/env bash
# The project's test command (README and CI run exactly this): installs the
# ONNX Runtime library and the Garage S3 server if missing, checks formatting
# and lints, runs every test (the S3 tests start Garage on 127.0.0.1 themselves,
# the service tests `fruits serve`, the browser test chromedriver + chromium).
# Tests read the shared models and sample from ../shared (override with
# FRUITS_MODELS_DIR and FRUITS_SAMPLE_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-onnxruntime.sh
scripts/install-garage.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Also builds the Python extension (fruits-py's cdylib, which no Rust test links)
# with the very dependency builds the tests use: a build of fruits-py alone
# (`maturin develop`) resolves fewer features and compiled ~90 crates again (12 min).
cargo build --workspace --lib --tests --profile test --locked
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole workspace: cargo prints one per test binary,
# and the last of those is often a crate's empty doctest run.
read -r rust_passed rust_failed < <(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$log")
echo "cargo: $rust_passed passed, $rust_failed failed"

# Independent reference checks in Python (pinned in tests/python/requirements.txt):
# the whole job on the whole sample, then scikit-learn's PCA on the same features.
venv=target/py-venv
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s tests/python/requirements.txt "$venv/requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r tests/python/requirements.txt
  cp tests/python/requirements.txt "$venv/requirements.txt"
fi
# The binary `cargo test` already built for the end-to-end tests (target/debug/fruits,
# test profile: dependencies at opt-level 3), not a new build: the run is bound by
# ONNX Runtime and the decoders (measured 88 vs 86 images/s for release), and any
# other build (release, or `cargo build` without dev-dependencies' features) is
# another long compile.
sample=${FRUITS_SAMPLE_DIR:-../shared/data/fruits-360-sample}
rm -rf target/test-run
target/debug/fruits run "$sample" --out target/test-run --quiet
"$venv/bin/python" tests/python/pca_vs_sklearn.py target/test-run | tee "$log"
# Identify: train on Training with the default settings, evaluate on Test, and
# check the accuracy target and scikit-learn's logistic regression on the same rows.
target/debug/fruits train target/test-run/features --split Training --out target/test-run/classifier
target/debug/fruits evaluate target/test-run/classifier --on target/test-run/features --split Test
target/debug/fruits evaluate target/test-run/classifier --on target/test-run/features --split Test --json \
  >target/test-run/evaluation-Test.json
"$venv/bin/python" tests/python/classifier_vs_sklearn.py target/test-run target/test-run/classifier \
  target/test-run/evaluation-Test.json | tee -a "$log"
read -r py_passed py_failed < <(awk '/passed, .* failed$/ { p += $(NF-3); f += $(NF-1) } END { print p + 0, f + 0 }' "$log")

# The Python bindings and the Spark job (python/): the extension built above goes
# next to the package as fruits/_native.abi3.so and the venv finds python/ through
# a .pth file, as `maturin develop` installs it (editable); then pytest runs the
# bindings against `fruits run` and the job on a Spark standalone cluster it starts
# on 127.0.0.1 (master + 2 workers, separate JVMs from pyspark's spark-class; Java 17).
cp target/debug/libfruits_native.so python/fruits/_native.abi3.so
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$PWD/python" >"$site/fruits.pth"
pytest_rc=0
FRUITS_BIN="$PWD/target/debug/fruits" FRUITS_SAMPLE_DIR="$(cd "$sample" && pwd)" \
  "$venv/bin/pytest" -q -p no:cacheprovider python/tests 2>&1 | tee "$log" || pytest_rc=$?
# pytest's last line: "5 passed in 3.1s" or "1 failed, 4 passed, 1 error in ...".
read -r pt_passed pt_failed < <(tail -n 5 "$log" | awk '
  { for (i = 2; i <= NF; i++) { w = $i; gsub(/[,=]/, "", w)
      if (w == "passed") p = $(i-1); if (w == "failed" || w == "error" || w == "errors") f += $(i-1) } }
  END { print p + 0, f + 0 }')
if [[ $pytest_rc -ne 0 && $pt_failed -eq 0 ]]; then pt_failed=1; fi
echo "python/tests: $pt_passed passed, $pt_failed failed"
py_passed=$((py_passed + pt_passed))
py_failed=$((py_failed + pt_failed))

# One closing line for everything above (each runner prints its own too).
echo "total: $((rust_passed + py_passed)) passed, $((rust_failed + py_failed)) failed"
[[ $((rust_failed + py_failed)) -eq 0 ]]
