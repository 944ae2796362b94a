"""`llm-audit replay`: re-audit a past time range of the source topic with a given ruleset.

The range is selected by Kafka record time (what the broker's time index can seek to). The job
is the audit job, bounded: it starts at the first record at or after --from and stops before the
first at or after --to, and writes violations only, into their own collection, under a consumer
group of their own, so the live job, its metrics and its dead letters are untouched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


def parse_time(value: str) -> int:
    """ISO 8601 (naive means UTC) or epoch milliseconds -> epoch ms."""
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a time: use ISO 8601 (2026-12-01T10:00:00Z) or epoch milliseconds") from None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp() * 1000)


@dataclass(frozen=True)
class Span:
    """Per partition: the first offset in the range and the first after it."""

    start: dict[int, int]
    end: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.end[p] - self.start[p] for p in self.end)

    def done(self, committed: dict[int, int]) -> int:
        return sum(min(max(committed.get(p, self.start[p]), self.start[p]), self.end[p]) - self.start[p]
                   for p in self.end)


def offsets_span(consumer, topic: str, from_ms: int, to_ms: int) -> Span:
    """The offsets a replay of [from_ms, to_ms) reads, from the broker's time index."""
    from kafka import TopicPartition

    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not partitions:
        raise ValueError(f"topic {topic!r} does not exist or has no partitions")
    ends = consumer.end_offsets(partitions)

    def at(ms: int) -> dict[int, int]:
        found = consumer.offsets_for_times({tp: ms for tp in partitions})
        return {tp.partition: found[tp].offset if found[tp] is not None else ends[tp] for tp in partitions}

    return Span(at(from_ms), at(to_ms))


def committed_offsets(admin, group_id: str, topic: str) -> dict[int, int]:
    offsets = admin.list_consumer_group_offsets(group_id)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


def run_replay(settings, from_ms: int, to_ms: int, progress) -> int:
    """Run the bounded job; progress(done, total) as the job commits offsets (at each checkpoint).

    Returns the number of records in the range.
    """
    from kafka import KafkaAdminClient, KafkaConsumer

    from flink_jobs.audit_job import build_job

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        span = offsets_span(consumer, settings.source_topic, from_ms, to_ms)
        progress(0, span.total)
        if span.total == 0:
            return 0
        client = build_job(settings, between_ms=(from_ms, to_ms)).execute_async(f"llm-audit-replay-{settings.group_id}")
        while True:
            status = client.get_job_status().result().name
            progress(span.done(committed_offsets(admin, settings.group_id, settings.source_topic)), span.total)
            if status in ("FINISHED", "FAILED", "CANCELED"):
                break
            time.sleep(1)
        client.get_job_execution_result().result()  # raises the job's failure, if it failed
        progress(span.total, span.total)
        return span.total
    finally:
        consumer.close()
        admin.close()


def rule_counts(settings, collection: str, from_ms: int, to_ms: int) -> dict[str, int]:
    """Violations per rule in a collection, for events whose event time is in [from_ms, to_ms)."""
    from pymongo import MongoClient

    start, stop = (datetime.fromtimestamp(ms / 1000, tz=timezone.utc) for ms in (from_ms, to_ms))
    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        coll = client[settings.mongo_database][collection]
        docs = coll.find({"event_time": {"$gte": start, "$lt": stop}}, {"rule_id": 1})
        counts: dict[str, int] = {}
        for doc in docs:
            counts[doc["rule_id"]] = counts.get(doc["rule_id"], 0) + 1
    return counts


def replay_settings(settings, rules: Path, collection: str, checkpoint_dir: str):
    """The live job's settings turned into a replay's: own group, own collection, violations only."""
    return settings.model_copy(update={
        "rules_path": rules, "violations_collection": collection, "outputs": ["violations"],
        "ruleset_name": f"replay-{collection}",  # no push on the rules topic matches: the file's rules run
        "group_id": f"{settings.group_id}-{collection}", "bounded": True,
        "checkpoint_dir": checkpoint_dir, "restore_from": None,
        "checkpoint_interval_ms": min(settings.checkpoint_interval_ms, 2000),  # progress comes with checkpoints
    })
