"""The records that cross between the streaming job's operators, their output tags, and how the keyed ones
are keyed."""

from __future__ import annotations

import zlib
from typing import NamedTuple

from pyflink.common import Row, Types
from pyflink.datastream import OutputTag

from udfs.archive import ARCHIVE_COLUMNS
from udfs.events import AuditEvent
from udfs.faults import Failure
from udfs.findings import Finding
from udfs.rules import Rule
from udfs.scorers.suite import MEASURED

# Records that a keyed operator downstream reads are Row(key, value), keyed in Java by their first
# field (flink_jobs.pyflink_internals.keyed): PyFlink's key_by would add a Python operator, i.e. one
# more round trip between the JVM and the Python worker for every record.
# Row(bucket, value): violation documents, rule changes, anomalies and points on their way to the
# writers, and sequence-rule hits on theirs to SequenceRules.
BUCKETED = Types.ROW([Types.INT(), Types.PICKLED_BYTE_ARRAY()])

# Sequence-rule hits are keyed by one of this many buckets of their (rule, key) pair, whatever the
# job's parallelism: a pair must find its earlier hits in the same bucket after a rescale.
SEQUENCE_BUCKETS = 64


def bucket(key: str, buckets: int) -> int:
    """Spreads elements over batching keys; crc32 is stable across processes, unlike hash()."""
    return zlib.crc32(key.encode()) % buckets


def bucketed(key: str, value, buckets: int) -> Row:
    """A BUCKETED record of `value`, in the bucket of `key`."""
    return Row(bucket(key, buckets), value)


# Row(raw event JSON, arrival): the events as Flink SQL hands them to Python (sources.timed_events).
TIMED_EVENT = Types.ROW([Types.STRING(), Types.INSTANT()])


class ScoredEvent(NamedTuple):
    """An event with its model scores, from ScoreEvents to AuditEvents (which parses unscored events itself)."""

    event: AuditEvent
    scores: dict  # {field: {label: score}}
    evidence: dict  # {field: evidence}
    failures: list[Failure]  # the scorers' failures on it
    arrival_ms: int


class SequenceHit(NamedTuple):
    """An event's hit of a sequence rule, on its way to SequenceRules."""

    rule_id: str
    key: str  # the value of the rule's group_by field
    time_ms: int
    rule: Rule
    event_id: str
    context: dict  # violation_context of the event


def sequence_ticks():
    """A tick (no hit) for every sequence bucket: AuditEvents sends them once per instance, so that each
    bucket's SequenceRules re-registers the timers of its restored hits (batching.RestoredTimers)."""
    return (Row(b, None) for b in range(SEQUENCE_BUCKETS))


# One row per audited event (events 1) or fired sequence rule (events 0; counted in the `violations`
# points only). rule_keys: "rule_id<TAB>category<TAB>severity" per violation, one per line;
# categories: ",cat1,cat2," of the event's violations. NULL where there is none.
AUDITED_FIELDS = {
    "tenant": Types.STRING(),
    "model": Types.STRING(),
    "time_ms": Types.LONG(),
    "events": Types.INT(),
    "violations": Types.INT(),
    "rule_keys": Types.STRING(),
    "categories": Types.STRING(),
    "tokens": Types.LONG(),
    "cost_usd": Types.DOUBLE(),
    "latency_ms": Types.DOUBLE(),
    **{scorer: Types.DOUBLE() for scorer in MEASURED},
}
AUDITED = Types.ROW_NAMED(list(AUDITED_FIELDS), list(AUDITED_FIELDS.values()))


def _rule_key(finding: Finding) -> str:
    return f"{finding.rule_id}\t{finding.category}\t{finding.severity}"


def audited_row(event, findings: list[Finding], scores: dict) -> Row:
    """An audited event as its AUDITED row; scores: {field: {scorer: score}}, the highest counts."""
    top = {scorer: max((s[scorer] for s in scores.values() if scorer in s), default=None) for scorer in MEASURED}
    return Row(
        event.tenant,
        event.model,
        event.timestamp,
        1,
        len(findings),
        "\n".join(map(_rule_key, findings)) or None,
        f",{','.join(sorted({f.category for f in findings}))}," if findings else None,
        (event.prompt_tokens or 0) + (event.completion_tokens or 0),
        event.cost_usd or 0.0,
        None if event.latency_ms is None else float(event.latency_ms),
        *top.values(),
    )


def sequence_row(tenant: str, model: str, time_ms: int, finding: Finding) -> Row:
    """A fired sequence rule's violation, for the `violations` points of its window."""
    return Row(tenant, model, time_ms, 0, 0, _rule_key(finding), None, 0, 0.0, None, *(None for _ in MEASURED))


# The archive's rows (udfs.archive.archive_record), typed so that Flink SQL's Parquet writer can take them:
# Flink's type of each udfs.archive.ColumnType, by its SQL name (the archive declares its other types).
_FLINK_TYPES = {
    "STRING": Types.STRING(),
    "INT": Types.INT(),
    "BIGINT": Types.LONG(),
    "DOUBLE": Types.DOUBLE(),
    "BYTES": Types.PRIMITIVE_ARRAY(Types.BYTE()),
}
ARCHIVED = Types.ROW_NAMED(list(ARCHIVE_COLUMNS), [_FLINK_TYPES[kind] for kind in ARCHIVE_COLUMNS.values()])


# (dead-letter record, its time: the message's Kafka record time, or just past the operator's event-time
# watermark if that is later, so that a dead letter is never late for its window (see parse_or_dead_letter))
DEAD_LETTER = Types.TUPLE([Types.STRING(), Types.LONG()])
DEAD_LETTERS = OutputTag("dead-letters", DEAD_LETTER)
VIOLATIONS = OutputTag("violations", BUCKETED)
RULE_CHANGES = OutputTag("rule-changes", BUCKETED)
RULES_POINTS = OutputTag("rules-points", BUCKETED)  # udfs.metrics.rules_point, after each push
# A BUCKETED hit (a SequenceHit) per sequence-rule hit, and a tick (None) per bucket (see SequenceRules).
SEQUENCE_HITS = OutputTag("sequence-hits", BUCKETED)
# An ARCHIVED row per valid event, for the Parquet archive.
ARCHIVE = OutputTag("archive", ARCHIVED)

# The point of each anomaly. A side output, not a Python operator after DetectAnomalies: PyFlink
# would chain the two, and its chaining trips over the job's diamonds with a uid hash collision.
ANOMALY_POINTS = OutputTag("anomaly-points", BUCKETED)
