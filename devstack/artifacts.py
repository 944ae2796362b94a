"""Builds and caches what the local stack runs, keyed by version, outside the clone.

Kafka and Flink's Kafka connector come from Maven Central through `mvn`; FerretDB and
InfluxDB are compiled from the Go module proxy. A first run takes a few minutes and
streams the tools' own progress; later runs find everything in the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from udfs.cache import cache_dir  # the one cache directory; devstack's callers use it from here too

KAFKA_VERSION = "4.2.0"
FLINK_KAFKA_CONNECTOR_VERSION = "5.0.0-2.2"
FLINK_VERSION = "2.3.0"  # apache-flink, pinned in pyproject.toml
# The Parquet writer needs Hadoop's configuration classes: the shaded client, its dependencies relocated.
HADOOP_VERSION = "3.4.1"
INFLUXDB_VERSION = "v1.8.10"

HERE = Path(__file__).resolve().parent


def say(message: str) -> None:
    """A progress line on stderr: stdout stays machine-readable."""
    print(message, file=sys.stderr, flush=True)


class BuildError(RuntimeError):
    """A download or build step failed; the message says which command and how to retry."""




def ferretdb_version() -> str:
    """The FerretDB version pinned by devstack/ferretdb/go.mod."""
    for line in (HERE / "ferretdb" / "go.mod").read_text().splitlines():
        if line.strip().startswith("require github.com/FerretDB/FerretDB "):
            return line.split()[-1]
    raise BuildError("devstack/ferretdb/go.mod: no 'require github.com/FerretDB/FerretDB vX.Y.Z' line")


def kafka_libs() -> Path:
    """Directory of the Kafka broker's jars, resolved on first use."""
    target = cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"
    return cached(target, f"Kafka {KAFKA_VERSION} jars (Maven Central)", lambda tmp: mvn(
        "-f", str(HERE / "kafka" / "pom.xml"), f"-Dkafka.version={KAFKA_VERSION}",
        "dependency:copy-dependencies", f"-DoutputDirectory={tmp}",
    ))


def _maven_jar(artifact: str, version: str, group: str = "org.apache.flink") -> Path:
    """<group>:<artifact>:<version> from Maven Central, cached by version."""
    name = f"{artifact}-{version}"
    target = cache_dir() / name
    cached(target, f"{name}.jar (Maven Central)", lambda tmp: mvn(
        "dependency:copy", f"-Dartifact={group}:{artifact}:{version}", f"-DoutputDirectory={tmp}",
    ))
    return target / f"{name}.jar"


def flink_kafka_connector_jar() -> Path:
    """flink-sql-connector-kafka for the pinned Flink, resolved on first use."""
    return _maven_jar("flink-sql-connector-kafka", FLINK_KAFKA_CONNECTOR_VERSION)


def flink_metrics_influxdb_jar() -> Path:
    """Flink's InfluxDB metrics reporter (flink-metrics-influxdb) for the pinned Flink, resolved on first use."""
    return _maven_jar("flink-metrics-influxdb", FLINK_VERSION)


def archive_jars() -> list[Path]:
    """What the job's Parquet archive needs: Flink's Parquet format and Hadoop's shaded client."""
    return [
        _maven_jar("flink-sql-parquet", FLINK_VERSION),
        *(_maven_jar(artifact, HADOOP_VERSION, "org.apache.hadoop")
          for artifact in ("hadoop-client-api", "hadoop-client-runtime")),
    ]


def flink_lib_dir() -> Path:
    """PyFlink's lib/ plus the InfluxDB metrics reporter and the Kafka connector, as links: a FLINK_LIB_DIR
    (see flink_env).

    The connector is also in `pipeline.jars`, but PyFlink adds those to the context class loader of one
    gateway thread only: when py4j opens a second connection (a finalizer on another Python thread, such
    as a Kafka client's, holding the first), `KafkaSink.builder()` runs on a fresh thread and its class is
    not found. On the JVM's classpath every thread sees it, as in the image's /opt/flink/lib. Its classes
    are all org.apache.flink.*, which Flink loads parent-first, so the copy in pipeline.jars is not loaded
    twice."""
    import hashlib

    import pyflink
    from pyflink.version import __version__

    lib = Path(pyflink.__file__).resolve().parent / "lib"
    jars = [*sorted(lib.glob("*.jar")), flink_metrics_influxdb_jar(), flink_kafka_connector_jar()]
    key = hashlib.sha256("\n".join(map(str, jars)).encode()).hexdigest()[:10]
    target = cache_dir() / f"flink-lib-{__version__}-{key}"

    def link(tmp: str) -> None:
        for jar in jars:
            (Path(tmp) / jar.name).symlink_to(jar)

    if target.is_dir() and not all((target / jar.name).exists() for jar in jars):
        shutil.rmtree(target)  # a link into a replaced virtualenv
    return cached(target, "PyFlink's lib/ with the InfluxDB metrics reporter and the Kafka connector", link)


def flink_env() -> dict[str, str]:
    """Environment for a local PyFlink run whose MiniCluster can load the InfluxDB metrics reporter (and
    whose gateway threads all see the Kafka connector, see flink_lib_dir).

    A MiniCluster loads metric reporters from the JVM classpath only, not from plugins/, and PyFlink's
    gateway puts FLINK_LIB_DIR/*.jar on it. PyFlink resets FLINK_LIB_DIR to its own lib/ unless
    FLINK_HOME is set, hence both. Set them before the process's first PyFlink call (the gateway
    JVM starts once per process); `metrics.reporter.*` Flink options then name the reporter.

    LOG4J_PROPERTIES: PyFlink's client logging, but Hadoop's (the archive's Parquet writer) at WARN on the
    console instead of a line per part file.
    """
    import pyflink

    home = Path(pyflink.__file__).resolve().parent
    log4j = cache_dir() / f"log4j-cli-{FLINK_VERSION}.properties"
    if not log4j.is_file():
        log4j.parent.mkdir(parents=True, exist_ok=True)
        text = (home / "conf" / "log4j-cli.properties").read_text()
        tmp = log4j.with_suffix(f".{os.getpid()}")
        tmp.write_text(text.replace("logger.hadoop.level = INFO", "logger.hadoop.level = WARN"))
        os.replace(tmp, log4j)  # concurrent first runs each write a whole file
    return {"FLINK_HOME": str(home), "FLINK_LIB_DIR": str(flink_lib_dir()), "LOG4J_PROPERTIES": str(log4j)}


def ferretdb_binary() -> Path:
    """The FerretDB server (SQLite backend), compiled on first use."""
    version = ferretdb_version()
    target = cache_dir() / f"ferretdb-{version}"
    cached(target, f"FerretDB {version} (Go module proxy, ~2-3 min)", lambda tmp: run(
        ["go", "build", "-v", "-trimpath", "-o", str(Path(tmp) / "ferretdb"), "."], cwd=HERE / "ferretdb",
    ))
    return target / "ferretdb"


def influxd_binary() -> Path:
    """InfluxDB 1.8 OSS (serves the v2 write/query API), compiled on first use."""
    target = cache_dir() / f"influxdb-{INFLUXDB_VERSION}"
    cached(target, f"InfluxDB {INFLUXDB_VERSION} (Go module proxy, ~2-3 min)", lambda tmp: run(
        ["go", "install", "-v", f"github.com/influxdata/influxdb/cmd/influxd@{INFLUXDB_VERSION}"],
        env={**os.environ, "GOBIN": tmp},
    ))
    return target / "influxd"


def ensure_all() -> None:
    """Resolve every artefact; each one is skipped when already cached."""
    kafka_libs()
    flink_kafka_connector_jar()
    flink_metrics_influxdb_jar()
    archive_jars()
    ferretdb_binary()
    influxd_binary()


def cached(target: Path, what: str, build) -> Path:
    """Return target, building it into a temp dir first so a failed build never looks cached."""
    if target.is_dir() and any(target.iterdir()):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    say(f"==> fetching {what} into {target} (first run only)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
        build(tmp)
        if not any(Path(tmp).iterdir()):
            raise BuildError(f"building {what} produced nothing in {tmp}")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    say(f"==> {what} ready in {time.monotonic() - started:.0f}s")
    return target


def mvn(*args: str) -> None:
    run(["mvn", "-B", "-Dstyle.color=never", *args], cwd=HERE / "kafka")


def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    tool = cmd[0]
    if shutil.which(tool) is None:
        raise BuildError(f"'{tool}' is not on PATH; install it (this project needs Java 17 + Maven and Go >= 1.24)")
    result = subprocess.run(cmd, cwd=cwd, env=env, stdout=sys.stderr, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise BuildError(f"command failed with exit code {result.returncode}: {' '.join(cmd)} (in {cwd or os.getcwd()})")
