#!/usr/bin/env python3
"""Extracts the public real-photo datasets pinned in data/real-photos/ into a
folder outside the checkout, as fruits reads them:

    OUT/<source>/Training/<class>/<file>.jpg
    OUT/<source>/Test/<class>/<file>.jpg

    scripts/real-photos.py [SOURCE ...] [--out DIR] [--git NAME=GIT_DIR ...]

Each source is a GitHub repository at a pinned commit (data/real-photos/
sources.toml); every photo is read from that commit and checked against the
sha256 in the source's list (data/real-photos/<source>.csv) before it is
written. Without --git, the repository is cloned (bare) into
~/.cache/fruits/real-photos/git/ first, which needs network access to GitHub;
--git points at a clone you already have. OUT defaults to
~/.cache/fruits/real-photos (FRUITS_REAL_PHOTOS). Photos already extracted
with the right content are kept, so a rerun only fills what is missing. Exits
1, naming the file, when a photo is missing or differs from its checksum.
Standard library only.
"""

import argparse
import csv
import hashlib
import os
import subprocess
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "real-photos")


def default_out():
    explicit = os.environ.get("FRUITS_REAL_PHOTOS")
    if explicit:
        return explicit
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "fruits", "real-photos")


def git_dir(name, source, given, out):
    """A git directory holding the pinned commit: the one given, or a bare clone in the cache."""
    path = given.get(name) or os.path.join(out, "git", f"{name}.git")
    if not os.path.exists(path):
        if name in given:
            sys.exit(f"real-photos: {path} does not exist")
        print(f"cloning {source['repository']} into {path}", flush=True)
        subprocess.run(["git", "clone", "--bare", "--quiet", source["repository"], path], check=True)
    has = git(path, "cat-file", "-e", f"{source['commit']}^{{commit}}", stderr=subprocess.DEVNULL)
    if has.wait() != 0:
        sys.exit(f"real-photos: {path} does not hold commit {source['commit']} of {source['repository']}")
    return path


def git(path, *args, **kw):
    """`git` on `path`: a bare repository (its objects/ folder at the top) or a work tree."""
    flag = "--git-dir" if os.path.isdir(os.path.join(path, "objects")) else "-C"
    return subprocess.Popen(["git", flag, path, *args], **kw)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def extract(name, source, repo, out):
    with open(os.path.join(DATA, f"{name}.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    root = os.path.join(out, name)
    todo = []
    for row in rows:
        dest = os.path.join(root, row["split"], row["class"], row["file"])
        if not (os.path.exists(dest) and sha256_of(dest) == row["sha256"]):
            todo.append((row, dest))
    cat = git(repo, "cat-file", "--batch", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    bad = []
    for row, dest in todo:
        cat.stdin.write(f"{source['commit']}:{row['path']}\n".encode())
        cat.stdin.flush()
        header = cat.stdout.readline().decode().split()
        if len(header) < 3 or header[1] == "missing":
            bad.append(f"{row['path']}: not in commit {source['commit']}")
            continue
        data = cat.stdout.read(int(header[2]))
        cat.stdout.read(1)
        if hashlib.sha256(data).hexdigest() != row["sha256"]:
            bad.append(f"{row['path']}: sha256 differs from data/real-photos/{name}.csv")
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = dest + ".part"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    cat.stdin.close()
    cat.wait()
    if bad:
        for line in bad[:20]:
            print(f"  {line}", file=sys.stderr)
        sys.exit(f"real-photos: {len(bad)} photos of {name} could not be checked")
    counts = {}
    for row in rows:
        counts[row["split"]] = counts.get(row["split"], 0) + 1
    classes = len({row["class"] for row in rows})
    shown = ", ".join(f"{split} {n}" for split, n in sorted(counts.items()))
    print(f"{name}: {len(rows)} photos ({shown}), {classes} classes, {len(todo)} written -> {root}")


def main():
    with open(os.path.join(DATA, "sources.toml"), "rb") as f:
        sources = tomllib.load(f)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="SOURCE", help=f"sources to extract (default: all: {', '.join(sources)})")
    parser.add_argument("--out", default=default_out(), help="where to extract (default: %(default)s)")
    parser.add_argument("--git", action="append", default=[], metavar="NAME=GIT_DIR",
                        help="a clone (bare or not) of a source's repository, instead of cloning it")
    args = parser.parse_args()
    given = {}
    for item in args.git:
        name, _, path = item.partition("=")
        if name not in sources or not path:
            parser.error(f"--git {item}: expected NAME=GIT_DIR with NAME one of {', '.join(sources)}")
        given[name] = path
    for name in args.names or list(sources):
        if name not in sources:
            parser.error(f"unknown source {name!r}: one of {', '.join(sources)}")
        source = sources[name]
        repo = git_dir(name, source, given, args.out)
        extract(name, source, repo, args.out)


if __name__ == "__main__":
    main()
