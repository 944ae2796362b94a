"""`llm-audit rules ...` for rule authors, and `llm-audit scan`: the job's own engine, without Flink."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from devstack.artifacts import console
from flink_jobs import rules_topic
from flink_jobs.offsets import client_config
from flink_jobs.settings import load_settings
from udfs.engine import RuleEngine
from udfs.events import EventError, parse_event
from udfs.rules import RuleError, RuleSet, load_rules, rules_json_schema
from udfs.scorers import ScorerSuite, load_config
from udfs.scorers.suite import DEFAULT_CONFIG as DEFAULT_SCORERS

app = typer.Typer(no_args_is_help=True, help="Validate, test, push and inspect YAML rules.")

BOOTSTRAP = typer.Option("127.0.0.1:9092", envvar="LLM_AUDIT_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers.")
TOPIC = typer.Option("audit-rules", envvar="LLM_AUDIT_RULES_TOPIC", help="Compacted topic of pushed rulesets.")
NAME = typer.Option("default", help="Ruleset name (the record key on the topic).")


def _kafka(bootstrap: str) -> dict:
    """The job's Kafka client settings (LLM_AUDIT_KAFKA_SECURITY_PROTOCOL, SASL, TLS) for these brokers."""
    return client_config(load_settings(kafka_bootstrap=bootstrap))


def _load(path: Path) -> RuleSet:
    try:
        return load_rules(path)
    except RuleError as exc:
        console.print(f"[red]invalid[/] {exc}")
        raise typer.Exit(1)


def _engine(ruleset: RuleSet) -> RuleEngine:
    engine = RuleEngine(ruleset)
    engine.open()
    return engine


@app.command()
def validate(path: Path) -> None:
    """Check a rules file, or every *.yaml under a directory as one ruleset: schema, regexes (RE2), detectors,
    validators, keyword files, ids unique across files."""
    ruleset = _load(path)
    console.print(f"[green]valid[/] {path}: {len(ruleset.rules)} rules, hash {ruleset.content_hash()}")


@app.command("test")
def test_rules(path: Path) -> None:
    """Run every rule's examples (must_match / must_not_match) of a rules file or directory; a pass/fail table."""
    ruleset = _load(path)
    engine = _engine(ruleset.all_enabled())
    table = Table("rule", "example", "expect", "result", title=f"examples of {path}")
    failures = 0
    for rule in ruleset.rules:
        for expect, texts in (("match", rule.examples.must_match), ("no match", rule.examples.must_not_match)):
            for text in texts:
                found = engine.matches_text(rule.id, text)
                ok = bool(found) == (expect == "match")
                failures += not ok
                got = ", ".join(f"{f.entity}[{f.start}:{f.end}]" for f in found) or "-"
                table.add_row(rule.id, text[:60], expect, f"[green]pass[/] {got}" if ok else f"[red]FAIL[/] {got}")
    console.print(table)
    untested = [r.id for r in ruleset.rules if not (r.examples.must_match or r.examples.must_not_match)]
    console.print(f"{table.row_count - failures} passed, {failures} failed"
                  + (f"; no examples: {', '.join(untested)}" if untested else ""))
    if failures:
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of rules files (for editors)."""
    sys.stdout.write(json.dumps(rules_json_schema(), indent=2) + "\n")


@app.command()
def push(
    path: Path,
    message: str = typer.Option(..., "--message", "-m", help="Why this change (kept with the push)."),
    author: Optional[str] = typer.Option(None, help="Who pushes (default: the OS user)."),
    name: str = NAME, bootstrap: str = BOOTSTRAP, topic: str = TOPIC,
) -> None:
    """Validate, then publish the ruleset to the running job(s) through the audit-rules topic."""
    ruleset = _load(path)
    kafka = _kafka(bootstrap)
    live = rules_topic.latest(kafka, topic, name)
    if live is not None and live["hash"] == ruleset.content_hash():
        console.print(f"unchanged: live version {live['version']} has hash {live['hash']}; nothing pushed")
        return
    record = rules_topic.push_record(ruleset, name, (live or {}).get("version", 0) + 1, author, message)
    try:
        rules_topic.publish(kafka, topic, record)
    except LookupError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1)
    console.print(f"[green]pushed[/] {name} v{record['version']} hash {record['hash']} by {record['author']}")


@app.command("list")
def list_rules(name: str = NAME, bootstrap: str = BOOTSTRAP, topic: str = TOPIC) -> None:
    """Show the live (last pushed) ruleset."""
    live = rules_topic.latest(_kafka(bootstrap), topic, name)
    if live is None:
        console.print(f"nothing pushed under {name!r} on {topic}; the job runs the rules file it started with")
        raise typer.Exit(1)
    console.print(f"{name} v{live['version']} hash {live['hash']} by {live['author']} at {live['pushed_at']}: "
                  f"{live['message']}")
    table = Table("rule", "version", "category", "severity", "enabled", "match")
    for rule in live["rules"]["rules"]:
        table.add_row(rule["id"], str(rule["version"]), rule["category"], rule["severity"], str(rule["enabled"]),
                      rule["match"]["type"])
    console.print(table)


@app.command()
def diff(path: Path, name: str = NAME, bootstrap: str = BOOTSTRAP, topic: str = TOPIC) -> None:
    """What pushing PATH would change in the live ruleset."""
    local = {r["id"]: r for r in _load(path).model_dump(mode="json")["rules"]}
    live_record = rules_topic.latest(_kafka(bootstrap), topic, name)
    live = {r["id"]: r for r in (live_record or {"rules": {"rules": []}})["rules"]["rules"]}
    table = Table("change", "rule", "detail")
    for rule_id in sorted(local.keys() | live.keys()):
        before, after = live.get(rule_id), local.get(rule_id)
        if before is None:
            table.add_row("[green]added[/]", rule_id, f"v{after['version']} {after['severity']}")
        elif after is None:
            table.add_row("[red]removed[/]", rule_id, f"was v{before['version']}")
        elif before != after:
            fields = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            table.add_row("[yellow]changed[/]", rule_id, f"v{before['version']} -> v{after['version']}: {', '.join(fields)}")
    if table.row_count == 0:
        console.print("no changes")
    else:
        console.print(table)


def scan(
    input: Path = typer.Option(Path("-"), "--input", "-i", help="JSON-lines audit events; '-' reads stdin."),
    rules: Path = typer.Option(Path("rules/default.yaml"), "--rules", "-r", help="Rules file."),
    scores: bool = typer.Option(False, "--scores", help="Also run the model scorers (score rules need them); "
                                                        "prints one scores line per event."),
    scorers_config: Path = typer.Option(DEFAULT_SCORERS, "--scorers-config", help="Scorers YAML."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Audit events from a file or stdin with the job's engine; one JSON line per finding on stdout."""
    engine = _engine(_load(rules))
    suite = None
    if scores:
        config = load_config(scorers_config)
        suite = ScorerSuite(config, device=device)
        suite.open()
    elif engine.ruleset.scorers_used():
        console.print(f"[yellow]note[/]: score rules ({', '.join(sorted(engine.ruleset.scorers_used()))}) "
                      "need --scores; without it they find nothing")
    bad = 0
    with (contextlib.nullcontext(sys.stdin) if str(input) == "-" else input.open(encoding="utf-8")) as stream:
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
    scored = suite.score_events(events) if suite and events else [({}, {})] * len(events)
    for event, (scores, evidence) in zip(events, scored):
        if suite:
            sys.stdout.write(json.dumps({"type": "scores", "event_id": event.event_id, "scores": scores,
                                         "evidence": evidence}) + "\n")
        for finding in engine.evaluate(event, scores, evidence):
            sys.stdout.write(json.dumps({"type": "finding", **finding.to_dict()}) + "\n")


def evaluate(
    rules: Path = typer.Option(Path("rules/default.yaml"), "--rules", "-r", help="Rules file."),
    per_entity: int = typer.Option(200, "--n", min=10, help="Positive cases per entity (4x as many hard negatives)."),
    seed: int = typer.Option(13, "--seed"),
    split: str = typer.Option("test", help="Split of the third-party data: test (the measurement) or train."),
    third_party: bool = typer.Option(True, "--third-party/--synthetic-only", help="Also measure on third-party data."),
) -> None:
    """Detection quality: on our synthetic labelled set (an upper bound), and on third-party data.

    Third-party: labelled texts from registry packages this project did not write (devstack/corpora.py),
    event level, with 95 % bootstrap intervals and the CPU cost per event; the rules as given, and with
    every rule enabled (the off-by-default similarity layer).
    """
    from devstack.evaluation import cases
    from devstack.evaluation import evaluate as run_eval

    if split not in ("test", "train"):
        console.print(f"[red]error[/]: --split {split!r}; valid: test, train")
        raise typer.Exit(2)
    ruleset = _load(rules)
    dataset = cases(per_entity, seed)
    report = run_eval(_engine(ruleset), dataset)
    table = Table("entity", "TP", "FP", "FN", "precision", "recall", "F1",
                  title=f"synthetic (an upper bound): {len(dataset)} cases, seed {seed}, rules {rules}")
    for entity, r in report.items():
        table.add_row(entity, str(r["tp"]), str(r["fp"]), str(r["fn"]),
                      f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}")
    console.print(table)
    if third_party:
        _third_party_injection(ruleset, rules, split)
        _third_party_secrets(ruleset, rules, split)
        _third_party_entities(ruleset, rules, split)


def _third_party_entities(ruleset: RuleSet, rules: Path, split: str) -> None:
    from devstack.corpora import CONLL, entity_cases
    from devstack.evaluation import evaluate_entities

    labelled = entity_cases(split)  # type: ignore[arg-type]
    suite = ScorerSuite(load_config(DEFAULT_SCORERS), ["entities"], "cpu")
    suite.open()
    reports = evaluate_entities(_engine(ruleset.all_enabled()), suite, labelled, ("PERSON", "LOCATION", "ORGANIZATION"))
    table = Table("entity", "spans", "TP", "FP", "FN", "precision [95 % CI]", "recall [95 % CI]", "F2 [95 % CI]",
                  title=f"PII names, span level, third-party data ({split} split), entities rules enabled "
                        f"(off by default), model {suite.entities_model}")
    for entity, r in reports.items():
        table.add_row(entity, str(r.tp + r.fn), str(r.tp), str(r.fp), str(r.fn),
                      *(f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in r.metrics.values()))
    console.print(table)
    console.print(f"  {CONLL.name}: {CONLL.package} {CONLL.version} ({CONLL.license}), {split} split: "
                  f"{len(labelled)} sentences; {CONLL.what}; CPU {reports['all'].cpu_us_per_event:,.0f} µs/sentence")


def _third_party_secrets(ruleset: RuleSet, rules: Path, split: str) -> None:
    from devstack.corpora import TRUFFLEHOG, TRUFFLEHOG_VERSION, secret_cases
    from devstack.evaluation import evaluate_secrets

    labelled = secret_cases(split)  # type: ignore[arg-type]
    r = evaluate_secrets(_engine(ruleset), labelled)
    table = Table("rules", "secrets", "TP", "FP", "FN", "precision [95 % CI]", "recall [95 % CI]", "F1 [95 % CI]",
                  "CPU µs/text", title=f"secrets, per labelled secret, third-party data ({split} split)")
    table.add_row(str(rules), str(r.tp + r.fn), str(r.tp), str(r.fp), str(r.fn),
                  *(f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in r.metrics.values()), f"{r.cpu_us_per_event:,.0f}")
    console.print(table)
    console.print(f"  {TRUFFLEHOG.name}: {TRUFFLEHOG.package} {TRUFFLEHOG_VERSION} ({TRUFFLEHOG.license}), {split} split: "
                  f"{len(labelled)} texts, {sum(not c.secrets for c in labelled)} with no secret; {TRUFFLEHOG.what}")


def _third_party_injection(ruleset: RuleSet, rules: Path, split: str) -> None:
    from devstack.corpora import INJECTION_SOURCES, injection_cases
    from devstack.evaluation import evaluate_events

    labelled = injection_cases(split)  # type: ignore[arg-type]
    texts = [(case.text, case.label) for case in labelled]
    table = Table("rules", "n", "TP", "FP", "FN", "precision [95 % CI]", "recall [95 % CI]", "F1 [95 % CI]", "CPU µs/event",
                  title=f"prompt injection, event level, third-party data ({split} split)")
    for name, rs in ((str(rules), ruleset), (f"{rules}, every rule enabled", ruleset.all_enabled())):
        r = evaluate_events(_engine(rs), texts, {"prompt_injection"})
        table.add_row(name, str(r.n), str(r.tp), str(r.fp), str(r.fn),
                      *(f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in r.metrics.values()), f"{r.cpu_us_per_event:,.0f}")
    console.print(table)
    for source in INJECTION_SOURCES:
        mine = [case for case in labelled if case.source == source.name]
        console.print(f"  {source.name}: {source.package} {source.version} ({source.license}), {split} split: "
                      f"{sum(c.label for c in mine)} attacks, {sum(not c.label for c in mine)} benign; {source.what}")
