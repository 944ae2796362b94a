"""Batched vs one-event-at-a-time scoring, same models, same device, one run.

Scores ~1 KB generator events (each its prompt and response, as the job does) with each default scorer
(toxicity ensemble, bias classifier + counterfactual, named entities, injection similarity on prompts),
with toxicity and bias together, with the defaults before injection, and with the whole default suite
(what a scorer adds is the difference), first one event per call (as the rule engine ran the injection
detector), then in batches of each size given; prints events/s and the batched/single ratio.
Usage: python bench/scorers_batching.py [--events 256] [--batch-sizes 8,32,128] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from rich.console import Console
from rich.table import Table
from rules_throughput import one_kb_events  # the sibling benchmark (bench/ is on sys.path)

from flink_jobs.settings import AuditJobSettings
from udfs.events import AuditEvent, parse_event
from udfs.scorers import SCORER_NAMES, ScorerSuite, load_config


def events_of(n: int) -> list[AuditEvent]:
    return [parse_event(value) for value in one_kb_events(n)]


def rate(suite: ScorerSuite, events: list[AuditEvent], batch: int) -> float:
    suite.score_events(events[:batch])  # warm-up: lazy init, allocator, kernels
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        suite.score_events(events[i:i + batch])
    return len(events) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=256)
    parser.add_argument("--batch-sizes", default="8,32,128")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    events = events_of(args.events)
    config = load_config()
    chars = sum(len(text) for event in events for _, text in event.texts()) // len(events)
    table = Table("scorer", "device", "1 at a time (events/s)",
                  *[f"batch {s} (events/s, ×)" for s in sizes], title=f"{len(events)} events, ~{chars} chars each")
    suites = {**{name: (name,) for name in SCORER_NAMES}, "toxicity+bias": ("toxicity", "bias"),
              "toxicity+bias+entities": ("toxicity", "bias", "entities"),
              "all (the default)": tuple(AuditJobSettings.model_fields["scorers"].default)}
    for name, scorers in suites.items():
        suite = ScorerSuite(config, scorers, args.device)
        suite.open()
        single = rate(suite, events, 1)
        cells = [f"{(r := rate(suite, events, s)):,.0f} ({r / single:.1f}×)" for s in sizes]
        table.add_row(name, suite.device, f"{single:,.1f}", *cells)
    Console().print(table)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads: {__import__('torch').get_num_threads()}")


if __name__ == "__main__":
    main()
