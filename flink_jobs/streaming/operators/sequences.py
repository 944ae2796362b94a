"""Sequence rules: hits counted per (rule, key) in event-time order, in keyed state."""

from __future__ import annotations

import json

from pyflink.common import Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from flink_jobs.streaming.operators.batching import END_OF_INPUT, RestoredTimers
from flink_jobs.streaming.operators.parse import dead_letter_time
from flink_jobs.streaming.records import DEAD_LETTERS, VIOLATIONS, SequenceHit, bucketed, sequence_row
from udfs.engine import SequenceWindow, sequence_finding
from udfs.faults import Failure, failure_dead_letter
from udfs.findings import Finding, violation_id


class SequenceRules(KeyedProcessFunction):
    """Keyed by a bucket of (sequence rule, key) pairs, fed hits and None ticks:
    counts each pair's hits in event-time order; when one fires -> its AUDITED row for the windows,
    and its violation document on the VIOLATIONS side output. A hit that raises is its event's
    audit.error finding and a dead letter (udfs.faults), and the others count on.

    Hits wait in state until the watermark passes them, then run in timestamp order: the event
    that completes a sequence is the same whatever order batching or the network delivered them in.
    Buckets, not pairs, are the keys so that the ticks AuditEvents sends every bucket after a restore
    re-register the timers of every pending hit (see RestoredTimers), however rare its pair.

    A bucket's state is one value (pending hits and each pair's hit times), read from PyFlink's
    state cache: scanning a MapState for expired pairs at every timer costs a gRPC round trip per
    entry. Expired pairs are swept at most once a minute of event time.
    """

    _SWEEP_MS = 60_000  # a pair whose window has passed is forgotten at most this much event time later

    def __init__(self, buckets: int):
        self._buckets = buckets  # of the violations' writers

    def open(self, runtime_context: RuntimeContext):
        # (pending hits, {(rule id, key): (within_ms, hit times in its window)}, event time of the last sweep)
        self._state = runtime_context.get_state(ValueStateDescriptor("sequences", Types.PICKLED_BYTE_ARRAY()))
        self._timers = RestoredTimers()

    def _stored(self) -> tuple[list[SequenceHit], dict[tuple[str, str], tuple[int, list[int]]], int]:
        """Pending hits, per (rule id, key) its window and hit times, and the last sweep's time."""
        return self._state.value() or ([], {}, 0)

    def process_element(self, hit, ctx: KeyedProcessFunction.Context):
        timers = ctx.timer_service()
        pending, times, swept = self._stored()
        if self._timers.first_sight(ctx):
            for at in {h.time_ms for h in pending} | ({swept + self._SWEEP_MS} if times else set()):
                timers.register_event_time_timer(at)
            timers.register_event_time_timer(END_OF_INPUT)  # see RestoredTimers
        if hit is not None:
            pending.append(hit)
            self._state.update((pending, times, swept))
            timers.register_event_time_timer(hit.time_ms)

    @staticmethod
    def _count(hit: SequenceHit, times: dict) -> Finding | None:
        """Counts a hit in its pair's window -> the sequence rule's finding if it fires."""
        rule, pair = hit.rule, (hit.rule_id, hit.key)
        window = SequenceWindow(rule.sequence.count, rule.sequence.within_ms, times.get(pair, (0, []))[1])
        fired = window.add(hit.time_ms)
        times[pair] = (rule.sequence.within_ms, window.timestamps)
        return sequence_finding(rule, hit.event_id) if fired else None

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        pending, times, swept = self._stored()
        due = sorted((h for h in pending if h.time_ms <= timestamp), key=lambda h: (h.time_ms, h.event_id))
        if due:
            pending = [h for h in pending if h.time_ms > timestamp]
        for hit in due:
            try:
                finding = self._count(hit, times)
            except Exception as exc:  # this hit's failure (udfs.faults), reported on its event
                failure = Failure.of("sequence", hit.rule_id, exc)
                finding = failure.finding(hit.event_id)
                raw = json.dumps({"event_id": hit.event_id, **hit.context}, default=str)
                now = ctx.timer_service().current_processing_time()
                yield DEAD_LETTERS, (failure_dead_letter(raw, [failure]), dead_letter_time(now, timestamp))
            if finding is not None:
                doc = {"_id": violation_id(hit.context["tenant"], finding), **finding.to_dict(), **hit.context}
                yield VIOLATIONS, bucketed(doc["_id"], doc, self._buckets)
                yield sequence_row(hit.context["tenant"], hit.context["model"], hit.time_ms, finding)
        if timestamp - swept >= self._SWEEP_MS:  # forget the pairs whose window has passed with no new hit
            times = {
                pair: (within_ms, ts)
                for pair, (within_ms, ts) in times.items()
                if max(ts, default=0) + within_ms > timestamp
            }
            swept = timestamp
        if times:
            ctx.timer_service().register_event_time_timer(swept + self._SWEEP_MS)
        if pending or times:
            self._state.update((pending, times, swept))
        else:
            self._state.clear()
