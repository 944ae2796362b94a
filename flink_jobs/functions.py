"""PyFlink functions of the audit job: thin adapters over udfs/."""

from __future__ import annotations

import json

from pyflink.common import Types
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import OutputTag, ProcessFunction
from pyflink.datastream.functions import (
    AggregateFunction,
    BroadcastProcessFunction,
    KeyedProcessFunction,
    ProcessWindowFunction,
    RuntimeContext,
)
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from udfs.events import AuditEvent, EventError, dead_letter, parse_event
from udfs.engine import RuleEngine, SequenceWindow, sequence_finding, sequence_hits
from udfs.findings import violation_context, violation_document
from udfs.rules import RuleError, RuleSet, ruleset_from_push

DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())
RULE_CHANGES = OutputTag("rule-changes", Types.PICKLED_BYTE_ARRAY())
SEQUENCE_HITS = OutputTag("sequence-hits", Types.PICKLED_BYTE_ARRAY())
# ruleset name -> the accepted push record (JSON); restored from checkpoints like any state.
ACTIVE_RULES = MapStateDescriptor("active-rules", Types.STRING(), Types.STRING())


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


class ApplyRules(BroadcastProcessFunction):
    """Applies the active ruleset to each event: -> (tenant, model, violation documents).

    Starts with the ruleset the job was submitted with; a valid push on the rules topic replaces
    it at once (broadcast state, no restart); an invalid one is rejected and the last good set
    keeps running. Every push the job sees is reported on the RULE_CHANGES side output.
    """

    def __init__(self, initial: RuleSet, ruleset_name: str, store_raw_text: bool):
        self._initial, self._name, self._store_raw_text = initial, ruleset_name, store_raw_text
        self._engine: RuleEngine | None = None

    def open(self, runtime_context: RuntimeContext):
        self._engine = None  # built on first use, from restored state if there is one

    def _use(self, ruleset: RuleSet) -> None:
        engine = RuleEngine(ruleset)
        engine.open()
        self._engine = engine

    def process_element(self, event: AuditEvent, ctx: BroadcastProcessFunction.ReadOnlyContext):
        if self._engine is None:
            pushed = ctx.get_broadcast_state(ACTIVE_RULES).get(self._name)
            self._use(ruleset_from_push(json.loads(pushed)) if pushed else self._initial)
        findings = self._engine.evaluate(event)
        yield event.tenant, event.model, [violation_document(event, f, self._store_raw_text) for f in findings]
        for rule, key in sequence_hits(self._engine.sequence_rules, event, findings):
            yield SEQUENCE_HITS, (rule.id, key, event.timestamp, rule, event.event_id,
                                  violation_context(event))

    def process_broadcast_element(self, value: str, ctx: BroadcastProcessFunction.Context):
        try:
            record = json.loads(value)
        except json.JSONDecodeError as exc:
            yield RULE_CHANGES, rule_change({}, False, f"not JSON: {exc}")
            return
        if not isinstance(record, dict) or record.get("name") != self._name:
            return  # another ruleset's push
        try:
            ruleset = ruleset_from_push(record)
        except RuleError as exc:
            yield RULE_CHANGES, rule_change(record, False, str(exc))
            return
        if ruleset.content_hash() != record.get("hash"):
            yield RULE_CHANGES, rule_change(record, False, "hash does not match the rules: corrupted or hand-edited push")
            return
        ctx.get_broadcast_state(ACTIVE_RULES).put(self._name, value)
        self._use(ruleset)
        yield RULE_CHANGES, rule_change(record, True, None)


class SequenceRules(KeyedProcessFunction):
    """Keyed by (sequence rule, key): counts hits in event time and emits a violation when one fires."""

    def open(self, runtime_context: RuntimeContext):
        self._times = runtime_context.get_state(ValueStateDescriptor("hit-times", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, hit, ctx: KeyedProcessFunction.Context):
        _, _, timestamp, rule, event_id, context = hit
        within_ms = rule.match.within_ms
        window = SequenceWindow(rule.match.count, within_ms, (self._times.value() or (within_ms, []))[1])
        fired = window.add(timestamp)
        self._times.update((within_ms, window.timestamps))
        # Clear the key's state once its window has passed with no new hit.
        ctx.timer_service().register_event_time_timer(timestamp + within_ms)
        if fired:
            finding = sequence_finding(rule, event_id)
            yield [{"_id": finding.violation_id, **finding.to_dict(), **context}]

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        within_ms, times = self._times.value() or (0, [])
        if not times or max(times) + within_ms <= timestamp:
            self._times.clear()
        return []


def rule_change(record: dict, accepted: bool, reason: str | None) -> dict:
    """The rule_changes document; its _id is deterministic, so every subtask and replay upserts one."""
    keys = ("name", "version", "hash", "author", "message", "pushed_at")
    doc = {key: record.get(key) for key in keys}
    doc.update(accepted=accepted, reason=reason)
    doc["_id"] = f"{doc['name']}:v{doc['version']}:{doc['hash']}:{'accepted' if accepted else 'rejected'}"
    return doc


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
