"""Which classifier head holds up on photos in the wild? scikit-learn on fruits' features.

The experiment behind the studio head and the service's recipe (docs/guide.md,
"Photos in the wild"): heads trained on the Training originals plus the first N
augmented copies of each, scored on the studio Test photos and on augmented
copies of them, and the studio gate's routing.

    fruits featurize SAMPLE --out R --augment 12
    fruits augment SAMPLE/Test --out AUG/Test --seed 2 && fruits featurize AUG --out A
    python bench/wild/heads.py R A --heads 4:0.95,8:0.99,8:none,12:none --gate 4 [--mlp 8:1024]

A head is COPIES:PCA (PCA = share of the variance kept, or "none"); C = 1 and
L-BFGS to a gradient of 1e-6, as `fruits train` does.
"""
import argparse
import glob
import re
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler


def load(root):
    """Paths, labels, splits, features and colour of a fruits features output."""
    cols = ["path", "label", "split", "features", "colour"]
    t = pa.concat_tables(pq.read_table(p, columns=cols) for p in sorted(glob.glob(f"{root}/part-*.parquet")))
    vectors = lambda name: np.stack(t[name].to_numpy(zero_copy_only=False)).astype(np.float32)
    return (np.array(t["path"].to_pylist()), np.array(t["label"].to_pylist()),
            np.array(t["split"].to_pylist()), vectors("features"), vectors("colour"))


def copy_index(path):
    """k for a copy named ...-augK.jpg, -1 for an original photo."""
    m = re.search(r"-aug(\d+)\.jpg$", path)
    return int(m.group(1)) if m else -1


class Head:
    """(PCA of the features) + colour, standardised, then a classifier."""

    def __init__(self, f, c, y, variance, make):
        self.pca = PCA(variance, svd_solver="covariance_eigh").fit(f) if variance else None
        x = self.inputs(f, c)
        self.scaler = StandardScaler().fit(x)
        self.model = make().fit(self.scaler.transform(x), y)

    def inputs(self, f, c):
        return np.hstack([self.pca.transform(f) if self.pca else f, c])

    def predict(self, f, c):
        return self.model.predict(self.scaler.transform(self.inputs(f, c)))

    def proba(self, f, c):
        return self.model.predict_proba(self.scaler.transform(self.inputs(f, c)))


class Epochs(MLPClassifier):
    """An MLP trained for exactly `epochs` passes (no early stop)."""

    def __init__(self, hidden=1024, epochs=30):
        super().__init__((hidden,), batch_size=256, random_state=0)
        self.hidden, self.epochs = hidden, epochs

    def fit(self, x, y):
        for _ in range(self.epochs):
            self.partial_fit(x, y, classes=np.unique(y))
        return self


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("features", help="fruits featurize --augment N output of the sample")
    ap.add_argument("wild", help="fruits featurize output of augmented copies of the Test photos")
    ap.add_argument("--heads", default="4:0.95", help="COPIES:PCA,... linear heads to train")
    ap.add_argument("--gate", type=int, help="train the studio gate on Training + this many copies")
    ap.add_argument("--mlp", help="COPIES:HIDDEN: a one-hidden-layer MLP head (30 epochs, PCA 99%%)")
    a = ap.parse_args()
    path, y, split, f, c = load(a.features)
    _, wy, _, wf, wc = load(a.wild)
    k = np.array([copy_index(p) for p in path])
    test, original = split == "Test", (split == "Training") & (k < 0)
    rows = lambda n: original | ((k >= 0) & (k < n))
    print(f"{len(path)} rows: {original.sum()} Training originals, {(k >= 0).sum()} copies, "
          f"{test.sum()} studio Test photos; {len(wy)} wild Test copies")

    def report(name, head, started):
        studio = (head.predict(f[test], c[test]) == y[test]).mean()
        wild = (head.predict(wf, wc) == wy).mean()
        print(f"{name}: studio {studio:.2%}, wild {wild:.2%} ({time.time() - started:.0f} s)", flush=True)

    for spec in a.heads.split(","):
        n, variance = spec.split(":")
        started = time.time()
        head = Head(f[rows(int(n))], c[rows(int(n))], y[rows(int(n))],
                    None if variance == "none" else float(variance),
                    lambda: LogisticRegression(C=1.0, max_iter=1000, tol=1e-6))
        report(f"linear, Training + {n} copies, PCA {variance}", head, started)
    if a.mlp:
        n, hidden = map(int, a.mlp.split(":"))
        started = time.time()
        head = Head(f[rows(n)], c[rows(n)], y[rows(n)], 0.99, lambda: Epochs(hidden, 30))
        report(f"MLP {hidden} hidden, Training + {n} copies, PCA 0.99", head, started)
    if a.gate:
        m = rows(a.gate)
        gate = Head(f[m], c[m], np.where(k[m] >= 0, "wild", "studio"), 0.95,
                    lambda: LogisticRegression(C=1.0, max_iter=1000, tol=1e-6))
        studio = list(gate.model.classes_).index("studio")
        on_studio = gate.proba(f[test], c[test])[:, studio]
        on_wild = gate.proba(wf, wc)[:, studio]
        for t in (0.5, 0.9, 0.99):
            print(f"gate >= {t}: {np.mean(on_studio >= t):.3%} of the studio Test photos and "
                  f"{np.mean(on_wild >= t):.3%} of the wild copies go to the studio head")


if __name__ == "__main__":
    main()
