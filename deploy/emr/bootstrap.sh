#!/usr/bin/env bash
# EMR bootstrap action: installs the fruits wheel (and what the PySpark job needs) into
# the Python that Spark runs, on every node, before YARN starts.
#
#   bootstrap.sh s3://ARTIFACT_BUCKET/fruits/fruits-0.1.0-cp311-abi3-manylinux_2_28_x86_64.whl
#   bootstrap.sh WHEEL_URL --wheelhouse s3://ARTIFACT_BUCKET/fruits/wheelhouse-x86_64/
#   bootstrap.sh WHEEL_URL --python /usr/bin/python3.11 --region eu-west-3
#
# Python: /usr/bin/python3.11 by default. EMR 7's /usr/bin/python3 is 3.9, and the
# onnxruntime release the wheel pins (1.31.1) publishes wheels for CPython >= 3.11
# only; EMR 7.1 and later ship Python 3.11 beside 3.9 (cluster.json points Spark at it).
# Packages come from the wheelhouse, an S3 prefix (pip --no-index, the versions pinned in
# its node-requirements.txt: the default, see render.sh), or without --wheelhouse from
# PyPI (needs a route to the internet; versions as PyPI has them that day).
# Idempotent: a node that already has this exact wheel (same sha256) and imports it is
# left as it is. Everything it does is logged to stdout/stderr, which EMR copies to
# s3://LOG_BUCKET/emr-logs/<cluster-id>/node/<instance-id>/bootstrap-actions/<n>/.
set -euo pipefail

# pyspark 3.5's mapInArrow goes through pandas_udf, which requires pandas >= 1.0.5 on
# the driver even though the job never uses pandas; its version check imports
# distutils, which setuptools provides where the standard library does not.
# Keep in step with the wheelhouse list in build-wheel.sh.
EXTRA_REQUIREMENTS=("pandas>=1.0.5,<3" "setuptools")

log() { printf '%s fruits-bootstrap: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() { printf '%s fruits-bootstrap: ERROR: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; exit 1; }
# shellcheck disable=SC2154  # rc is assigned inside the trap
trap 'rc=$?; [[ $rc -eq 0 ]] || printf "%s fruits-bootstrap: ERROR: line %s exited %s: %s\n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$LINENO" "$rc" "$BASH_COMMAND" >&2' ERR

usage() { sed -n '2,8p' "$0" >&2; exit 2; }

wheel_url=""
wheelhouse_url=""
python="/usr/bin/python3.11"
region="${AWS_REGION:-eu-west-3}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheelhouse) wheelhouse_url="${2:-}"; shift 2 ;;
    --python) python="${2:-}"; shift 2 ;;
    --region) region="${2:-}"; shift 2 ;;
    -h|--help) usage ;;
    s3://*) [[ -z "$wheel_url" ]] || die "two wheel URLs given: '$wheel_url' and '$1'"; wheel_url="$1"; shift ;;
    *) die "unexpected argument '$1': expected the s3:// URL of the fruits wheel" ;;
  esac
done
[[ -n "$wheel_url" ]] || die "no wheel: pass the s3:// URL of fruits-*.whl as the bootstrap action's argument"
[[ "$wheel_url" == *.whl ]] || die "'$wheel_url' does not name a .whl file"
[[ -z "$wheelhouse_url" || "$wheelhouse_url" == s3://* ]] || die "--wheelhouse must be an s3:// prefix, not '$wheelhouse_url'"
wheel_name="${wheel_url##*/}"

machine="$(uname -m)"
case "$wheel_name" in
  *_"$machine".whl) ;;
  *) die "$wheel_name is not built for this node's architecture ($machine): build it with deploy/emr/build-wheel.sh --arch $machine, or pick instance types that match" ;;
esac

log "node $(hostname), $machine, $(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown OS}")"
log "wheel $wheel_url; python $python; region $region${wheelhouse_url:+; wheelhouse $wheelhouse_url}"

command -v aws >/dev/null || die "the aws CLI is not on PATH (it is on EMR nodes): cannot copy from S3"
[[ -x "$python" ]] || die "$python not found: EMR releases 7.1 and later ship Python 3.11; on another release pass --python with an interpreter >= 3.11"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "$python is $("$python" -V 2>&1): onnxruntime 1.31.1 (pinned by the wheel) needs CPython >= 3.11"

work="$(mktemp -d /tmp/fruits-bootstrap.XXXXXX)"
trap 'rm -rf "$work"' EXIT

log "aws s3 cp $wheel_url"
aws s3 cp --only-show-errors --region "$region" "$wheel_url" "$work/$wheel_name" \
  || die "cannot copy $wheel_url: check the URL, that the bucket is in $region, and that the instance profile may s3:GetObject it (deploy/emr/artifacts-policy.json)"
sha="$(sha256sum "$work/$wheel_name" | cut -d' ' -f1)"
log "sha256 $sha"

state_dir=/var/lib/fruits-bootstrap
if [[ "$(sudo cat "$state_dir/installed.sha256" 2>/dev/null || true)" == "$sha $python" ]] \
   && "$python" -c 'import fruits, onnxruntime, pyarrow, pandas' 2>/dev/null; then
  log "this wheel is already installed for $python and imports: nothing to do"
  exit 0
fi

if ! "$python" -m pip --version >/dev/null 2>&1; then
  log "no pip for $python: installing $(basename "$python")-pip"
  sudo dnf install -y -q "$(basename "$python")-pip" \
    || sudo "$python" -m ensurepip --default-pip \
    || die "cannot get pip for $python (dnf install $(basename "$python")-pip and ensurepip both failed)"
fi

# System Python on a throwaway node; the variable is ignored by pips without PEP 668.
pip=(sudo env PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
     "$python" -m pip install --no-cache-dir --progress-bar off)
if [[ -n "$wheelhouse_url" ]]; then
  log "aws s3 cp --recursive $wheelhouse_url"
  aws s3 cp --only-show-errors --recursive --region "$region" "${wheelhouse_url%/}/" "$work/wheelhouse/" \
    || die "cannot copy the wheelhouse $wheelhouse_url"
  pip+=(--no-index --find-links "$work/wheelhouse")
fi

requirements=("${EXTRA_REQUIREMENTS[@]}")
if [[ -n "$wheelhouse_url" ]]; then
  # The exact versions build-wheel.sh downloaded: every node installs the same.
  [[ -f "$work/wheelhouse/node-requirements.txt" ]] || die "the wheelhouse $wheelhouse_url has no node-requirements.txt: build it again with build-wheel.sh --wheelhouse"
  requirements=(-r "$work/wheelhouse/node-requirements.txt")
fi
log "pip install $wheel_name ${requirements[*]}"
"${pip[@]}" "$work/$wheel_name" "${requirements[@]}" \
  || die "pip install failed (see above). Without internet access (private subnet, no NAT), build a wheelhouse (build-wheel.sh --wheelhouse) and pass --wheelhouse"
# The same version number may be a new build: put this exact wheel in place.
"${pip[@]}" --force-reinstall --no-deps "$work/$wheel_name"

# The driver draws the PCA plots with DejaVu Sans (fruits-report); without it the job
# still writes every result and only warns.
if [[ ! -f /usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf ]]; then
  log "dnf install dejavu-sans-fonts (for the PCA plots)"
  sudo dnf install -y -q dejavu-sans-fonts || log "warning: no dejavu-sans-fonts: the job will skip the PCA plots"
fi

log "checking the installation"
"$python" - <<'EOF' || die "the installed fruits package does not import (see the traceback above)"
import fruits, onnxruntime, pyarrow, pandas
print("fruits", fruits.__version__, "| onnxruntime", onnxruntime.__version__,
      "| pyarrow", pyarrow.__version__, "| pandas", pandas.__version__)
print("ONNX Runtime library:", fruits.onnxruntime_library())
EOF

sudo mkdir -p "$state_dir"
echo "$sha $python" | sudo tee "$state_dir/installed.sha256" >/dev/null
log "done"
