import pytest

from udfs.engine import RuleEngine, SequenceWindow
from udfs.events import AuditEvent
from udfs.rules import parse_rules

BASE = "version: 1\n    description: d\n    category: policy\n    severity: low\n    owner: t\n"


def engine(rules_yaml: str) -> RuleEngine:
    e = RuleEngine(parse_rules("rules:\n" + rules_yaml))
    e.open()
    return e


def event(**fields) -> AuditEvent:
    return AuditEvent(**{"event_id": "e", "timestamp": 1_800_000_000_000, "tenant": "acme", "model": "m", **fields})


def test_keywords_whole_word_case_folded_with_spans():
    e = engine(f"  - id: kw\n    {BASE}    match: {{type: keywords, words: [build a bomb, Sarin]}}\n")
    text = "How to BUILD A BOMB? sarin... not a bath bomb, not sarinx"
    found = e.evaluate(event(prompt=text))
    assert [(f.field, text[f.start:f.end]) for f in found] == [("prompt", "BUILD A BOMB"), ("prompt", "sarin")]
    assert all(f.snippet != text[f.start:f.end] for f in found)


def test_pattern_validator_and_context_words_set_the_score():
    e = engine(f"""  - id: acct
    {BASE}    match:
      type: pattern
      regex: '\\b\\d{{8}}\\b'
      score: 0.4
      min_score: 0.5
      context: [{{words: [account, acct], boost: 0.3}}]
""")
    assert e.evaluate(event(prompt="order 12345678 shipped")) == []
    [finding] = e.evaluate(event(prompt="my account number is 12345678"))
    assert finding.score == 0.7 and finding.entity == "acct"


def test_field_conditions_scope_and_applies_to():
    e = engine(f"""  - id: slow
    {BASE}    models: [gpt-4o]
    match: {{type: field, conditions: [{{field: latency_ms, op: gt, value: 1000}}, {{field: tenant, op: in, value: [acme]}}]}}
  - id: resp
    {BASE}    applies_to: response
    match: {{type: keywords, words: [secret]}}
""")
    assert e.evaluate(event(prompt="p", latency_ms=5000, model="llama")) == []  # out of scope
    [slow] = e.evaluate(event(prompt="secret", latency_ms=5000, model="gpt-4o"))  # prompt: resp rule skips it
    assert (slow.rule_id, slow.field, slow.snippet) == ("slow", "latency_ms", "latency_ms=5000.0, tenant=acme")
    assert [f.rule_id for f in e.evaluate(event(response="a secret", latency_ms=10))] == ["resp"]


def test_score_rules_use_the_scores_they_are_given():
    e = engine(f"  - id: tox\n    {BASE}    match: {{type: score, scorer: toxicity, threshold: 0.8}}\n")
    ev = event(prompt="you idiot", response="calm")
    assert e.evaluate(ev) == []
    [f] = e.evaluate(ev, scores={"prompt": {"toxicity": 0.93}, "response": {"toxicity": 0.1}})
    assert (f.field, f.start, f.end, f.score) == ("prompt", 0, 9, 0.93)


def test_disabled_rules_do_not_run_and_sequence_rules_are_left_to_the_job():
    e = engine(f"""  - id: kw
    {BASE}    enabled: false
    match: {{type: keywords, words: [x]}}
  - id: inj
    {BASE}    match: {{type: keywords, words: [ignore]}}
  - id: burst
    {BASE}    match: {{type: sequence, rules: [inj], count: 3, within: 10m, per: user_id}}
""")
    assert [f.rule_id for f in e.evaluate(event(prompt="x ignore"))] == ["inj"]
    assert [r.id for r in e.sequence_rules] == ["burst"]


@pytest.mark.parametrize(
    "times, fires",
    [
        ([0, 60_000, 120_000], [False, False, True]),  # three within ten minutes
        ([0, 400_000, 800_000], [False, False, False]),  # spread out: never three within ten minutes
        ([0, 1, 2, 3, 4, 5], [False, False, True, False, False, True]),  # fires once per burst of three
        ([300_000, 0, 200_000], [False, False, True]),  # out of order, still within the window
    ],
)
def test_sequence_window(times, fires):
    rule = parse_rules(f"""rules:
  - id: a
    {BASE}    match: {{type: keywords, words: [x]}}
  - id: s
    {BASE}    match: {{type: sequence, rules: [a], count: 3, within: 10m, per: user_id}}
""").rules[1]
    window = SequenceWindow(rule.match.count, rule.match.within_ms)
    assert [window.add(t) for t in times] == fires
