#!/usr/bin/env bash
# Uploads what the cluster reads, with SSE-S3 (AES256), in eu-west-3, to the names
# render.sh wrote (target/emr/names.json by default):
#
#   deploy/emr/upload.sh --photos ../shared/data/fruits-360            # artifacts + photos
#   deploy/emr/upload.sh                                               # artifacts only
#   deploy/emr/upload.sh --dir DIR --wheel FILE --model FILE --photos DIR
#
# s3://ARTIFACT_BUCKET/fruits/  <- the wheel (--wheel, default: the WHEEL given to
#                                  render.sh; its name must be the rendered one),
#                                  deploy/emr/bootstrap.sh, python/fruits/spark/job.py,
#                                  mobilenetv2-12-int8.onnx (--model, default
#                                  $FRUITS_MODELS_DIR or ../shared/models next to the
#                                  repository), and with WHEELHOUSE=1 wheelhouse-ARCH/
#                                  (--wheelhouse, default target/wheels/wheelhouse-ARCH/)
# s3://INPUT_BUCKET/INPUT_PREFIX/  <- `aws s3 sync` of --photos DIR ({Training,Test}/<class>/*.jpg);
#                                  sync uploads only new or changed files.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

dir="$root/target/emr"
photos=""
wheel=""
model="${FRUITS_MODELS_DIR:-$root/../shared/models}/mobilenetv2-12-int8.onnx"
wheelhouse=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) dir="${2:?--dir needs a folder}"; shift 2 ;;
    --photos) photos="${2:?--photos needs a folder}"; shift 2 ;;
    --wheel) wheel="${2:?--wheel needs a file}"; shift 2 ;;
    --model) model="${2:?--model needs a file}"; shift 2 ;;
    --wheelhouse) wheelhouse="${2:?--wheelhouse needs a folder}"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "upload.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
load_names "$dir"
wheel="${wheel:-$WHEEL}"
wheelhouse="${wheelhouse:-$root/target/wheels/wheelhouse-$ARCH}"
artifacts="s3://$ARTIFACT_BUCKET/fruits"

[[ -f "$wheel" ]] || die "no wheel at '$wheel': build it with deploy/emr/build-wheel.sh, or pass --wheel"
[[ "$(basename "$wheel")" == "$WHEEL_NAME" ]] \
  || die "the wheel is $(basename "$wheel") but cluster.json installs $WHEEL_NAME: render again with WHEEL=$wheel"
[[ -f "$model" ]] || die "no model at '$model': pass --model PATH/mobilenetv2-12-int8.onnx"
[[ -z "$photos" || -d "$photos" ]] || die "--photos $photos is not a folder"
if [[ -n "$photos" && ! -d "$photos/Training" && ! -d "$photos/Test" ]]; then
  log "warning: $photos has neither Training/ nor Test/; the job reads INPUT_PREFIX/{Training,Test}/<class>/*.jpg"
fi
# shellcheck disable=SC2153  # WHEELHOUSE comes from load_names
if [[ "$WHEELHOUSE" == 1 && ! -d "$wheelhouse" ]]; then
  die "rendered with WHEELHOUSE=1 but there is no $wheelhouse: run deploy/emr/build-wheel.sh --wheelhouse"
fi

srcs=("$wheel" "$here/bootstrap.sh" "$root/python/fruits/spark/job.py" "$model")
dests=("$artifacts/$WHEEL_NAME" "$artifacts/bootstrap.sh" "$artifacts/job.py" "$artifacts/mobilenetv2-12-int8.onnx")
put() {
  awsr s3 cp --sse AES256 --only-show-errors "${srcs[$1]}" "${dests[$1]}"
  log "${dests[$1]} <- ${srcs[$1]}"
}
sync_wheelhouse() {
  awsr s3 sync --sse AES256 --only-show-errors "$wheelhouse/" "$artifacts/wheelhouse-$ARCH/"
  log "$artifacts/wheelhouse-$ARCH/ <- $wheelhouse/"
}
sync_photos() {
  awsr s3 sync --sse AES256 --no-progress "$photos/" "s3://$INPUT_BUCKET/$INPUT_PREFIX/"
  log "s3://$INPUT_BUCKET/$INPUT_PREFIX/ <- $photos/"
}
task() { "${1%%:*}" "${1#*:}"; }
tasks=("put:0" "put:1" "put:2" "put:3")
[[ "$WHEELHOUSE" != 1 ]] || tasks+=("sync_wheelhouse:")
if [[ -n "$photos" ]]; then
  tasks+=("sync_photos:")
else
  log "no --photos: expecting the photos already in s3://$INPUT_BUCKET/$INPUT_PREFIX/"
fi
run_all task "${tasks[@]}"   # (not after `||` or in an `if`: that would switch set -e off in the tasks)
log "done. Next: deploy/emr/create-cluster.sh $dir/cluster.json $dir/step.json"
