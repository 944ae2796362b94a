"""`llm-audit scan` (audit a file of events with the job's engine, without Flink) and `llm-audit eval`
(detection quality on labelled data)."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path

import typer
from rich.table import Column, Table

from flink_jobs.cli.console import console, fail
from flink_jobs.cli.rules import engine_for, load
from udfs.engine import RuleEngine
from udfs.evaluation.quality import BinaryReport
from udfs.events import EventError, parse_event
from udfs.rules import RuleSet, ScoreMatch
from udfs.scorers import ScorerSuite, load_config
from udfs.scorers.suite import DEFAULT_CONFIG as DEFAULT_SCORERS


def scan(
    input: Path = typer.Option(Path("-"), "--input", "-i", help="JSON-lines audit events; '-' reads stdin."),
    rules: Path = typer.Option(Path("rules/default.yaml"), "--rules", "-r", help="Rules file or directory."),
    scores: bool = typer.Option(
        False, "--scores", help="Also run the model scorers (score rules need them); prints one scores line per event."
    ),
    scorers_config: Path = typer.Option(DEFAULT_SCORERS, "--scorers-config", help="Scorers YAML."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Audit events from a file or stdin with the job's engine; one JSON line per finding on stdout."""
    engine = engine_for(load(rules))
    suite = None
    if scores:
        config = load_config(scorers_config)
        suite = ScorerSuite(config, device=device)
        suite.open()
    elif engine.ruleset.scorers_used():
        console.print(
            f"[yellow]note[/]: score rules ({', '.join(sorted(engine.ruleset.scorers_used()))}) "
            "need --scores; without it they find nothing"
        )
    bad = 0
    with contextlib.nullcontext(sys.stdin) if str(input) == "-" else input.open(encoding="utf-8") as stream:
        batch: list = []
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                batch.append(parse_event(line))
            except EventError as exc:
                bad += 1
                console.print(f"[yellow]skipped[/] {input}:{number}: {exc}")
            if len(batch) == _SCAN_BATCH:
                _scan_batch(engine, suite, batch)
                batch = []
        _scan_batch(engine, suite, batch)
    if bad:
        raise typer.Exit(2)


_SCAN_BATCH = 32


def _scan_batch(engine: RuleEngine, suite: ScorerSuite | None, events: list) -> None:
    """Findings per event; an event the audit fails on somewhere gets its audit.error findings and a
    warning naming what failed, and the scan goes on (udfs.faults)."""
    scored = suite.score_events_isolated(events) if suite and events else [({}, {}, [])] * len(events)
    for event, (scores, evidence, failed) in zip(events, scored):
        if suite:
            sys.stdout.write(
                json.dumps({"type": "scores", "event_id": event.event_id, "scores": scores, "evidence": evidence})
                + "\n"
            )
        findings, failures = engine.audit(event, scores, evidence)
        findings += [failure.finding(event.event_id) for failure in failed]
        for failure in [*failed, *failures]:
            console.print(f"[yellow]warning[/]: event {event.event_id!r} not fully audited: {failure.describe()}")
        for finding in findings:
            sys.stdout.write(json.dumps({"type": "finding", **finding.to_dict()}) + "\n")


def evaluate(
    rules: Path = typer.Option(Path("rules/default.yaml"), "--rules", "-r", help="Rules file or directory."),
    per_entity: int = typer.Option(200, "--n", min=10, help="Positive cases per entity (4x as many hard negatives)."),
    seed: int = typer.Option(13, "--seed"),
    split: str = typer.Option("test", help="Split of the third-party data: test (the measurement) or train."),
    third_party: bool = typer.Option(True, "--third-party/--synthetic-only", help="Also measure on third-party data."),
    retrain: bool = typer.Option(
        True,
        "--retrain/--no-retrain",
        help="Retrain a model without each source it trained on, for that source's fold (minutes, once per build); "
        "--no-retrain scores such a fold with the default model, within its source.",
    ),
) -> None:
    """Detection quality: on our synthetic labelled set (an upper bound), and on third-party data.

    The headline: leave one source out (udfs/evaluation/loso.py), each held-out source's figure, the minimum,
    the mean and all folds pooled. Then the within-source test splits (secondary).
    Third-party: labelled texts from registry packages this project did not write (udfs/evaluation/corpora.py),
    event level, with 95 % bootstrap intervals and the CPU cost per event; the rules with the injection
    scorer (the default), and without scorers (patterns only).
    """
    from udfs.evaluation.quality import cases
    from udfs.evaluation.quality import evaluate as run_eval

    if split not in ("test", "train"):
        fail(f"--split {split!r}; valid: test, train", code=2)
    ruleset = load(rules)
    dataset = cases(per_entity, seed)
    report = run_eval(engine_for(ruleset), dataset)
    table = Table(
        "entity",
        "TP",
        "FP",
        "FN",
        "precision",
        "recall",
        "F1",
        title=f"synthetic (an upper bound): {len(dataset)} cases, seed {seed}, rules {rules}",
    )
    for entity, r in report.items():
        table.add_row(
            entity,
            str(r["tp"]),
            str(r["fp"]),
            str(r["fn"]),
            f"{r['precision']:.3f}",
            f"{r['recall']:.3f}",
            f"{r['f1']:.3f}",
        )
    console.print(table)
    if third_party:
        suite = ScorerSuite(load_config(DEFAULT_SCORERS), ["injection"], "cpu")
        suite.open()
        _leave_one_source_out_injection(ruleset, rules, suite)
        _leave_one_source_out_scores(ruleset, retrain)
        _third_party_injection(ruleset, rules, split, suite)
        _third_party_secrets(ruleset, rules, split)
        _third_party_pii(ruleset, rules)
        _third_party_entities(ruleset, rules, split)


def _third_party_entities(ruleset: RuleSet, rules: Path, split: str) -> None:
    from udfs.evaluation.corpora import CONLL, entity_cases
    from udfs.evaluation.quality import evaluate_entities

    labelled = entity_cases(split)  # type: ignore[arg-type]
    suite = ScorerSuite(load_config(DEFAULT_SCORERS), ["entities"], "cpu")
    suite.open()
    reports = evaluate_entities(engine_for(ruleset), suite, labelled, ("PERSON", "LOCATION", "ORGANIZATION"))
    table = Table(
        "entity",
        "spans",
        "TP",
        "FP",
        "FN",
        "precision [95 % CI]",
        "recall [95 % CI]",
        "F2 [95 % CI]",
        title=f"PII names, span level, third-party data ({split} split), model {suite.entities_model}",
    )
    for entity, r in reports.items():
        table.add_row(
            entity,
            *_cells(r, r.tp + r.fn),
        )
    console.print(table)
    console.print(
        f"  {CONLL.name}: {CONLL.package} {CONLL.version} ({CONLL.license}), {split} split: "
        f"{len(labelled)} sentences; {CONLL.what}; CPU {reports['all'].cpu_us_per_event:,.0f} µs/sentence"
    )


def _third_party_secrets(ruleset: RuleSet, rules: Path, split: str) -> None:
    """Secret rules fit nothing: each scanner's test suite is a held-out source as it is (trufflehog's
    `split`: its train split was read while writing patterns)."""
    from udfs.evaluation import loso
    from udfs.evaluation.corpora import TRUFFLEHOG, secret_cases
    from udfs.evaluation.quality import evaluate_secrets
    from udfs.evaluation.scanner_cases import RIPSECRETS, TRIVY, ripsecrets_cases, trivy_cases

    engine = engine_for(ruleset)
    sources = {
        TRUFFLEHOG: secret_cases(split),  # type: ignore[arg-type]
        RIPSECRETS: ripsecrets_cases(),
        TRIVY: trivy_cases(),
    }
    pooled = evaluate_secrets(engine, [case for cases in sources.values() for case in cases])
    reports = {source.name: evaluate_secrets(engine, cases) for source, cases in sources.items()}
    _loso_table(
        f"secrets, per labelled secret, each scanner's tests a held-out source: {rules}",
        loso.per_source(reports, pooled),
    )
    for source, cases in sources.items():
        console.print(
            f"  {source.name}: {source.package} {source.version} ({source.license}): {len(cases)} texts, "
            f"{sum(not c.secrets for c in cases)} with no secret; {source.what}"
        )


def _third_party_pii(ruleset: RuleSet, rules: Path) -> None:
    from udfs.evaluation import loso
    from udfs.evaluation.pii_cases import PHONENUMBERS, STDNUM, phone_cases, stdnum_cases
    from udfs.evaluation.quality import evaluate_values

    engine = engine_for(ruleset)
    sources = {(PHONENUMBERS, "phone_number"): phone_cases(), (STDNUM, "iban"): stdnum_cases()}
    reports = {f"{s.name}: {entity}": evaluate_values(engine, cases, entity) for (s, entity), cases in sources.items()}
    _loso_table(
        f"PII values, one per text, each generator or test suite a held-out source: {rules}",
        loso.per_source(reports, None),
    )
    for (source, _), cases in sources.items():
        console.print(
            f"  {source.name}: {source.package} {source.version} ({source.license}): {len(cases)} texts, "
            f"{sum(not c.spans for c in cases)} invalid; {source.what}"
        )


def _third_party_injection(ruleset: RuleSet, rules: Path, split: str, suite: ScorerSuite) -> None:
    from udfs.evaluation.corpora import INJECTION_SOURCES, injection_cases
    from udfs.evaluation.quality import evaluate_events

    labelled = injection_cases(split)  # type: ignore[arg-type]
    texts = [(case.text, case.label) for case in labelled]
    suite.attack_index.index_shipped()  # as the job runs it (its training splits indexed)
    table = Table(
        "rules",
        "n",
        "TP",
        "FP",
        "FN",
        "precision [95 % CI]",
        "recall [95 % CI]",
        "F1 [95 % CI]",
        "CPU µs/event",
        title=f"prompt injection, event level, third-party data ({split} split)",
    )
    engine = engine_for(ruleset)
    for name, scorers in ((f"{rules}, with the injection scorer (the default)", suite), (f"{rules}, no scorers", None)):
        r = evaluate_events(engine, texts, {"prompt_injection"}, scorers)
        table.add_row(
            name,
            *_cells(r, r.n),
            f"{r.cpu_us_per_event:,.0f}",
        )
    console.print(table)
    for source in INJECTION_SOURCES:
        mine = [case for case in labelled if case.source == source.name]
        console.print(
            f"  {source.name}: {source.package} {source.version} ({source.license}), {split} split: "
            f"{sum(c.label for c in mine)} attacks, {sum(not c.label for c in mine)} benign; {source.what}"
        )


def _leave_one_source_out_injection(ruleset: RuleSet, rules: Path, suite: ScorerSuite) -> None:
    from udfs.evaluation import loso
    from udfs.evaluation.corpora import INJECTION_SOURCES, injection_cases

    cases = injection_cases()
    engine = engine_for(ruleset)
    for name, fit in (
        (
            f"{rules} with the injection scorer, the default (its index: ours and the other sources)",
            loso.rules_and_similarity(engine, suite, {"prompt_injection"}),
        ),
        (f"{rules}, no scorers (patterns only)", loso.rules(engine, {"prompt_injection"})),
    ):
        _loso_table(
            f"prompt injection, event level, leave one source out: {name}", loso.leave_one_source_out(cases, fit)
        )
    for source in INJECTION_SOURCES:
        console.print(f"  {source.name}: {source.package} {source.version} ({source.license}); {source.what}")


def _leave_one_source_out_scores(ruleset: RuleSet, retrain: bool, min_precision: float = 0.9) -> None:
    """The toxicity and bias scores on sources the models never fitted, each rule's threshold chosen on the
    others (udfs/evaluation/thresholds.py)."""
    from udfs.evaluation import thresholds
    from udfs.evaluation.corpora import BIAS_SOURCES, TOXICITY_SOURCES, bias_cases, toxicity_cases
    from udfs.scorers.build import MODELS

    config = load_config(DEFAULT_SCORERS)
    # The bias rule reads the stereotype score; the counterfactual is another score, and costs toxicity's models.
    config = config.model_copy(update={"bias": config.section("bias").model_copy(update={"counterfactual": False})})
    fitted_on = {name: spec.sources for name, spec in MODELS.items()}
    for scorer, rule_id, cases, sources in (
        ("toxicity", "toxicity.high", toxicity_cases, TOXICITY_SOURCES),
        ("bias", "bias.stereotype", bias_cases, BIAS_SOURCES),
    ):
        report = thresholds.leave_one_source_out(
            cases(), thresholds.refit(config, scorer, fitted_on, retrain), min_precision
        )
        _threshold_table(f"{scorer} score, leave one source out: each source's test split", report)
        rule = next((r.match for r in ruleset.rules if r.id == rule_id and isinstance(r.match, ScoreMatch)), None)
        at = report.at_threshold
        assert at is not None
        have = f"the rules have {rule.threshold if rule else 'no ' + rule_id}"
        if at.tp == 0:
            console.print(
                f"  {rule_id}: no threshold reaches precision >= {min_precision} on every source's test split "
                f"(ROC AUC there {at.metrics['roc_auc'][0]:.3f}); {have}"
            )
        else:
            console.print(
                f"  {rule_id}: threshold {report.threshold:.3f} is the lowest with precision >= {min_precision} on "
                f"every source's test split, pooled and each source with both classes: there precision "
                f"{at.metrics['precision'][0]:.3f}, recall {at.metrics['recall'][0]:.3f}, FPR {at.metrics['fpr'][0]:.3f}, "
                f"ROC AUC {at.metrics['roc_auc'][0]:.3f} (chosen there: an upper bound; the folds are the figure); {have}"
            )
        for source in sources:
            console.print(f"  {source.name}: {source.package} {source.version} ({source.license}); {source.what}")


def _threshold_table(title: str, report) -> None:
    """_loso_table with what scored each fold and its threshold, chosen on the other sources, and ROC AUC."""
    _loso_table(
        title,
        report,
        {
            "scored by": lambda fold: fold.scorer,
            f"threshold (P >= {report.min_precision} on the others)": lambda fold: f"{fold.threshold:.3f}",
        },
        extra_metrics=("roc_auc",),
    )


def _loso_table(title: str, report, columns: dict | None = None, extra_metrics: tuple[str, ...] = ()) -> None:
    """One row per held-out source, then the minimum and mean over the sources where a figure is defined,
    and every fold pooled; a figure a source cannot give (recall without attacks) is blank. `columns`: more
    cells per fold (header -> fold -> text), after its counts."""
    from udfs.evaluation.quality import METRICS

    columns = columns or {}
    names = [name for name, _ in METRICS if name in report.folds[0].report.metrics] + list(extra_metrics)
    cpu = not all(math.isnan(fold.report.cpu_us_per_event) for fold in report.folds)
    table = Table(
        Column("held-out source", no_wrap=True),
        "positives",
        "negatives",
        *columns,
        *names,
        *(["CPU µs/text"] if cpu else []),
        title=f"{title} [95 % CI]",
    )
    blank = [""] * len(columns)
    for fold in report.folds:
        table.add_row(
            fold.source,
            str(fold.positives),
            str(fold.negatives),
            *(cell(fold) for cell in columns.values()),
            *(_metric(fold.report, n) if fold.defined(n) else "" for n in names),
            *([f"{fold.report.cpu_us_per_event:,.0f}"] if cpu else []),
        )
    summaries = [report.summary(n) for n in names]
    for row, at in (("min", 0), ("mean", 1)):
        table.add_row(row, "", "", *blank, *(f"{s[at]:.3f}" if s else "" for s in summaries), *([""] if cpu else []))
    pooled = report.pooled
    if pooled is not None:
        table.add_row(
            "pooled",
            str(sum(fold.positives for fold in report.folds)),
            str(sum(fold.negatives for fold in report.folds)),
            *blank,
            *(_metric(pooled, n) if n in pooled.metrics else "" for n in names),
            *(["" if math.isnan(pooled.cpu_us_per_event) else f"{pooled.cpu_us_per_event:,.0f}"] if cpu else []),
        )
    console.print(table)


def _metric(r: BinaryReport, name: str) -> str:
    value, lo, hi = r.metrics[name]
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def _cells(r: BinaryReport, total: int) -> list[str]:
    """`total` (texts or labelled spans), TP, FP, FN, then each metric with its 95 % interval."""
    return [str(n) for n in (total, r.tp, r.fp, r.fn)] + [_metric(r, name) for name in r.metrics]
