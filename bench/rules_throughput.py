"""Rule-evaluation throughput on one core: ~1 KB audit events, default ruleset, no Flink.

Prints events/s (best of three passes) for parsing alone, for the default rules (with and
without the engine's RE2 prefilter), for parsing and rules, and for the default rules plus the
(off by default) MiniLM injection-similarity rule, side by side in one run.
Usage: python bench/rules_throughput.py [--events 5000] [--rules rules/default.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from devstack.traffic import generate
from udfs.engine import RuleEngine
from udfs.events import parse_event
from udfs.rules import load_rules

ROOT = Path(__file__).resolve().parents[1]
FILLER = (" We reviewed the quarterly numbers, the onboarding checklist and the incident timeline; "
          "nothing else stood out, so please draft a short summary for the team and list open questions.")


def one_kb_events(n: int) -> list[str]:
    """Generator traffic (with its planted PII, secrets, injections) padded to ~1 KB per event."""
    out = []
    for sample in generate(n * 2, seed=17, start_ms=1_800_000_000_000):
        if sample.malformed:
            continue
        event = json.loads(sample.value)
        while len(json.dumps(event)) < 1000:
            event["prompt"] += FILLER
        out.append(json.dumps(event))
        if len(out) == n:
            break
    return out


def rate(fn, items, repeats: int = 3) -> float:
    """Best of `repeats` passes: the least disturbed by other work on a shared VM."""
    best = 0.0
    for _ in range(repeats):
        began = time.perf_counter()
        for item in items:
            fn(item)
        best = max(best, len(items) / (time.perf_counter() - began))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rules", type=Path, default=ROOT / "rules" / "default.yaml")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the figure says

    raw = one_kb_events(args.events)
    ruleset = load_rules(args.rules)
    engine = RuleEngine(ruleset)
    engine.open()
    unfiltered = RuleEngine(ruleset, prefilter=False)
    unfiltered.open()
    everything = RuleEngine(ruleset.all_enabled())
    everything.open()
    events = [parse_event(r) for r in raw]
    rate(engine.evaluate, events[:200])  # warm-up
    parse_rate = rate(parse_event, raw)
    rules_rate = rate(engine.evaluate, events)
    unfiltered_rate = rate(unfiltered.evaluate, events)
    both_rate = rate(lambda r: engine.evaluate(parse_event(r)), raw)
    all_rate = rate(everything.evaluate, events[:1000], repeats=1)
    findings = sum(len(engine.evaluate(e)) for e in events)
    size = sum(map(len, raw)) / len(raw)
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, 1 core")
    enabled = sum(rule.enabled for rule in ruleset.rules)
    print(f"{len(raw)} events, mean {size:.0f} bytes, {enabled} of {len(ruleset.rules)} rules enabled, {findings} findings")
    print(f"parse + validate      {parse_rate:10,.0f} events/s")
    print(f"rules (engine only)   {rules_rate:10,.0f} events/s")
    print(f"rules, no prefilter   {unfiltered_rate:10,.0f} events/s   (the RE2 prefilter: {rules_rate / unfiltered_rate:.1f}x)")
    print(f"parse + rules         {both_rate:10,.0f} events/s   (rules cost {1 / both_rate - 1 / parse_rate:.2e} s/event)")
    print(f"all rules, + MiniLM   {all_rate:10,.0f} events/s   ({all_rate / rules_rate:.2f}x of the default rules; 1,000 events)")


if __name__ == "__main__":
    main()
