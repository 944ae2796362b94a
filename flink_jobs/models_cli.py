"""`llm-audit models`: build the fine-tuned scorer models and measure every default scorer."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from devstack.artifacts import console
from udfs.scorers import ScorerError, load_config
from udfs.scorers.suite import DEFAULT_CONFIG

app = typer.Typer(no_args_is_help=True, help="Scorer models: build (offline, cached) and evaluate.")


@app.command()
def build(
    force: bool = typer.Option(False, "--force", help="Rebuild even when a build with the same key exists."),
    only: list[str] = typer.Option([], "--only", help="Build just these models (repeatable)."),
) -> None:
    """Fine-tune the bias and threat/identity-hate MiniLM models from packaged data (cached)."""
    from udfs.scorers.build import MODELS, build_models, rich_progress
    from udfs.scorers.base import models_dir

    unknown = sorted(set(only) - set(MODELS))
    if unknown:
        console.print(f"[red]error:[/] unknown models {unknown}; valid: {', '.join(MODELS)}")
        raise typer.Exit(1)
    with rich_progress() as progress:
        results = build_models(force=force, progress=progress, names=only or None)
    for name, info in results.items():
        state = "up to date" if info.get("skipped") else f"built in {info.get('seconds', 0):.0f} s"
        console.print(f"{name}: {state} ({models_dir() / name})")


def _toxicity_fns(config_path: Path) -> dict:
    """The toxicity ensemble and each of its members, scoring labels toxicity / threat / identity_hate."""
    from udfs.scorers.ensemble import Ensemble, EnsembleParams

    spec = load_config(config_path).toxicity
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
    from udfs.scorers.build import evaluate_all, scorer_fn

    try:
        fns = _toxicity_fns(config)
        bias = load_config(config).bias
        if bias is not None:
            fns["bias: " + str(bias.params.get("model"))] = scorer_fn(bias.params["model"])
    except ScorerError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    table = Table("scorer", "held-out set", "label", "ROC AUC", "precision", "recall", "pos / neg",
                  title="scorer quality on held-out data (threshold 0.5)")
    for name, fn in fns.items():
        with console.status(f"evaluating {name}"):
            report = evaluate_all(fn)
        for dataset, labels in report.items():
            if "accuracy" in labels:
                table.add_row(name, dataset, "pair accuracy", f"{labels['accuracy']:.3f}", "", "", str(labels["pairs"]))
                continue
            for label, m in labels.items():
                auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
                table.add_row(name, dataset, label, auc, f"{m['precision']:.3f}", f"{m['recall']:.3f}",
                              f"{m['positives']} / {m['negatives']}")
        table.add_section()
    console.print(table)
