"""The type stubs of the Rust extension (fruits/_native.pyi) match the built
module, and the package's annotations type-check."""

import os
import subprocess
import sys

from conftest import ROOT

PYTHON = os.path.join(ROOT, "python")


def run(*args):
    proc = subprocess.run([sys.executable, "-m", *args], cwd=PYTHON, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_extension_stubs_match_the_built_module():
    code, out = run("mypy.stubtest", "fruits._native", "--mypy-config-file", "pyproject.toml")
    assert code == 0, out


def test_the_package_type_checks():
    code, out = run("mypy", "--no-error-summary", "fruits")
    assert code == 0, out
