"""Scorers measured on held-out data: ROC AUC, average precision, precision and recall per label, and pair
accuracy on the bias pair sets (`llm-audit models eval`, and each build's own metrics)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from udfs.scorers import datasets
from udfs.scorers.base import LabelScores, get_backend

THRESHOLD = 0.5
# Any scorer as a function: a batch of texts -> one {label: score in [0, 1]} per text.
ScoreFn = Callable[[Sequence[str]], list[LabelScores]]
Metrics = dict[str, Any]


def scorer_fn(model: str, **params: Any) -> ScoreFn:
    """A built checkpoint (directory or name under models_dir()) as a ScoreFn, via the scorer registry."""
    import udfs.scorers.hf  # noqa: F401  registers the "transformers" backend

    backend = get_backend("transformers")
    scorer = backend(backend.Params(model=model, **params))
    scorer.open("cpu")
    return scorer.score


def evaluate(score_fn: ScoreFn, data: datasets.Labelled, threshold: float = THRESHOLD) -> dict[str, Metrics]:
    """Per label of `data` that the scorer produces: ROC AUC, average precision, and precision and
    recall at `threshold`, with the counts they rest on. Labels the scorer lacks are left out."""
    from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

    scores = score_fn(list(data.texts))
    out: dict[str, Metrics] = {}
    for label in data.labels:
        if not all(label in s for s in scores):
            continue
        truth = data.column(label)
        prob = [s[label] for s in scores]
        predicted = [int(p >= threshold) for p in prob]
        both = 0 < sum(truth) < len(truth)  # AUC needs both classes
        out[label] = {
            "roc_auc": round(roc_auc_score(truth, prob), 4) if both else None,
            "average_precision": round(average_precision_score(truth, prob), 4) if both else None,
            "precision": round(precision_score(truth, predicted, zero_division=0), 4),
            "recall": round(recall_score(truth, predicted, zero_division=0), 4),
            "positives": sum(truth),
            "negatives": len(truth) - sum(truth),
        }
    return out


def pair_accuracy(score_fn: ScoreFn, pairs: datasets.Pairs, label: str = "bias") -> Metrics:
    """Share of (more biased, less biased) pairs the scorer ranks the right way round; a tie counts half."""
    scores = score_fn([text for pair in pairs for text in pair])
    right = 0.0
    for i in range(len(pairs)):
        more, less = scores[2 * i][label], scores[2 * i + 1][label]
        right += 1.0 if more > less else 0.5 if more == less else 0.0
    return {"accuracy": round(right / len(pairs), 4), "pairs": len(pairs)}


def evaluate_all(score_fn: ScoreFn) -> dict[str, Metrics]:
    """Every held-out set whose labels the scorer produces (probed on one text, so a toxicity
    scorer is not run over the bias sets): {set: {label: metrics}} and {pair set: accuracy}."""
    produced = set(score_fn(["hello"])[0])
    out: dict[str, Metrics] = {}
    if "bias" in produced:
        out["bias"] = evaluate(score_fn, datasets.bias_split().heldout)
        out["stereoset_pairs"] = pair_accuracy(score_fn, datasets.stereoset_pairs())
        out["crows_pairs"] = pair_accuracy(score_fn, datasets.crows_pairs())
    if produced & set(datasets.TOXICITY_LABELS):
        held = datasets.toxicity_eval()
        out["toxicity"] = evaluate(score_fn, held)
        # Toxic texts only: does the scorer tell a threat or identity attack from other abuse?
        out["toxicity_toxic_only"] = evaluate(score_fn, held.only("toxicity"))
    return out
