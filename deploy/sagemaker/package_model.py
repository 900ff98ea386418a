#!/usr/bin/env python3
"""Packs a classifier bundle and the image model it needs into model.tar.gz,
the archive SageMaker extracts into /opt/ml/model:

    model.tar.gz
      classifier.json          the classifier (`fruits train --out`)
      pca-<fingerprint>/...    its PCA, when it has one (the folder classifier.json
                               names; `pca/` in bundles of fruits 0.1), and the
      studio-pca-<fingerprint>/ studio head's own PCA, when it has one
      mobilenetv2-12-int8.onnx the image model whose sha256 classifier.json records

    deploy/sagemaker/package_model.py CLASSIFIER_DIR model.tar.gz [--models-dir DIR]

The image model is found by sha256, as the service finds it: the file the
classifier was trained with if it still exists (bundles record it by absolute
path), else any .onnx file in --models-dir (default ../shared/models beside the
checkout; `fruits models list` shows where the fruits binary finds them).
Evaluation
reports beside the bundle are left out. Exits 1 with a message when the bundle
is incomplete or no model file has the right hash.
"""

import argparse
import hashlib
import json
import os
import sys
import tarfile


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_model(recorded, wanted, models_dir):
    candidates = [recorded]
    if os.path.isdir(models_dir):
        candidates += sorted(
            os.path.join(models_dir, n) for n in os.listdir(models_dir) if n.lower().endswith(".onnx")
        )
    tried = []
    for path in candidates:
        if path in tried:
            continue
        tried.append(path)
        if os.path.isfile(path) and sha256(path) == wanted:
            return path
    sys.exit(f"package_model.py: no image model with sha256 {wanted} (tried {', '.join(tried)}); "
             "pass its folder with --models-dir")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    # FRUITS_MODELS_DIR is read by the fruits core alone: pass its value with
    # --models-dir when the model is elsewhere.
    default_models = os.path.join(here, "..", "..", "..", "shared", "models")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("classifier", help="a classifier folder written by `fruits train`")
    parser.add_argument("out", help="the model.tar.gz to write")
    parser.add_argument("--models-dir", default=default_models, help="where to look for the image model")
    args = parser.parse_args()

    spec_path = os.path.join(args.classifier, "classifier.json")
    if not os.path.isfile(spec_path):
        sys.exit(f"package_model.py: {spec_path} does not exist: is {args.classifier} a classifier folder?")
    with open(spec_path) as f:
        spec = json.load(f)
    features = spec["features"]
    model = find_model(features["model_source"], features["model_sha256"], args.models_dir)
    members = [(spec_path, "classifier.json")]
    # The main head's PCA and the studio head's own, when they have one; each
    # folder's pca.json names its components file (Parquet in format-1
    # bundles, NumPy since).
    steps = [spec.get("pca"), (spec.get("studio") or {}).get("pca")]
    for step in filter(None, steps):
        folder = step.get("dir", "pca")
        meta = os.path.join(args.classifier, folder, "pca.json")
        if not os.path.isfile(meta):
            sys.exit(f"package_model.py: {meta} is missing: the bundle is incomplete")
        with open(meta) as f:
            components = json.load(f).get("components_file", "components.parquet")
        for name in ("pca.json", components):
            path = os.path.join(args.classifier, folder, name)
            if not os.path.isfile(path):
                sys.exit(f"package_model.py: {path} is missing: the bundle is incomplete")
            members.append((path, f"{folder}/{name}"))
    members.append((model, os.path.basename(model)))
    tmp = args.out + ".tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for path, name in members:
            info = tar.gettarinfo(path, arcname=name)
            # Readable by the container's unprivileged user, whatever the umask was.
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: " + ", ".join(name for _, name in members))


if __name__ == "__main__":
    main()
