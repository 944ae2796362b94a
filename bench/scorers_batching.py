"""Batched vs one-text-at-a-time scoring, same models, same device, one run.

Scores the prompts and responses of ~1 KB generator events with each default scorer (toxicity
ensemble, bias classifier + counterfactual, named entities), with toxicity and bias together, and with
the whole default suite (what the entities scorer adds is the difference), first one text per call,
then in batches of each size given; prints texts/s and the batched/single ratio.
Usage: python bench/scorers_batching.py [--texts 512] [--batch-sizes 8,32,128] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from rich.console import Console
from rich.table import Table
from rules_throughput import one_kb_events  # the sibling benchmark (bench/ is on sys.path)

from flink_jobs.settings import AuditJobSettings
from udfs.scorers import SCORER_NAMES, ScorerSuite, load_config


def texts_of(n: int) -> list[str]:
    texts = []
    for value in one_kb_events(n):
        event = json.loads(value)
        texts += [event[f] for f in ("prompt", "response") if event.get(f)]
    return texts[:n]


def rate(suite: ScorerSuite, texts: list[str], batch: int) -> float:
    suite.score(texts[:batch])  # warm-up: lazy init, allocator, kernels
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        suite.score(texts[i:i + batch])
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--batch-sizes", default="8,32,128")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    texts = texts_of(args.texts)
    config = load_config()
    table = Table("scorer", "device", "1 at a time (texts/s)",
                  *[f"batch {s} (texts/s, ×)" for s in sizes], title=f"{len(texts)} texts, ~{sum(map(len, texts)) // len(texts)} chars each")
    suites = {**{name: (name,) for name in SCORER_NAMES}, "toxicity+bias": ("toxicity", "bias"),
              "all (the default)": tuple(AuditJobSettings.model_fields["scorers"].default)}
    for name, scorers in suites.items():
        suite = ScorerSuite(config, scorers, args.device)
        suite.open()
        single = rate(suite, texts, 1)
        cells = [f"{(r := rate(suite, texts, s)):,.0f} ({r / single:.1f}×)" for s in sizes]
        table.add_row(name, suite.device, f"{single:,.1f}", *cells)
    Console().print(table)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads: {__import__('torch').get_num_threads()}")


if __name__ == "__main__":
    main()
