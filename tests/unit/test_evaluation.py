"""The default rules' quality on the labelled set (udfs/evaluation/quality.py over udfs/engine.py)."""

from pathlib import Path

from udfs.evaluation.quality import cases, evaluate
from udfs.engine import RuleEngine
from udfs.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]


def test_default_rules_quality_on_the_labelled_set():
    engine = RuleEngine(load_rules(ROOT / "rules" / "default.yaml"))
    engine.open()
    dataset = cases(60, seed=5)
    report = evaluate(engine, dataset)
    assert set(report) >= {"email", "credit_card", "iban", "us_ssn", "openai_api_key", "prompt_injection"}
    for entity, r in report.items():
        assert r["f1"] >= 0.9, (entity, r)
    negatives = [c for c in dataset if not c.planted]
    assert len(negatives) == 60 * 5  # hard negatives and benign look-alikes
    assert sum(r["fp"] for r in report.values()) <= 2


def test_evaluate_counts_misses_and_false_alarms():
    from udfs.evaluation.quality import Case
    from udfs.rules import parse_rules

    engine = RuleEngine(parse_rules("""rules:
  - {id: e, version: 1, description: d, category: pii, severity: low, owner: t, match: {type: detector, name: pii, params: {entities: [email]}}}
"""))
    engine.open()
    report = evaluate(engine, [Case("a@b.co", (("email", 0, 6),)), Case("none", (("email", 0, 4),)), Case("x@y.io", ())])
    assert (report["email"]["tp"], report["email"]["fn"], report["email"]["fp"]) == (1, 1, 1)
    assert report["email"]["precision"] == 0.5 and report["email"]["recall"] == 0.5
