"""The Parquet archive's write overhead: the audit job (rules only, the default Python mode) with and
without the archive, on the same pre-produced Kafka topic, in one run, alternating, several rounds.

Rates by difference as in pipeline_throughput.py: each job runs on N and on the first M events of the
topic, and the rate is (N - M) / (T(N) - T(M)). Each run's stores, topics, checkpoints and archive
are dropped after it. The last line is `SUMMARY without_eps=… with_eps=… overhead_pct=…` (medians).

Usage: python bench/archive_overhead.py [--events 100000] [--small 1000] [--rounds 2] [--text redacted]
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import shutil
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline_throughput as pt  # noqa: E402  (sets up sys.path and PYTHONPATH for the job)

from devstack import stack, traffic  # noqa: E402
from flink_jobs.streaming import job  # noqa: E402
from flink_jobs.settings import AuditJobSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events of the large run of each pair")
    parser.add_argument("--small", type=int, default=1000, help="events of the small run of each pair")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of each variant, alternating")
    parser.add_argument("--text", default="redacted", choices=["redacted", "none", "encrypted"],
                        help="LLM_AUDIT_ARCHIVE_TEXT of the runs with the archive")
    args = parser.parse_args()

    stack.up()
    bootstrap = "127.0.0.1:9092"
    topic = f"bench-{uuid.uuid4().hex[:8]}.events"
    stack.create_topics(bootstrap, {topic: {}})
    pt.console.print(f"producing {args.events} events to {topic}")
    traffic.produce(bootstrap, topic, args.events, seed=11, start_ms=1_790_000_000_000)
    small = pt.head_topic(topic, args.small, bootstrap, 1)
    rules_folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-rules-{uuid.uuid4().hex[:8]}"
    try:
        rules = pt.rules_without_scores(rules_folder)
        base = {"scorers": [], "rules_path": rules}
        archived = {**base, "archive_text": args.text}
        if args.text == "encrypted":
            archived["archive_key"] = base64.b64encode(os.urandom(32)).decode()
        variants = {"without archive": {**base, "outputs": [o for o in AuditJobSettings().outputs
                                                              if o != "archive"]},
                    "with archive": archived}
        pt.timed(pt.pass_through, pt.settings_for(uuid.uuid4().hex[:8], small))  # JVM warm-up
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            for name, overrides in variants.items():
                rate, _ = pt.rate_of(f"{name} (round {round_ + 1})", job.build_job,
                                     {args.small: small, args.events: topic}, overrides)
                if rate:
                    rates[name].append(rate)
    finally:
        stack.delete_topics(bootstrap, [topic, small])
        shutil.rmtree(rules_folder, ignore_errors=True)
    without, with_ = (statistics.median(rates[name]) for name in variants)
    overhead = (without - with_) / without * 100
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    for name, values in rates.items():
        print(f"{name}: " + ", ".join(f"{v:,.0f}" for v in values) + " events/s")
    print(f"SUMMARY without_eps={without:.0f} with_eps={with_:.0f} overhead_pct={overhead:.1f}")


if __name__ == "__main__":
    main()
