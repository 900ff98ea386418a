"""`fruits-spark ARGS...`: spark-submit the packaged job.py with ARGS.

`--master URL` (or SPARK_MASTER) picks the cluster; every other argument goes to the job.
"""

import os
import shutil
import subprocess
import sys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    submit = shutil.which("spark-submit")
    if submit is None:
        sys.exit("spark-submit not found: install pyspark (pip install 'fruits[spark]') or run on EMR")
    master = os.environ.get("SPARK_MASTER")
    if "--master" in argv:
        i = argv.index("--master")
        master = argv[i + 1]
        del argv[i:i + 2]
    job = os.path.join(os.path.dirname(os.path.abspath(__file__)), "job.py")
    cmd = [submit] + (["--master", master] if master else []) + [job] + argv
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
