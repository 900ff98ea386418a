#!/usr/bin/env python3
"""Gives a clean clone's files the modification times they had at the last
build, where their content is the same, so cargo's cached build stays fresh.

usage: scripts/keep-mtimes.py RECORD

A clean clone writes every file anew, and cargo decides freshness by comparing
source file times with its outputs', so the cached target directory rebuilt the
whole workspace on every clone (5 min of a 13 min warm CI run). This script
keeps RECORD (in the build cache): for each file of the tree (tracked or not
ignored), the SHA-1 of its content and its time when last handed to the build.
A file whose content matches its record gets that time back; any other file
keeps its new time, so cargo rebuilds exactly what changed.

The record is rewritten *before* the build, from the tree as it is now, so it
always describes the last content given to this target directory, even if that
build failed half-way. It is only sound when nothing else builds into the same
target directory: scripts/test.sh calls it only for its own cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys


def tree_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p and os.path.isfile(p)]


def digest(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    record_path = sys.argv[1]
    try:
        with open(record_path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        record = {}
    restored = 0
    new_record = {}
    for path in tree_files():
        sha = digest(path)
        old = record.get(path)
        if old and old[0] == sha:
            os.utime(path, ns=(old[1], old[1]))
            restored += 1
        new_record[path] = [sha, os.stat(path).st_mtime_ns]
    tmp = record_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(new_record, f)
    os.replace(tmp, record_path)
    print(f"file times: {restored} of {len(new_record)} files as at the last build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
