"""`fruits-spark ARGS...`: spark-submit the packaged job.py with ARGS.

`--master URL` (or SPARK_MASTER) picks the cluster; `-v`/`--verbose` keeps
Spark's own INFO log (off by default: the job prints what it does); every other
argument goes to the job. `--help` and bad arguments are answered here, before
any JVM starts.
"""

import os
import shutil
import subprocess
import sys

#: Spark's log4j2 settings used unless --verbose: warnings and errors only.
QUIET_LOG4J2 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "log4j2-quiet.properties")


def java_problem(environ=None):
    """Why Spark cannot start a JVM here, or None: Spark needs Java 17 (or 11,
    21), found through JAVA_HOME or on PATH."""
    environ = os.environ if environ is None else environ
    home = environ.get("JAVA_HOME")
    if home:
        java = os.path.join(home, "bin", "java")
        if not os.access(java, os.X_OK):
            return (f"JAVA_HOME is {home!r}, which has no bin/java: point JAVA_HOME at a Java 17 "
                    "installation (e.g. /usr/lib/jvm/java-17-openjdk-amd64), or unset it to use java on PATH")
        return None
    if shutil.which("java", path=environ.get("PATH")) is None:
        return ("Spark needs Java (17, or 11 or 21) and none was found: install a JDK or JRE "
                "(Debian/Ubuntu: apt install openjdk-17-jre-headless), or set JAVA_HOME")
    return None


def _take(argv, *flags):
    """Removes the first of `flags` from argv; True when one was there."""
    for flag in flags:
        if flag in argv:
            argv.remove(flag)
            return True
    return False


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    master = os.environ.get("SPARK_MASTER")
    if "--master" in argv:
        i = argv.index("--master")
        if i + 1 >= len(argv):
            sys.exit("fruits-spark: --master needs a URL (spark://HOST:7077, local[N], yarn)")
        master = argv[i + 1]
        del argv[i:i + 2]
    verbose = _take(argv, "-v", "--verbose")
    # The job's own parser answers --help and rejects bad arguments here: no JVM for that.
    from fruits.spark import job

    job.parser().parse_args(argv)
    submit = shutil.which("spark-submit")
    if submit is None:
        sys.exit("fruits-spark: spark-submit not found: install pyspark (pip install 'fruits[spark]') or run on EMR")
    problem = java_problem()
    if problem:
        sys.exit(f"fruits-spark: {problem}")
    cmd = [submit] + (["--master", master] if master else [])
    if not verbose:
        cmd += ["--driver-java-options", f"-Dlog4j.configurationFile=file:{QUIET_LOG4J2}",
                "--conf", "spark.ui.showConsoleProgress=false"]
    cmd += [os.path.join(os.path.dirname(os.path.abspath(__file__)), "job.py")] + argv
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
