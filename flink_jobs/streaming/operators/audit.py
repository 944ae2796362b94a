"""The audit operator: parse, validate and run the rules on each event, with hot-reloaded rules."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from pyflink.common import Row, Types
from pyflink.datastream.functions import BroadcastProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from flink_jobs.credentials import Secret, reveal
from flink_jobs.pyflink_internals import epoch_ms
from flink_jobs.streaming.operators.parse import dead_letter_time, parse_or_dead_letter
from flink_jobs.streaming.operators.rule_pushes import RulePushes, rule_change
from flink_jobs.streaming.records import (
    ARCHIVE,
    DEAD_LETTERS,
    RULE_CHANGES,
    RULES_POINTS,
    SEQUENCE_BUCKETS,
    SEQUENCE_HITS,
    VIOLATIONS,
    ScoredEvent,
    SequenceHit,
    audited_row,
    bucketed,
    sequence_ticks,
)
from flink_jobs.streaming.sinks.mongo import mongo_transient
from flink_jobs.streaming.sinks.retry import retrying
from flink_jobs.tombstones import Tombstones
from udfs.archive import TextCipher, TextMode, archive_record
from udfs.engine import RuleEngine, sequence_hits
from udfs.events import AuditEvent, FieldBounds
from udfs.faults import Failure, failure_dead_letter
from udfs.findings import violation_context, violation_document
from udfs.metrics import rules_point
from udfs.rules import RuleSet, ruleset_from_push

log = logging.getLogger("llm_audit.audit")

# ruleset name -> the accepted push record (JSON); restored from checkpoints like any state.
ACTIVE_RULES = MapStateDescriptor("active-rules", Types.STRING(), Types.STRING())


@dataclass(frozen=True)
class ArchiveRows:
    """What the audit needs to write an event's archive row (udfs.archive)."""

    text: TextMode
    key: Secret | None = None  # where the key of encrypted text is (flink_jobs.credentials)
    tombstones: Tombstones | None = None  # a late event of an erased user is not archived again

    def erased(self, event: AuditEvent) -> bool:
        return self.tombstones is not None and self.tombstones.covers(event.tenant, event.user_id, event.timestamp)


class AuditEvents(BroadcastProcessFunction):
    """Fed records.TIMED_EVENT rows or, with scorers, records.ScoredEvent: the whole per-event audit in
    one Python operator with no keyed state, since each is a round trip to the Python worker.

    - parse and validate: anything invalid -> DEAD_LETTERS, with its reason;
    - rules: each violation document -> VIOLATIONS, hits of sequence rules -> SEQUENCE_HITS;
    - windows: the event's AUDITED row on the main output, for the windows in Flink SQL;
    - archive (with `archive`): the event's ARCHIVED row -> ARCHIVE.

    Starts with the ruleset the job was submitted with; a valid push on the rules topic replaces
    it at once (broadcast state, no restart); an invalid one is rejected and the last good set
    keeps running. Every push the job sees is reported on the RULE_CHANGES side output.
    """

    def __init__(
        self,
        initial: RuleSet,
        *,
        ruleset_name: str,
        store_raw_text: bool,
        scorers: tuple[str, ...],
        buckets: int,
        archive: ArchiveRows | None = None,
        trusted_keys: tuple[str, ...] = (),
        allow_unsigned: bool = False,
        bounds: FieldBounds = FieldBounds(),
    ):
        self._initial, self._name, self._store_raw_text = initial, ruleset_name, store_raw_text
        self._buckets = buckets  # of the writers
        self._archive = archive  # None: no archive rows
        self._pushes = RulePushes(ruleset_name, scorers, trusted_keys, allow_unsigned)
        self._bounds = bounds
        self._engine: RuleEngine | None = None

    def open(self, runtime_context: RuntimeContext):
        self._engine = None  # built on first use, from restored state if there is one
        self._ticked = False  # each sequence bucket gets a tick from the first event (SequenceRules)
        key = self._archive and self._archive.key
        self._cipher = TextCipher.from_base64(reveal(key)) if key else None
        if self._archive and self._archive.tombstones:
            retrying("tombstones", self._archive.tombstones.open, mongo_transient)
        self._pushes.open()

    def _use(self, ruleset: RuleSet) -> RuleEngine:
        engine = RuleEngine(ruleset)
        engine.open()
        self._engine, self._rules_hash = engine, ruleset.content_hash()
        return engine

    def process_element(self, value: Row | ScoredEvent, ctx: BroadcastProcessFunction.ReadOnlyContext):
        if isinstance(value, ScoredEvent):  # parsed and scored by ScoreEvents
            event, scores, evidence, failures, arrival_ms = value
            raw = None  # the dead letter of a failure carries the event re-serialised
        else:  # records.TIMED_EVENT: not scored
            parsed, dead = parse_or_dead_letter(value[0], value[1], ctx.current_watermark(), self._bounds)
            if parsed is None:
                yield DEAD_LETTERS, dead
                return
            event, raw, scores, evidence, failures, arrival_ms = parsed, value[0], {}, {}, [], epoch_ms(value[1])
        engine = self._engine
        if engine is None:
            pushed = ctx.get_broadcast_state(ACTIVE_RULES).get(self._name)
            engine = self._use(ruleset_from_push(json.loads(pushed)) if pushed else self._initial)
        if not self._ticked:
            self._ticked = True
            for tick in sequence_ticks():
                yield SEQUENCE_HITS, tick
        try:
            outputs, failures = self._audit(engine, event, scores, evidence, failures)
        except Exception as exc:  # a defect of ours outside the guarded parts: still this event's failure only
            failures = [*failures, Failure.of("audit", "operator", exc)]
            findings = [f.finding(event.event_id) for f in failures]
            outputs = [*map(self._violation, (violation_document(event, f) for f in findings))]
            outputs.append(audited_row(event, findings, {}))
        yield from outputs
        if failures:
            if raw is None:
                raw = event.model_dump_json(exclude_none=True)
            yield (
                DEAD_LETTERS,
                (failure_dead_letter(raw, failures), dead_letter_time(arrival_ms, ctx.current_watermark())),
            )

    def _audit(self, engine: RuleEngine, event: AuditEvent, scores: dict, evidence: dict, failures: list[Failure]):
        """(the event's outputs, every failure on it): a part that raises on this event is left out,
        with its Failure, and the rest stands (udfs.faults)."""
        findings, rule_failures = engine.audit(event, scores, evidence)
        failures = [*failures, *rule_failures]
        findings += [f.finding(event.event_id) for f in failures if f.stage == "score"]
        outputs: list = []
        for finding in list(findings):
            try:
                doc = violation_document(event, finding, self._store_raw_text, scores, evidence)
            except Exception as exc:
                failures.append(failure := Failure.of("violation", finding.rule_id, exc))
                findings.append(finding := failure.finding(event.event_id, finding.field))
                doc = violation_document(event, finding)  # the failure's own, small document
            outputs.append(self._violation(doc))
        try:
            for rule, key in sequence_hits(engine.sequence_rules, event, findings):
                hit = SequenceHit(rule.id, key, event.timestamp, rule, event.event_id, violation_context(event))
                outputs.append((SEQUENCE_HITS, bucketed(f"{rule.id}|{key}", hit, SEQUENCE_BUCKETS)))
        except Exception as exc:
            failures.append(failure := Failure.of("sequence", "sequence rules", exc))
            findings.append(finding := failure.finding(event.event_id))
            outputs.append(self._violation(violation_document(event, finding)))
        if self._archive and not self._archive.erased(event):
            try:
                record = archive_record(event, findings, scores, self._rules_hash, self._archive.text, self._cipher)
                outputs.append((ARCHIVE, Row(*record)))
            except Exception as exc:
                failures.append(failure := Failure.of("archive", "archive row", exc))
                findings.append(finding := failure.finding(event.event_id))
                outputs.append(self._violation(violation_document(event, finding)))
        outputs.append(audited_row(event, findings, scores))
        return outputs, failures

    def _violation(self, doc: dict) -> tuple:
        return VIOLATIONS, bucketed(doc["_id"], doc, self._buckets)

    def process_broadcast_element(self, value: str, ctx: BroadcastProcessFunction.Context):
        active = ctx.get_broadcast_state(ACTIVE_RULES)
        try:
            changes = list(self._pushes.review(value, active.get(self._name), self._use))
        except Exception as exc:  # a defect of ours on this record: rejected, the last good rules run on
            changes = [rule_change({}, value, False, Failure.of("push", "rules topic", exc).describe())]
        for change in changes:
            if change["accepted"]:
                active.put(self._name, value)
            running = active.get(self._name)
            # Are the rules that run now the job's own or a trusted signer's? Alerted on while they are not.
            change["rules_signed"] = running is None or self._pushes.signed(json.loads(running))
            if change["accepted"] and not change["rules_signed"]:
                log.warning(
                    json.dumps({"event": "unsigned_rules_running", "ruleset": self._name, "version": change["version"]})
                )
            yield RULE_CHANGES, bucketed(change["_id"], change, self._buckets)
            at_ms = ctx.timestamp() or ctx.current_processing_time()  # the push's Kafka time: a replay rewrites it
            yield (
                RULES_POINTS,
                bucketed(self._name, rules_point(self._name, change["rules_signed"], at_ms), self._buckets),
            )
