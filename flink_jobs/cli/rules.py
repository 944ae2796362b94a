"""`llm-audit rules ...` for rule authors: validate, test, diff, push and list rulesets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from flink_jobs import rules_topic
from flink_jobs.cli.console import console, fail
from flink_jobs.kafka import client_config
from flink_jobs.settings import load_settings
from udfs.engine import RuleEngine
from udfs.rules import RuleError, RuleSet, load_rules, rules_digest, rules_json_schema

app = typer.Typer(no_args_is_help=True, help="Validate, test, push and inspect YAML rules.")

BOOTSTRAP = typer.Option("127.0.0.1:9092", envvar="LLM_AUDIT_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers.")
TOPIC = typer.Option("audit-rules", envvar="LLM_AUDIT_RULES_TOPIC", help="Compacted topic of pushed rulesets.")
NAME = typer.Option("default", help="Ruleset name (the record key on the topic).")


def _kafka(bootstrap: str) -> dict:
    """The job's Kafka client settings (LLM_AUDIT_KAFKA_SECURITY_PROTOCOL, SASL, TLS) for these brokers."""
    return client_config(load_settings(kafka_bootstrap=bootstrap))


def _pushed(kafka: dict, topic: str, name: str) -> list[dict]:
    """The well-formed records pushed under `name`, oldest first; junk on the topic is reported and skipped."""
    found, junk = rules_topic.records(kafka, topic, name)
    for line in junk:
        console.print(f"[yellow]skipped junk on {topic}[/]: {line}")
    return found


def load(path: Path) -> RuleSet:
    """The ruleset of a file or directory; an invalid one is an error naming each problem."""
    try:
        return load_rules(path)
    except RuleError as exc:
        fail(f"invalid rules\n{exc}")


def engine_for(ruleset: RuleSet) -> RuleEngine:
    """An open engine for the ruleset; a rule that fails on an ordinary event (its self-check) is an error."""
    engine = RuleEngine(ruleset)
    try:
        engine.open()
    except RuleError as exc:
        fail(f"invalid rules\n{exc}")
    return engine


@app.command()
def validate(path: Path) -> None:
    """Check a rules file, or every *.yaml under a directory as one ruleset: schema, regexes (RE2), detectors,
    validators, keyword files, ids unique across files, and every enabled rule run once on an ordinary event."""
    ruleset = load(path)
    engine_for(ruleset)
    console.print(f"[green]valid[/] {path}: {len(ruleset.rules)} rules, hash {ruleset.content_hash()}")


@app.command("test")
def test_rules(path: Path) -> None:
    """Run every rule's examples (must_match / must_not_match) of a rules file or directory; a pass/fail table."""
    ruleset = load(path)
    engine = engine_for(ruleset.all_enabled())
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
    console.print(
        f"{table.row_count - failures} passed, {failures} failed"
        + (f"; no examples: {', '.join(untested)}" if untested else "")
    )
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
    author: str | None = typer.Option(None, help="Who pushes (default: the OS user)."),
    name: str = NAME,
    bootstrap: str = BOOTSTRAP,
    topic: str = TOPIC,
    sign_key: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Sign the push with this Ed25519 key (`rules keygen`)."
    ),
) -> None:
    """Validate, then publish the ruleset to the running job(s) through the audit-rules topic."""
    from udfs.signing import SignatureError, key_id, load_private_key, sign, verify

    private = None
    if sign_key is not None:
        try:
            private = load_private_key(sign_key.read_bytes(), str(sign_key))
        except SignatureError as exc:
            fail(str(exc))
    ruleset = load(path)
    kafka = _kafka(bootstrap)
    pushed = _pushed(kafka, topic, name)
    live = pushed[-1] if pushed else None
    # The same rules pushed again unsigned, or signed by another key (e.g. after a rejection), go out; a
    # record that claims this key's signature counts only if the signature verifies.
    if live is not None and live["sha256"] == rules_digest(ruleset.model_dump(mode="json")):
        if private is None and not live.get("key_id"):
            console.print(f"unchanged: live version {live['version']} has hash {live['hash']}; nothing pushed")
            return
        if private is not None and live.get("key_id") == key_id(private.public_key()):
            try:
                verify(live, {live["key_id"]: private.public_key()})
            except SignatureError:
                pass
            else:
                console.print(f"unchanged: live version {live['version']} has hash {live['hash']}; nothing pushed")
                return
    # Above every version on the topic: the job rejects a version not above the one it runs (a rollback).
    version = max((record["version"] for record in pushed), default=0) + 1
    record = rules_topic.push_record(ruleset, name, version, author, message)
    if private is not None:
        record = sign(record, private)
    try:
        rules_topic.publish(kafka, topic, record)
    except LookupError as exc:
        fail(str(exc))
    signed = f", signed with key {record['key_id']}" if "key_id" in record else ""
    console.print(f"[green]pushed[/] {name} v{record['version']} hash {record['hash']} by {record['author']}{signed}")


@app.command()
def keygen(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Where the private key goes (PEM, mode 600); the public key: OUT.pub."
    ),
) -> None:
    """Make an Ed25519 key to sign rule pushes with; the job trusts its .pub (LLM_AUDIT_RULES_TRUSTED_KEYS)."""
    import os

    from udfs.signing import generate_key, key_id, parse_public_key

    if out.exists():
        fail(f"{out} exists: not overwriting a key; choose another --out")
    pem, public = generate_key()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    out.with_name(out.name + ".pub").write_text(public + "\n")
    console.print(
        f"private key {out} (keep it secret), public key {out}.pub, key id {key_id(parse_public_key(public))}"
    )
    console.print(f"trust it in the job: LLM_AUDIT_RULES_TRUSTED_KEYS='[\"{public}\"]'")


@app.command("list")
def list_rules(name: str = NAME, bootstrap: str = BOOTSTRAP, topic: str = TOPIC) -> None:
    """Show the live (last pushed) ruleset, and every push on the topic with whether its signature verifies
    with the trusted keys (LLM_AUDIT_RULES_TRUSTED_KEYS)."""
    settings = load_settings(kafka_bootstrap=bootstrap)
    pushed = _pushed(client_config(settings), topic, name)
    if not pushed:
        fail(f"nothing pushed under {name!r} on {topic}; the job runs the rules file it started with")
    live = pushed[-1]
    console.print(
        f"{name} v{live['version']} hash {live['hash']} by {live['author']} at {live['pushed_at']}: {live['message']}"
    )
    table = Table("rule", "version", "category", "severity", "enabled", "match")
    for rule in _rules_of(live):
        match = rule.get("match")
        table.add_row(
            *(str(rule.get(field, "?")) for field in ("id", "version", "category", "severity", "enabled")),
            str(match.get("type", "?") if isinstance(match, dict) else "?"),
        )
    console.print(table)
    pushes = Table("version", "hash", "author", "pushed at", "signature", title=f"pushes of {name} on {topic}")
    for record in pushed:
        pushes.add_row(
            str(record["version"]), record["hash"], record["author"], record["pushed_at"],
            _signature(record, settings.rules_trusted_keys),
        )  # fmt: skip
    console.print(pushes)


def _rules_of(record: dict) -> list[dict]:
    """The rules of a pushed record as it is on the topic (not parsed: rules with an id only)."""
    rules = record["rules"].get("rules")
    return [r for r in rules if isinstance(r, dict) and isinstance(r.get("id"), str)] if isinstance(rules, list) else []


def _signature(record: dict, trusted: list[str]) -> str:
    from udfs.signing import SignatureError, trusted_keys, verify

    if not record.get("signature"):
        return "unsigned"
    if not trusted:
        return f"key {record.get('key_id')}, not checked (no LLM_AUDIT_RULES_TRUSTED_KEYS)"
    try:
        return f"[green]verified[/], key {verify(record, trusted_keys(trusted))}"
    except SignatureError as exc:
        return f"[red]does not verify[/]: {exc}"


@app.command()
def diff(path: Path, name: str = NAME, bootstrap: str = BOOTSTRAP, topic: str = TOPIC) -> None:
    """What pushing PATH would change in the live ruleset."""
    local = {r["id"]: r for r in load(path).model_dump(mode="json")["rules"]}
    pushed = _pushed(_kafka(bootstrap), topic, name)
    live = {r["id"]: r for r in (_rules_of(pushed[-1]) if pushed else [])}
    table = Table("change", "rule", "detail")
    for rule_id in sorted(local.keys() | live.keys()):
        before, after = live.get(rule_id), local.get(rule_id)
        if before is None and after is not None:
            table.add_row("[green]added[/]", rule_id, f"v{after['version']} {after['severity']}")
        elif before is not None and after is None:
            table.add_row("[red]removed[/]", rule_id, f"was v{before['version']}")
        elif before is not None and after is not None and before != after:
            fields = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            table.add_row(
                "[yellow]changed[/]", rule_id, f"v{before['version']} -> v{after['version']}: {', '.join(fields)}"
            )
    if table.row_count == 0:
        console.print("no changes")
    else:
        console.print(table)


@app.command()
def stats() -> None:
    """Per-rule precision from the console's reviews (confirmed / (confirmed + false positive)), all tenants."""
    from pymongo import MongoClient

    from console.settings import ConsoleSettings
    from console.store import ALL_TENANTS, Caller, Store

    settings = ConsoleSettings()
    client: MongoClient[dict] = MongoClient(settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=10_000)
    with client:
        store = Store(client, settings.mongo_database, settings.violations_collection, settings.anomalies_collection)
        rows = store.rule_stats(Caller("cli", "admin", (ALL_TENANTS,)))
    if not rows:
        console.print("no reviews yet")
        return
    table = Table("rule", "confirmed", "false positive", "escalated", "precision", title="precision from reviews")
    for row in rows:
        precision = "—" if row["precision"] is None else f"{row['precision']:.2f}"
        table.add_row(
            row["rule_id"], str(row["confirmed"]), str(row["false_positive"]), str(row["escalated"]), precision
        )
    console.print(table)
