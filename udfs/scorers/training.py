"""Fine-tuning MiniLM as a sequence classifier: the training loop, its progress, and an atomic save.

`udfs.scorers.build` decides what to train and when (its build cache); this module only trains.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from udfs.scorers.base import minilm_dir

BUILD_INFO = "llm_audit_build.json"  # written beside each model: its build key, metrics and timings

# (what, done, total): training steps of one model; the CLI draws it (flink_jobs/cli/models.py).
Progress = Callable[[str, int, int], None]
Metrics = dict[str, Any]


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
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
    with _quiet_transformers():  # its report that the new classifier head is untrained is expected
        model = AutoModelForSequenceClassification.from_pretrained(
            minilm_dir(),
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
