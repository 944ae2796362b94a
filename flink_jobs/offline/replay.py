"""`llm-audit replay`: re-audit a past time range of the source topic with a given ruleset.

The range is selected by Kafka record time (what the broker's time index can seek to). The job
is the audit job, bounded: it starts at the first record at or after --from and stops before the
first at or after --to, and writes violations only, into their own collection, under a consumer
group of their own, so the live job, its metrics and its dead letters are untouched. Violations of
erased users' data (flink_jobs.tombstones) are deleted from that collection once the job has ended,
so a replay never brings back what an erasure removed, even one recorded while it ran.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flink_jobs.kafka import client_config, committed_offsets, offsets_span
from flink_jobs.offline.erasure import purge


def parse_time(value: str) -> int:
    """ISO 8601 (naive means UTC) or epoch milliseconds -> epoch ms."""
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a time: use ISO 8601 (2026-12-01T10:00:00Z) or epoch milliseconds"
        ) from None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp() * 1000)


def run_replay(settings, from_ms: int, to_ms: int, progress) -> int:
    """Run the bounded job; progress(done, total) as the job commits offsets (at each checkpoint).

    Returns the number of records in the range.
    """
    from kafka import KafkaAdminClient, KafkaConsumer

    from flink_jobs.streaming.job import build_job

    consumer = KafkaConsumer(**client_config(settings))
    admin = KafkaAdminClient(**client_config(settings))
    try:
        span = offsets_span(consumer, settings.source_topic, from_ms, to_ms)
        progress(0, span.total)
        if span.total == 0:
            return 0
        env = build_job(settings, between_ms=(from_ms, to_ms))
        failure: list[BaseException] = []

        def execute():
            try:
                env.execute(f"llm-audit-replay-{settings.group_id}")
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(exc)

        # A bounded local job takes its MiniCluster down when it ends: run it, watch the group's offsets.
        job = threading.Thread(target=execute, name="replay-job")
        job.start()
        while job.is_alive():
            progress(span.done(committed_offsets(admin, settings.group_id, settings.source_topic)), span.total)
            job.join(1)
        if "violations" in settings.outputs:  # after its last write, whatever the outcome
            purge(settings.mongo_uri.get_secret_value(), settings.mongo_database, settings.violations_collection)
        if failure:
            raise failure[0]
        progress(span.total, span.total)
        return span.total
    finally:
        consumer.close()
        admin.close()


def rule_counts(settings, collection: str, from_ms: int, to_ms: int) -> dict[str, int]:
    """Violations per rule in a collection, for events whose event time is in [from_ms, to_ms)."""
    from pymongo import MongoClient

    start, stop = (datetime.fromtimestamp(ms / 1000, tz=UTC) for ms in (from_ms, to_ms))
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_uri.get_secret_value())
    with client:
        coll = client[settings.mongo_database][collection]
        return dict(
            Counter(doc["rule_id"] for doc in coll.find({"event_time": {"$gte": start, "$lt": stop}}, {"rule_id": 1}))
        )


def replay_settings(settings, rules: Path, collection: str, checkpoint_dir: str):
    """The live job's settings turned into a replay's: own group, own collection, violations only."""
    return settings.model_copy(
        update={
            "rules_path": rules,
            "violations_collection": collection,
            "outputs": ["violations"],
            "ruleset_name": f"replay-{collection}",  # no push on the rules topic matches: the file's rules run
            "group_id": f"{settings.group_id}-{collection}",
            "bounded": True,
            "checkpoint_dir": checkpoint_dir,
            "restore_from": None,
            "checkpoint_interval_ms": min(settings.checkpoint_interval_ms, 2000),  # progress comes with checkpoints
        }
    )
