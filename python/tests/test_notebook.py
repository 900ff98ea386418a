"""notebooks/fruits-pipeline.ipynb: committed without outputs, and it runs top
to bottom (nbclient, headless) on a slice of the sample."""

import json
import os

import nbformat
from nbclient import NotebookClient

from conftest import MODELS, ROOT, SAMPLE

NOTEBOOK = os.path.join(ROOT, "notebooks", "fruits-pipeline.ipynb")


def test_the_notebook_is_committed_without_outputs():
    nb = json.load(open(NOTEBOOK))
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not dirty, f"cells {dirty} keep outputs: strip them (jupyter nbconvert --clear-output --inplace {NOTEBOOK})"
    assert nbformat.validate(nbformat.read(NOTEBOOK, as_version=4)) is None


def test_the_notebook_runs_on_a_slice_of_the_sample(tmp_path, monkeypatch):
    # Parameters: 8 classes x 6 photos per split; the full sample with PER_CLASS=0.
    per_class = os.environ.get("FRUITS_NOTEBOOK_PER_CLASS", "6")
    classes = os.environ.get("FRUITS_NOTEBOOK_CLASSES", "8")
    for key, value in {"FRUITS_NOTEBOOK_PER_CLASS": per_class, "FRUITS_NOTEBOOK_CLASSES": classes,
                       "FRUITS_NOTEBOOK_OUT": str(tmp_path / "out"), "FRUITS_SAMPLE_DIR": os.path.abspath(SAMPLE),
                       "FRUITS_MODELS_DIR": os.path.abspath(MODELS), "SPARK_MASTER": "local[2]"}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "photos featurised, 0 errors" in text
    assert "Test accuracy" in text
    # One CSV file, as the deliverable names it (not Spark's folder of parts).
    csv = tmp_path / "out" / "result_with_pca.csv"
    assert csv.is_file(), sorted(os.listdir(tmp_path / "out"))
    lines = open(csv).read().splitlines()
    header = lines[0].split(",")
    assert header[:4] == ["path", "label", "split", "pc1"]
    assert len(lines) == 1 + 8 * 2 * 6 if (per_class, classes) == ("6", "8") else len(lines) > 1
    assert not (tmp_path / "out" / "result_with_pca.csv.parts").exists()
    # Featurised once: write_features, then reads of its Parquet output.
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert source.count("write_features(") == 1 and "spark.featurize(" not in source
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}))
    assert images >= 4, "the variance, projection, confusion and revenue charts are shown inline"
