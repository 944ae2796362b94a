"""Leave one source out: fit on every labelled source but one, measure on the one left out, each in turn.

A split within one source measures how well a detector remembers that source (its vocabulary, templates and
labelling habits); the figure on a source it never saw is the one that predicts what a user sees. Each fold
tests on its source's test split (all of a source nobody read while writing patterns) and fits on every
case of the other sources. A source with only attacks has a recall and no false-positive rate; one with only
benign texts the other way round; the summary takes the minimum and mean over the folds where a figure is
defined, and the pooled figure counts every fold's predictions together.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from udfs.evaluation.corpora import LabelledText
from udfs.evaluation.quality import METRICS, BinaryReport, report_of

# Cases of the training sources -> a predictor of a batch of texts (True: flagged).
Fit = Callable[[list[LabelledText]], Callable[[Sequence[str]], list[bool]]]


@dataclass(frozen=True)
class Fold:
    source: str
    positives: int
    negatives: int
    report: BinaryReport

    def defined(self, metric: str) -> bool:
        """Whether the fold's data gives this metric a meaning (recall needs attacks, fpr benign texts, ...)."""
        if metric == "fpr":
            return self.negatives > 0
        if metric == "roc_auc":
            return metric in self.report.metrics
        if metric == "precision":  # a source without positives has only false alarms: its fpr says it
            return self.positives > 0 and self.report.tp + self.report.fp > 0
        return self.positives > 0


@dataclass(frozen=True)
class LosoReport:
    folds: Sequence[Fold]
    pooled: BinaryReport | None  # every fold's predictions counted together (None: different entities)

    def summary(self, metric: str) -> tuple[float, float] | None:
        """(minimum, mean) of a metric over the folds where it is defined."""
        values = [fold.report.metrics[metric][0] for fold in self.folds if fold.defined(metric)]
        return (min(values), sum(values) / len(values)) if values else None


def leave_one_source_out(cases: list[LabelledText], fit: Fit) -> LosoReport:
    """One fold per source in `cases`, in the order they first appear. CPU per text is the predictions'
    (fitting is not counted: the job fits nothing per event)."""
    pooled: list[tuple[bool, bool]] = []
    folds, cpu_s = [], 0.0
    for source in dict.fromkeys(case.source for case in cases):
        test = [case for case in cases if case.source == source and case.split == "test"]
        predict = fit([case for case in cases if case.source != source])
        started = time.process_time()
        pairs = list(zip((case.label for case in test), predict([case.text for case in test])))
        spent = time.process_time() - started
        misses = [case.text for case, (label, hit) in zip(test, pairs) if label and not hit]
        alarms = [case.text for case, (label, hit) in zip(test, pairs) if hit and not label]
        report = report_of(pairs, METRICS, spent / max(1, len(test)) * 1e6, misses, alarms)
        folds.append(Fold(source, sum(c.label for c in test), sum(not c.label for c in test), report))
        pooled += pairs
        cpu_s += spent
    return LosoReport(folds, report_of(pooled, METRICS, cpu_s / max(1, len(pooled)) * 1e6, [], []))


def rules(engine, categories: set[str]) -> Fit:
    """Hand-written rules learn nothing from the training sources: each fold is their figure on its source."""
    from udfs.evaluation.quality import flagged

    return lambda _train: lambda texts: flagged(engine, texts, categories)


def rules_and_similarity(engine, suite, categories: set[str]) -> Fit:
    """The rules with the injection scorer, whose known attacks and benign anchors are ours (written for this
    project) and the training sources' texts: a held-out source is never in the index."""
    from udfs.evaluation.quality import flagged
    from udfs.scorers.injection import DATA, corpus_lines

    index = suite.attack_index
    attacks, benign = corpus_lines(DATA / "injection_attacks.txt"), corpus_lines(DATA / "benign_instructions.txt")

    def fit(train: list[LabelledText]) -> Callable[[Sequence[str]], list[bool]]:
        index.index(attacks + [c.text for c in train if c.label], benign + [c.text for c in train if not c.label])
        return lambda texts: flagged(engine, texts, categories, suite)

    return fit


def per_source(reports: dict[str, BinaryReport], pooled: BinaryReport | None) -> LosoReport:
    """Detectors nothing is fitted on, measured span by span (secrets): each source's figure is its held-out
    figure. A span-level measure counts no true negatives, so it has no false-positive rate. The CPU cost is
    each source's: `pooled` runs first, and its cost includes the detectors' first-use loading."""
    folds = [Fold(name, r.tp + r.fn, r.n - r.tp - r.fn if "fpr" in r.metrics else 0, r) for name, r in reports.items()]
    return LosoReport(folds, pooled and dataclasses.replace(pooled, cpu_us_per_event=math.nan))
