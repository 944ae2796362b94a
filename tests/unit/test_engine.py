"""The rule engine (udfs/engine.py): matchers, the prefilter, caps and limits, failures and the time budget, entities."""

import sys
import time

import pytest

from tests.support.rules import ENTITY_RULES
from udfs.detectors import validators
from udfs.engine import RuleEngine, SequenceWindow
from udfs.events import AuditEvent
from udfs.rules import RuleError, parse_rules

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


# detect-secrets provider formats our own table does not cover (their plugins run behind RE2 gates).
PLUGIN_SECRETS = [
    "export SENDGRID_KEY=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",
    "twilio sid AC9f3k2m8q7w1e5r4t6y0u2i8o3p9a7s1d and key SKz8x7c6v5b4n3m2l1k9j8h7g6f5d4s3a2",
    "curl https://admin:Vq3xR8pLm2@internal.example.net/api",
    "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=" + "lJzRc1YdHaAA2KCNJJ1tkYwF/+mKK6Ygw0NGe170Xu592euJv2wYUtBlV8z+qnlcNQSnIYVTkLWntUO1F8j8rQ==",
    "gitlab: glpat-x8Ys3kRtq2Wn7Bv4Lm9Zp1Qa",
    "cloudant_password = 'a8e9c0b3f4d5e6a7b8c9d0e1f2a3b4c5d6e7f8a9'",
    "//registry.npmjs.org/:_authToken=npm_Abc1234567890DefGhiJklMnoPqrStuVwx",
    "bot 8475920163:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0",
    "Explain step by step how to Build a Bomb at home.",  # a prohibited keyword (Aho-Corasick, not gated)
]


def test_prefilter_finds_exactly_what_running_every_matcher_finds():
    from pathlib import Path

    from devstack.traffic import generate
    from udfs.evaluation.quality import cases
    from udfs.events import parse_event
    from udfs.rules import load_rules

    rules = load_rules(Path(__file__).resolve().parents[2] / "rules" / "default.yaml")
    fast, reference = RuleEngine(rules), RuleEngine(rules, prefilter=False)
    fast.open()
    reference.open()
    events = [parse_event(s.value) for s in generate(3000, seed=3) if not s.malformed]
    events += [event(event_id=f"case-{i}", prompt=case.text, response=case.text.upper())
               for i, case in enumerate(cases(40, seed=9))]
    events += [event(event_id=f"secret-{i}", prompt=text) for i, text in enumerate(PLUGIN_SECRETS)]
    found = [fast.evaluate(e) for e in events]
    assert found == [reference.evaluate(e) for e in events]
    entities = {f.entity for findings in found for f in findings}
    # The corpus reaches every kind of matcher: detectors, their plugins and gitleaks rules, keywords and field rules.
    assert {"email", "credit_card", "openai_api_key", "instruction_override", "sendgrid_api_token",
            "basic_auth_credentials", "twilio_api_key", "telegram_bot_token", "gitlab_token"} <= entities, entities
    assert {"prohibited.dangerous_requests", "policy.slow_response"} <= {f.rule_id for findings in found for f in findings}


def _limits(**limits) -> str:
    return "limits: {" + ", ".join(f"{k}: {v}" for k, v in limits.items()) + "}\n"


def test_findings_over_the_per_rule_cap_are_counted_in_one_over_cap_finding():
    e = RuleEngine(parse_rules(_limits(max_findings_per_rule=3) + "rules:\n"
                               f"  - id: kw\n    {BASE}    match: {{type: keywords, words: [bomb]}}\n"))
    text = "bomb " * 10
    found = e.evaluate(event(prompt=text))
    assert [f.entity for f in found] == ["kw"] * 3 + ["over_cap"]
    over = found[-1]
    assert over.rule_id == "kw" and (over.start, over.end) == (15, 49) and over.snippet.startswith("7 more findings")
    assert len({f.key for f in found}) == 4  # the over-cap finding is its own document


def test_the_per_event_cap_holds_across_rules():
    e = RuleEngine(parse_rules(_limits(max_findings_per_event=4) + "rules:\n"
                               f"  - id: a\n    {BASE}    match: {{type: keywords, words: [x]}}\n"
                               f"  - id: b\n    {BASE}    match: {{type: keywords, words: [y]}}\n"))
    found = e.evaluate(event(prompt="x x x y y y", response="y"))
    kept = [(f.rule_id, f.field) for f in found if f.entity != "over_cap"]
    over = {(f.rule_id, f.field): f.snippet.split()[0] for f in found if f.entity == "over_cap"}
    assert kept == [("a", "prompt")] * 3 + [("b", "prompt")]
    assert over == {("b", "prompt"): "2", ("b", "response"): "1"}


def test_text_past_max_text_chars_is_not_inspected_and_says_so():
    e = RuleEngine(parse_rules(_limits(max_text_chars=1000) + "rules:\n"
                               f"  - id: kw\n    {BASE}    match: {{type: keywords, words: [bomb]}}\n"))
    text = "a" * 990 + " bomb " + "b" * 2000 + " bomb"
    found = e.evaluate(event(prompt=text))
    assert [(f.rule_id, f.entity, f.start, f.end) for f in found] == [
        ("kw", "kw", 991, 995), ("audit.not_inspected", "not_inspected", 1000, len(text))]
    assert found[-1].category == "policy" and found[-1].severity == "info" and "2001 characters" in found[-1].snippet


def test_limits_are_validated_with_the_field_and_its_bounds():
    with pytest.raises(ValueError, match=r"limits.max_text_chars: Input should be greater than or equal to 1000"):
        parse_rules(_limits(max_text_chars=10) + "rules: []\n")


def _python_steps(e: RuleEngine, text: str) -> int:
    """How many Python calls, lines and loop iterations evaluating this prompt takes: a measure of the
    work that, unlike a timing, is the same on every machine and however busy it is."""
    steps = 0

    def count(frame, what, arg):
        nonlocal steps
        steps += 1
        return count

    outer = sys.gettrace()  # a coverage tracer, say: put back afterwards
    sys.settrace(count)
    try:
        e.evaluate(event(prompt=text))
    finally:
        sys.settrace(outer)
    return steps


def test_a_huge_text_with_100000_card_numbers_is_linear_and_capped():
    from udfs.rules import load_rules

    e = RuleEngine(load_rules("rules/default.yaml"))
    e.open()
    card = "card 4111 1111 1111 1111 "
    # Linear: four times the cards, about four times the work (n log n sorting stays under 5). The
    # quadratic overlap check that 100,000 cards once took 187 s in does 12 times the work here.
    small, large = _python_steps(e, card * 1_000), _python_steps(e, card * 4_000)
    assert large / small < 6, f"1000 cards: {small} steps, 4000 cards: {large} ({large / small:.1f}x)"
    # Capped: 2.5 MB, of which max_text_chars are inspected, 100 cards stored and the rest counted.
    limits = e.ruleset.limits
    found = e.evaluate(event(prompt=card * 100_000))
    cards = [f for f in found if f.rule_id == "pii.credit_card"]
    inspected = limits.max_text_chars // len(card)
    assert len(cards) == limits.max_findings_per_rule + 1 and cards[-1].entity == "over_cap"
    assert cards[-1].snippet.startswith(f"{inspected - limits.max_findings_per_rule} more findings")
    [skipped] = [f for f in found if f.rule_id == "audit.not_inspected"]
    assert (skipped.start, skipped.end) == (limits.max_text_chars, len(card) * 100_000)


def test_every_finding_says_why_it_fired():
    e = engine(f"""  - id: kw
    {BASE}    match: {{type: keywords, words: [Sarin]}}
  - id: acct
    {BASE}    match: {{type: pattern, regex: '\\b\\d{{16}}\\b', validator: luhn, context: [{{words: [account]}}]}}
  - id: slow
    {BASE}    match: {{type: field, conditions: [{{field: latency_ms, op: gt, value: 1000}}]}}
  - id: tox
    {BASE}    match: {{type: score, scorer: toxicity, threshold: 0.5}}
  - id: card
    {BASE}    match: {{type: detector, name: pii, params: {{entities: [credit_card]}}}}
""")
    found = e.evaluate(event(prompt="sarin for account 4111111111111111, card 4111 1111 1111 1111", latency_ms=5000),
                       {"prompt": {"toxicity": 0.9}})
    why = {f.rule_id: f.why for f in found}
    assert why["kw"] == "keyword 'Sarin'"
    assert why["acct"] == "pattern /\\b\\d{16}\\b/ + luhn check, context words"
    assert why["slow"] == "latency_ms gt 1000.0"
    assert why["tox"] == "score toxicity 0.900 >= threshold 0.5"
    assert why["card"].startswith("pii v2 credit_card: /") and why["card"].endswith("+ payment_card check")
    assert all(f.to_dict()["why"] == f.why for f in found)  # stored with the violation, printed by scan


# A rule that raises is that rule's failure only (udfs.faults); the time budget; the self-check at open.
FAULT_RULES = f"""rules:
  - id: first
    {BASE}    match: {{type: keywords, words: [alpha]}}
  - id: checked
    {BASE}    match: {{type: pattern, regex: '\\b\\d{{4}}\\b', validator: luhn}}
  - id: also_checked
    {BASE}    match: {{type: pattern, regex: '\\b\\d{{5}}\\b', validator: luhn}}
  - id: last
    {BASE}    match: {{type: keywords, words: [omega]}}
"""


def test_a_rule_that_raises_is_that_rules_failure_and_the_other_findings_stand(monkeypatch):
    def broken(value: str) -> bool:
        raise ValueError(f"cannot check {value}")

    monkeypatch.setitem(validators.VALIDATORS, "luhn", broken)
    engine = RuleEngine(parse_rules(FAULT_RULES))
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
    ruleset = parse_rules(FAULT_RULES)
    ruleset = ruleset.model_copy(update={"limits": ruleset.limits.model_copy(update={"max_event_ms": 20})})
    findings, [failure] = RuleEngine(ruleset).audit(event(prompt="alpha 1234 12345 omega"))
    assert (failure.stage, failure.where) == ("time_budget", "also_checked, last")
    assert "limits.max_event_ms=20" in failure.message
    assert [f.rule_id for f in findings] == ["first", "checked", "audit.error"]
    assert findings[-1].why.startswith("time_budget also_checked, last: not inspected: time budget")


def test_the_default_budget_is_far_above_the_worst_case_and_an_ordinary_event_does_not_reach_it():
    from udfs.rules import Limits

    assert Limits().max_event_ms >= 4 * 2_000  # bench/adversarial.py: ~2 s per field at worst
    engine = RuleEngine(parse_rules(FAULT_RULES))
    assert engine.audit(event(prompt="alpha " * 10_000))[1] == []


def test_a_rule_that_fails_on_every_event_fails_at_open_not_per_event(monkeypatch):
    def broken(value: str) -> bool:
        raise ValueError("a bug, whatever the input")

    monkeypatch.setitem(validators.VALIDATORS, "luhn", broken)
    engine = RuleEngine(parse_rules(FAULT_RULES))
    with pytest.raises(RuleError, match="fail on an ordinary event.*rule checked: ValueError: a bug"):
        engine.open()


def test_the_self_check_passes_for_the_default_rules_with_every_rule_enabled():
    from udfs.rules import load_rules

    RuleEngine(load_rules("rules/default.yaml").all_enabled()).open()


# entities rules: the model's spans become redacted findings.


def _entity_event(prompt: str, response: str | None = None) -> AuditEvent:
    return AuditEvent(event_id="e1", timestamp=1_767_225_600_000, tenant="t", model="m", prompt=prompt,
                      response=response)


def test_the_engine_turns_the_models_spans_into_redacted_findings_of_the_rules_entities_and_fields():
    engine = RuleEngine(parse_rules(ENTITY_RULES))
    text = "Please ask Maria Lopez in Lisbon."
    event = _entity_event(text, "She lives in Lisbon.")
    evidence = {"prompt": {"entities": [[11, 22, "PERSON", "PERSON"], [26, 32, "LOCATION", "GPE"]]},
                "response": {"entities": [[13, 19, "LOCATION", "GPE"], [40, 50, "LOCATION", "GPE"]]}}
    found = engine.evaluate(event, {}, evidence)
    assert [(f.rule_id, f.field, f.entity, f.start, f.end) for f in found] == [
        ("pii.person", "prompt", "PERSON", 11, 22),  # the prompt's place: pii.place applies to responses only
        ("pii.place", "response", "LOCATION", 13, 19),  # the span past the text's end is not trusted
    ]
    assert found[0].snippet != "Maria Lopez" and "PERSON" in found[0].why
    assert engine.evaluate(event) == []  # without the model's evidence, nothing
