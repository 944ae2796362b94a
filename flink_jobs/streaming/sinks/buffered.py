"""The writers' operator: documents and points buffered in keyed state and written in batches."""

from __future__ import annotations

import json
import time

from pyflink.common import Types
from pyflink.datastream import DataStream
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext

from flink_jobs.pyflink_internals import discard, keyed
from flink_jobs.settings import AuditJobSettings
from flink_jobs.streaming.operators.batching import BatchingFunction
from flink_jobs.streaming.records import DEAD_LETTER
from udfs.faults import Failure, failure_dead_letter
from udfs.findings import EVENT_CONTEXT, violation_id


class BufferedWrite(BatchingFunction):
    """Writes documents or points through a writer of sinks.mongo or sinks.influx, in batches: -> a dead letter
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


def write(items: DataStream, writer, settings: AuditJobSettings, name: str) -> DataStream:
    """Batch the BUCKETED elements (documents or points) into `writer`, buffered in keyed state ->
    the dead letters (JSON, time ms) of the elements the store refused (see BufferedWrite)."""
    batches = BufferedWrite(writer, settings.sink_batch_size, settings.sink_max_wait_ms)
    refused = keyed(items, Types.INT()).process(batches, DEAD_LETTER).uid(name).name(name)
    refused.sink_to(discard()).uid(f"{name}-done")
    return refused
