"""`make demo`: start the stack, produce a sample stream, audit it end to end, compare with the ground truth.

Run from a checkout: `python -m tests.support.demo [--events N] [--seed S]`.
"""

from __future__ import annotations

import time

import typer
from rich.table import Table

from udfs.cache import cache_dir
from devstack import stack, traffic
from flink_jobs import audit_job
from flink_jobs.cli.console import console, fail
from flink_jobs.cli.stack import print_counts, produce_with_progress, stack_up
from flink_jobs.local import local_job_settings
from tests.support.check import compare


def demo(
    events: int = typer.Option(2000, "--events", "-n", min=1, help="How many messages to audit."),
    seed: int = typer.Option(7, "--seed", "-s"),
) -> None:
    """Start the stack, produce a sample stream, audit it end to end, compare with the ground truth."""
    stack_up()
    run = time.strftime("%Y%m%d-%H%M%S")
    settings = local_job_settings(
        source_topic=f"demo-{run}.model-audit-logs", dlq_topic=f"demo-{run}.model-audit-dlq",
        rules_topic=f"demo-{run}.audit-rules",
        group_id=f"llm-audit-demo-{run}", bounded=True,
    )
    stack.create_job_topics(settings.kafka_bootstrap, settings.source_topic, settings.dlq_topic, settings.rules_topic)
    labels = cache_dir() / "traffic" / f"demo-{run}.jsonl"
    truths = produce_with_progress(settings.kafka_bootstrap, settings.source_topic, events, seed, None, labels, None)
    print_counts(traffic.summarize(truths))
    console.print(f"[bold]==>[/] auditing {events} events with {settings.rules_path} (PyFlink MiniCluster)")
    began = time.monotonic()
    audit_job.main(settings)
    console.print(f"[bold]==>[/] job finished in {time.monotonic() - began:.1f}s")
    report = compare(settings, truths)
    table = Table("what", "generator (truth)", "audit job", "", title=f"demo {run}: truth vs. stored results")
    for row in report.rows:
        table.add_row(row.what, _cell(row.expected), _cell(row.actual), "[green]✓[/]" if row.ok else "[red]✗[/]")
    console.print(table)
    console.print(f"violations: MongoDB {settings.mongo_database}.{settings.violations_collection}; "
                  f"counts: InfluxDB {settings.influx_bucket}; dead letters: topic {settings.dlq_topic}")
    if not report.ok:
        fail("the stored results differ from the ground truth")


def _cell(value) -> str:
    if isinstance(value, dict):
        return "\n".join(f"{key} {count}" for key, count in value.items())
    return str(value)




if __name__ == "__main__":
    typer.run(demo)
