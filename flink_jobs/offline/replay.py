"""`llm-audit replay`: re-audit a past time range of the source topic with a given ruleset.

The range is selected by Kafka record time (what the broker's time index can seek to). The job
is the audit job, bounded: it starts at the first record at or after --from and stops before the
first at or after --to, and writes violations only, into their own collection, under a consumer
group of their own, so the live job, its metrics and its dead letters are untouched. Violations of
erased users' data (flink_jobs.tombstones) are deleted from that collection once the job has ended,
so a replay never brings back what an erasure removed, even one recorded while it ran.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from flink_jobs.kafka import client_config, committed_offsets, offsets_span
from flink_jobs.offline.erasure import purge
from flink_jobs.offline.reaudit import Comparison, reaudit_settings, rule_counts, run_job
from flink_jobs.settings import AuditJobSettings


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


def run_replay(settings: AuditJobSettings, from_ms: int, to_ms: int, progress: Callable[[int, int], object]) -> int:
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

        def purge_erased() -> None:  # after the job's last write, whatever the outcome
            if "violations" in settings.outputs:
                purge(settings.mongo_uri.get_secret_value(), settings.mongo_database, settings.violations_collection)

        # Progress: the group's committed offsets, watched while the job runs.
        run_job(
            lambda: env.execute(f"llm-audit-replay-{settings.group_id}"),
            "replay-job",
            watch=lambda: progress(
                span.done(committed_offsets(admin, settings.group_id, settings.source_topic)), span.total
            ),
            ended=purge_erased,
        )
        progress(span.total, span.total)
        return span.total
    finally:
        consumer.close()
        admin.close()


def replay_settings(settings: AuditJobSettings, rules: Path, collection: str, checkpoint_dir: str) -> AuditJobSettings:
    """The live job's settings turned into a replay's: own group, own collection, violations only."""
    return reaudit_settings(
        settings,
        rules,
        collection,
        f"replay-{collection}",
        group_id=f"{settings.group_id}-{collection}",
        bounded=True,
        checkpoint_dir=checkpoint_dir,
        checkpoint_interval_ms=min(settings.checkpoint_interval_ms, 2000),  # progress comes with checkpoints
    )


def compare_with_live(settings: AuditJobSettings, live_collection: str, from_ms: int, to_ms: int) -> Comparison:
    """The replay's violations by rule beside the live job's, for events whose event time is in the range."""
    return Comparison(
        rule_counts(settings, settings.violations_collection, from_ms, to_ms),
        rule_counts(settings, live_collection, from_ms, to_ms),
    )
