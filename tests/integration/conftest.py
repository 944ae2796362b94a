import json
import os

import pytest
from pymongo import MongoClient

from devstack import stack
from flink_jobs.local import local_job_settings
from flink_jobs.settings import load_settings


@pytest.fixture
def isolated_job(stack_settings, run_id, tmp_path_factory):
    """Factory of job settings on the local stack with this test's own topics and databases."""
    made = []

    def make(prefix: str, *, local: bool = True, **overrides):
        names = {
            "kafka_bootstrap": stack_settings.kafka_bootstrap,
            "source_topic": f"{prefix}-{run_id}.model-audit-logs",
            "dlq_topic": f"{prefix}-{run_id}.model-audit-dlq",
            "rules_topic": f"{prefix}-{run_id}.audit-rules",
            "group_id": f"{prefix}-{run_id}",
            "mongo_uri": stack_settings.mongo_uri,
            "mongo_database": f"llm_audit_{prefix}_{run_id}",
            "influx_url": stack_settings.influx_url,
            "influx_bucket": f"llm_audit_{prefix}_{run_id}/autogen",
            "archive_dir": tmp_path_factory.mktemp(f"archive-{prefix}").as_uri(),
            "checkpoint_interval_ms": 1000,
            "restart_attempts": 0,  # a failing job fails the test instead of restarting
            "bounded": True,
        }
        settings = (local_job_settings if local else load_settings)(**{**names, **overrides})
        stack.create_job_topics(settings.kafka_bootstrap, settings.source_topic, settings.dlq_topic, settings.rules_topic)
        stack.create_influx_database(settings.influx_url, settings.influx_bucket.split("/")[0])
        made.append(settings)
        return settings

    yield make
    for settings in made:
        with MongoClient(settings.mongo_uri.get_secret_value()) as client:
            client.drop_database(settings.mongo_database)


# This process's environment before any test ran: an in-process (loopback) PyFlink worker later
# copies its own variables into os.environ, and a child that inherited them would take itself for a
# worker (PYFLINK_GATEWAY_DISABLED) or look for "bin/java" (an empty JAVA_HOME).
_ENV_AT_START = dict(os.environ)


def child_env() -> dict[str, str]:
    """An environment for a child Python process that starts its own PyFlink gateway."""
    return dict(_ENV_AT_START)


def job_env(settings) -> dict[str, str]:
    """The settings as the LLM_AUDIT_* variables of a job process (`llm-audit run audit`, `replay`)."""
    env = {k: v for k, v in child_env().items() if not k.startswith("LLM_AUDIT_") or k.startswith("LLM_AUDIT_STACK")}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        value = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"LLM_AUDIT_{name.upper()}"] = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return env


def produce(bootstrap: str, topic: str, messages) -> None:
    """Write (Kafka timestamp ms or None: now, key or None, value) messages to a topic, all acknowledged."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    try:
        for ts, key, value in messages:
            producer.send(topic, value=value.encode(), key=key.encode() if key else None, timestamp_ms=ts)
        producer.flush()
    finally:
        producer.close()


@pytest.fixture
def unscored_rules(tmp_path):
    """The default rules but those that need a model (names, score rules): for a job without scorers,
    with the lists they name."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "rules"
    default = (root / "default.yaml").read_text()
    names = slice(default.index("  # Names need a model"), default.index("  - id: secret.credential"))
    unscored = default[: names.start] + default[names.stop : default.index("  - id: toxicity.high")]
    (tmp_path / "rules.yaml").write_text(unscored)
    (tmp_path / "lists").symlink_to(root / "lists")
    return tmp_path / "rules.yaml"
