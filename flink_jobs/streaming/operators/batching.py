"""Keyed batching: the writers' buffers and the scorer's batches, in checkpointed keyed state."""

from __future__ import annotations

import json
import time

from pyflink.common import Row, Types
from pyflink.datastream import TimeDomain
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from flink_jobs.pyflink_internals import epoch_ms
from flink_jobs.streaming.operators.audit import DEAD_LETTERS, parse_or_dead_letter
from udfs.events import AuditEvent, FieldBounds
from udfs.faults import Failure, failure_dead_letter
from udfs.findings import EVENT_CONTEXT, violation_id
from udfs.scorers import ScorersConfig, ScorerSuite

END_OF_INPUT = 2**63 - 2  # an event-time timer only the final watermark of a bounded input reaches


class RestoredTimers:
    """Which keys' timers this worker has registered since it started.

    PyFlink registers the timers a Python function asks for in the JVM only after the bundle
    that asked (flink-python 2.3: a mailbox action per timer, not drained before a snapshot), so
    a checkpoint can hold a key's state without the timers that go with it. Restored from such a
    checkpoint, the key would never fire: functions re-register a key's timers from its state the
    first time this instance sees the key (a restore opens new instances). The same lag lets the
    final watermark of a bounded input overtake timers asked for in its last bundles: functions
    also register an end-of-input timer at first sight, long before.
    """

    def __init__(self) -> None:
        self._seen: set = set()

    def first_sight(self, ctx) -> bool:
        key = ctx.get_current_key()
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


class BatchingFunction(KeyedProcessFunction):
    """Buffers elements in keyed list state and hands them to `_flush_batch` in batches.

    A batch is flushed when `max_batch` elements are buffered, when the oldest has waited
    `max_wait_ms` (processing time), at the end of a bounded input, and with `on_event_time` when
    the watermark reaches its earliest element's `_time_of`: the watermark then passes on
    downstream only after the elements it covers (PyFlink forwards it once the timers it fired have
    run, in both modes). The buffer is checkpointed state: a restart from a checkpoint flushes what
    was buffered when it was taken.
    """

    def __init__(self, name: str, max_batch: int, max_wait_ms: int, on_event_time: bool = False):
        self._name, self._max_batch, self._max_wait_ms = name, max_batch, max_wait_ms
        self._on_event_time = on_event_time

    def _time_of(self, value) -> int:
        return 0

    def open(self, runtime_context: RuntimeContext):
        self._buffer = runtime_context.get_list_state(
            ListStateDescriptor(f"{self._name}-buffer", Types.PICKLED_BYTE_ARRAY())
        )
        # (buffered count, processing-time deadline of the oldest, earliest _time_of or None)
        self._pending = runtime_context.get_state(
            ValueStateDescriptor(f"{self._name}-pending", Types.PICKLED_BYTE_ARRAY())
        )
        self._timers = RestoredTimers()

    def _flush_batch(self, items: list):
        raise NotImplementedError

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        self._buffer.add(value)
        timers = ctx.timer_service()
        count, deadline, earliest = self._pending.value() or (0, None, None)
        if count == 0:
            deadline = timers.current_processing_time() + self._max_wait_ms
        if self._timers.first_sight(ctx) or count == 0:
            # A deadline restored from a checkpoint is past: its timer fires at once.
            timers.register_processing_time_timer(deadline)
            timers.register_event_time_timer(END_OF_INPUT)
            if earliest is not None:
                timers.register_event_time_timer(earliest)
        if self._on_event_time and (earliest is None or self._time_of(value) < earliest):
            earliest = self._time_of(value)
            timers.register_event_time_timer(earliest)
        if count + 1 >= self._max_batch:
            yield from self._flush(ctx)
        else:
            self._pending.update((count + 1, deadline, earliest))

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        _, deadline, earliest = self._pending.value() or (0, None, None)
        if deadline is None:
            return  # nothing buffered: the timer of a batch already flushed
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            due = timestamp >= deadline
        else:  # the final watermark flushes every batch
            due = timestamp == END_OF_INPUT or (earliest is not None and timestamp >= earliest)
        if due:
            yield from self._flush(ctx)

    def _flush(self, ctx):
        items = list(self._buffer.get() or [])
        self._buffer.clear()
        self._pending.clear()
        yield from self._flush_batch(items)


class ScoreEvents(BatchingFunction):
    """Keyed by a bucket, fed Row(raw event JSON, arrival): scores the valid events in batches ->
    an audit.Scored per event; the rest -> DEAD_LETTERS.

    Each batch is one forward pass per model. The models load once per worker, in open(). A batch
    is flushed before the watermark passes its earliest event, so the source's watermark (one per
    Kafka partition) holds downstream: no event is late for being scored in a batch.
    """

    def __init__(
        self,
        config: ScorersConfig,
        enabled: tuple[str, ...],
        device: str,
        max_batch: int,
        max_wait_ms: int,
        bounds: FieldBounds = FieldBounds(),
    ):
        super().__init__("score", max_batch, max_wait_ms, on_event_time=True)
        self._config, self._enabled, self._device, self._bounds = config, enabled, device, bounds

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        self._suite = ScorerSuite(self._config, self._enabled, self._device)
        self._suite.open()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):
        event, dead = parse_or_dead_letter(value[0], value[1], ctx.timer_service().current_watermark(), self._bounds)
        if event is None:
            yield DEAD_LETTERS, dead
            return
        yield from super().process_element((event, epoch_ms(value[1])), ctx)

    def _time_of(self, value: tuple[AuditEvent, int]) -> int:
        return value[0].timestamp

    def _flush_batch(self, items: list[tuple[AuditEvent, int]]):
        """-> audit.Scored per event; a batch that raises is scored again event by event (udfs.faults)."""
        # A bare event: buffered by a version before arrival times were (restored from its checkpoint).
        items = [item if isinstance(item, tuple) else (item, item.timestamp) for item in items]
        events = [event for event, _ in items]
        for (event, arrival_ms), (scores, evidence, failures) in zip(items, self._suite.score_events_isolated(events)):
            yield event, scores, evidence, failures, arrival_ms


class BufferedWrite(BatchingFunction):
    """Writes documents or points through a flink_jobs.streaming.sinks.stores writer, in batches: -> a dead letter
    (JSON, time ms) per element the store refused (udfs.faults), for the dead-letter topic.

    The batch is written (retrying through an outage) before the flush returns, so whatever a
    completed checkpoint covers is either stored or still in the checkpointed buffer. An element the
    store refuses (a key or value it does not take) is that element's failure, not the job's: a
    refused violation is replaced by its event's audit.error document, and each is a dead letter.
    """

    def __init__(self, writer, max_batch: int, max_wait_ms: int):
        super().__init__("write", max_batch, max_wait_ms)
        self._writer = writer

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        # key -> the elements this instance buffered and has not flushed: what close() can still see
        self._unflushed: dict = {}
        self._writer.open()

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        self._unflushed.setdefault(ctx.get_current_key(), []).append(value)
        yield from super().process_element(value, ctx)

    def _flush(self, ctx):
        self._unflushed.pop(ctx.get_current_key(), None)
        yield from super()._flush(ctx)

    def _flush_batch(self, items: list):
        if items:
            yield from self._refused(self._writer.write(items))

    def _refused(self, rejected: list) -> list[tuple[str, int]]:
        now = int(time.time() * 1000)
        dead, substitutes = [], []
        for item, exc in rejected:
            failure = Failure.of("write", self._writer.name, exc)
            event_id = item.get("event_id") if isinstance(item, dict) else None
            if event_id is not None and "rule_id" in item:  # a violation: its event gets an audit.error instead
                finding = failure.finding(event_id, item.get("field", ""))
                context = {key: item[key] for key in (*EVENT_CONTEXT, "event_time") if key in item}
                substitutes.append(
                    {"_id": violation_id(item.get("tenant", ""), finding), **finding.to_dict(), **context}
                )
            raw = json.dumps(item, default=str, ensure_ascii=False)
            dead.append((failure_dead_letter(raw, [failure]), now))  # written now: its record's time
        if substitutes:
            self._writer.write(substitutes)  # what it refuses too is logged by the writer, and in the DLQ above
        return dead

    def close(self):
        # The end of a bounded input can come before the timers of its last batches are registered
        # (see RestoredTimers): write what is left. A close on failure writes early what the restore
        # will write again, which the idempotent writers allow. close() cannot emit: what the store
        # refuses here is logged by the writer only.
        for items in self._unflushed.values():
            self._refused(self._writer.write(items))
        self._unflushed.clear()
        self._writer.close()
