"""Measuring the rules (udfs/evaluation/quality.py): span-level counts of the named entities."""


from tests.support.rules import ENTITY_RULES
from udfs.engine import RuleEngine
from udfs.evaluation.quality import evaluate_entities
from udfs.rules import parse_rules


def test_the_span_level_evaluation_counts_hits_misses_and_false_alarms(entities_suite):
    from udfs.evaluation.corpora import EntityText

    cases = [EntityText("Yesterday I met Angela Merkel in Berlin .", ((16, 29, "PERSON"), (33, 39, "LOCATION")), "test"),
             EntityText("The zorblax quintet met the Ambassador of Zorbia .", ((28, 38, "PERSON"),), "test")]
    both_fields = parse_rules(ENTITY_RULES.replace("applies_to: response", "applies_to: both"))
    reports = evaluate_entities(RuleEngine(both_fields), entities_suite, cases, ("PERSON", "LOCATION"))
    assert (reports["PERSON"].tp, reports["LOCATION"].tp) == (1, 1)
    assert reports["all"].tp + reports["all"].fn == 3
    # Whatever the model makes of the second sentence, the counts add up to what it found.
    assert reports["all"].fp == reports["PERSON"].fp + reports["LOCATION"].fp
    assert 0 < reports["all"].metrics["recall"][0] <= 1
