"""PyFlink functions of the audit job: thin adapters over udfs/."""

from __future__ import annotations

from pyflink.common import Types
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import OutputTag, ProcessFunction
from pyflink.datastream.functions import AggregateFunction, MapFunction, ProcessWindowFunction, RuntimeContext

from udfs.events import AuditEvent, EventError, dead_letter, parse_event
from udfs.findings import violation_document
from udfs.engine import RuleEngine
from udfs.rules import RuleSet

DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())


class ParseEvent(ProcessFunction):
    """Raw Kafka value -> AuditEvent; anything invalid goes to the dead-letter side output."""

    def process_element(self, value: str, ctx: ProcessFunction.Context):
        try:
            yield parse_event(value)
        except EventError as error:
            yield DEAD_LETTERS, dead_letter(value, error)


class EventTime(TimestampAssigner):
    def extract_timestamp(self, value: AuditEvent, record_timestamp: int) -> int:
        return value.timestamp


class AuditEvents(MapFunction):
    """Applies the ruleset to each event: -> (tenant, model, violation documents)."""

    def __init__(self, ruleset: RuleSet, store_raw_text: bool):
        self._ruleset = ruleset
        self._store_raw_text = store_raw_text
        self._engine: RuleEngine | None = None

    def open(self, runtime_context: RuntimeContext):
        self._engine = RuleEngine(self._ruleset)
        self._engine.open()

    def map(self, event: AuditEvent):
        findings = self._engine.evaluate(event)
        return event.tenant, event.model, [violation_document(event, f, self._store_raw_text) for f in findings]


class CountEvents(AggregateFunction):
    """Per window: (events, violations)."""

    def create_accumulator(self):
        return 0, 0

    def add(self, value, accumulator):
        return accumulator[0] + 1, accumulator[1] + len(value[2])

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return a[0] + b[0], a[1] + b[1]


class EmitWindowCounts(ProcessWindowFunction):
    """Attaches key and window end, the metric point's deterministic timestamp."""

    def process(self, key, context: ProcessWindowFunction.Context, elements):
        events, violations = next(iter(elements))
        tenant, model = key
        yield {"tenant": tenant, "model": model, "time_ms": context.window().end,
               "events": events, "violations": violations}
