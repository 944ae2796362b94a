"""The audit-rules topic: rulesets pushed by rule authors, one record per push (compacted by name)."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

from udfs.rules import RuleSet, rules_digest, short_hash


def push_record(ruleset: RuleSet, name: str, version: int, author: str | None, message: str) -> dict:
    """The self-contained record of a push: the validated rules (keyword files inlined), their full
    SHA-256 (`sha256`, what a signature covers) and short display hash, and who/why."""
    rules = ruleset.model_dump(mode="json")
    return {
        "name": name,
        "version": version,
        "sha256": rules_digest(rules),
        "hash": ruleset.content_hash(),
        "author": author or getpass.getuser(),
        "message": message,
        "pushed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rules": rules,
    }


def junk_reason(record: object) -> str | None:
    """Why a topic record is not a well-formed push (None: it is): not an object, a field missing or of the
    wrong type, or rules that are not those its `sha256` and `hash` name. Reads the raw record only."""
    if not isinstance(record, dict):
        return "not a JSON object"
    fields = {"name": str, "version": int, "sha256": str, "hash": str, "author": str, "message": str,
              "pushed_at": str, "rules": dict}  # fmt: skip
    for field, kind in fields.items():
        value = record.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"field {field!r} missing or not a {kind.__name__}"
    if record["version"] < 1:
        return f"version {record['version']} is not a whole number >= 1"
    if rules_digest(record["rules"]) != record["sha256"]:
        return "sha256 does not match the rules"
    if short_hash(record["rules"]) != record["hash"]:
        return "hash does not match the rules"
    return None


def records(kafka: dict, topic: str, name: str) -> tuple[list[dict], list[str]]:
    """(the well-formed records pushed under `name`, oldest first; a line per junk record of the topic,
    of any name, saying why it was skipped). kafka: flink_jobs.kafka.client_config."""
    found: list[dict] = []
    junk: list[str] = []
    for offset, value in enumerate(read_topic(kafka, topic)):
        try:
            record = json.loads(value)
        except json.JSONDecodeError:
            junk.append(f"message #{offset}: not JSON")
            continue
        reason = junk_reason(record)
        if reason is not None:
            junk.append(f"message #{offset}: {reason}")
        elif record["name"] == name:
            found.append(record)
    return found, junk


def latest(kafka: dict, topic: str, name: str) -> dict | None:
    """The newest well-formed record pushed under `name`, or None (junk is skipped: see records)."""
    found, _ = records(kafka, topic, name)
    return found[-1] if found else None


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
