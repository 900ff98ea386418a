"""The wheel, installed as the docs say (`pip install "$(scripts/build-wheel.sh)"`)
into a fresh virtualenv, runs the README's Python snippet."""

import os
import re
import subprocess
import sys

import pytest

from conftest import MODELS, ROOT

WHEEL = os.environ.get("FRUITS_WHEEL")


def readme_snippet():
    """The README's first Python block."""
    text = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README shows no Python"
    return blocks[0]


@pytest.mark.skipif(not WHEEL, reason="FRUITS_WHEEL is not set: scripts/build-wheel.sh builds the wheel "
                                      "(scripts/test.sh builds it and sets FRUITS_WHEEL)")
def test_the_wheel_installs_in_a_fresh_virtualenv_and_runs_the_readme(photos, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = subprocess.run([python, "-m", "pip", "install", "--quiet", WHEEL], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    # The README's snippet as written, on a slice of the sample (PHOTOS), from
    # a folder outside the checkout, with nothing of the checkout on the path.
    work = tmp_path / "work"
    work.mkdir()
    code = readme_snippet().replace('"PHOTOS"', repr(photos))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FRUITS_ORT_LIB")}
    env["FRUITS_MODELS_DIR"] = os.path.abspath(MODELS)
    r = subprocess.run([python, "-c", code], cwd=work, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    accuracy = float(r.stdout.strip().splitlines()[-1])
    assert 0.9 <= accuracy <= 1.0, r.stdout
    where = subprocess.run([python, "-c", "import fruits; print(fruits.__file__)"], capture_output=True,
                           text=True, cwd=work, env=env)
    assert str(venv) in where.stdout, "fruits came from the wheel, not the checkout: " + where.stdout
