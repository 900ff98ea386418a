"""Checks `fruits pca` against scikit-learn on the same features.

usage: pca_vs_sklearn.py RUN_DIR   (the --out of `fruits run`: features/, pca/, reduced/)

Reads the features through the manifest with pyarrow, fits
sklearn.decomposition.PCA (full SVD, float64) with the same k, and compares:
explained-variance ratios within 1e-5 relative, components up to sign within
1e-5 relative (norm of the difference), the reduced output (int8 codes times
each component's step, as its manifest records them) within half a step of
scikit-learn's transform, its rounding noise under 0.1% of the variance. Also
checks the k chosen for the variance target against NumPy's cumulative sum.
Prints one line per check and a closing 'N passed, N failed' line.
"""

import json
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.decomposition import PCA


def read_output(folder, column):
    """(paths, vectors) of an output, read with pyarrow alone. A reduced
    output's `pca` holds int8 codes: value = code x step, the steps of its
    components in the manifest's meta (`pca_steps`)."""
    manifest = json.load(open(os.path.join(folder, "_manifest.json")))
    table = pa.concat_tables(pq.read_table(os.path.join(folder, p["file"])) for p in manifest["parts"])
    table = table.sort_by("path")
    flat = table.column(column).combine_chunks().flatten().to_numpy()
    dim = table.schema.field(column).type.list_size
    values = flat.reshape(-1, dim)
    steps = manifest["meta"].get("pca_steps")
    if column == "pca" and steps is not None:
        values = values * np.array(steps, dtype=np.float32)
    return table.column("path").to_pylist(), values


def main():
    run = sys.argv[1]
    results = []

    def check(name, ok, detail):
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")

    paths, X = read_output(os.path.join(run, "features"), "features")
    X = X.astype(np.float64)
    meta = json.load(open(os.path.join(run, "pca", "pca.json")))
    comps = np.stack(pq.read_table(os.path.join(run, "pca", "components.parquet"))["loadings"].to_numpy(zero_copy_only=False))
    k, n, d = meta["k"], X.shape[0], X.shape[1]
    check("shape", (meta["n"], meta["d"]) == (n, d), f"n={n} d={d} k={k}")

    sk = PCA(n_components=k, svd_solver="full").fit(X)
    ours_ratio = np.array(meta["explained_variance_ratio"][:k])
    rel = np.abs(ours_ratio - sk.explained_variance_ratio_) / sk.explained_variance_ratio_
    check("explained variance ratio", rel.max() < 1e-5, f"max relative difference {rel.max():.2e} over {k} components")
    ev_rel = np.abs(np.array(meta["explained_variance"][:k]) - sk.explained_variance_) / sk.explained_variance_
    check("explained variance (n-1)", ev_rel.max() < 1e-5, f"max relative difference {ev_rel.max():.2e}")

    # k: smallest with cumulative ratio >= target, from NumPy's own full spectrum.
    full = PCA(svd_solver="full").fit(X)
    if "Variance" in meta["keep"]:
        target = meta["keep"]["Variance"]
        want_k = int(np.argmax(np.cumsum(full.explained_variance_ratio_) >= target - 1e-12) + 1)
        check("k for the variance target", want_k == k, f"target {target}: fruits k={k}, numpy k={want_k}")

    signs = np.sign(np.sum(comps * sk.components_, axis=1))
    aligned = sk.components_ * signs[:, None]
    comp_rel = np.linalg.norm(comps - aligned, axis=1)  # unit vectors: norm of difference is relative
    gaps = np.abs(np.diff(sk.explained_variance_)) / sk.explained_variance_[:-1]
    check("components up to sign", comp_rel.max() < 1e-5,
          f"max relative difference {comp_rel.max():.2e} (component {comp_rel.argmax() + 1}; "
          f"smallest relative eigen-gap among kept {gaps.min():.1e})")
    check("mean", np.abs(np.array(meta["mean"]) - sk.mean_).max() < 1e-9, "column means")

    rpaths, Z = read_output(os.path.join(run, "reduced"), "pca")
    check("reduced rows", rpaths == paths, f"{len(rpaths)} rows, same paths")
    Zsk = sk.transform(X) * signs[None, :]
    steps = json.load(open(os.path.join(run, "reduced", "_manifest.json")))["meta"].get("pca_steps")
    if steps is None:
        diff = np.abs(Z - Zsk).max()
        check("transform", diff < 1e-4, f"max absolute difference {diff:.2e} (values up to {np.abs(Zsk).max():.1f})")
    else:
        steps = np.array(steps)
        # Codes span +-127 steps (5 standard deviations or more): a value
        # beyond is clipped, and counted here.
        inside = np.abs(Zsk) <= 127 * steps
        over = (np.abs(Z - Zsk) - steps / 2)[inside].max()
        check("transform (int8 codes)", over < 1e-4,
              f"within half a step of scikit-learn's (worst {over:+.1e} beyond); "
              f"{(~inside).mean():.5%} of values beyond the codes' range")
        noise = ((Z - Zsk) ** 2).sum(1).mean() / full.explained_variance_.sum()
        check("rounding noise", noise < 0.0011,
              f"{noise:.4%} of the total variance (the PCA at k={k} keeps "
              f"{np.cumsum(full.explained_variance_ratio_)[k - 1]:.2%})")

    print(f"pca-vs-sklearn: {sum(results)} passed, {len(results) - sum(results)} failed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
