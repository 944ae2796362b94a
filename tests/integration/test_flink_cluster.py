"""The same job file, unchanged, submitted with `flink run -py` to a real standalone Flink cluster."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyflink
import pytest
import yaml

from devstack import artifacts, traffic
from tests.support.check import compare

ROOT = Path(__file__).resolve().parents[2]
FLINK_HOME = Path(pyflink.__file__).parent  # the PyPI package ships Flink's distribution and scripts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def flink_cluster(tmp_path_factory, stack_settings):
    """A JobManager and two TaskManagers (one slot each, so that a job at parallelism 2 spans both) as
    separate JVMs, bound to 127.0.0.1, with the store credentials in their environment as a deployment's
    Secret gives them (the job graph carries none: flink_jobs.credentials); yields the REST address and the
    environment of `flink`."""
    base = tmp_path_factory.mktemp("flink")
    conf = yaml.safe_load((FLINK_HOME / "conf" / "config.yaml").read_text())
    rest_port = _free_port()
    conf["jobmanager"].update({"bind-host": "127.0.0.1", "rpc": {"address": "127.0.0.1", "port": _free_port()},
                               "memory": {"process": {"size": "1024m"}}})
    conf["taskmanager"].update({"bind-host": "127.0.0.1", "host": "127.0.0.1", "numberOfTaskSlots": 1,
                                "memory": {"process": {"size": "1536m"}}})
    conf["rest"] = {"address": "127.0.0.1", "bind-address": "127.0.0.1", "port": rest_port}
    conf["python"] = {"executable": sys.executable, "client": {"executable": sys.executable}}
    # As the image has it (docker/Dockerfile): flink-python in lib/ and pemja parent-first, so that the
    # embedded interpreter is loaded once per TaskManager, not once per job.
    conf["classloader"] = {"parent-first-patterns": {"additional": "pemja."}}
    lib = base / "lib"
    lib.mkdir()
    # The archive's Parquet format and Hadoop client, which the image has in /opt/flink/lib too.
    for jar in [*(FLINK_HOME / "lib").glob("*.jar"), *(FLINK_HOME / "opt").glob("flink-python-*.jar"),
                *artifacts.archive_jars()]:
        (lib / jar.name).symlink_to(jar)
    (base / "conf").mkdir()
    (base / "log").mkdir()
    (base / "conf" / "config.yaml").write_text(yaml.safe_dump(conf))
    for name in ("log4j.properties", "log4j-cli.properties", "log4j-console.properties"):
        (base / "conf" / name).write_text((FLINK_HOME / "conf" / name).read_text())
    env = {**os.environ, "FLINK_CONF_DIR": str(base / "conf"), "FLINK_LOG_DIR": str(base / "log"),
           "FLINK_PID_DIR": str(base), "FLINK_LIB_DIR": str(lib), "LLM_AUDIT_MONGO_URI": stack_settings.mongo_uri}
    # taskmanager.sh twice: a second instance on the same host, as a scaled-out deployment has.
    scripts = [FLINK_HOME / "bin" / "jobmanager.sh", FLINK_HOME / "bin" / "taskmanager.sh",
               FLINK_HOME / "bin" / "taskmanager.sh"]
    for script in scripts:
        subprocess.run(["bash", str(script), "start"], env=env, check=True, capture_output=True)
    url = f"http://127.0.0.1:{rest_port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/overview", timeout=2) as resp:
                    if json.load(resp)["taskmanagers"] >= 2:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-1500:] for p in (base / "log").glob("*.log"))
                pytest.fail(f"standalone Flink cluster did not come up within 90 s:\n{logs}")
            time.sleep(1)
        yield f"127.0.0.1:{rest_port}", env
    finally:
        for script in reversed(scripts):  # `stop` ends one instance at a time
            subprocess.run(["bash", str(script), "stop"], env=env, capture_output=True)


def _settings_env(settings) -> dict[str, str]:
    """The settings as the LLM_AUDIT_* variables the job file reads back, and the workers' Python as the
    image sets it (LLM_AUDIT_PYTHON_EXECUTABLE): the embedded interpreter then gets its module path."""
    return {"LLM_AUDIT_PYTHON_EXECUTABLE": sys.executable,
            **{f"LLM_AUDIT_{name.upper()}": str(getattr(settings, name).get_secret_value()
                                                if name.endswith(("uri", "token")) else getattr(settings, name))
               for name in settings.model_fields_set if getattr(settings, name) is not None}}


def _parallelisms(vertices: list[dict]) -> set[int]:
    """The job's vertices' parallelism, but that of the archive's terminal sink (`end`, or a partition
    committer), which Flink's filesystem sink always runs once."""
    return {v["parallelism"] for v in vertices if not v["name"].startswith("end:") and "PartitionCommitter" not in v["name"]}


def _job_file() -> list[str]:
    return ["--jarfile", str(artifacts.flink_kafka_connector_jar()), "-py", str(ROOT / "flink_jobs" / "streaming" / "job.py")]


def _flink(env: dict, *args: str, settings=None, cwd: Path) -> subprocess.CompletedProcess:
    """The `flink` command; with settings, the job it submits reads them from its environment."""
    result = subprocess.run(["bash", str(FLINK_HOME / "bin" / "flink"), *args],
                            env={**env, **(_settings_env(settings) if settings else {})},
                            capture_output=True, text=True, timeout=300, cwd=cwd)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _job_id(run: subprocess.CompletedProcess) -> str:
    """The id of the job `flink run` submitted, from its output."""
    return run.stdout.split("Job has been submitted with JobID ")[1].split()[0]


def _get(address: str, path: str):
    with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as resp:
        return json.load(resp)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_flink_run_py_submits_the_job_file_unchanged(flink_cluster, isolated_job, tmp_path, parallelism):
    """At parallelism 2 the job spreads over both TaskManagers and reads the four partitions with two
    source subtasks, each watermarking its partitions: the stores must still equal the ground truth."""
    address, env = flink_cluster
    settings = isolated_job(f"cluster{parallelism}", local=False, rules_path=ROOT / "rules" / "default.yaml",
                            checkpoint_dir=(tmp_path / "checkpoints").as_uri(), parallelism=parallelism)
    truths = traffic.produce(settings.kafka_bootstrap, settings.source_topic, 400, seed=5, start_ms=1_795_100_000_000)
    jid = _job_id(_flink(env, "run", "-m", address, *_job_file(), settings=settings, cwd=tmp_path))
    job = _get(address, f"/jobs/{jid}")
    assert (job["name"], job["state"]) == ("llm-audit", "FINISHED")
    vertices = job["vertices"]
    assert _parallelisms(vertices) == {parallelism}, [(v["name"], v["parallelism"]) for v in vertices]
    used = {tm["taskmanager-id"] for v in vertices
            for tm in _get(address, f"/jobs/{jid}/vertices/{v['id']}/taskmanagers")["taskmanagers"]}
    assert len(used) == parallelism  # one slot per TaskManager
    report = compare(settings, truths)
    assert report.ok, [row for row in report.rows if not row.ok]


def test_a_savepoint_taken_at_parallelism_1_restores_at_2_and_writes_everything_it_held(flink_cluster, isolated_job,
                                                                                      tmp_path):
    """A native savepoint (`flink stop`) of a job holding everything in state (sink batches that never
    fill nor time out, open windows, pending sequence hits), restored at parallelism 2 with no new
    event: the restored run writes all of it, and the stores equal the ground truth."""
    from kafka import KafkaAdminClient, KafkaConsumer
    from pymongo import MongoClient

    from flink_jobs.kafka import client_config, committed_offsets, offsets_span

    address, env = flink_cluster
    settings = isolated_job("savepoint", local=False, rules_path=ROOT / "rules" / "default.yaml",
                            checkpoint_dir=(tmp_path / "checkpoints").as_uri(), checkpoint_interval_ms=1000,
                            starting_offsets="earliest", parallelism=2, bounded=True)
    truths = traffic.produce(settings.kafka_bootstrap, settings.source_topic, 800, seed=34, rate=200)
    holding = settings.model_copy(update={"sink_batch_size": 1_000_000, "sink_max_wait_ms": 3_600_000,
                                          "parallelism": 1, "bounded": False})
    jid = _job_id(_flink(env, "run", "--detached", "-m", address, *_job_file(), settings=holding, cwd=tmp_path))
    consumer, admin = KafkaConsumer(**client_config(settings)), KafkaAdminClient(**client_config(settings))
    try:
        span, deadline = offsets_span(consumer, settings.source_topic), time.monotonic() + 300
        while not span.covered(committed_offsets(admin, settings.group_id, settings.source_topic)):
            assert time.monotonic() < deadline, "no checkpoint covered the topic within 300 s"
            time.sleep(1)
    finally:
        consumer.close()
        admin.close()
    stopped = _flink(env, "stop", "-m", address, "--savepointPath", (tmp_path / "savepoints").as_uri(), jid,
                     cwd=tmp_path)
    savepoint = stopped.stdout.split("Savepoint completed. Path: ")[1].split()[0]
    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        assert client[settings.mongo_database][settings.violations_collection].count_documents({}) == 0
    # Starting at the latest offsets: without the savepoint's, the restored run would read nothing.
    restored = settings.model_copy(update={"restore_from": savepoint, "starting_offsets": "latest"})
    run = _flink(env, "run", "-m", address, *_job_file(), settings=restored, cwd=tmp_path)
    assert _parallelisms(_get(address, f"/jobs/{_job_id(run)}")["vertices"]) == {2}
    report = compare(settings, truths)
    assert report.ok, [row for row in report.rows if not row.ok]
