"""PII values from generators and test suites other than Faker (udfs/evaluation/pii_cases.py)."""

from pathlib import Path

from udfs.engine import RuleEngine
from udfs.evaluation.pii_cases import PHONENUMBERS, STDNUM, phone_cases, stdnum_cases
from udfs.evaluation.quality import evaluate_values
from udfs.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]


def test_every_region_example_in_both_formats_and_stdnums_valid_and_invalid_ibans():
    phones, ibans = phone_cases(), stdnum_cases()
    assert PHONENUMBERS.version and STDNUM.version == "2.2" and STDNUM.license.startswith("LGPL")
    assert len(phones) > 800 and {"(201) 555-0123", "+1 201-555-0123"} <= {case.text for case in phones}
    assert all(case.spans == ((0, len(case.text), "phone_number"),) for case in phones)
    valid = {case.text for case in ibans if case.spans}
    invalid = {case.text for case in ibans if not case.spans}
    assert len(valid) > 150 and len(invalid) > 10 and not valid & invalid
    assert "AL47 2121 1009 0000 0002 3569 8741" in valid  # the IBAN registry's own example


def test_the_default_rules_on_them():
    engine = RuleEngine(load_rules(ROOT / "rules" / "default.yaml"))
    engine.open()
    phones, ibans = evaluate_values(engine, phone_cases(), "phone_number"), evaluate_values(engine, stdnum_cases(), "iban")
    # National numbers of regions outside `phone_regions` are ambiguous without a country code: missed by design.
    assert phones.metrics["recall"][0] >= 0.80 and phones.fp == 0, phones.misses
    assert ibans.metrics["recall"][0] >= 0.70 and ibans.metrics["fpr"][0] <= 0.2, ibans.misses
