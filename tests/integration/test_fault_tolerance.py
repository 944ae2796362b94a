"""Exactly-once on the real stack: the job process killed hard mid-stream, and MongoDB down for 30 s.

The job runs as `llm-audit run audit` in its own process group, as an operator would run it; a
kill is SIGKILL to that group (client, JVM and Python workers at once: no shutdown, no final
checkpoint), and the restart is `--restore latest`. Afterwards the stores must equal the ground
truth: every planted finding once, nothing else, InfluxDB's totals exact, each dead letter once.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from pymongo import MongoClient

from devstack import stack, traffic
from flink_jobs.kafka import client_config, committed_offsets, offsets_span
from tests.integration.conftest import job_env
from tests.support.check import archive_report, compare, finding_rows, stored_findings

ROOT = Path(__file__).resolve().parents[2]
LLM_AUDIT = str(Path(sys.executable).parent / "llm-audit")
START_MS = 1_796_000_000_000


@pytest.fixture(autouse=True)
def no_job_left_running():
    """A failed test must not leave a job process (and its CPU use) to the next tests."""
    yield
    for job in JobProcess.started:
        job.kill()
    JobProcess.started.clear()


@pytest.fixture
def fault_settings(isolated_job, tmp_path):
    """The default rules and scorers (the scorers' pace, tens of events a second on two CPU cores, keeps
    the job mid-stream long enough to kill it), frequent checkpoints kept in this test's directory."""
    return isolated_job("ft", checkpoint_interval_ms=2000, checkpoint_dir=(tmp_path / "checkpoints").as_uri(),
                        starting_offsets="earliest", sink_max_wait_ms=100)


class JobProcess:
    """`llm-audit run audit [ARGS]` in a process group of its own."""

    started: list["JobProcess"] = []

    def __init__(self, settings, log: Path, *args: str):
        self.log = log
        JobProcess.started.append(self)
        self.proc = subprocess.Popen([LLM_AUDIT, "run", "audit", *args], env=job_env(settings), cwd=ROOT,
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"job did not finish within {timeout_s}s; log {self.log}:\n{self.log.read_text()[-3000:]}")


def _checkpoints(settings) -> set[Path]:
    root = Path(settings.checkpoint_dir.removeprefix("file://"))
    return {meta.parent for meta in root.glob("*/chk-*/_metadata")}


def _wait_for(what: str, predicate, timeout_s: float, job: JobProcess) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if job.proc.poll() is not None:
            raise AssertionError(f"job exited ({job.proc.returncode}) while waiting for {what}:\n"
                                 f"{job.log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s}s; log {job.log}:\n{job.log.read_text()[-3000:]}")


def _assert_ground_truth(settings, truths: list[dict]) -> None:
    report = compare(settings, truths)
    assert report.ok, [row for row in report.rows if not row.ok]
    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        stored = client[settings.mongo_database][settings.violations_collection].count_documents({})
    assert stored == len(report.findings) > 100  # nothing but the events' findings, each once


def test_killed_twice_mid_stream_and_restored_from_checkpoints_the_stores_equal_the_ground_truth(fault_settings, tmp_path):
    settings, log = fault_settings, tmp_path / "job.log"
    produced: dict = {}
    # Live traffic for 100 s, so each kill lands mid-stream.
    producer = threading.Thread(target=lambda: produced.setdefault("truths", traffic.produce(
        settings.kafka_bootstrap, settings.source_topic, 5000, seed=31, rate=50)), daemon=True)
    producer.start()
    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        violations = client[settings.mongo_database][settings.violations_collection]
        job = JobProcess(settings, log)
        for kill in range(2):
            seen, stored = _checkpoints(settings), violations.count_documents({})
            # The job has stored more since it (re)started and completed a new checkpoint.
            _wait_for(f"progress before kill {kill + 1}",
                      lambda: violations.count_documents({}) > stored + 20 and _checkpoints(settings) - seen, 240, job)
            assert producer.is_alive(), "the stream ended before the kill: lower the rate or produce more"
            job.kill()
            job = JobProcess(settings, log, "--restore", "latest")
        producer.join()
        job.kill()  # a third time, after the stream; the last run drains to the end of the topic
        final = JobProcess(settings, log, "--restore", "latest", "--bounded")
        assert final.wait(400) == 0, log.read_text()[-3000:]
    restores = [line for line in log.read_text().splitlines() if line.startswith("restoring from")]
    assert len(restores) == 3 and len(set(restores[:2])) == 2  # restarts from newer checkpoints
    _assert_ground_truth(settings, produced["truths"])
    archive_report(settings, produced["truths"])  # one row per valid event: none lost, none twice


def test_mongodb_down_for_30s_mid_stream_loses_nothing(fault_settings, stack_settings, tmp_path):
    settings, log = fault_settings, tmp_path / "job.log"
    # The stream comes in two parts so that the second spans the outage however slowly the job starts.
    first = traffic.produce(settings.kafka_bootstrap, settings.source_topic, 400, seed=32, rate=40)
    produced: dict = {}
    producer = threading.Thread(target=lambda: produced.setdefault("truths", traffic.produce(
        settings.kafka_bootstrap, settings.source_topic, 2400, seed=33, rate=40,
        start_ms=first[-1]["timestamp"] + 25)), daemon=True)  # 60 s, event time carrying on from the first part
    with MongoClient(settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=2000) as client:
        violations = client[settings.mongo_database][settings.violations_collection]
        job = JobProcess(settings, log)
        try:
            _wait_for("first violations", lambda: violations.count_documents({}) > 20, 240, job)
            producer.start()
            stack.down(stack_settings, only=("ferretdb",))
            time.sleep(30)
            assert job.proc.poll() is None, f"the job died during the outage:\n{log.read_text()[-3000:]}"
        finally:
            stack.up(stack_settings, only=("ferretdb",))
        assert producer.is_alive(), "the stream ended during the outage: produce more"
        producer.join()
        truths = first + produced["truths"]
        # The same job process rides the outage out and stores every violation ...
        _wait_for("every violation stored", lambda: _violations_match(settings, truths), 240, job)
        job.kill()
        # ... and a run from its checkpoint to the end of the topic closes the last metric windows.
        final = JobProcess(settings, log, "--restore", "latest", "--bounded")
        assert final.wait(400) == 0, log.read_text()[-3000:]
    _assert_ground_truth(settings, truths)


def _violations_match(settings, truths: list[dict]) -> bool:
    """MongoDB alone holds exactly the planted findings (metrics and dead letters aside)."""
    valid = [t["event_id"] for t in truths if not t["malformed"]]
    return all(row.ok for row in finding_rows(truths, stored_findings(settings, valid)))


@pytest.mark.parametrize(("mode", "before", "after"), [
    ("thread", 1, 1), ("process", 1, 1),
    ("thread", 1, 2), ("thread", 2, 1),  # rescaled on restore: keyed state moves between subtasks
])
def test_a_restore_with_no_new_events_writes_every_restored_batch_window_and_sequence_hit(fault_settings, tmp_path,
                                                                                         mode, before, after):
    """Not kill timing: the first run holds everything in state (sink batches that never fill nor time
    out, the last windows open, sequence hits waiting for the watermark) and is killed once a
    checkpoint covers the whole topic (its four partitions); the restored run, at the same or
    another parallelism, sees no new event, and its final drain must write all of it."""
    settings = fault_settings.model_copy(update={"python_execution_mode": mode, "parallelism": after})
    log = tmp_path / "job.log"
    truths = traffic.produce(settings.kafka_bootstrap, settings.source_topic, 800, seed=34, rate=50)
    holding = settings.model_copy(update={"sink_batch_size": 1_000_000, "sink_max_wait_ms": 3_600_000,
                                          "parallelism": before})
    consumer, admin = KafkaConsumer(**client_config(settings)), KafkaAdminClient(**client_config(settings))
    try:
        span = offsets_span(consumer, settings.source_topic)
        job = JobProcess(holding, log)
        # Offsets are committed when a checkpoint completes: that checkpoint covers every event.
        _wait_for("a checkpoint covering the whole topic", lambda: span.covered(
            committed_offsets(admin, settings.group_id, settings.source_topic)), 300, job)
        job.kill()
    finally:
        consumer.close()
        admin.close()
    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        assert client[settings.mongo_database][settings.violations_collection].count_documents({}) == 0, \
            "the first run wrote violations: its batches were not held in state"
    final = JobProcess(settings, log, "--restore", "latest", "--bounded")
    assert final.wait(300) == 0, log.read_text()[-3000:]
    _assert_ground_truth(settings, truths)


def test_a_bounded_restore_of_an_older_checkpoint_reads_what_came_after_it(fault_settings, tmp_path):
    """Not kill timing: the group's committed offsets are past the checkpoint restored (the run went on
    after it), so they must not tell the bounded run it has caught up: the second part of the stream is
    only in Kafka, and the restored run has to read it (far more events than the job's buffers hold, so
    a run that stops at once cannot have read them by chance)."""
    settings = fault_settings.model_copy(update={"flink_config": {
        **fault_settings.flink_config, "execution.checkpointing.num-retained": "100"}})
    log = tmp_path / "job.log"
    consumer, admin = KafkaConsumer(**client_config(settings)), KafkaAdminClient(**client_config(settings))
    try:
        first = traffic.produce(settings.kafka_bootstrap, settings.source_topic, 200, seed=35, rate=100)
        job = JobProcess(settings, log)
        span = offsets_span(consumer, settings.source_topic)
        _wait_for("a checkpoint covering the first part", lambda: span.covered(
            committed_offsets(admin, settings.group_id, settings.source_topic)), 300, job)
        # Committed means completed: the newest checkpoint now holds the end of the first part, nothing after.
        older = max(_checkpoints(settings), key=lambda chk: int(chk.name.removeprefix("chk-")))
        second = traffic.produce(settings.kafka_bootstrap, settings.source_topic, 2000, seed=36, rate=1000,
                                 start_ms=first[-1]["timestamp"] + 25)
        span = offsets_span(consumer, settings.source_topic)
        _wait_for("a checkpoint covering both parts", lambda: span.covered(
            committed_offsets(admin, settings.group_id, settings.source_topic)), 300, job)
        job.kill()
    finally:
        consumer.close()
        admin.close()
    final = JobProcess(settings, log, "--restore", older.as_uri(), "--bounded")
    assert final.wait(300) == 0, log.read_text()[-3000:]
    report = compare(settings, first + second)
    assert [row for row in report.rows if not row.ok and "DLQ" not in row.what] == []
    # MongoDB and InfluxDB writes are idempotent; a Kafka topic keeps what the first run committed after
    # that checkpoint, so the second part's dead letters are there twice, and the first part's once.
    reasons = Counter(t["malformed"] for t in first if t["malformed"])
    reasons.update({reason: 2 * n for reason, n in Counter(t["malformed"] for t in second if t["malformed"]).items()})
    assert Counter(dead["reason"] for dead in report.dead_letters) == reasons
