"""Parsing and validating an event, where it first reaches Python: in ScoreEvents with scorers, else in
AuditEvents. Whatever does not parse becomes a dead letter with its reason and its time."""

from __future__ import annotations

from pyflink.common import Instant

from flink_jobs.pyflink_internals import epoch_ms
from udfs.events import AuditEvent, EventError, FieldBounds, dead_letter, parse_event

_DLQ_MAX_AHEAD_MS = 3_000_000  # under Kafka's default message.timestamp.after.max.ms (1 h), with a margin


def dead_letter_time(arrival_ms: int, watermark_ms: int) -> int:
    """The time of a dead letter's record: its message's arrival (Kafka record time), unless the
    event-time watermark has passed that, then just past the watermark, at most 50 minutes after its
    arrival. A dead letter has no event time of its own: it counts in the window of its arrival, or
    in the first window still open. Arrival times of several partitions read one after another are
    out of order by as much as a backlog, so no watermark derived from them would hold.

    Events stamped far in the future (a producer's clock) move the watermark past the wall clock; the
    DLQ's broker refuses a record more than an hour ahead of its own time (message.timestamp.after.max.ms),
    which would fail the job over and over. Such a dead letter is late for its window instead.
    """
    return min(max(arrival_ms, watermark_ms + 1), arrival_ms + _DLQ_MAX_AHEAD_MS)


def parse_or_dead_letter(
    value: str, arrival: Instant, watermark_ms: int, bounds: FieldBounds = FieldBounds()
) -> tuple[AuditEvent | None, tuple | None]:
    """(event, None) for a valid audit event; for anything else (None, (its dead-letter record, time ms))."""
    try:
        return parse_event(value, bounds), None
    except EventError as error:
        return None, (dead_letter(value, error), dead_letter_time(epoch_ms(arrival), watermark_ms))
