from pathlib import Path

import pytest
import yaml

from udfs.engine import RuleEngine
from udfs.rules import RuleError, load_rules, parse_rules

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "rules"


@pytest.mark.parametrize(
    "name, message",
    [
        ("duplicate_id.yaml", r"duplicate_id.yaml:3: rule 'pii.email': duplicate id, first used at line 2"),
        ("bad_regex.yaml", r"bad_regex.yaml:10: rule 'broken' field match.regex: regex '\(\?=secret\)\\\\w\+' is not valid RE2 .*no backreferences or lookaround"),
        ("bad_severity.yaml", r"bad_severity.yaml:6: rule 'loud' field severity: Input should be 'info', 'low', 'medium', 'high' or 'critical'"),
        ("unknown_field.yaml", r"unknown_field.yaml:8: rule 'typo' field sevrity: unknown field"),
        ("unknown_detector.yaml", r"unknown_detector.yaml:8: rule 'nope' field match: unknown detector 'pii_v2'; valid detectors: injection_similarity, pii, prompt_injection, secrets"),
        ("bad_detector_params.yaml", r"rule 'nope' field match: .*no entities \['passport'\]; valid: email, phone_number"),
        ("bad_sequence.yaml", r"sequence over unknown or stateful rules \['b'\]; valid: a"),
        ("missing_keywords_file.yaml", r"rule 'kw' field match: keywords file .*nowhere.txt' not found"),
        ("bad_condition.yaml", r"rule 'slow' field match.conditions.0.field: Input should be 'latency_ms'"),
        ("missing.yaml", "rules file not found"),
    ],
)
def test_bad_rules_files_are_rejected_naming_file_line_rule_and_field(name, message):
    with pytest.raises(RuleError, match=message):
        load_rules(FIXTURES / name)


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(RuleError, match=r"push:3: not valid YAML: expected .,. or .}."):
        parse_rules("rules:\n  - {id: x\n", source="push")


def test_default_ruleset_examples_pass_and_hash_is_stable():
    ruleset = load_rules(ROOT / "rules" / "default.yaml")
    engine = RuleEngine(ruleset.all_enabled())
    engine.open()
    examples = 0
    for rule in ruleset.rules:
        for text in rule.examples.must_match:
            assert engine.matches_text(rule.id, text), (rule.id, text)
        for text in rule.examples.must_not_match:
            assert not engine.matches_text(rule.id, text), (rule.id, text)
        examples += len(rule.examples.must_match) + len(rule.examples.must_not_match)
    assert examples > 40
    data = yaml.safe_load((ROOT / "rules" / "default.yaml").read_text())
    reformatted = parse_rules(yaml.safe_dump(data, sort_keys=True, width=60), base_dir=ROOT / "rules")
    assert reformatted.content_hash() == ruleset.content_hash()


def test_committed_json_schema_is_the_exported_one():
    import json

    from udfs.rules import rules_json_schema

    assert json.loads((ROOT / "rules" / "schema.json").read_text()) == rules_json_schema()
