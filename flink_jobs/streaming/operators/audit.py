"""The audit operator: parse, validate and run the rules on each event, with hot-reloaded rules."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from pyflink.common import Instant, Row, Types
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import BroadcastProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from flink_jobs.credentials import Secret, reveal
from flink_jobs.pyflink_internals import epoch_ms
from flink_jobs.streaming.records import (
    ARCHIVED,
    BUCKETED,
    SEQUENCE_BUCKETS,
    SequenceHit,
    audited_row,
    bucketed,
)
from flink_jobs.streaming.sinks.stores import mongo_transient, retrying
from flink_jobs.tombstones import Tombstones
from udfs.archive import TextCipher, TextMode, archive_record
from udfs.engine import RuleEngine, sequence_hits
from udfs.events import AuditEvent, EventError, FieldBounds, dead_letter, parse_event
from udfs.faults import Failure, failure_dead_letter
from udfs.findings import violation_context, violation_document
from udfs.metrics import rules_point
from udfs.rules import RuleError, RuleSet, ruleset_from_push
from udfs.signing import SignatureError, check_content, trusted_keys, verify

log = logging.getLogger("llm_audit.audit")

# An event with its model scores: (event, {field: {label: score}}, {field: evidence}, the scorers'
# failures on it, its arrival in epoch ms).
Scored = tuple[AuditEvent, dict, dict, list[Failure], int]

# (dead-letter record, its time: the message's Kafka record time, or just past the operator's event-time
# watermark if that is later, so that a dead letter is never late for its window (see parse_or_dead_letter))
DEAD_LETTER = Types.TUPLE([Types.STRING(), Types.LONG()])
DEAD_LETTERS = OutputTag("dead-letters", DEAD_LETTER)
VIOLATIONS = OutputTag("violations", BUCKETED)
RULE_CHANGES = OutputTag("rule-changes", BUCKETED)
RULES_POINTS = OutputTag("rules-points", BUCKETED)  # udfs.metrics.rules_point, after each push
# A BUCKETED hit (a SequenceHit) per sequence-rule hit, and a tick (None) per bucket (see SequenceRules).
SEQUENCE_HITS = OutputTag("sequence-hits", BUCKETED)
# An ARCHIVED row per valid event, for the Parquet archive.
ARCHIVE = OutputTag("archive", ARCHIVED)
# ruleset name -> the accepted push record (JSON); restored from checkpoints like any state.
ACTIVE_RULES = MapStateDescriptor("active-rules", Types.STRING(), Types.STRING())


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


@dataclass(frozen=True)
class ArchiveRows:
    """What the audit needs to write an event's archive row (udfs.archive)."""

    text: TextMode
    key: Secret | None = None  # where the key of encrypted text is (flink_jobs.credentials)
    tombstones: Tombstones | None = None  # a late event of an erased user is not archived again

    def erased(self, event: AuditEvent) -> bool:
        return self.tombstones is not None and self.tombstones.covers(event.tenant, event.user_id, event.timestamp)


class AuditEvents(BroadcastProcessFunction):
    """Fed Row(raw event JSON, arrival) or, with scorers, scored events: the whole per-event audit in
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
        self._scorers, self._buckets = scorers, buckets  # of the writers
        self._archive = archive  # None: no archive rows
        self._trusted_keys = trusted_keys  # public keys of the signers whose pushes run
        self._allow_unsigned = allow_unsigned  # unsigned pushes run too (local use; loud: see rule_change)
        self._bounds = bounds
        self._engine: RuleEngine | None = None

    def open(self, runtime_context: RuntimeContext):
        self._engine = None  # built on first use, from restored state if there is one
        self._ticked = False  # each sequence bucket gets a tick from the first event (SequenceRules)
        key = self._archive and self._archive.key
        self._cipher = TextCipher.from_base64(reveal(key)) if key else None
        if self._archive and self._archive.tombstones:
            retrying("tombstones", self._archive.tombstones.open, mongo_transient)
        self._trusted = trusted_keys(list(self._trusted_keys))

    def _use(self, ruleset: RuleSet) -> RuleEngine:
        engine = RuleEngine(ruleset)
        engine.open()
        self._engine, self._rules_hash = engine, ruleset.content_hash()
        return engine

    def process_element(self, value: Row | Scored, ctx: BroadcastProcessFunction.ReadOnlyContext):
        if isinstance(value, Row):  # (raw JSON, arrival): not scored
            event, dead = parse_or_dead_letter(value[0], value[1], ctx.current_watermark(), self._bounds)
            if event is None:
                yield DEAD_LETTERS, dead
                return
            raw, scores, evidence, failures, arrival_ms = value[0], {}, {}, [], epoch_ms(value[1])
        else:
            event, scores, evidence, failures, arrival_ms = value
            raw = None  # the scorer parsed it; the dead letter of a failure carries the event re-serialised
        engine = self._engine
        if engine is None:
            pushed = ctx.get_broadcast_state(ACTIVE_RULES).get(self._name)
            engine = self._use(ruleset_from_push(json.loads(pushed)) if pushed else self._initial)
        if not self._ticked:
            self._ticked = True
            for b in range(SEQUENCE_BUCKETS):
                yield SEQUENCE_HITS, Row(b, None)
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
        try:
            changes = list(self._push(value, ctx))
        except Exception as exc:  # a defect of ours on this record: rejected, the last good rules run on
            changes = [rule_change({}, value, False, Failure.of("push", "rules topic", exc).describe())]
        for change in changes:
            running = ctx.get_broadcast_state(ACTIVE_RULES).get(self._name)
            # Are the rules that run now the job's own or a trusted signer's? Alerted on while they are not.
            change["rules_signed"] = running is None or self._signed(json.loads(running))
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

    def _signed(self, record: dict) -> bool:
        try:
            verify(record, self._trusted)
        except SignatureError:
            return False
        return True

    def _push(self, value: str, ctx: BroadcastProcessFunction.Context):
        """Applies a push if it is valid and this job's -> its rule_changes document. Its signature (or,
        unsigned where LLM_AUDIT_RULES_ALLOW_UNSIGNED asks for it, the sha256 of its raw rules) is checked,
        and its version held above the running push's, before its rules are parsed."""
        try:
            record = json.loads(value)
        except json.JSONDecodeError as exc:
            yield rule_change({}, value, False, f"not JSON: {exc}")
            return
        if not isinstance(record, dict) or record.get("name") != self._name:
            return  # another ruleset's push
        try:
            if self._allow_unsigned and not (
                isinstance(record.get("key_id"), str) and record["key_id"] in self._trusted
            ):
                check_content(record)
            else:
                verify(record, self._trusted)
        except SignatureError as exc:
            yield rule_change(record, value, False, str(exc))
            return
        version = record.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            yield rule_change(record, value, False, f"version {version!r} is not a whole number >= 1")
            return
        running = ctx.get_broadcast_state(ACTIVE_RULES).get(self._name)
        running_version = json.loads(running).get("version") if running else 0
        if not isinstance(running_version, int):  # accepted before versions were checked
            running_version = 0
        if version <= running_version:
            yield rule_change(
                record,
                value,
                False,
                f"rollback: version {version} is not above the running version {running_version}; "
                "to go back to old rules, push them again with a higher version",
            )
            return
        try:
            ruleset = ruleset_from_push(record)
        except RuleError as exc:
            yield rule_change(record, value, False, str(exc))
            return
        if ruleset.content_hash() != record.get("hash"):
            yield rule_change(record, value, False, "hash does not match the rules: corrupted or hand-edited push")
            return
        missing = ruleset.scorers_used() - set(self._scorers)
        if missing:
            yield rule_change(
                record,
                value,
                False,
                f"score rules need scorers {sorted(missing)}, which this "
                f"job does not run (LLM_AUDIT_SCORERS={list(self._scorers)})",
            )
            return
        try:
            self._use(ruleset)
        except RuleError as exc:  # a rule that fails on an ordinary event (RuleEngine.open): the last good set runs on
            yield rule_change(record, value, False, str(exc))
            return
        ctx.get_broadcast_state(ACTIVE_RULES).put(self._name, value)
        yield rule_change(record, value, True, None)


def rule_change(record: dict, raw: str, accepted: bool, reason: str | None) -> dict:
    """The rule_changes document of a push (`raw`, as read from the topic). Its _id is deterministic, so
    every subtask and replay writes the same one; an accepted push's names its version, which is never accepted
    twice, and a rejected push's the digest of its raw record too, so that a replayed old record is a new
    document, never one written over the earlier accepted one."""
    keys = ("name", "version", "sha256", "hash", "author", "message", "pushed_at", "key_id")
    doc = {key: record.get(key) for key in keys}
    doc.update(accepted=accepted, reason=reason)
    outcome = "accepted" if accepted else f"rejected:{hashlib.sha256(raw.encode()).hexdigest()[:16]}"
    doc["_id"] = f"{doc['name']}:v{doc['version']}:{doc['hash']}:{outcome}"
    return doc
