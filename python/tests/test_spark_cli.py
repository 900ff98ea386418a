"""`fruits-spark`, the command line: help and bad arguments without a JVM, a
clear message when Java is missing, and Spark's INFO log off unless -v."""

import os
import subprocess
import sys
import time

from conftest import MODEL

CLI = [sys.executable, "-m", "fruits.spark.cli"]


def run(args, **env):
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_help_needs_no_jvm():
    # JAVA_HOME pointing nowhere: any JVM start would fail, so help must not start one.
    started = time.perf_counter()
    r = run(["--help"], JAVA_HOME="/nonexistent")
    assert r.returncode == 0, r.stderr
    assert "--input" in r.stdout and "--output" in r.stdout
    assert time.perf_counter() - started < 10
    r = run(["--output", "x"], JAVA_HOME="/nonexistent")
    assert r.returncode == 2 and "--input" in r.stderr, r.stderr


def test_a_missing_java_is_named():
    r = run(["--input", "in", "--output", "out"], JAVA_HOME="/nonexistent")
    assert r.returncode == 1, r.stderr
    assert "JAVA_HOME" in r.stderr and "bin/java" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run(["--input", "in", "--output", "out"], PATH=os.path.dirname(sys.executable) + ":/nonexistent",
            JAVA_HOME="")
    assert r.returncode == 1
    assert "needs Java" in r.stderr or "spark-submit not found" in r.stderr, r.stderr


def test_the_job_prints_no_spark_info_lines_unless_verbose(photos, tmp_path):
    out = tmp_path / "run"
    r = run(["--master", "local[1]", "--input", os.path.join(photos, "Test"), "--output", str(out),
             "--model", MODEL, "--k", "4"])
    assert r.returncode == 0, r.stderr[-3000:]
    info = [line for line in r.stderr.splitlines() if " INFO " in line]
    assert not info, info[:5]
    assert (out / "reduced" / "_manifest.json").is_file()
    assert "pca: n = " in r.stdout, r.stdout
