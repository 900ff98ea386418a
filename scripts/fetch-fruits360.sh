#!/usr/bin/env bash
# Extracts the whole public Fruits-360 (release 2024.08: 141 classes, 70,491
# Training + 23,619 Test photos) from a git snapshot of
# github.com/wiktormalyska/FruitRecognition into a folder outside the clone, and
# prints that folder. Photos never enter this repository.
#
# usage: scripts/fetch-fruits360.sh [GIT_DIR]
#   GIT_DIR  a clone or bare mirror of the repository holding the pinned commit;
#            without it the repository is cloned (blobs on demand) into the cache.
#   FRUITS360_DIR  where to extract [${XDG_CACHE_HOME:-~/.cache}/fruits/fruits-360-2024.08]
#
# Pinned three ways: the commit, the git tree ids of Training/ and Test/ (a git
# tree id is a SHA-1 over every file's name and content below it, so a matching
# id means byte-identical photos), and the photo counts, checked again on disk
# after extraction. A finished extraction leaves .extracted (the commit); run
# again, it is reused when that marker and the counts still hold.
set -euo pipefail
COMMIT=9fe608a0196cea347824554be23935191b0686f6
TRAINING_TREE=8304880c663edb2fce6cdd2838c15a3c7f8e93bd
TEST_TREE=b021d796b64c96fbedbec4b02b09ec4037208661
TRAINING_PHOTOS=70491
TEST_PHOTOS=23619
CLASSES=141
REPO=https://github.com/wiktormalyska/FruitRecognition

dest=${FRUITS360_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fruits/fruits-360-2024.08}

counts_ok() {
  local d=$1
  [[ "$(find "$d/Training" -type f -name '*.jpg' | wc -l)" == "$TRAINING_PHOTOS" ]] &&
    [[ "$(find "$d/Test" -type f -name '*.jpg' | wc -l)" == "$TEST_PHOTOS" ]] &&
    [[ "$(find "$d/Training" -mindepth 1 -maxdepth 1 -type d | wc -l)" == "$CLASSES" ]] &&
    [[ "$(find "$d/Test" -mindepth 1 -maxdepth 1 -type d | wc -l)" == "$CLASSES" ]]
}

if [[ -f "$dest/.extracted" && "$(cat "$dest/.extracted")" == "$COMMIT" ]] && counts_ok "$dest"; then
  echo "$dest"
  exit 0
fi

git_dir=${1:-}
if [[ -z "$git_dir" ]]; then
  git_dir=$(dirname "$dest")/FruitRecognition.git
  [[ -d "$git_dir" ]] || git clone --quiet --bare --filter=blob:none "$REPO" "$git_dir" >&2
fi
git_dir=$(cd "$git_dir" && git rev-parse --git-dir | xargs realpath)
g() { git --git-dir="$git_dir" "$@"; }
g cat-file -e "$COMMIT^{commit}" 2>/dev/null || {
  echo "error: $git_dir does not hold commit $COMMIT of $REPO" >&2
  exit 1
}
for pair in "Training:$TRAINING_TREE" "Test:$TEST_TREE"; do
  got=$(g rev-parse "$COMMIT:dataset/fruits-360/${pair%%:*}")
  if [[ "$got" != "${pair#*:}" ]]; then
    echo "error: dataset/fruits-360/${pair%%:*} at $COMMIT is tree $got, expected ${pair#*:}" >&2
    exit 1
  fi
done

tmp="$dest.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
echo "extracting Fruits-360 from $git_dir at ${COMMIT:0:12} into $dest ..." >&2
# git archive writes the blobs as the tree ids above name them.
g archive --format=tar "$COMMIT:dataset/fruits-360" | tar -x -C "$tmp"
counts_ok "$tmp" || {
  echo "error: extracted photo counts differ from $TRAINING_PHOTOS Training / $TEST_PHOTOS Test in $CLASSES classes" >&2
  exit 1
}
echo "$COMMIT" >"$tmp/.extracted"
rm -rf "$dest"
mv "$tmp" "$dest"
echo "$dest"
