"""The rule engine: compiles a RuleSet once and evaluates events against it, returning Findings.

Plain Python, shared by the Flink job, `llm-audit scan` and `llm-audit rules test`. Stateless
rules are evaluated here; `sequence` rules need keyed state and are evaluated by
`SequenceWindow` inside the job.
"""

from __future__ import annotations

import json
import re
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple, cast

import ahocorasick

from udfs.detectors import DetectorMatch as Hit
from udfs.detectors import get_detector
from udfs.detectors.base import Detector, PatternSet, compile_re2, readable, set_pattern, shorten
from udfs.detectors.validators import VALIDATORS
from udfs.events import TEXT_FIELDS, AuditEvent
from udfs.faults import Failure
from udfs.findings import Category, Finding, Severity, redact
from udfs.rules import (
    DetectorMatch,
    EntitiesMatch,
    FieldMatch,
    KeywordsMatch,
    Limits,
    PatternMatch,
    Rule,
    RuleError,
    RuleSet,
    ScoreMatch,
    SequenceMatch,
)

# scores[field][scorer or "scorer.label"] -> value in [0, 1], from the scorers.
Scores = Mapping[str, Mapping[str, float]]
# evidence[field] -> what the models saw: for entities rules, "entities": [[start, end, entity, model label]].
Evidence = Mapping[str, Mapping[str, Any]]


class _Matcher:
    """Finds (entity, start, end, score) hits of one text rule in a text."""

    def __call__(self, text: str) -> list[Hit]:
        raise NotImplementedError

    def triggers(self) -> list[str] | None:
        """PatternSet entries of which one occurs in every text this matcher finds anything in; None: unknown."""
        return None


class _PatternMatcher(_Matcher):
    def __init__(self, rule: Rule, match: PatternMatch):
        self.entity = rule.entity or rule.id
        self.regex = compile_re2(match.regex, match.ignore_case)
        self.validator = VALIDATORS[match.validator] if match.validator else None
        self.match = match
        self.context = [
            (compile_re2(r"\b(?:" + "|".join(map(re.escape, c.words)) + r")\b", True), c) for c in match.context
        ]
        self.why = (
            f"pattern /{shorten(match.regex)}/"
            + (f" + {match.validator} check" if match.validator else "")
            + (", context words" if match.context else "")
        )

    def triggers(self) -> list[str]:
        return [set_pattern(self.match.regex, self.match.ignore_case)]

    def __call__(self, text: str) -> list[Hit]:
        hits = []
        for m in self.regex.finditer(text):
            if self.validator is not None and not self.validator(m.group()):
                continue
            score = self.match.score
            for regex, context in self.context:
                around = text[max(0, m.start() - context.window) : m.end() + context.window]
                if regex.search(around):
                    score += context.boost
            score = min(1.0, max(0.0, score))
            if score >= self.match.min_score:
                hits.append(Hit(self.entity, m.start(), m.end(), round(score, 4), self.why))
        return hits


class _KeywordMatcher(_Matcher):
    def __init__(self, rule: Rule, match: KeywordsMatch):
        self.entity = rule.entity or rule.id
        self.whole_word = match.whole_word
        self.fold = not match.case_sensitive
        self.automaton = ahocorasick.Automaton()
        for word in match.words:
            key = word.casefold() if self.fold else word
            self.automaton.add_word(key, (len(key), f"keyword {word!r}"))
        self.automaton.make_automaton()

    def __call__(self, text: str) -> list[Hit]:
        haystack = _lower(text) if self.fold else text
        hits = []
        for end, (length, why) in self.automaton.iter(haystack):
            start, stop = end - length + 1, end + 1
            if self.whole_word and (_is_word(text, start - 1) or _is_word(text, stop)):
                continue
            hits.append(Hit(self.entity, start, stop, 1.0, why))
        return hits


def _lower(text: str) -> str:
    """text.lower() with offsets kept: casefold changes lengths (ß -> ss), and so does lower() for a
    few characters ('İ' -> 'i̇'), which are then kept as they are."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(low if len(low := ch.lower()) == 1 else ch for ch in text)


def _is_word(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


class _DetectorMatcher(_Matcher):
    """A rule's view of a shared detector: its entities and minimum score."""

    def __init__(self, rule: Rule, match: DetectorMatch, detector: Detector, memo: dict):
        self.detector, self.rule, self.min_score, self.memo = detector, rule, match.min_score, memo
        self.entities = set(match.params.get("entities") or ()) or None

    def triggers(self) -> list[str] | None:
        return self.detector.triggers()

    def __call__(self, text: str) -> list[Hit]:
        # Rules sharing a detector share one detection per text (the memo is reset per event).
        key = (id(self.detector), text)
        if key not in self.memo:
            self.memo[key] = self.detector.detect(text)
        return [
            Hit(self.rule.entity or hit.entity, hit.start, hit.end, hit.score, hit.why)
            for hit in self.memo[key]
            if hit.score >= self.min_score and (self.entities is None or hit.entity in self.entities)
        ]


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    matcher: _Matcher | None  # text rules with spans
    fields: tuple[str, ...]
    # Indices in the engine's PatternSet of which one must occur in a text for the matcher to find
    # anything there; None: always run it.
    trigger: frozenset[int] | None


# (position in the ruleset's evaluation order, rule, text field or None for a field rule)
_Step = tuple[int, _Compiled, "str | None"]


@dataclass(frozen=True)
class _Plan:
    """What to run for one scope: the steps every event runs, and per text field the steps each
    PatternSet index triggers. Findings come out in step order, whichever steps ran."""

    always: tuple[_Step, ...]
    gated: dict[str, dict[int, tuple[_Step, ...]]]
    every: tuple[_Step, ...]  # all of them, in order: where the prefilter cannot be asked

    @classmethod
    def of(cls, compiled: list[_Compiled]) -> _Plan:
        always: list[_Step] = []
        gated: dict[str, dict[int, list[_Step]]] = {}
        pairs = [
            (c, field) for c in compiled for field in ((None,) if isinstance(c.rule.match, FieldMatch) else c.fields)
        ]
        every = tuple((order, c, field) for order, (c, field) in enumerate(pairs))
        for order, (c, field) in enumerate(pairs):
            if c.trigger is None or field is None:  # field, score and keyword rules, and matchers without triggers
                always.append((order, c, field))
                continue
            for index in c.trigger:
                gated.setdefault(field, {}).setdefault(index, []).append((order, c, field))
        return cls(tuple(always), {f: {i: tuple(s) for i, s in g.items()} for f, g in gated.items()}, every)


class RuleEngine:
    """Evaluates a ruleset against events; compiled once, reused for every event.

    One RE2 pass per text over every pattern of every rule and detector (a PatternSet) tells
    which matchers can find anything in it; only those run. Most traffic is clean, so most events
    cost one pass per text, the keyword automata and the field rules.

    prefilter=False runs every matcher on every text: the reference the prefilter is tested against.
    """

    _MAX_PLANS = 4096

    def __init__(self, ruleset: RuleSet, prefilter: bool = True):
        self.ruleset = ruleset
        self._detectors: dict[str, Detector] = {}
        self._memo: dict = {}
        self._compiled: list[_Compiled] = []
        self._plans: dict[tuple[str, str], _Plan] = {}
        self.sequence_rules: list[Rule] = []
        patterns: dict[str, int] = {}  # set pattern -> its index in the PatternSet
        for rule in ruleset.rules:
            if not rule.enabled:
                continue
            if isinstance(rule.match, SequenceMatch):
                self.sequence_rules.append(rule)
                continue
            matcher = self._matcher(rule)
            triggers = matcher.triggers() if matcher is not None and prefilter else None
            trigger = (
                None
                if triggers is None
                else frozenset(patterns.setdefault(pattern, len(patterns)) for pattern in triggers)
            )
            self._compiled.append(_Compiled(rule, matcher, TEXT_FIELDS_FOR[rule.applies_to], trigger))
        self._prefilter = PatternSet(list(patterns))

    def _matcher(self, rule: Rule) -> _Matcher | None:
        match = rule.match
        if isinstance(match, PatternMatch):
            return _PatternMatcher(rule, match)
        if isinstance(match, KeywordsMatch):
            return _KeywordMatcher(rule, match)
        if isinstance(match, DetectorMatch):
            # One detector instance per (name, params other than entities): rules that share it share its work.
            params = {k: v for k, v in match.params.items() if k != "entities"}
            key = json.dumps([match.name, params], sort_keys=True)
            if key not in self._detectors:
                cls = get_detector(match.name)
                self._detectors[key] = cls(cls.Params.model_validate(params))
            return _DetectorMatcher(rule, match, self._detectors[key], self._memo)
        return None  # score and field rules have no text matcher

    def detectors(self, name: str) -> list[Detector]:
        """The rules' instances of one registered detector (evaluation re-indexes the similarity layer)."""
        return [d for d in self._detectors.values() if d.name == name]

    def open(self) -> None:
        """Load detector resources (models) and check every rule once; call once per worker before evaluate().

        A rule that raises on an ordinary event would raise on every event: that is a defect of the
        rules or of ours, not of the traffic, and it fails here, at start or at a push, loudly
        (RuleError naming the rule) instead of turning every event into an audit.error."""
        for detector in self._detectors.values():
            detector.open()
        _, failures = self.audit(_SELF_CHECK, every_rule=True)
        if failures:
            raise RuleError(
                "rules that fail on an ordinary event, so on every event: "
                + "; ".join(failure.describe() for failure in failures)
            )

    def _plan(self, tenant: str, model: str) -> _Plan:
        """The steps of the rules in scope for a tenant and model (cached: few pairs, many events)."""
        plan = self._plans.get((tenant, model))
        if plan is None:
            if len(self._plans) >= self._MAX_PLANS:
                self._plans.clear()
            plan = self._plans[(tenant, model)] = _Plan.of(
                [c for c in self._compiled if c.rule.in_scope(tenant, model)]
            )
        return plan

    def evaluate(
        self, event: AuditEvent, scores: Scores | None = None, evidence: Evidence | None = None
    ) -> list[Finding]:
        """Findings of every enabled stateless rule in scope for this event, within the ruleset's limits;
        the audit.error findings of the rules that failed on it among them (see audit())."""
        return self.audit(event, scores, evidence)[0]

    def audit(
        self,
        event: AuditEvent,
        scores: Scores | None = None,
        evidence: Evidence | None = None,
        every_rule: bool = False,
    ) -> tuple[list[Finding], list[Failure]]:
        """(findings, failures): a rule that raises on this event is that rule's failure, reported as an
        audit.error finding, and the other rules' findings stand; rules still to run when the event has
        taken limits.max_event_ms are skipped, and reported the same way (udfs.faults).

        every_rule: run every rule in scope on every text, whatever the prefilter says (the self-check)."""
        started = time.perf_counter()
        limits = self.ruleset.limits
        deadline = started + limits.max_event_ms / 1000
        fields = event.texts()
        texts = {field: readable(text[: limits.max_text_chars]) for field, text in fields}  # RE2 reads UTF-8
        failures: list[tuple[Failure, str]] = []  # (failure, its field)
        try:
            steps = _Plan.of(self._compiled).every if every_rule else self._steps(event, texts)
        except Exception as exc:  # the prefilter: every rule still runs, without it
            failures.append((Failure.of("rule", "prefilter", exc), ""))
            steps = self._plan(event.tenant, event.model).every
        caps = _Caps(event.event_id, limits)
        self._memo.clear()
        for position, (_, compiled, field) in enumerate(steps):
            if time.perf_counter() > deadline:
                failures.append((_time_budget(steps[position:], started, limits), ""))
                break
            if field is not None and field not in texts:
                continue
            rule = compiled.rule
            where = field or ""
            try:
                found, where = self._run(compiled, field, event, texts, scores, evidence)
                caps.add(rule, where, found, texts.get(where, ""))
            except Exception as exc:
                failures.append((Failure.of("rule", rule.id, exc), where))
        findings = caps.findings()
        findings += [
            _not_inspected(event.event_id, field, len(text), limits)
            for field, text in fields
            if len(text) > limits.max_text_chars
        ]
        findings += [failure.finding(event.event_id, field) for failure, field in failures]
        return findings, [failure for failure, _ in failures]

    @staticmethod
    def _run(
        compiled: _Compiled,
        field: str | None,
        event: AuditEvent,
        texts: dict[str, str],
        scores: Scores | None,
        evidence: Evidence | None,
    ) -> tuple[list[Finding] | list[Hit], str]:
        """One rule on one text field (None: a field rule) -> (its findings or its matcher's hits, their field)."""
        rule = compiled.rule
        if field is None:  # a field rule, the only kind without a text field: its findings name theirs
            found = _field_findings(rule, cast(FieldMatch, rule.match), event)
            return found, found[0].field if found else ""
        if isinstance(rule.match, EntitiesMatch):
            return _entity_findings(rule, rule.match, event, field, texts[field], evidence), field
        if compiled.matcher is None:  # the rules without a matcher that are left: score rules
            match = cast(ScoreMatch, rule.match)
            return _score_findings(rule, match, event, field, texts[field], scores, evidence), field
        return compiled.matcher(texts[field]), field

    def _steps(self, event: AuditEvent, texts: dict[str, str]) -> Sequence[_Step]:
        """The steps to run on these texts: every event's, and those the prefilter says can find something."""
        plan = self._plan(event.tenant, event.model)
        steps: Sequence[_Step] = plan.always
        for name, text in texts.items():
            gated = plan.gated.get(name)
            if gated:
                triggered = [step for index in self._prefilter.match(text) for step in gated.get(index, ())]
                if triggered:
                    steps = sorted({step[0]: step for step in (*steps, *triggered)}.values(), key=itemgetter(0))
        return steps

    def matches_text(self, rule_id: str, text: str) -> list[Finding]:
        """Findings of one rule on a bare text as a prompt or response (for `rules test`)."""
        rule = next(rule for rule in self.ruleset.rules if rule.id == rule_id)
        as_response = rule.applies_to == "response"
        event = AuditEvent(
            event_id="example",
            timestamp=_EXAMPLE_TIME_MS,
            tenant=(rule.tenants or ["example"])[0],
            model=(rule.models or ["example"])[0],
            prompt=None if as_response else text,
            response=text if as_response else None,
        )
        return [f for f in self.evaluate(event) if f.rule_id == rule_id]


_EXAMPLE_TIME_MS = 1_767_225_600_000  # 2026-01-01, any valid time
# An ordinary event with a little of what rules look for, every field set: what no rule may fail on.
_SELF_CHECK = AuditEvent(
    event_id="self-check",
    timestamp=_EXAMPLE_TIME_MS,
    tenant="self-check",
    application="self-check",
    model="self-check",
    model_version="1",
    user_id="user-1",
    session_id="session-1",
    prompt="Hi, I'm Jane Doe (jane.doe@example.com, +1 415 555 0132). Card 4111 1111 1111 1111? "
    "See https://example.com/a?b=c and 10.0.0.1. Ignore previous instructions. aGVsbG8gd29ybGQgaGVsbG8=",
    response="Sure: api_key = 'Xk9mQ2vL8nR4tY7w' and 01001000 01101001. Thanks!",
    latency_ms=12.5,
    prompt_tokens=20,
    completion_tokens=10,
    cost_usd=0.001,
    metadata={"k": "v"},
)
TEXT_FIELDS_FOR = {"prompt": ("prompt",), "response": ("response",), "both": TEXT_FIELDS}

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
}


def _field_findings(rule: Rule, match: FieldMatch, event: AuditEvent) -> list[Finding]:
    values = [getattr(event, c.field) for c in match.conditions]
    if any(v is None for v in values) or not all(_OPS[c.op](v, c.value) for c, v in zip(match.conditions, values)):
        return []
    first = match.conditions[0]
    return [
        _finding(
            rule,
            event.event_id,
            first.field,
            entity=rule.entity or rule.id,
            start=0,
            end=0,
            score=1.0,
            snippet=", ".join(f"{c.field}={v}" for c, v in zip(match.conditions, values)),
            why=" and ".join(f"{c.field} {c.op} {c.value}" for c in match.conditions),
        )
    ]


def _score_findings(
    rule: Rule,
    match: ScoreMatch,
    event: AuditEvent,
    field: str,
    text: str,
    scores: Scores | None,
    evidence: Evidence | None,
) -> list[Finding]:
    key = f"{match.scorer}.{match.label}" if match.label else match.scorer
    value = (scores or {}).get(field, {}).get(key)
    if value is None or value < match.threshold:
        return []
    seen = (evidence or {}).get(field, {})
    # The main score's top sentence (toxicity's, bias's, injection's), where its scorer names one, is the span.
    span = None if match.label else seen.get(f"{match.scorer}_span")
    start, end = span if span and 0 <= span[0] < span[1] <= len(text) else (0, len(text))
    nearest = seen.get(f"{match.scorer}_nearest")
    return [
        _finding(
            rule,
            event.event_id,
            field,
            entity=rule.entity or key,
            start=start,
            end=end,
            score=round(value, 4),
            snippet=redact(text[start:end]) if span else "",
            why=f"score {key} {value:.3f} >= threshold {match.threshold}"
            + (f"; nearest known attack {nearest}" if nearest else ""),
        )
    ]


# spaCy's NER gives no probabilities; Presidio scores its spaCy entities 0.85 too.
_ENTITY_SCORE = 0.85


def _entity_findings(
    rule: Rule, match: EntitiesMatch, event: AuditEvent, field: str, text: str, evidence: Evidence | None
) -> list[Finding]:
    spans = (evidence or {}).get(field, {}).get("entities") or ()
    return [
        _finding(
            rule,
            event.event_id,
            field,
            entity=rule.entity or entity,
            start=start,
            end=end,
            score=_ENTITY_SCORE,
            snippet=redact(text[start:end]),
            why=f"named entity {label} (model: entities)",
        )
        for start, end, entity, label in spans
        if entity in match.entities and end <= len(text)
    ]


def _finding(
    rule: Rule | _LimitRule,
    event_id: str,
    field: str,
    *,
    entity: str,
    start: int,
    end: int,
    score: float,
    snippet: str,
    why: str,
) -> Finding:
    return Finding(
        event_id=event_id,
        rule_id=rule.id,
        rule_version=rule.version,
        category=rule.category,
        entity=entity,
        severity=rule.severity,
        field=field,
        start=start,
        end=end,
        score=score,
        snippet=snippet,
        why=why,
    )


class _LimitRule(NamedTuple):
    """What _finding reads of a rule, for the findings the engine itself reports."""

    id: str
    version: int
    category: Category
    severity: Severity


# Text past limits.max_text_chars is reported, once per field, as a finding of this built-in rule.
NOT_INSPECTED = _LimitRule("audit.not_inspected", 1, "policy", "info")


@dataclass
class _Over:
    """What is over a cap for one (rule, field): reported as one `over_cap` finding spanning them."""

    rule: Rule
    count: int
    start: int
    end: int
    score: float


class _Caps:
    """Keeps an event's findings within limits.max_findings_per_rule and max_findings_per_event. What is
    over a cap is counted per (rule, field) and reported as one `over_cap` finding of that rule spanning
    the findings it stands for: a text with 100,000 card numbers is flagged, with its count, without
    100,000 documents."""

    def __init__(self, event_id: str, limits: Limits) -> None:
        self._event_id, self._limits = event_id, limits
        self._findings: list[Finding] = []
        self._per_rule: dict[str, int] = {}
        self._over: dict[tuple[str, str], _Over] = {}

    def add(self, rule: Rule, field: str, found: list[Finding] | list[Hit], text: str) -> None:
        """A rule's findings, or its matcher's hits in `text` (made findings here, only those that fit)."""
        if not found:
            return
        limits = self._limits
        room = max(
            0,
            min(
                limits.max_findings_per_rule - self._per_rule.get(rule.id, 0),
                limits.max_findings_per_event - len(self._findings),
            ),
        )
        if len(found) > room:
            self._count_over(rule, field, found[room:])
            found = found[:room]
        findings = [
            item
            if isinstance(item, Finding)
            else _finding(
                rule,
                self._event_id,
                field,
                entity=item.entity,
                start=item.start,
                end=item.end,
                score=item.score,
                snippet=redact(text[item.start : item.end]),
                why=item.why,
            )
            for item in found
        ]
        self._per_rule[rule.id] = self._per_rule.get(rule.id, 0) + len(findings)
        self._findings.extend(findings)

    def _count_over(self, rule: Rule, field: str, dropped: Sequence[Finding | Hit]) -> None:
        start, end, score = min(d.start for d in dropped), max(d.end for d in dropped), max(d.score for d in dropped)
        over = self._over.setdefault((rule.id, field), _Over(rule, 0, start, end, score))
        over.count += len(dropped)
        over.start, over.end, over.score = min(over.start, start), max(over.end, end), max(over.score, score)

    def findings(self) -> list[Finding]:
        """The findings that fit, then one over_cap finding per (rule, field) over a cap."""
        limits = self._limits
        return self._findings + [
            _finding(
                over.rule,
                self._event_id,
                field,
                entity="over_cap",
                start=over.start,
                end=over.end,
                score=over.score,
                snippet=f"{over.count} more findings past the caps (limits.max_findings_per_rule="
                f"{limits.max_findings_per_rule}, max_findings_per_event={limits.max_findings_per_event})",
                why="limits.max_findings_per_rule / max_findings_per_event",
            )
            for (_, field), over in self._over.items()
        ]


def _time_budget(skipped_steps: Sequence[_Step], started: float, limits: Limits) -> Failure:
    """The failure that reports the rules left when an event has taken limits.max_event_ms."""
    skipped = list(dict.fromkeys(step[1].rule.id for step in skipped_steps))
    spent = round((time.perf_counter() - started) * 1000)
    return Failure(
        "time_budget",
        ", ".join(skipped),
        "TimeBudgetExceeded",
        f"{spent} ms > limits.max_event_ms={limits.max_event_ms}; not run: {', '.join(skipped)}",
    )


def _not_inspected(event_id: str, field: str, length: int, limits: Limits) -> Finding:
    """Text past limits.max_text_chars is reported, once per field, as a finding of NOT_INSPECTED."""
    return _finding(
        NOT_INSPECTED,
        event_id,
        field,
        entity="not_inspected",
        start=limits.max_text_chars,
        end=length,
        score=1.0,
        snippet=f"{length - limits.max_text_chars} characters past limits.max_text_chars={limits.max_text_chars} "
        "not inspected",
        why="limits.max_text_chars",
    )


class SequenceWindow:
    """Event-time timestamps of one sequence rule's hits for one key; fires at `count` within `within_ms`.

    The job keeps `timestamps` in keyed state; this class holds the logic so it is testable alone.
    """

    def __init__(self, count: int, within_ms: int, timestamps: list[int] | None = None):
        self.count, self.within_ms = count, within_ms
        self.timestamps = sorted(timestamps or [])

    def add(self, timestamp_ms: int) -> bool:
        """Record one hit; True when it completes `count` hits within the window."""
        self.timestamps.insert(bisect_left(self.timestamps, timestamp_ms), timestamp_ms)
        newest = self.timestamps[-1]
        self.timestamps = self.timestamps[bisect_left(self.timestamps, newest - self.within_ms + 1) :]
        if len(self.timestamps) >= self.count:
            self.timestamps = []  # fire once per burst; the next burst counts afresh
            return True
        return False


def sequence_hits(rules: list[Rule], event: AuditEvent, findings: list[Finding]) -> list[tuple]:
    """(rule, key) pairs for which this event counts: one hit per event with a finding of the listed rules."""
    fired = {f.rule_id for f in findings}
    hits = []
    for rule in rules:
        key = getattr(event, rule.sequence.per)
        if key is not None and fired.intersection(rule.sequence.rules):
            hits.append((rule, key))
    return hits


def sequence_finding(rule: Rule, event_id: str) -> Finding:
    match = rule.sequence
    return _finding(
        rule,
        event_id,
        match.per,
        entity=rule.entity or rule.id,
        start=0,
        end=0,
        score=1.0,
        snippet=f"{match.count} events with {', '.join(match.rules)} by one {match.per} within {match.within}",
        why=f"sequence: {match.count} x ({' or '.join(match.rules)}) per {match.per} within {match.within}",
    )
