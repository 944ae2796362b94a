"""Checks at submission: the brokers hold the job's topics (kafka-python, from the submitting process), and
MongoDB and InfluxDB answer with the job's credentials.

Flink would find a missing topic only once the job runs: the source's enumerator fails with
UnknownTopicOrPartitionException inside a long Java trace, and the job restarts into the same failure.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flink_jobs.kafka import ClientConfigError, client_config
from flink_jobs.settings import SettingsError
from udfs.faults import DEAD_LETTER_MAX_BYTES

# A dead letter's bytes and its record's own (key, headers, batch): Kafka's default max.message.bytes.
_DLQ_NEEDS = 1_048_588

log = logging.getLogger("llm_audit.preflight")


class TopicError(SettingsError):
    """A topic of the settings that the brokers do not have (or do not show this client)."""


def check_topics(settings, timeout_s: float = 10) -> int | None:
    """The source and rules topics exist, and the dead-letter topic with the dead_letters output;
    else a TopicError naming each missing topic, its env var and the command that creates it.

    Returns the dead-letter topic's max.message.bytes (None without the dead_letters output, or where
    the brokers do not tell this client), the most a dead letter may weigh on that topic.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        config = client_config(settings)
    except ClientConfigError as exc:  # the job's Java clients can still connect: a check skipped, said so
        log.warning(json.dumps({"event": "kafka_topics_not_checked", "why": str(exc)}))
        return None
    topics = {"LLM_AUDIT_SOURCE_TOPIC": settings.source_topic, "LLM_AUDIT_RULES_TOPIC": settings.rules_topic}
    if "dead_letters" in settings.outputs:
        topics["LLM_AUDIT_DLQ_TOPIC"] = settings.dlq_topic
    ms = int(timeout_s * 1000)
    try:
        admin = KafkaAdminClient(**config, bootstrap_timeout_ms=ms, request_timeout_ms=ms)
    except KafkaError as exc:
        raise ConnectionError(
            f"Kafka is not reachable at LLM_AUDIT_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}: {exc!r}"
        ) from None
    try:
        problems = _topic_problems(admin, topics)
        # A topic created a moment ago may not be in every broker's metadata yet.
        for _ in range(3):
            if not problems:
                break
            time.sleep(0.5)
            problems = _topic_problems(admin, topics)
        if problems:
            raise TopicError(
                f"Kafka at {settings.kafka_bootstrap}: "
                + "; ".join(_explain(var, topics[var], error, settings) for var, error in problems.items())
            )
        limit = _dlq_max_message_bytes(admin, settings.dlq_topic) if "LLM_AUDIT_DLQ_TOPIC" in topics else None
        if limit is not None and limit < _DLQ_NEEDS:
            raise TopicError(
                f"LLM_AUDIT_DLQ_TOPIC={settings.dlq_topic!r} takes records of up to {limit} bytes (max.message.bytes), "
                f"and a dead letter may weigh {DEAD_LETTER_MAX_BYTES} bytes: raise it (kafka-configs.sh --bootstrap-server "
                f"{settings.kafka_bootstrap} --alter --entity-type topics --entity-name {settings.dlq_topic} "
                f"--add-config max.message.bytes={_DLQ_NEEDS})"
            )
        return limit
    except KafkaError as exc:
        raise ConnectionError(f"Kafka at LLM_AUDIT_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}: {exc!r}") from None
    finally:
        admin.close()


def _topic_problems(admin, topics: dict[str, str]) -> dict[str, type]:
    """{env var: the Kafka error class} of each topic the brokers do not serve this client."""
    from kafka.errors import InvalidTopicError, TopicAuthorizationFailedError, UnknownTopicOrPartitionError, for_code

    described = {topic["name"]: topic for topic in admin.describe_topics(sorted(set(topics.values())))}
    problems = {}
    for var, name in topics.items():
        error = for_code(described[name]["error_code"]) if name in described else UnknownTopicOrPartitionError
        # Other errors (a leader being elected) are passing: the topic is there.
        if error in (UnknownTopicOrPartitionError, TopicAuthorizationFailedError, InvalidTopicError):
            problems[var] = error
    return problems


def _explain(var: str, topic: str, error: type, settings) -> str:
    from kafka.errors import TopicAuthorizationFailedError, UnknownTopicOrPartitionError

    if error is TopicAuthorizationFailedError:
        return (
            f"{var}={topic!r}: this client may not describe the topic; grant the job's user "
            f"({settings.kafka_sasl_username or 'its principal'}) DESCRIBE and "
            f"{'WRITE' if var == 'LLM_AUDIT_DLQ_TOPIC' else 'READ'} on it"
        )
    if error is not UnknownTopicOrPartitionError:
        return f"{var}={topic!r}: {error.__name__}"
    # A partition per source subtask; the rules topic takes one, so that pushes stay in order.
    partitions = settings.parallelism if var == "LLM_AUDIT_SOURCE_TOPIC" else 1
    compact = " --config cleanup.policy=compact" if var == "LLM_AUDIT_RULES_TOPIC" else ""
    return (
        f"{var}={topic!r} does not exist; create it (kafka-topics.sh --bootstrap-server {settings.kafka_bootstrap} "
        f"--create --topic {topic} --partitions {partitions}{compact}) or set {var} to an existing topic"
    )


def _dlq_max_message_bytes(admin, topic: str) -> int | None:
    from kafka.admin import ConfigResource
    from kafka.errors import KafkaError

    try:
        configs = admin.describe_configs([ConfigResource("TOPIC", topic, ["max.message.bytes"])], config_filter="all")
        value = configs["topic"][topic]["max.message.bytes"]["value"]
    except (KafkaError, KeyError, TypeError):  # no DESCRIBE_CONFIGS permission: the sink finds out
        log.warning("could not read max.message.bytes of the dead-letter topic %s", topic)
        return None
    log.info("dead-letter topic %s takes records of up to %s bytes (max.message.bytes)", topic, value)
    return int(value)


def check_reachable(mongo_uri: str, influx_url: str, influx_token: str, influx_org: str, timeout_s: float = 10) -> None:
    """At submission, not on a worker: a wrong endpoint or credential is a config error, named at once.

    At run time the same failure is an outage and retried; here it stops the submission.
    """
    from influxdb_client import InfluxDBClient
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    try:
        mongo: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=int(timeout_s * 1000))
        with mongo:
            mongo.admin.command("ping")
    except PyMongoError as exc:
        raise ConnectionError(f"MongoDB is not reachable with LLM_AUDIT_MONGO_URI: {exc}") from None
    with InfluxDBClient(url=influx_url, token=influx_token, org=influx_org, timeout=int(timeout_s * 1000)) as client:
        if not client.ping():
            raise ConnectionError(f"InfluxDB at LLM_AUDIT_INFLUX_URL={influx_url} does not answer /ping")
