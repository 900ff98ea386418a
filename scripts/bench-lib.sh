# Shared by the benchmark scripts (bench-serve.sh, bench-sagemaker.sh, bench-spark.sh,
# bench-scale.sh); sourced.

# copy_test_photos N DEST: the first N Test photos of the sample, in sorted path
# order, copied under DEST with their Test/<class>/ folders.
copy_test_photos() {
  local n=$1 dest=$2 sample=${FRUITS_SAMPLE_DIR:-../shared/data/fruits-360-sample} f rel
  find "$sample/Test" -type f -iname '*.jpg' | LC_ALL=C sort | sed -n "1,${n}p" | while read -r f; do
    rel=${f#"$sample"/}
    mkdir -p "$dest/$(dirname "$rel")"
    cp "$f" "$dest/$rel"
  done
}

# post_lua PHOTO: a wrk script that POSTs PHOTO as image/jpeg, on stdout.
post_lua() {
  cat <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
local f = assert(io.open("$1", "rb"))
wrk.body = f:read("*a")
f:close()
LUA
}

# wrk_summary FILE: "requests/s p50-ms p99-ms non-2xx" of a `wrk --latency` report.
wrk_summary() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    if m is None:
        sys.exit(f"cannot read a latency from {v!r} in {sys.argv[1]}:\n{text}")
    x = float(m.group(1))
    return {"us": x / 1000, "ms": x, "s": x * 1000, "m": x * 60000}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
# Anchored: the thread stats' "+/- Stdev" column (e.g. 75.50%) also ends in "50%".
p50 = ms(re.search(r"^\s*50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s*99%\s+(\S+)", text, re.M).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
print(f"{rps:.1f} {p50:.1f} {p99:.1f} {int(bad.group(1)) if bad else 0}")
PY
}

# install_release_wheel VENV: builds the fruits wheel in release (the Rust core
# optimised like the binary it is compared with) and installs it into VENV.
install_release_wheel() {
  rm -rf target/wheels/bench
  (cd python && "../$1/bin/maturin" build --release --locked --quiet -o ../target/wheels/bench)
  "$1/bin/pip" install --quiet --force-reinstall --no-deps target/wheels/bench/fruits-*.whl
}
