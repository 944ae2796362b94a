"""The poison-message policy in plain Python: a part that raises on an event is that part's failure only."""

import hashlib
import json
import time

import pytest

from tests.support.poison import MARKER
from udfs.detectors import validators
from udfs.engine import RuleEngine
from udfs.events import AuditEvent, EventError, dead_letter, parse_event
from udfs.faults import Failure, bounded_dead_letter, failure_dead_letter
from udfs.rules import RuleError, parse_rules
from udfs.scorers import ScorerSuite, load_config
from udfs.scorers.base import ScorerError, get_backend

pytestmark = pytest.mark.unit

BASE = "version: 1\n    description: d\n    category: policy\n    severity: low\n    owner: t\n"
RULES = f"""rules:
  - id: first
    {BASE}    match: {{type: keywords, words: [alpha]}}
  - id: checked
    {BASE}    match: {{type: pattern, regex: '\\b\\d{{4}}\\b', validator: luhn}}
  - id: also_checked
    {BASE}    match: {{type: pattern, regex: '\\b\\d{{5}}\\b', validator: luhn}}
  - id: last
    {BASE}    match: {{type: keywords, words: [omega]}}
"""


def event(**fields) -> AuditEvent:
    return AuditEvent(**{"event_id": "e", "timestamp": 1_800_000_000_000, "tenant": "acme", "model": "m", **fields})


def test_a_rule_that_raises_is_that_rules_failure_and_the_other_findings_stand(monkeypatch):
    def broken(value: str) -> bool:
        raise ValueError(f"cannot check {value}")

    monkeypatch.setitem(validators.VALIDATORS, "luhn", broken)
    engine = RuleEngine(parse_rules(RULES))
    findings, failures = engine.audit(event(prompt="alpha 1234 12345 omega"))
    assert [f.rule_id for f in findings if f.category != "audit_error"] == ["first", "last"]
    assert [(f.stage, f.where, f.error, f.message) for f in failures] == [
        ("rule", "checked", "ValueError", "cannot check 1234"),
        ("rule", "also_checked", "ValueError", "cannot check 12345"),
    ]
    assert failures[0].origin.startswith("udfs/engine.py:")  # the innermost frame of ours it passed through
    errors = [f for f in findings if f.category == "audit_error"]
    assert [(f.rule_id, f.entity, f.snippet, f.severity, f.field) for f in errors] == [
        ("audit.error", "rule", "checked", "high", "prompt"),
        ("audit.error", "rule", "also_checked", "high", "prompt"),
    ]
    assert len({f.key for f in errors}) == 2  # one document each
    assert all("1234" not in f.why for f in errors)  # the message may quote the text: dead letter only
    assert engine.evaluate(event(prompt="alpha 1234")) == findings[:1] + [errors[0]]


def test_rules_past_the_time_budget_are_skipped_and_reported(monkeypatch):
    def slow(value: str) -> bool:
        time.sleep(0.05)
        return True

    monkeypatch.setitem(validators.VALIDATORS, "luhn", slow)
    ruleset = parse_rules(RULES)
    ruleset = ruleset.model_copy(update={"limits": ruleset.limits.model_copy(update={"max_event_ms": 20})})
    findings, [failure] = RuleEngine(ruleset).audit(event(prompt="alpha 1234 12345 omega"))
    assert (failure.stage, failure.where) == ("time_budget", "also_checked, last")
    assert "limits.max_event_ms=20" in failure.message
    assert [f.rule_id for f in findings] == ["first", "checked", "audit.error"]
    assert findings[-1].why.startswith("time_budget also_checked, last: not inspected: time budget")


def test_the_default_budget_is_far_above_the_worst_case_and_an_ordinary_event_does_not_reach_it():
    from udfs.rules import Limits

    assert Limits().max_event_ms >= 4 * 2_000  # bench/adversarial.py: ~2 s per field at worst
    engine = RuleEngine(parse_rules(RULES))
    assert engine.audit(event(prompt="alpha " * 10_000))[1] == []


def test_a_dead_letter_never_exceeds_its_limit_and_says_what_was_cut():
    raw = '"\x01' * 600_000  # each character escaped in JSON: 2.4 MB of dead letter uncut
    text = bounded_dead_letter({"reason": "invalid_json", "errors": ["e"], "raw": raw}, max_bytes=100_000)
    record = json.loads(text)
    assert len(text.encode()) <= 100_000 and record["raw_truncated"] is True
    assert raw.startswith(record["raw"]) and len(record["raw"]) > 10_000
    assert record["raw_bytes"] == len(raw.encode()) and record["raw_sha256"] == hashlib.sha256(raw.encode()).hexdigest()
    small = json.loads(dead_letter("{oops", EventError("invalid_json", ["bad"])))
    assert small == {"reason": "invalid_json", "errors": ["bad"], "raw": "{oops"}  # nothing added when it fits


def test_the_dead_letter_of_a_failure_carries_every_failure_with_its_message():
    try:
        raise KeyError("boom")
    except KeyError as exc:
        failure = Failure.of("archive", "archive row", exc)
    record = json.loads(failure_dead_letter('{"event_id": "e"}', [failure]))
    assert record["reason"] == "audit_error" and record["raw"] == '{"event_id": "e"}'
    assert record["errors"] == ["archive archive row: KeyError: 'boom'"]
    assert record["failures"][0]["origin"].startswith("unit/test_faults.py:")  # none of ours: the innermost


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        (253_402_300_800_000, "not a time up to 9999-12-31"),
        ("1e400", "not a time up to"),
        ('"9999-12-31T23:59:59-01:00"', "not a time up to"),
        ("NaN", "not a time up to"),
    ],
)
def test_times_past_year_9999_are_schema_violations_not_crashes(timestamp, message):
    raw = f'{{"event_id":"a","timestamp":{timestamp},"tenant":"t","model":"m","prompt":"x"}}'
    with pytest.raises(EventError, match=message) as caught:
        parse_event(raw)
    assert caught.value.reason in ("schema_violation", "invalid_json")


@pytest.mark.parametrize("field", ["cost_usd", "latency_ms"])
def test_infinite_numbers_are_schema_violations(field):
    with pytest.raises(EventError, match=f"{field}: Input should be a finite number"):
        parse_event(f'{{"event_id":"a","timestamp":1800000000000,"tenant":"t","model":"m","prompt":"x","{field}":1e999}}')


def test_a_scorer_that_raises_on_one_event_costs_that_event_its_scores_only():
    suites = [ScorerSuite(load_config(f"tests/fixtures/scorers/{name}.yaml"), ["toxicity"], "cpu")
              for name in ("poison", "packaged")]
    for suite in suites:
        suite.open()
    poisoned, packaged = suites
    events = [event(event_id=str(i), prompt=p) for i, p in enumerate(["hi", f"I hate {MARKER}", "I hate you"])]
    with pytest.raises(RuntimeError):
        poisoned.score_events(events)  # the batch fails as a whole
    (s0, _, f0), (s1, _, [failure]), (s2, _, f2) = poisoned.score_events_isolated(events)
    expected = packaged.score_events([events[0], events[2]])
    assert [s0["prompt"]["toxicity"], s2["prompt"]["toxicity"]] == [s["prompt"]["toxicity"] for s, _ in expected]
    assert f0 == f2 == [] and s1 == {"prompt": {}}
    assert (failure.stage, failure.where, failure.error) == ("score", "toxicity", "RuntimeError")


def test_scorer_backends_of_your_own_by_import_path_and_clear_errors():
    assert get_backend("tests.support.poison:RaisesOnMarker").__name__ == "RaisesOnMarker"
    with pytest.raises(ScorerError, match="valid backends: .*ensemble.*package.module:Class"):
        get_backend("nope")
    with pytest.raises(ScorerError, match="cannot be imported"):
        get_backend("no.such.module:Thing")
    with pytest.raises(ScorerError, match="not a subclass"):
        get_backend("json:dumps")


def test_a_rule_that_fails_on_every_event_fails_at_open_not_per_event(monkeypatch):
    def broken(value: str) -> bool:
        raise ValueError("a bug, whatever the input")

    monkeypatch.setitem(validators.VALIDATORS, "luhn", broken)
    engine = RuleEngine(parse_rules(RULES))
    with pytest.raises(RuleError, match="fail on an ordinary event.*rule checked: ValueError: a bug"):
        engine.open()


def test_the_self_check_passes_for_the_default_rules_with_every_rule_enabled():
    from udfs.rules import load_rules

    RuleEngine(load_rules("rules/default.yaml").all_enabled()).open()


def test_a_scorer_that_fails_on_every_text_fails_at_open(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("toxicity: {backend: 'tests.support.poison:AlwaysRaises', main: [toxicity]}\n")
    suite = ScorerSuite(load_config(config), ["toxicity"], "cpu")
    with pytest.raises(ScorerError, match="scorer toxicity fails on an ordinary text, so on every event: broken"):
        suite.open()


def test_token_counts_past_32_bits_are_schema_violations_not_wrapped_in_the_archive():
    ok = '{"event_id":"a","timestamp":1800000000000,"tenant":"t","model":"m","prompt":"x","prompt_tokens":%d}'
    assert parse_event(ok % (2**31 - 1)).prompt_tokens == 2**31 - 1
    with pytest.raises(EventError, match="prompt_tokens: Input should be less than or equal to 2147483647"):
        parse_event(ok % 3_000_000_000)


def test_a_parser_defect_on_one_message_is_its_dead_letter_not_a_crash(monkeypatch):
    def broken(raw):
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(AuditEvent, "model_validate_json", broken)
    with pytest.raises(EventError) as caught:
        parse_event("{}")
    assert caught.value.reason == "audit_error"
    assert caught.value.errors == ["parse event: OverflowError: cannot convert float infinity to integer"]
