"""PyFlink functions of the audit job: thin adapters over udfs/."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import NamedTuple

from pyflink.common import Instant, Row, Types
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import (
    AggregateFunction,
    KeyedBroadcastProcessFunction,
    KeyedProcessFunction,
    ProcessWindowFunction,
    RuntimeContext,
)
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor

from flink_jobs.pyflink_internals import epoch_ms
from udfs.anomaly import AnomalyDetector, AnomalySettings, WindowAccumulator
from udfs.events import AuditEvent, EventError, dead_letter, parse_event
from udfs.engine import RuleEngine, SequenceWindow, sequence_finding, sequence_hits
from udfs.findings import CATEGORIES, violation_context, violation_document
from udfs.metrics import WindowCounts, anomaly_point, dead_letter_point
from udfs.rules import Rule, RuleError, RuleSet, ruleset_from_push
from udfs.scorers import SCORER_NAMES, ScorersConfig, ScorerSuite

# An event with its model scores: (event, {field: {label: score}}, {field: evidence}).
Scored = tuple[AuditEvent, dict, dict]

# Records that a keyed operator downstream reads are Row(key, value), keyed in Java by their first
# field (flink_jobs.pyflink_internals.keyed): PyFlink's key_by would add a Python operator, i.e. one more
# round trip between the JVM and the Python worker for every record.
KEYED = Types.ROW([Types.PICKLED_BYTE_ARRAY(), Types.PICKLED_BYTE_ARRAY()])
# Row((tenant, model), SequenceFired) per fired sequence rule.
SUMMARY = KEYED
# Row(sink bucket, violation document) per violation.
VIOLATION = Types.ROW([Types.INT(), Types.PICKLED_BYTE_ARRAY()])

# (dead-letter record, arrival ms: the Kafka record time of the message)
DEAD_LETTERS = OutputTag("dead-letters", Types.TUPLE([Types.STRING(), Types.LONG()]))
VIOLATIONS = OutputTag("violations", VIOLATION)
RULE_CHANGES = OutputTag("rule-changes", Types.PICKLED_BYTE_ARRAY())
# Row(bucket, hit or None) per sequence-rule hit, and a tick per bucket (see SequenceRules).
SEQUENCE_HITS = OutputTag("sequence-hits", VIOLATION)
# ruleset name -> the accepted push record (JSON); restored from checkpoints like any state.
ACTIVE_RULES = MapStateDescriptor("active-rules", Types.STRING(), Types.STRING())


class SequenceHit(NamedTuple):
    """An event's hit of a sequence rule, on its way to SequenceRules."""

    rule_id: str
    key: str  # the value of the rule's group_by field
    time_ms: int
    rule: Rule
    event_id: str
    context: dict  # violation_context of the event


class SequenceFired(NamedTuple):
    """A sequence rule that fired, for the metrics windows of its (tenant, model)."""

    time_ms: int
    rule_keys: list  # [(rule_id, category, severity)]


def parse_or_dead_letter(value: str, arrival: Instant) -> tuple[AuditEvent | None, tuple | None]:
    """(event, None) for a valid audit event; for anything else (None, (its dead-letter record, arrival ms))."""
    try:
        return parse_event(value), None
    except EventError as error:
        return None, (dead_letter(value, error), epoch_ms(arrival))



def key_of(event: AuditEvent) -> str:
    """A scored event's (tenant, model) key, in the compact JSON of keyed_events' JSON_ARRAY: the
    same key string whether or not a job scores, so its window state survives that change."""
    return json.dumps([event.tenant, event.model], separators=(",", ":"), ensure_ascii=False)


def bucket(key: str, buckets: int) -> int:
    """Spreads elements over batching keys; crc32 is stable across processes, unlike hash()."""
    return zlib.crc32(key.encode()) % buckets


_END_OF_INPUT = 2**63 - 2  # an event-time timer only the final watermark of a bounded input reaches


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

    def __init__(self):
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
    `max_wait_ms` (processing time), when its elements' `_time_of` span `max_span_ms`, or at the
    end of a bounded input. The buffer is checkpointed state: a restart from a checkpoint flushes
    what was buffered when it was taken.
    """

    def __init__(self, name: str, max_batch: int, max_wait_ms: int, max_span_ms: int | None = None):
        self._name, self._max_batch, self._max_wait_ms = name, max_batch, max_wait_ms
        self._max_span_ms = max_span_ms

    def _time_of(self, value) -> int:
        return 0

    def open(self, runtime_context: RuntimeContext):
        self._buffer = runtime_context.get_list_state(
            ListStateDescriptor(f"{self._name}-buffer", Types.PICKLED_BYTE_ARRAY()))
        # (buffered count, processing-time deadline of the oldest, _time_of the first)
        self._pending = runtime_context.get_state(
            ValueStateDescriptor(f"{self._name}-pending", Types.PICKLED_BYTE_ARRAY()))
        self._timers = RestoredTimers()

    def _flush_batch(self, items: list):
        raise NotImplementedError

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        self._buffer.add(value)
        count, deadline, first = self._pending.value() or (0, None, None)
        if count == 0:
            deadline = ctx.timer_service().current_processing_time() + self._max_wait_ms
            first = self._time_of(value)
        if self._timers.first_sight(ctx) or count == 0:
            # A deadline restored from a checkpoint is past: its timer fires at once.
            ctx.timer_service().register_processing_time_timer(deadline)
            ctx.timer_service().register_event_time_timer(_END_OF_INPUT)
        spanned = self._max_span_ms is not None and abs(self._time_of(value) - first) >= self._max_span_ms
        if count + 1 >= self._max_batch or spanned:
            yield from self._flush(ctx)
        else:
            self._pending.update((count + 1, deadline, first))

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        _, deadline, _ = self._pending.value() or (0, None, None)
        # A timer of a batch already flushed by size is stale; the final watermark flushes all.
        if deadline is not None and (timestamp >= deadline or timestamp == _END_OF_INPUT):
            yield from self._flush(ctx)

    def _flush(self, ctx):
        items = list(self._buffer.get() or [])
        self._buffer.clear()
        self._pending.clear()
        yield from self._flush_batch(items)


class ScoreEvents(BatchingFunction):
    """Keyed by a bucket, fed Row(raw event JSON, arrival): scores the valid events in batches ->
    (Row(key, (event, scores, evidence)), event time) per event; the rest -> DEAD_LETTERS.

    Each batch is one forward pass per model. The models load once per worker, in open().
    """

    def __init__(self, config: ScorersConfig, enabled: tuple[str, ...], device: str, max_batch: int,
                 max_wait_ms: int, max_span_ms: int):
        # Event time is assigned again after the scorer: a batch spanning more event time than the
        # out-of-orderness bound would make the other buckets' pending events late there.
        super().__init__("score", max_batch, max_wait_ms, max_span_ms)
        self._config, self._enabled, self._device = config, enabled, device

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        self._suite = ScorerSuite(self._config, self._enabled, self._device)
        self._suite.open()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):
        event, dead = parse_or_dead_letter(*value)
        if dead is not None:
            yield DEAD_LETTERS, dead
            return
        yield from super().process_element(event, ctx)

    def _time_of(self, event: AuditEvent) -> int:
        return event.timestamp

    def _flush_batch(self, events: list[AuditEvent]):
        for event, (scores, evidence) in zip(events, self._suite.score_events(events)):
            yield Row(key_of(event), (event, scores, evidence)), event.timestamp


class BufferedWrite(BatchingFunction):
    """Writes documents or points through a flink_jobs.sinks writer, in batches: -> batch size.

    The batch is written (retrying through an outage) before the flush returns, so whatever a
    completed checkpoint covers is either stored or still in the checkpointed buffer.
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
            self._writer.write(items)
            yield len(items)

    def close(self):
        # The end of a bounded input can come before the timers of its last batches are registered
        # (see RestoredTimers): write what is left. A close on failure writes early what the restore
        # will write again, which the idempotent writers allow.
        for items in self._unflushed.values():
            self._writer.write(items)
        self._unflushed.clear()
        self._writer.close()


class AuditEvents(KeyedBroadcastProcessFunction):
    """Keyed by (tenant, model), fed Row(raw event JSON, arrival) or, with scorers, scored events: the
    whole per-event audit in one Python operator, since each is a round trip to the Python worker.

    - parse and validate: anything invalid -> DEAD_LETTERS, with its reason;
    - rules: each violation document -> VIOLATIONS, hits of sequence rules -> SEQUENCE_HITS;
    - windows: metrics and anomaly windows of the key (-> WindowOutput on the main output).

    Starts with the ruleset the job was submitted with; a valid push on the rules topic replaces
    it at once (broadcast state, no restart); an invalid one is rejected and the last good set
    keeps running. Every push the job sees is reported on the RULE_CHANGES side output.
    """

    def __init__(self, initial: RuleSet, ruleset_name: str, store_raw_text: bool, scorers: tuple[str, ...],
                 buckets: int, windows: WindowSettings):
        self._initial, self._name, self._store_raw_text = initial, ruleset_name, store_raw_text
        self._scorers, self._buckets, self._window_settings = scorers, buckets, windows
        self._engine: RuleEngine | None = None

    def open(self, runtime_context: RuntimeContext):
        self._engine = None  # built on first use, from restored state if there is one
        self._ticked = False  # each sequence bucket gets a tick from the first event (SequenceRules)
        self._windows = Windows(runtime_context, self._window_settings, events_point=True)

    def _use(self, ruleset: RuleSet) -> None:
        engine = RuleEngine(ruleset)
        engine.open()
        self._engine = engine

    def process_element(self, value: Row | Scored, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext):
        if isinstance(value, Row):  # (raw JSON, arrival): not scored
            event, dead = parse_or_dead_letter(*value)
            if dead is not None:
                yield DEAD_LETTERS, dead
                return
            scores, evidence = {}, {}
        else:
            event, scores, evidence = value
        if self._engine is None:
            pushed = ctx.get_broadcast_state(ACTIVE_RULES).get(self._name)
            self._use(ruleset_from_push(json.loads(pushed)) if pushed else self._initial)
        findings = self._engine.evaluate(event, scores, evidence)
        for finding in findings:
            doc = violation_document(event, finding, self._store_raw_text, scores, evidence)
            yield VIOLATIONS, Row(bucket(doc["_id"], self._buckets), doc)
        if not self._ticked:
            self._ticked = True
            for b in range(self._buckets):
                yield SEQUENCE_HITS, Row(b, None)
        for rule, key in sequence_hits(self._engine.sequence_rules, event, findings):
            yield SEQUENCE_HITS, Row(bucket(f"{rule.id}|{key}", self._buckets),
                                     SequenceHit(rule.id, key, event.timestamp, rule, event.event_id,
                                                 violation_context(event)))
        self._windows.add(ctx, event.timestamp, [(f.rule_id, f.category, f.severity) for f in findings],
                          event_measures(event, scores))

    def on_timer(self, timestamp: int, ctx: KeyedBroadcastProcessFunction.OnTimerContext):
        yield from self._windows.fire(ctx, timestamp, *json.loads(ctx.get_current_key()))

    def process_broadcast_element(self, value: str, ctx: KeyedBroadcastProcessFunction.Context):
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
        missing = ruleset.scorers_used() - set(self._scorers)
        if missing:
            yield RULE_CHANGES, rule_change(record, False, f"score rules need scorers {sorted(missing)}, which this "
                                                           f"job does not run (LLM_AUDIT_SCORERS={list(self._scorers)})")
            return
        ctx.get_broadcast_state(ACTIVE_RULES).put(self._name, value)
        self._use(ruleset)
        yield RULE_CHANGES, rule_change(record, True, None)


class SequenceRules(KeyedProcessFunction):
    """Keyed by a bucket of (sequence rule, key) pairs, fed hits and None ticks:
    counts each pair's hits in event-time order; when one fires -> its SUMMARY for the windows, and
    its violation document on the VIOLATIONS side output.

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
        self._buckets = buckets

    def open(self, runtime_context: RuntimeContext):
        # (pending hits, {(rule id, key): (within_ms, hit times in its window)}, event time of the last sweep)
        self._state = runtime_context.get_state(ValueStateDescriptor("sequences", Types.PICKLED_BYTE_ARRAY()))
        self._timers = RestoredTimers()

    def process_element(self, hit, ctx: KeyedProcessFunction.Context):
        timers = ctx.timer_service()
        pending, times, swept = self._state.value() or ([], {}, 0)
        if self._timers.first_sight(ctx):
            for at in {h.time_ms for h in pending} | ({swept + self._SWEEP_MS} if times else set()):
                timers.register_event_time_timer(at)
            timers.register_event_time_timer(_END_OF_INPUT)  # as in Windows
        if hit is not None:
            pending.append(hit)
            self._state.update((pending, times, swept))
            timers.register_event_time_timer(hit.time_ms)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        pending, times, swept = self._state.value() or ([], {}, 0)
        due = sorted((h for h in pending if h.time_ms <= timestamp), key=lambda h: (h.time_ms, h.event_id))
        if due:
            pending = [h for h in pending if h.time_ms > timestamp]
        for hit in due:
            rule, pair = hit.rule, (hit.rule_id, hit.key)
            window = SequenceWindow(rule.match.count, rule.match.within_ms, times.get(pair, (0, []))[1])
            fired = window.add(hit.time_ms)
            times[pair] = (rule.match.within_ms, window.timestamps)
            if fired:
                finding = sequence_finding(rule, hit.event_id)
                doc = {"_id": finding.violation_id, **finding.to_dict(), **hit.context}
                yield VIOLATIONS, Row(bucket(doc["_id"], self._buckets), doc)
                yield Row((hit.context["tenant"], hit.context["model"]),
                          SequenceFired(hit.time_ms, [(finding.rule_id, finding.category, finding.severity)]))
        if timestamp - swept >= self._SWEEP_MS:  # forget the pairs whose window has passed with no new hit
            times = {pair: (within_ms, ts) for pair, (within_ms, ts) in times.items()
                     if max(ts, default=0) + within_ms > timestamp}
            swept = timestamp
        if times:
            ctx.timer_service().register_event_time_timer(swept + self._SWEEP_MS)
        if pending or times:
            self._state.update((pending, times, swept))
        else:
            self._state.clear()


def rule_change(record: dict, accepted: bool, reason: str | None) -> dict:
    """The rule_changes document; its _id is deterministic, so every subtask and replay upserts one."""
    keys = ("name", "version", "hash", "author", "message", "pushed_at")
    doc = {key: record.get(key) for key in keys}
    doc.update(accepted=accepted, reason=reason)
    doc["_id"] = f"{doc['name']}:v{doc['version']}:{doc['hash']}:{'accepted' if accepted else 'rejected'}"
    return doc


def event_measures(event: AuditEvent, scores: dict) -> dict[str, float]:
    """What the metrics need of an event: each scorer's highest score over prompt and response, and usage."""
    out: dict[str, float] = {}
    for field_scores in scores.values():
        for name in SCORER_NAMES:
            if name in field_scores:
                out[name] = max(out.get(name, 0.0), field_scores[name])
    if event.latency_ms is not None:
        out["latency_ms"] = event.latency_ms
    out["tokens"] = (event.prompt_tokens or 0) + (event.completion_tokens or 0)
    out["cost_usd"] = event.cost_usd or 0.0
    return out


class CountDeadLetters(AggregateFunction):
    def create_accumulator(self):
        return 0

    def add(self, value, accumulator):
        return accumulator + 1

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return a + b


class EmitDeadLetterPoint(ProcessWindowFunction):
    def process(self, key, context: ProcessWindowFunction.Context, elements):
        yield [dead_letter_point(key, next(iter(elements)), context.window().end)], None


_RATE_CATEGORIES = tuple(c for c in CATEGORIES if c != "anomaly")


def window_end(timestamp: int, size_ms: int) -> int:
    """The end of the tumbling window holding `timestamp` (aligned to the epoch, as Flink's are)."""
    return timestamp - timestamp % size_ms + size_ms


@dataclass(frozen=True)
class WindowSettings:
    metrics_ms: int
    anomaly_ms: int
    anomaly: AnomalySettings


# (InfluxDB points, anomaly document or None): what a closed window yields, on the main output.
# Not a side output for the anomalies: in thread mode, PyFlink drops the side-output routing of
# what a keyed broadcast function yields from on_timer (flink-python 2.3,
# fn_execution/datastream/embedded/operations.py, KEYED_CO_BROADCAST_PROCESS), so a tagged
# anomaly would reach the main output as a (tag, document) pair.
WindowOutput = tuple[list, dict | None]


class Windows:
    """The tumbling event-time windows of a keyed function, in its keyed state: metrics windows
    (-> their InfluxDB points, stamped with the window's end), anomaly windows and the anomaly
    baselines (-> anomaly documents with their points): each a WindowOutput.

    Windows close when the watermark passes their end; an event behind the watermark is late and
    left out, as Flink's own windows leave it out. Plain state and timers rather than Flink window
    operators, each of which would be one more Python round trip per event.

    Each event is one append to a list state, aggregated only when a window closes: reading,
    changing and writing back each window's aggregate per event (its pickle grows with the window's
    latencies and scores) took a quarter of the audit operator's time.
    """

    def __init__(self, runtime_context: RuntimeContext, settings: WindowSettings, events_point: bool):
        self._settings, self._events_point = settings, events_point
        # (metrics window end or None, anomaly window end or None, rule keys, measures or None) per
        # event or fired sequence rule whose windows are still open
        self._pending = runtime_context.get_list_state(ListStateDescriptor("window-events", Types.PICKLED_BYTE_ARRAY()))
        self._baselines = runtime_context.get_state(ValueStateDescriptor("baselines", Types.PICKLED_BYTE_ARRAY()))
        # key -> the window ends this instance has armed a timer for: one timer per window, not per
        # event (in process mode each is a message to the JVM). A new instance (a restore) re-arms
        # a key's windows from its state at first sight (see RestoredTimers).
        self._armed: dict = {}

    def add(self, ctx, timestamp: int, rule_keys: list, measures: dict | None) -> None:
        """One audited event with its measures, or a fired sequence rule's violations (measures None)."""
        timers, watermark = ctx.timer_service(), ctx.timer_service().current_watermark()
        key = ctx.get_current_key()
        armed = self._armed.get(key)
        if armed is None:
            armed = self._armed[key] = set()
            for ends in self._pending.get() or []:
                self._arm(timers, armed, *ends[:2])
            # Closes every window at the end of a bounded input, even those whose own timers the
            # final watermark overtook (registered in its last bundles: see RestoredTimers).
            timers.register_event_time_timer(_END_OF_INPUT)
        metrics_end = window_end(timestamp, self._settings.metrics_ms)
        if measures is None and metrics_end - 1 <= watermark:
            # A sequence violation found late (a hit whose timer was re-registered after a restore)
            # counts in the first window still open, not in none.
            metrics_end = window_end(watermark + 1, self._settings.metrics_ms)
        anomaly_end = window_end(timestamp, self._settings.anomaly_ms) if measures is not None else None
        ends = [end if end is not None and end - 1 > watermark else None for end in (metrics_end, anomaly_end)]
        if ends != [None, None]:
            self._pending.add((*ends, rule_keys, measures))
            self._arm(timers, armed, *ends)

    @staticmethod
    def _arm(timers, armed: set, *ends) -> None:
        for end in ends:
            if end is not None and end not in armed:
                armed.add(end)
                timers.register_event_time_timer(end - 1)

    def fire(self, ctx, timestamp: int, tenant: str, model: str):
        """The points and anomalies of the windows the watermark has closed."""
        counts: dict[int, WindowCounts] = {}
        stats: dict[int, WindowAccumulator] = {}
        still_open = []
        for metrics_end, anomaly_end, rule_keys, measures in self._pending.get() or []:
            if metrics_end is not None and metrics_end - 1 <= timestamp:
                counts.setdefault(metrics_end, WindowCounts()).add(0 if measures is None else 1, rule_keys,
                                                                   measures or {})
                metrics_end = None
            if anomaly_end is not None and anomaly_end - 1 <= timestamp:
                stats.setdefault(anomaly_end, WindowAccumulator()).add(
                    {category for _, category, _ in rule_keys}, measures, measures.get("latency_ms"),
                    int(measures.get("tokens", 0)), measures.get("cost_usd", 0.0))
                anomaly_end = None
            if metrics_end is not None or anomaly_end is not None:
                still_open.append((metrics_end, anomaly_end, rule_keys, measures))
        armed = self._armed.get(ctx.get_current_key())
        if armed is not None:
            armed.difference_update([end for end in armed if end - 1 <= timestamp])
        if not counts and not stats:
            return
        if still_open:
            self._pending.update(still_open)
        else:
            self._pending.clear()
        for end in sorted(counts):
            yield counts[end].points(tenant, model, end, events_point=self._events_point), None
        if not stats:
            return
        detector = AnomalyDetector(self._settings.anomaly, self._baselines.value())
        for end in sorted(stats):
            for anomaly in detector.observe(tenant, model, end - self._settings.anomaly_ms, end,
                                            stats[end].metrics(_RATE_CATEGORIES)):
                doc = anomaly.to_dict()
                yield [anomaly_point(doc)], doc
        self._baselines.update(detector.state)


class SequenceWindows(KeyedProcessFunction):
    """Keyed by (tenant, model), fed the SUMMARY of each fired sequence rule: counts them in the
    metrics windows (-> `violations` points; `audit_events` is the audit operator's, which counts
    the events' own violations)."""

    def __init__(self, settings: WindowSettings):
        self._settings = settings

    def open(self, runtime_context: RuntimeContext):
        self._windows = Windows(runtime_context, self._settings, events_point=False)

    def process_element(self, value: SequenceFired, ctx: KeyedProcessFunction.Context):
        self._windows.add(ctx, value.time_ms, value.rule_keys, None)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        yield from self._windows.fire(ctx, timestamp, *ctx.get_current_key())
