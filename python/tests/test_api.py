"""The Python API (fruits.featurize, read, PCA, Classifier) on the sample: the
same rows and numbers as the CLI, and typed exceptions for bad input."""

import json
import os
import subprocess

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import fruits
from conftest import MODELS, assert_within, fruits_bin, pca_steps
from garage import Garage


def by_path(table):
    return table.sort_by("path")


def vectors(table, column="features"):
    col = table.column(column).combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1)


@pytest.fixture(scope="module", autouse=True)
def models_dir(monkeypatch_module):
    monkeypatch_module.setenv("FRUITS_MODELS_DIR", MODELS)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def featurized(photos):
    return fruits.featurize(photos)


def test_featurize_a_folder_equals_the_cli(featurized, cli_run):
    features, errors = featurized
    cli = by_path(fruits.read(os.path.join(cli_run, "features")))
    mine = by_path(features)
    assert mine.num_rows == cli.num_rows == 300
    for name in ("path", "label", "split", "sha256", "width", "height"):
        assert mine.column(name).to_pylist() == cli.column(name).to_pylist(), name
    np.testing.assert_allclose(vectors(mine), vectors(cli), atol=1e-5, rtol=0)
    # The broken photo is a row of the errors table, with its reason.
    assert errors.to_pylist() == fruits.read(os.path.join(cli_run, "features"), table="errors").to_pylist()
    assert errors.column("path").to_pylist() == ["Test/Kiwi 1/zz-not-a-photo.jpg"]
    assert errors.column("kind").to_pylist() == ["unsupported_format"]
    # The metadata travels with the table: which model made the vectors.
    assert "fruits.meta" in {k.decode() for k in features.schema.metadata}
    assert features.to_pandas().shape == (300, 8)  # ..., features, colour


def test_featurize_with_out_writes_the_cli_output_and_resumes(photos, featurized, tmp_path):
    out = str(tmp_path / "features")
    first = fruits.featurize(photos, out=out)
    assert first.summary["featurised"] == 300 and first.summary["failed"] == 1
    assert os.path.exists(os.path.join(out, "_manifest.json"))
    np.testing.assert_allclose(vectors(by_path(first.features)), vectors(by_path(featurized.features)), atol=1e-6)
    again = fruits.featurize(photos, out=out)
    assert again.summary["skipped"] == 301 and again.summary["featurised"] == 0
    assert again.features.num_rows == 300 and again.errors.num_rows == 1
    # The CLI reads what Python wrote.
    proc = subprocess.run([fruits_bin(), "export", "csv", out, "--out", str(tmp_path / "x.csv")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_featurize_with_augmented_copies_equals_the_cli(photos, tmp_path):
    """augment=N adds the copies `fruits featurize --augment N` makes: Training photos only."""
    features, errors = fruits.featurize(photos, augment=1, augment_seed=5)
    out = str(tmp_path / "cli")
    proc = subprocess.run([fruits_bin(), "featurize", photos, "--out", out, "--quiet", "--augment", "1",
                           "--augment-seed", "5"], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr  # the broken photo
    cli = by_path(fruits.read(out))
    mine = by_path(features)
    assert mine.num_rows == cli.num_rows == 300 + 150
    copies = [p for p in mine.column("path").to_pylist() if "-aug0" in p]
    assert len(copies) == 150 and all(p.startswith("Training/") for p in copies)
    for name in ("path", "label", "split", "sha256"):
        assert mine.column(name).to_pylist() == cli.column(name).to_pylist(), name
    np.testing.assert_allclose(vectors(mine), vectors(cli), atol=1e-5, rtol=0)
    assert errors.num_rows == 1
    # Trained on photos and copies, the classifier has a studio head; the Test
    # photos are studio photos, so the gate sends (nearly) all of them there.
    report = fruits.Classifier.train(out, split="Training").evaluate(out, split="Test")
    assert report["studio_rows"] >= 0.9 * report["rows"], report["studio_rows"]
    single = fruits.Classifier.train(out, split="Training", studio_head=False)
    assert "studio_rows" not in single.evaluate(out, split="Test")


def test_featurize_paths_from_a_list_and_a_dataframe(photos, featurized):
    wanted = sorted(featurized.features.column("path").to_pylist())[:4]
    paths = [os.path.join(photos, p) for p in wanted] + [os.path.join(photos, "Test", "Kiwi 1", "missing.jpg")]
    features, errors = fruits.featurize(paths)
    assert features.column("path").to_pylist() == paths[:4]  # the caller's paths, as given
    assert features.column("label").to_pylist() == ["Apple Braeburn 1"] * 4
    assert features.column("split").to_pylist() == ["Test"] * 4
    reference = by_path(featurized.features).slice(0, 4)
    np.testing.assert_allclose(vectors(features), vectors(reference), atol=1e-5)
    assert errors.column("path").to_pylist() == paths[4:] and errors.column("kind").to_pylist() == ["io"]
    # One session of two threads or three of one: the same vectors, in the caller's order.
    for sessions, threads in ((1, 2), (3, 1)):
        again, _ = fruits.featurize(paths[:4], sessions=sessions, intra_threads=threads, batch_size=1)
        assert again.column("path").to_pylist() == paths[:4]
        np.testing.assert_allclose(vectors(again), vectors(features), atol=1e-5)
    df = pd.DataFrame({"photo": paths[:2]})
    from_df, _ = fruits.featurize(df, path_col="photo")
    np.testing.assert_allclose(vectors(from_df), vectors(features)[:2], atol=1e-6)
    from_arrow, _ = fruits.featurize(pa.table({"path": paths[:2]}))
    assert from_arrow.num_rows == 2
    with pytest.raises(fruits.InputError, match="no column 'path'"):
        fruits.featurize(df)


def test_bad_input_raises_typed_errors(tmp_path):
    with pytest.raises(fruits.NotFound, match="missing"):
        fruits.featurize(str(tmp_path / "missing"))
    with pytest.raises(fruits.InputError, match="precision"):
        fruits.featurize(str(tmp_path), precision="fp16")
    with pytest.raises(fruits.InputError, match="not a fruits output|_manifest"):
        fruits.read(str(tmp_path))
    with pytest.raises(fruits.InputError, match="source must be"):
        fruits.featurize(42)
    with pytest.raises(fruits.InputError, match="not fitted"):
        fruits.PCA().components_


def test_a_bucket_outside_eu_west_3_is_refused(tmp_path, monkeypatch):
    server = Garage(tmp_path / "garage", region="us-east-1")
    try:
        server.bucket("photos")
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        with pytest.raises(fruits.RegionNotAllowed, match="us-east-1") as e:
            fruits.featurize("s3://photos/in/")
        assert isinstance(e.value, fruits.StorageError) and isinstance(e.value, OSError)
        with pytest.raises(fruits.RegionNotAllowed):
            fruits.read("s3://photos/out/")
    finally:
        server.stop()


def test_pca_fits_like_the_cli_from_a_location_a_table_and_pandas(cli_run, featurized, tmp_path):
    features = os.path.join(cli_run, "features")
    cli = json.load(open(os.path.join(cli_run, "pca", "pca.json")))
    from_location = fruits.PCA(variance=0.95).fit(features)
    from_table = fruits.PCA(variance=0.95).fit(featurized.features)
    frame = featurized.features.to_pandas()
    frame["features"] = frame["features"].map(list)  # plain lists, as a user's DataFrame has
    from_pandas = fruits.PCA(variance=0.95).fit(frame)
    k = cli["k"]
    for pca in (from_location, from_table, from_pandas):
        assert pca.n_components_ == k and pca.n_samples_ == 300 and pca.n_features_in_ == 1280
        np.testing.assert_allclose(pca.explained_variance_ratio_, cli["explained_variance_ratio"][:k], rtol=1e-6)
        assert pca.components_.shape == (k, 1280) and pca.mean_.shape == (1280,)
    assert abs(from_location.variance_kept_ - sum(cli["explained_variance_ratio"][:k])) < 1e-9
    # transform equals the CLI's reduced output (up to each component's sign).
    reduced = by_path(from_location.transform(featurized.features))
    assert reduced.column_names == ["path", "label", "split", "sha256", "width", "height", "colour", "pca"]
    ref = by_path(fruits.read(os.path.join(cli_run, "reduced")))
    # The stored output is int8 codes (decoded by fruits.read): within half a step.
    steps = pca_steps(os.path.join(cli_run, "reduced"))
    assert_within(np.abs(vectors(reduced, "pca")), np.abs(vectors(ref, "pca")), steps / 2 + 1e-4)
    # save / load, and the plots.
    saved = str(tmp_path / "pca")
    from_location.save(saved)
    loaded = fruits.PCA.load(saved)
    np.testing.assert_array_equal(loaded.components_, from_location.components_)
    assert loaded.fingerprint_ == from_location.fingerprint_
    for png in from_table.plot(str(tmp_path / "plots")):
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert fruits.PCA(k=3).fit_transform(featurized).schema.field("pca").type.list_size == 3
    with pytest.raises(fruits.InputError, match="plot needs the rows"):
        loaded.plot(str(tmp_path / "more"))


def test_pca_takes_numpy_arrays_and_n_components_as_scikit_learn(cli_run, featurized):
    x = vectors(featurized.features).astype(np.float64)
    cli = json.load(open(os.path.join(cli_run, "pca", "pca.json")))
    # A float in (0, 1) is a share of the variance, an int a number of components.
    share = fruits.PCA(n_components=0.95).fit(x)
    assert share.n_components_ == cli["k"] and share.n_samples_ == 300
    projected = share.transform(x)
    assert isinstance(projected, np.ndarray) and projected.shape == (300, cli["k"])
    assert projected.dtype == np.float64  # the caller's float type back
    # The same projection as from the table (rows in the table's order).
    from_table = vectors(share.transform(featurized.features), "pca")
    np.testing.assert_allclose(projected, from_table, atol=1e-5)
    three = fruits.PCA(n_components=3).fit_transform(x.astype(np.float32))
    assert three.shape == (300, 3) and three.dtype == np.float32
    # pandas in, pandas out.
    frame = featurized.features.to_pandas()
    out = fruits.PCA(n_components=3).fit(frame).transform(frame)
    assert isinstance(out, pd.DataFrame) and "pca" in out.columns and len(out["pca"].iloc[0]) == 3
    for bad in (0, 1.0, 1.5, -2, "many", True):
        with pytest.raises(fruits.InputError):
            fruits.PCA(n_components=bad).fit(x)
    with pytest.raises(fruits.InputError, match="one of"):
        fruits.PCA(n_components=3, k=3)
    with pytest.raises(fruits.InputError, match="2-D"):
        fruits.PCA(n_components=3).fit(x[0])


def test_classifier_fits_on_a_table_in_memory_as_train_does_on_its_output(cli_run, photos):
    features = os.path.join(cli_run, "features")
    table = fruits.read(features)
    fitted = fruits.Classifier.fit(table, split="Training")
    trained = fruits.Classifier.train(features, split="Training")
    assert fitted.classes_ == trained.classes_
    a, b = fitted.evaluate(features, split="Test"), trained.evaluate(features, split="Test")
    assert a["accuracy"] == pytest.approx(b["accuracy"], abs=1e-9) and a["accuracy"] > 0.9
    # It keeps the image model its rows were made with: it identifies photos.
    kiwi = os.path.join(photos, "Test", "Kiwi 1", sorted(os.listdir(os.path.join(photos, "Test", "Kiwi 1")))[0])
    assert fitted.identify(kiwi)["top"][0]["class"] == "Kiwi 1"
    # y gives the labels (one per row).
    y = ["fruit " + label for label in table.column("label").to_pylist()]
    assert fruits.Classifier.fit(table, y, split="Training").classes_ == sorted(set(y))
    with pytest.raises(fruits.InputError, match="2 labels for"):
        fruits.Classifier.fit(table, ["a", "b"])
    with pytest.raises(fruits.InputError, match="pyarrow Table"):
        fruits.Classifier.fit(np.zeros((3, 4)), ["a", "b", "c"])
    with pytest.raises(fruits.InputError, match="which image model"):
        fruits.Classifier.fit(pa.table({"features": [[1.0, 2.0]], "label": ["a"]}))
    # Vectors shorter than the metadata says are refused, as in a stored output.
    short = pa.FixedSizeListArray.from_arrays(pa.array(vectors(table)[:, :1000].ravel(), pa.float32()), 1000)
    cut = table.set_column(table.schema.get_field_index("features"), "features", short)
    with pytest.raises(fruits.InputError, match="metadata"):
        fruits.Classifier.fit(cut)


def test_classifier_trains_evaluates_and_identifies_like_the_cli(cli_run, photos, tmp_path):
    features = os.path.join(cli_run, "features")
    clf = fruits.Classifier.train(features, split="Training")
    assert clf.classes_ == sorted(clf.classes_) and len(clf.classes_) == 5
    report = clf.evaluate(features, split="Test", out=str(tmp_path / "report"))
    # The CLI trains the same model and scores it the same.
    bundle = str(tmp_path / "cli-classifier")
    subprocess.run([fruits_bin(), "train", features, "--split", "Training", "--out", bundle], check=True,
                   capture_output=True)
    cli = json.loads(subprocess.run([fruits_bin(), "evaluate", bundle, "--on", features, "--split", "Test",
                                     "--json", "--out", str(tmp_path / "cli-report")],
                                    check=True, capture_output=True, text=True).stdout)
    assert report["rows"] == cli["rows"] == 150
    assert report["accuracy"] == pytest.approx(cli["accuracy"], abs=1e-9)
    assert report["revenue_best"]["net"] == pytest.approx(cli["revenue_best"]["net"], abs=1e-6)
    assert report["confusion"].shape == (5, 5) and report["confusion"].sum() == 150
    assert np.trace(report["confusion"]) / 150 == pytest.approx(report["accuracy"])
    for name in ("report.json", "per_class.csv", "confusion.png", "revenue.png"):
        assert os.path.exists(tmp_path / "report" / name), name
    custom = clf.evaluate(features, split="Test", revenue={"gain_correct": 1.0, "cost_wrong": 10.0})
    assert custom["revenue_values"]["cost_wrong"] == 10.0
    # A dict takes per-class overrides as the TOML file does; bad values are InputErrors.
    per_class = clf.evaluate(features, split="Test", revenue={"gain_correct": 1, "cost_wrong": 5,
                                                              "classes": {"Kiwi 1": {"cost_wrong": 20}}})
    assert per_class["revenue_values"]["classes"]["Kiwi 1"]["cost_wrong"] == 20.0
    for bad in ({"gain_correct": 1, "cost_wrong": float("nan")}, {"gain_correct": 1, "cost_wrong": "5"},
                {"gain_correct": 1, "cost_wrong": 5, "bogus": 1}, {"gain_correct": 1, "cost_wrong": -5}):
        with pytest.raises(fruits.InputError, match="revenue"):
            clf.evaluate(features, split="Test", revenue=bad)

    kiwi = os.path.join(photos, "Test", "Kiwi 1")
    photo = os.path.join(kiwi, sorted(os.listdir(kiwi))[0])
    answer = clf.identify(photo)
    assert answer["top"][0]["class"] == "Kiwi 1" and len(answer["top"]) == 5
    assert answer["top"][0]["info"]["french"]
    broken = os.path.join(kiwi, "zz-not-a-photo.jpg")
    both = clf.identify([open(photo, "rb").read(), broken], top=2)
    assert both[0]["top"][0]["class"] == "Kiwi 1" and len(both[0]["top"]) == 2
    assert both[1]["kind"] == "unsupported_format" and "error" in both[1]
    # Saved, it is a bundle `fruits identify` serves.
    clf.save(str(tmp_path / "bundle"))
    assert fruits.Classifier.load(str(tmp_path / "bundle")).identify(photo)["top"][0]["class"] == "Kiwi 1"
    out = subprocess.run([fruits_bin(), "identify", "--model", str(tmp_path / "bundle"), photo, "--json"],
                         capture_output=True, text=True, env={**os.environ, "FRUITS_MODELS_DIR": MODELS})
    assert out.returncode == 0, out.stderr
    with pytest.raises(fruits.InputError, match="features or reduced output"):
        fruits.Classifier.train(pa.table({"x": [1]}))


def test_cross_validation_chooses_c_on_the_training_rows(cli_run):
    clf = fruits.Classifier.train(os.path.join(cli_run, "features"), split="Training", cv=3, cv_C=[0.1, 1.0])
    cv = clf.training_["cv"]
    assert cv["folds"] == 3 and [s["c"] for s in cv["scores"]] == [0.1, 1.0]
    assert clf.training_["c"] == cv["chosen_c"]


def test_help_teaches():
    for obj in (fruits.featurize, fruits.read, fruits.PCA, fruits.PCA.fit, fruits.Classifier,
                fruits.Classifier.train, fruits.Classifier.evaluate, fruits.Classifier.identify):
        assert obj.__doc__ and len(obj.__doc__) > 60, obj


def test_hostile_arguments_are_input_errors_naming_the_argument(photos, cli_run, tmp_path):
    """Bounds are the core's, so Python cannot bypass them: no abort, no bare
    TypeError or OverflowError from the extension's conversions."""
    one = [os.path.join(photos, "Test", "Kiwi 1", sorted(os.listdir(os.path.join(photos, "Test", "Kiwi 1")))[0])]
    for kwargs, name in [(dict(batch_size=4_000_000_000), "batch_size"), (dict(batch_size=-1), "batch_size"),
                         (dict(augment=10**9), "augment"), (dict(sessions=0), "sessions"),
                         (dict(intra_threads=-2), "intra_threads"), (dict(batch_size=2.5), "batch_size")]:
        with pytest.raises(fruits.InputError, match=name):
            fruits.featurize(one, **kwargs)
    for bad, says in [([None], r"source\[0\]"), ([one[0], 7], r"source\[1\]"), ([b"bytes"], "bytes")]:
        with pytest.raises(fruits.InputError, match=says):
            fruits.featurize(bad)
    for frame in (pd.DataFrame({"path": [one[0], None]}), pd.DataFrame({"path": [one[0], float("nan")]}),
                  pa.table({"path": [one[0], None]})):
        with pytest.raises(fruits.InputError, match="row 1 of column 'path'"):
            fruits.featurize(frame)
    with pytest.raises(fruits.InputError, match="k must be"):
        fruits.PCA(k=-3)
    clf = fruits.Classifier.train(os.path.join(cli_run, "features"), split="Training")
    for top in (0, -1, 10**6):
        with pytest.raises(fruits.InputError, match="top"):
            clf.identify(one[0], top=top)
    with pytest.raises(fruits.InputError, match="photos\\[0\\]"):
        clf.identify([None])


def test_paths_that_are_not_files_are_per_photo_errors(photos, cli_run, tmp_path):
    """A FIFO given as a path once hung every entry point; a missing path sank
    the whole identify call."""
    fifo = str(tmp_path / "fifo.jpg")
    os.mkfifo(fifo)
    kiwi = os.path.join(photos, "Test", "Kiwi 1")
    photo = os.path.join(kiwi, sorted(os.listdir(kiwi))[0])
    clf = fruits.Classifier.train(os.path.join(cli_run, "features"), split="Training")
    answers = clf.identify([photo, fifo, str(tmp_path / "missing.jpg"), str(tmp_path)])
    assert answers[0]["top"][0]["class"] == "Kiwi 1"
    assert [a.get("kind") for a in answers[1:]] == ["not_a_file", "not_found", "not_a_file"]
    features, errors = fruits.featurize([photo, fifo])
    assert features.num_rows == 1
    assert errors.column("kind").to_pylist() == ["not_a_file"] and "not a regular file" in errors.column("message")[0].as_py()
    with pytest.raises(fruits.InputError, match="not a regular file"):
        clf.evaluate(os.path.join(cli_run, "features"), revenue=fifo)


def test_nan_rows_are_named_as_damaged_data(cli_run, tmp_path):
    """NaN features once read as "the classifier's weights are damaged"."""
    import shutil

    import pyarrow.parquet as pq

    clf = fruits.Classifier.train(os.path.join(cli_run, "features"), split="Training")
    copy = str(tmp_path / "features")
    shutil.copytree(os.path.join(cli_run, "features"), copy)
    part = sorted(f for f in os.listdir(copy) if f.startswith("part-"))[0]
    table = pq.read_table(os.path.join(copy, part))  # keeps the parts' key-value metadata
    column = table.column("features").combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False).copy()
    values[:] = np.nan
    index = table.schema.get_field_index("features")
    nan = pa.FixedSizeListArray.from_arrays(pa.array(values, pa.float32()), type=table.schema.field(index).type)
    pq.write_table(table.set_column(index, table.schema.field(index), nan), os.path.join(copy, part))
    with pytest.raises(fruits.InputError, match="NaN or infinite") as e:
        clf.evaluate(copy, split=None)
    assert "weights" not in str(e.value) and "not at fault" in str(e.value)


def test_views_and_real_photos_train_beside_studio_ones(photos, cli_run, tmp_path):
    """views=True stores each photo's six views; real= trains on them beside
    the studio outputs; the report scores the fruit; answers carry the level."""
    out = str(tmp_path / "real")
    real = fruits.featurize(photos, out=out, views=True)
    assert "views" in real.features.column_names
    assert real.features.schema.field("views").type.list_size == 5 * 1280
    clf = fruits.Classifier.train([os.path.join(cli_run, "features")], real=[out], split="Training", k=8)
    assert [s["real"] for s in clf.info_["sources"]] == [False, True]
    assert len(clf.info_["views"]) == 6
    report = clf.evaluate(out, split="Test")
    assert report["views"] == 6 and report["fruit"]["rows"] == 150
    kiwi = os.path.join(photos, "Test", "Kiwi 1")
    answer = clf.identify(os.path.join(kiwi, sorted(os.listdir(kiwi))[0]))
    assert answer["level"] in ("variety", "fruit") and answer["fruit"]["fruit"] == "Kiwi"
