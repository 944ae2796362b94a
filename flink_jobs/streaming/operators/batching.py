"""Keyed batching: the writers' buffers and the scorer's batches, in checkpointed keyed state."""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream import TimeDomain
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

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
