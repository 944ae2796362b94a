"""Violations for the console's tests and bench: the job's own documents (the engine and the violation
builder the job runs) for generated traffic, written as the job's writer writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from devstack.traffic import generate
from udfs.engine import RuleEngine
from udfs.events import EventError, parse_event
from udfs.findings import violation_document
from udfs.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]


def violations(n_events: int, seed: int = 3, start_ms: int = 1_796_000_000_000) -> list[dict]:
    """The violation documents of n generated events (rules only), stamped as stored now."""
    engine = RuleEngine(load_rules(ROOT / "rules" / "default.yaml"))
    engine.open()
    docs, now = [], datetime.now(UTC)
    for sample in generate(n_events, seed=seed, start_ms=start_ms):
        try:
            event = parse_event(sample.value)
        except EventError:
            continue
        for finding in engine.evaluate(event, {}, {}):
            docs.append({**violation_document(event, finding), "stored_at": now})
    return docs
