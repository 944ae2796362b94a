"""`llm-audit models`: build the fine-tuned scorer models and measure every default scorer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bars
from rich.table import Table

from flink_jobs.cli.console import console, fail
from udfs.scorers import ScorerError, load_config
from udfs.scorers.suite import DEFAULT_CONFIG

app = typer.Typer(no_args_is_help=True, help="Scorer models: build (offline, cached) and evaluate.")


@app.command()
def build(
    force: bool = typer.Option(False, "--force", help="Rebuild even when a build with the same key exists."),
    only: list[str] = typer.Option([], "--only", help="Build just these models (repeatable)."),
) -> None:
    """Fine-tune the bias and threat/identity-hate MiniLM models from packaged data (cached)."""
    from udfs.scorers.base import models_dir
    from udfs.scorers.build import MODELS, build_models

    unknown = sorted(set(only) - set(MODELS))
    if unknown:
        fail(f"unknown models {unknown}; valid: {', '.join(MODELS)}")
    with rich_progress() as progress:
        results = build_models(force=force, progress=progress, names=only or None)
    for name, info in results.items():
        state = "up to date" if info.get("skipped") else f"built in {info.get('seconds', 0):.0f} s"
        console.print(f"{name}: {state} ({models_dir() / name})")


@contextmanager
def rich_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A Progress callback drawing one rich bar per model epoch on the CLI's console (stderr)."""
    if not console.is_terminal:  # CI logs: a line per quarter instead of redrawn bars
        started = time.monotonic()

        def log(what: str, done: int, total: int) -> None:
            if done == total or done % max(1, total // 4) == 0:
                console.print(f"{what}: {done}/{total} steps, {time.monotonic() - started:.0f} s")

        yield log
        return
    with Bars(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bars:
        tasks: dict[str, Any] = {}

        def update(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bars.add_task(what, total=total, completed=done - 1)
            bars.update(tasks[what], completed=done, total=total)

        yield update


def _toxicity_fns(config_path: Path) -> dict:
    """The toxicity ensemble and each of its members, scoring labels toxicity / threat / identity_hate."""
    from udfs.scorers.ensemble import Ensemble, EnsembleParams

    spec = load_config(config_path).section("toxicity")
    if spec is None:
        return {}
    fns = {}

    def as_fn(scorer, main):
        def score(texts):
            out = []
            for scores in scorer.score(texts):
                named = dict(scores)
                named["toxicity"] = max((scores[label] for label in main if label in scores), default=0.0)
                out.append(named)
            return out

        return score

    if spec.backend == "ensemble":
        members = EnsembleParams.model_validate(spec.params).members
        for member in members:
            # Each member alone, on every text: a gate needs the members before it.
            single = Ensemble(EnsembleParams(members=[member.model_copy(update={"gate": None})]))
            single.open("cpu")
            name = member.params.get("model", member.backend)
            fns[f"toxicity: {name}"] = as_fn(single, [m for m in spec.main if m in single.labels])
    whole = spec.build()
    whole.open("cpu")
    fns["toxicity: default ensemble"] = as_fn(whole, spec.main)
    return fns


@app.command("eval")
def evaluate(config: Path = typer.Option(DEFAULT_CONFIG, "--config", help="Scorers YAML.")) -> None:
    """ROC AUC, precision and recall (at 0.5) on held-out data for each default model."""
    from udfs.scorers.heldout import evaluate_all, scorer_fn

    try:
        fns = _toxicity_fns(config)
        bias = load_config(config).section("bias")
        if bias is not None:
            fns["bias: " + str(bias.params.get("model"))] = scorer_fn(bias.params["model"])
    except ScorerError as exc:
        fail(str(exc))
    table = Table(
        "scorer",
        "held-out set",
        "label",
        "ROC AUC",
        "precision",
        "recall",
        "pos / neg",
        title="scorer quality on held-out data (threshold 0.5)",
    )
    for name, fn in fns.items():
        with console.status(f"evaluating {name}"):
            report = evaluate_all(fn)
        for dataset, labels in report.items():
            if "accuracy" in labels:
                table.add_row(name, dataset, "pair accuracy", f"{labels['accuracy']:.3f}", "", "", str(labels["pairs"]))
                continue
            for label, m in labels.items():
                auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
                table.add_row(
                    name,
                    dataset,
                    label,
                    auc,
                    f"{m['precision']:.3f}",
                    f"{m['recall']:.3f}",
                    f"{m['positives']} / {m['negatives']}",
                )
        table.add_section()
    console.print(table)
