"""Rules files and pushed rulesets (udfs/rules.py): loading, errors that name the file, line, rule and field, the
JSON schema, and what a push may not do."""

from pathlib import Path

import pytest
import yaml

from tests.support.rules import ENTITY_RULES
from udfs.engine import RuleEngine
from udfs.events import CONTEXT_FIELDS, MEASURE_FIELDS
from udfs.rules import RuleError, load_rules, parse_rules

ROOT = Path(__file__).resolve().parents[2]


FIXTURES = ROOT / "tests" / "fixtures" / "rules"


@pytest.mark.parametrize(
    "name, message",
    [
        ("duplicate_id.yaml", r"duplicate_id.yaml:3: rule 'pii.email': duplicate id, first used at line 2"),
        ("bad_regex.yaml", r"bad_regex.yaml:10: rule 'broken' field match.regex: regex '\(\?=secret\)\\\\w\+' is not valid RE2 .*no backreferences or lookaround"),
        ("bad_severity.yaml", r"bad_severity.yaml:6: rule 'loud' field severity: 'urgent' is not one of info, low, medium, high, critical"),
        ("unknown_field.yaml", r"unknown_field.yaml:8: rule 'typo' field sevrity: unknown field"),
        ("unknown_detector.yaml", r"unknown_detector.yaml:8: rule 'nope' field match: unknown detector 'pii_v2'; valid detectors: pii, prompt_injection, secrets"),
        ("bad_detector_params.yaml", r"rule 'nope' field match: .*no entities \['passport'\]; valid: email, phone_number"),
        ("bad_sequence.yaml", r"sequence over unknown or stateful rules \['b'\]; valid: a"),
        ("missing_keywords_file.yaml", r"rule 'kw' field match: keywords file .*nowhere.txt' not found"),
        ("bad_condition.yaml", r"rule 'slow' field match.conditions.0.field: 'latency' is not one of latency_ms, prompt_tokens"),
        ("missing.yaml", "missing.yaml: no rules file or directory there"),
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


def _split_default_ruleset(directory: Path) -> None:
    """rules/default.yaml as two files in two folders, each with the keyword lists it names."""
    text = (ROOT / "rules" / "default.yaml").read_text()
    head, _, body = text.partition("\nrules:\n")
    items = body.split("\n  - id: ")
    half = len(items) // 2
    (directory / "team").mkdir(parents=True)
    (directory / "a.yaml").write_text(head + "\nrules:\n" + "\n  - id: ".join(items[:half]) + "\n")
    (directory / "team" / "b.yaml").write_text("rules:\n  - id: " + "\n  - id: ".join(items[half:]) + "\n")
    for folder in (directory, directory / "team"):
        (folder / "lists").mkdir()
        for keywords in (ROOT / "rules" / "lists").iterdir():
            (folder / "lists" / keywords.name).write_text(keywords.read_text())


def test_a_directory_of_rules_files_is_one_ruleset(tmp_path):
    _split_default_ruleset(tmp_path)
    whole = load_rules(ROOT / "rules" / "default.yaml")
    together = load_rules(tmp_path)
    assert [r.id for r in together.rules] == [r.id for r in whole.rules]
    assert together.content_hash() == whole.content_hash()  # sequences refer to rules of the other file


def test_a_directory_reports_every_files_errors_and_ids_repeated_across_files(tmp_path):
    _split_default_ruleset(tmp_path)
    b = tmp_path / "team" / "b.yaml"
    b.write_text(b.read_text().replace("severity: critical", "severity: urgent", 1))
    (tmp_path / "team" / "c.yaml").write_text((tmp_path / "a.yaml").read_text())
    with pytest.raises(RuleError) as raised:
        load_rules(tmp_path)
    lines = str(raised.value).splitlines()
    assert any(line.startswith(f"{b}:") and "severity: 'urgent' is not one of info, low" in line for line in lines)
    assert any(line.startswith(f"{tmp_path / 'team' / 'c.yaml'}:5: rule 'pii.email': duplicate id, first used at "
                               f"{tmp_path / 'a.yaml'}:5") for line in lines), lines


def test_limits_may_be_set_in_one_file_of_a_directory_only(tmp_path):
    (tmp_path / "a.yaml").write_text("limits: {max_text_chars: 1000}\nrules: []\n")
    (tmp_path / "b.yaml").write_text("limits: {max_text_chars: 2000}\nrules: []\n")
    with pytest.raises(RuleError, match="limits set in .*a.yaml, .*b.yaml; set them in one file only"):
        load_rules(tmp_path)
    (tmp_path / "b.yaml").write_text("rules: []\n")
    assert load_rules(tmp_path).limits.max_text_chars == 1000
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuleError, match="empty: no \\*.yaml rules files under this directory"):
        load_rules(tmp_path / "empty")


def test_a_push_never_makes_the_job_read_a_file(monkeypatch, tmp_path):
    """Hole 4 of issue 30: a pushed `file:` would have the TaskManager read any path (a probe of
    /var/run/secrets/..., its content confirmed through the hash). Pushes carry their lists inline."""
    from pathlib import Path

    from udfs.rules import RuleError, ruleset_from_push

    secret = tmp_path / "token"
    secret.write_text("s3cr3t\n")
    read = []
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: read.append(self) or "")
    rule = {"id": "probe", "version": 1, "description": "d", "category": "policy", "severity": "low", "owner": "x",
            "match": {"type": "keywords", "file": str(secret)}}
    with pytest.raises(RuleError, match="in a pushed ruleset: pushes carry their keyword lists as 'words'"):
        ruleset_from_push({"version": 2, "author": "eve", "rules": {"rules": [rule]}})
    assert read == []


@pytest.mark.parametrize("path", ["/etc/hostname", "../outside.txt", "lists/../../outside.txt"])
def test_keyword_files_outside_the_rules_folder_are_refused(tmp_path, path):
    from udfs.rules import RuleError, parse_rules

    (tmp_path / "outside.txt").write_text("word\n")
    folder = tmp_path / "rules"
    folder.mkdir()
    text = ("rules:\n  - id: kw\n    version: 1\n    description: d\n    category: policy\n    severity: low\n"
            f"    owner: t\n    match: {{type: keywords, file: '{path}'}}\n")
    with pytest.raises(RuleError, match="is outside the rules folder"):
        parse_rules(text, str(folder / "r.yaml"), folder)


ENTITIES_RULE = """rules:
  - id: names
    version: 1
    description: people named
    category: pii
    severity: low
    owner: privacy
    match:
      type: entities
      entities:
        - PERSON
        - PLANET
"""


def test_an_error_in_an_entities_rule_names_its_field_and_line():
    # The match type was left in the path (match.entities.entities.1, the line of the list) while `entities`
    # was missing from the tags that _describe drops: they are read off the Match union now.
    with pytest.raises(RuleError, match=r"^r.yaml:12: rule 'names' field match.entities.1: 'PLANET' is not one of "
                                        r"PERSON, LOCATION, ORGANIZATION, NRP$"):
        parse_rules(ENTITIES_RULE, "r.yaml")


def test_match_types_are_read_off_the_match_union():
    from udfs.rules import MATCH_TYPES, TEXT_MATCHES, rules_json_schema

    assert MATCH_TYPES == ("pattern", "keywords", "detector", "score", "entities", "field", "sequence")
    assert TEXT_MATCHES == ("pattern", "keywords", "detector", "score", "entities")
    mapping = rules_json_schema()["$defs"]["Rule"]["properties"]["match"]["discriminator"]["mapping"]
    assert sorted(mapping) == sorted(MATCH_TYPES)


def test_field_rules_compare_the_measures_and_the_context_and_sequences_count_by_context():
    from udfs.rules import SEQUENCE_KEYS, Condition, SequenceMatch, rules_json_schema

    defs = rules_json_schema()["$defs"]
    assert tuple(defs[Condition.__name__]["properties"]["field"]["enum"]) == MEASURE_FIELDS + CONTEXT_FIELDS
    assert set(SEQUENCE_KEYS) <= set(CONTEXT_FIELDS)
    assert tuple(defs[SequenceMatch.__name__]["properties"]["per"]["enum"]) == SEQUENCE_KEYS




def test_entities_rules_validate_their_entities_and_need_the_entities_model():
    ruleset = parse_rules(ENTITY_RULES)
    assert ruleset.scorers_used() == {"entities"}
    with pytest.raises(RuleError, match="'PEOPLE' is not one of PERSON, LOCATION, ORGANIZATION, NRP"):
        parse_rules(ENTITY_RULES.replace("[PERSON]", "[PEOPLE]"))
    with pytest.raises(RuleError, match="unknown scorer 'entities'; valid scorers: toxicity, bias"):
        parse_rules(ENTITY_RULES.replace("{type: entities, entities: [PERSON]}", "{type: score, scorer: entities, threshold: 0.5}"))
