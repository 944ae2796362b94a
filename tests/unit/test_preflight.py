"""The checks at submission (flink_jobs/preflight.py): the topic check where the Python client cannot connect like
the job."""

import json
import logging

from flink_jobs.preflight import check_topics
from flink_jobs.settings import load_settings


def test_the_topic_check_is_skipped_loudly_where_the_python_client_cannot_connect_like_the_job(monkeypatch, caplog):
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SSL_TRUSTSTORE_PATH", "/etc/kafka/truststore.jks")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # nothing listens: a check would fail
    with caplog.at_level(logging.WARNING, logger="llm_audit.preflight"):
        assert check_topics(load_settings(), timeout_s=1) is None
    [record] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "llm_audit.preflight"]
    assert record["event"] == "kafka_topics_not_checked" and "JKS" in record["why"]
