"""Settings and topics Flink would refuse late are refused at submission, with the fix: before any Flink job
(no MiniCluster starts here)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from flink_jobs.streaming import job
from flink_jobs.preflight import TopicError, check_topics
from tests.integration.conftest import job_env

LLM_AUDIT = str(Path(sys.executable).parent / "llm-audit")


@pytest.fixture
def settings(isolated_job):
    return isolated_job("pre", local=False)


@pytest.fixture
def no_flink(monkeypatch):
    """Fails the test if the job gets as far as a Flink environment."""
    monkeypatch.setattr(job, "create_env", lambda settings: pytest.fail("a Flink environment was created"))


def test_a_missing_rules_topic_stops_the_submission_naming_it_and_how_to_create_it(settings, no_flink):
    missing = settings.model_copy(update={"rules_topic": settings.rules_topic + "-missing"})
    with pytest.raises(TopicError) as err:
        job.build_job(missing)
    message = str(err.value)
    assert f"LLM_AUDIT_RULES_TOPIC='{missing.rules_topic}' does not exist; create it (kafka-topics.sh " in message
    assert f"--bootstrap-server {settings.kafka_bootstrap} --create --topic {missing.rules_topic} --partitions 1 " \
           "--config cleanup.policy=compact) or set LLM_AUDIT_RULES_TOPIC to an existing topic" in message
    assert "SOURCE_TOPIC" not in message and "DLQ_TOPIC" not in message


def test_every_missing_topic_is_named_at_once_and_the_dlq_only_with_the_dead_letters_output(settings, no_flink):
    missing = settings.model_copy(update={"source_topic": settings.source_topic + "-missing",
                                          "dlq_topic": settings.dlq_topic + "-missing", "parallelism": 3})
    with pytest.raises(TopicError, match=r"LLM_AUDIT_SOURCE_TOPIC='[^']+-missing' does not exist; create it "
                                         r"\(.* --partitions 3\) .*; LLM_AUDIT_DLQ_TOPIC='[^']+-missing' does not exist"):
        check_topics(missing)
    without_dlq = missing.model_copy(update={"source_topic": settings.source_topic, "outputs": ["violations"]})
    assert check_topics(without_dlq) is None  # the DLQ is not written: not checked


def test_existing_topics_pass_and_the_dead_letter_topics_record_limit_is_read(settings):
    assert check_topics(settings) == 1048588  # Kafka's default max.message.bytes


def test_unreachable_brokers_are_a_connection_error_within_the_timeout(settings):
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=r"Kafka is not reachable at LLM_AUDIT_KAFKA_BOOTSTRAP=127.0.0.1:1\b"):
        check_topics(settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"}), timeout_s=2)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("var, value, expected", [
    ("LLM_AUDIT_RULES_TOPIC", "pre-missing.audit-rules",
     "LLM_AUDIT_RULES_TOPIC='pre-missing.audit-rules' does not exist; create it (kafka-topics.sh"),
    ("LLM_AUDIT_CHECKPOINT_DIR", "/var/lib/audit/ckpt",
     "LLM_AUDIT_CHECKPOINT_DIR='/var/lib/audit/ckpt': has no scheme; Flink needs a URI such as "
     "file:///var/lib/audit/ckpt or s3://bucket/path"),
])
def test_the_cli_prints_the_error_and_no_trace(settings, var, value, expected):
    result = subprocess.run([LLM_AUDIT, "run", "audit", "--bounded"], capture_output=True, text=True, timeout=120,
                            env={**job_env(settings), var: value})
    assert result.returncode == 1, result.stderr
    assert expected in " ".join(result.stderr.split())  # the console wraps long lines
    assert "Traceback" not in result.stderr and "java" not in result.stderr.lower()


def test_a_dead_letter_topic_that_refuses_the_largest_dead_letter_stops_the_submission(settings):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource

    def limit(value: str) -> None:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        try:
            admin.alter_configs([ConfigResource("TOPIC", settings.dlq_topic, {"max.message.bytes": value})])
        finally:
            admin.close()

    limit("500000")
    try:
        with pytest.raises(TopicError, match=r"takes records of up to 500000 bytes .* max.message.bytes=1048588"):
            check_topics(settings)
    finally:
        limit("1048588")
