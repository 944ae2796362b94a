"""The audit-rules topic: rulesets pushed by rule authors, one record per push (compacted by name)."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

from udfs.rules import RuleSet


def push_record(ruleset: RuleSet, name: str, version: int, author: str | None, message: str) -> dict:
    """The self-contained record of a push: the validated rules (keyword files inlined) and who/why."""
    return {
        "name": name,
        "version": version,
        "hash": ruleset.content_hash(),
        "author": author or getpass.getuser(),
        "message": message,
        "pushed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rules": ruleset.model_dump(mode="json"),
    }


def latest(kafka: dict, topic: str, name: str) -> dict | None:
    """The newest record pushed under `name`, or None. kafka: flink_jobs.offsets.client_config."""
    found = None
    for value in read_topic(kafka, topic):
        try:
            record = json.loads(value)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("name") == name:
            found = record
    return found


def read_topic(kafka: dict, topic: str) -> list[str]:
    """Every committed message of a topic, oldest first per partition."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **kafka, isolation_level="read_committed", enable_auto_commit=False, consumer_timeout_ms=5000
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        messages: list = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                messages.extend(r.value.decode() for r in records)
        return messages
    finally:
        consumer.close()


def publish(kafka: dict, topic: str, record: dict) -> None:
    from kafka import KafkaAdminClient, KafkaProducer

    admin = KafkaAdminClient(**kafka)
    try:
        if topic not in admin.list_topics():
            raise LookupError(
                f"topic {topic!r} does not exist on {kafka['bootstrap_servers']}; create it with "
                "cleanup.policy=compact (`llm-audit stack up` does, locally)"
            )
    finally:
        admin.close()

    producer = KafkaProducer(**kafka, acks="all")
    try:
        producer.send(topic, key=record["name"].encode(), value=json.dumps(record).encode()).get(timeout=30)
    finally:
        producer.close()
