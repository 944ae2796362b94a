from pathlib import Path

import pytest

from devstack.traffic import generate
from udfs.events import parse_event
from udfs.rules import RuleEngine, RuleError, load_rules

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "rules"


@pytest.mark.parametrize(
    "name, message",
    [
        ("duplicate_id.yaml", "duplicate rule id 'pii.email'"),
        ("bad_regex.yaml", r"rule 'broken' field match.pattern.regex: regex does not compile"),
        ("bad_severity.yaml", r"rule 'loud' field severity: Input should be 'info', 'low', 'medium', 'high' or 'critical'"),
        ("unknown_field.yaml", r"rule 'typo' field sevrity: Extra inputs are not permitted"),
        ("not_yaml.yaml", "not valid YAML"),
        ("missing.yaml", "rules file not found"),
    ],
)
def test_bad_rules_files_are_rejected_naming_file_rule_and_field(name, message):
    with pytest.raises(RuleError, match=message) as info:
        load_rules(FIXTURES / name)
    assert name in str(info.value)


def test_default_email_rule_finds_exactly_the_planted_emails():
    engine = RuleEngine(load_rules(ROOT / "rules" / "default.yaml"))
    planted = found = 0
    for sample in generate(2000, seed=3):
        if sample.malformed:
            continue
        event = parse_event(sample.value)
        expected = {(lb.field, lb.start, lb.end) for lb in sample.labels if lb.kind == "email"}
        findings = engine.evaluate(event)
        assert {(f.field, f.start, f.end) for f in findings} == expected, sample.value
        for f in findings:
            assert f.rule_id == "pii.email" and f.rule_version == 1 and f.category == "pii"
            assert getattr(event, f.field)[f.start:f.end] not in f.snippet  # redacted
        planted += len(expected)
        found += len(findings)
    assert planted == found > 100
