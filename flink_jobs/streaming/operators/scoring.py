"""The scorers' operator: events parsed and scored in batches, one forward pass per model and batch."""

from __future__ import annotations

from pyflink.common import Row
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext

from flink_jobs.pyflink_internals import epoch_ms
from flink_jobs.streaming.operators.batching import BatchingFunction
from flink_jobs.streaming.operators.parse import parse_or_dead_letter
from flink_jobs.streaming.records import DEAD_LETTERS, ScoredEvent
from udfs.events import AuditEvent, FieldBounds
from udfs.scorers import ScorersConfig, ScorerSuite


class ScoreEvents(BatchingFunction):
    """Keyed by a bucket, fed Row(raw event JSON, arrival): scores the valid events in batches ->
    a records.ScoredEvent per event; the rest -> DEAD_LETTERS.

    Each batch is one forward pass per model. The models load once per worker, in open(). A batch
    is flushed before the watermark passes its earliest event, so the source's watermark (one per
    Kafka partition) holds downstream: no event is late for being scored in a batch.
    """

    def __init__(
        self,
        config: ScorersConfig,
        *,
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
        """-> a records.ScoredEvent per event; a batch that raises is scored again event by event (udfs.faults)."""
        # A bare event: buffered by a version before arrival times were (restored from its checkpoint).
        items = [item if isinstance(item, tuple) else (item, item.timestamp) for item in items]
        events = [event for event, _ in items]
        for (event, arrival_ms), (scores, evidence, failures) in zip(items, self._suite.score_events_isolated(events)):
            yield ScoredEvent(event, scores, evidence, failures, arrival_ms)
