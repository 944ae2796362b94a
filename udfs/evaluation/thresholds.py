"""Score rules on other people's data, leave one source out: a threshold chosen where the figure is not taken.

For each source in turn, the scorer less what fitted on that source (an ensemble's members trained on it, or a
model retrained without it) scores the texts of every source's test split (texts no model fitted on). The
rule's threshold is chosen on the other sources, as the lowest at which their precision reaches the target,
pooled and on each source with both classes (the most recall that precision allows); the figure is what that
threshold gives on the source left out, beside the ROC AUC of the scores there. The threshold a rule ships
with is chosen the same way on every source together; the folds say how far to trust it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from udfs.evaluation.corpora import LabelledText
from udfs.evaluation.loso import Fold, LosoReport
from udfs.evaluation.quality import METRICS, BinaryReport, bootstrap_ci, report_of

# The source left out (None: none) -> what scores without it (a description) and the scoring of texts.
Fit = Callable[[str | None], tuple[str, Callable[[list[str]], list[float]]]]


@dataclass(frozen=True)
class ThresholdFold(Fold):
    threshold: float = 1.0  # chosen on the other sources
    scorer: str = ""  # what scored this fold: the default, or it less what fitted on the source


@dataclass(frozen=True)
class ThresholdReport(LosoReport):
    folds: Sequence[ThresholdFold]
    min_precision: float = 0.9
    threshold: float = 1.0  # chosen on every source's test split together: what the rule ships with
    at_threshold: BinaryReport | None = None  # its figure there (chosen there: an upper bound)


def choose_threshold(pairs: Sequence[tuple[bool, float]], min_precision: float) -> float:
    """The lowest threshold at which the (label, score) pairs' precision is at least `min_precision`;
    1.0 where none is (the rule then fires only on certainty)."""
    ordered = sorted(pairs, key=lambda pair: -pair[1])
    best, tp, fp, i = 1.0, 0, 0, 0
    while i < len(ordered):
        score = ordered[i][1]
        while i < len(ordered) and ordered[i][1] == score:  # tied scores pass or fail together
            tp, fp, i = tp + ordered[i][0], fp + (not ordered[i][0]), i + 1
        if tp and tp / (tp + fp) >= min_precision:
            best = score
    return round(best, 4)


def choose_everywhere(scored: Sequence[tuple[str, bool, float]], min_precision: float) -> float:
    """The lowest threshold whose precision reaches the target on the (source, label, score) rows pooled and
    on each source with both classes: a source of easy negatives cannot buy precision for a hard one."""
    by_source: dict[str, list[tuple[bool, float]]] = {}
    for source, label, value in scored:
        by_source.setdefault(source, []).append((label, value))
    pairs = [(label, value) for _, label, value in scored]
    mixed = [rows for rows in by_source.values() if 0 < sum(label for label, _ in rows) < len(rows)]
    return max(choose_threshold(rows, min_precision) for rows in (pairs, *mixed))


def roc_auc(pairs: Sequence[tuple[bool, float]], rounds: int = 300) -> tuple[float, float, float]:
    """ROC AUC of (label, score) pairs with its 95 % bootstrap interval (resamples with one class skipped)."""
    from sklearn.metrics import roc_auc_score

    def auc(sample: Sequence[tuple[bool, float]]) -> float | None:
        labels = [label for label, _ in sample]
        return roc_auc_score(labels, [score for _, score in sample]) if 0 < sum(labels) < len(labels) else None

    value = auc(pairs)
    assert value is not None, "ROC AUC needs both classes"
    return value, *bootstrap_ci(pairs, auc, rounds)


def leave_one_source_out(cases: list[LabelledText], fit: Fit, min_precision: float) -> ThresholdReport:
    """One fold per source, in the order they first appear, each scored by `fit(source)`; the shipped
    threshold from `fit(None)` on every source."""
    test = [case for case in cases if case.split == "test"]
    texts = [case.text for case in test]
    scored: dict[str, list[float]] = {}  # by scorer description: one scoring per distinct scorer

    def scores(source: str | None) -> tuple[str, list[tuple[bool, float]]]:
        name, predict = fit(source)
        if name not in scored:
            scored[name] = predict(texts)
        return name, list(zip((case.label for case in test), scored[name]))

    folds, pooled = [], []
    for source in dict.fromkeys(case.source for case in cases):
        name, pairs = scores(source)
        others = [(case.source, *pair) for pair, case in zip(pairs, test) if case.source != source]
        threshold = choose_everywhere(others, min_precision)
        mine = [(pair, case.text) for pair, case in zip(pairs, test) if case.source == source]
        flagged = [(label, value >= threshold) for (label, value), _ in mine]
        report = report_of(
            flagged,
            METRICS,
            float("nan"),
            [text for (label, value), text in mine if label and value < threshold],
            [text for (label, value), text in mine if value >= threshold and not label],
        )
        positives = sum(label for label, _ in flagged)
        if 0 < positives < len(flagged):
            report.metrics["roc_auc"] = roc_auc([pair for pair, _ in mine])
        folds.append(ThresholdFold(source, positives, len(flagged) - positives, report, threshold, name))
        pooled += flagged
    _, everything = scores(None)
    shipped = choose_everywhere([(case.source, *pair) for pair, case in zip(everything, test)], min_precision)
    at = report_of([(label, value >= shipped) for label, value in everything], METRICS, float("nan"), [], [])
    at.metrics["roc_auc"] = roc_auc(everything)
    return ThresholdReport(folds, report_of(pooled, METRICS, float("nan"), [], []), min_precision, shipped, at)


def _suite_score(config: Any, scorer: str) -> Callable[[list[str]], list[float]]:
    """A scorer's main score as the job computes it (ScorerSuite: sentences, gates, groups), on the CPU."""
    from udfs.scorers import ScorerSuite

    def predict(texts: list[str]) -> list[float]:
        suite = ScorerSuite(config, [scorer], "cpu")
        suite.open()
        return [result.scores.get(scorer, 0.0) for result in suite.score(texts)]

    return predict


def refit(config: Any, scorer: str, fitted_on: dict[str, tuple[str, ...]], retrain: bool = True) -> Fit:
    """The default scorer, less what fitted on the source left out: an ensemble leaves out its members trained
    on it; a single model is retrained without it (built once into the models cache: minutes on a CPU), or,
    with retrain False, scores as it is, its figure then within-source and named so."""
    from udfs.scorers.build import build_without

    def fit(source: str | None) -> tuple[str, Callable[[list[str]], list[float]]]:
        section = config.section(scorer)
        if section.backend == "ensemble":
            members = section.params["members"]
            kept = [m for m in members if source not in fitted_on.get(m.get("params", {}).get("model"), ())]
            if len(kept) == len(members):
                return "the default", _suite_score(config, scorer)
            gone = sorted({m["params"]["model"] for m in members if m not in kept})
            section = section.model_copy(update={"params": {**section.params, "members": kept}})
            name = f"the default less {', '.join(gone)}"
        else:
            model = section.params.get("model")
            if source not in fitted_on.get(model, ()):
                return "the default", _suite_score(config, scorer)
            if not retrain:
                return f"the default ({model} trained on its train split: not held out)", _suite_score(config, scorer)
            path = build_without(model, source)
            section = section.model_copy(update={"params": {**section.params, "model": str(path)}})
            name = f"{model} retrained without {source}"
        return name, _suite_score(config.model_copy(update={scorer: section}), scorer)

    return fit
