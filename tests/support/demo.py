"""`make demo`: start the stack, produce a sample stream, audit it end to end, compare with the ground truth.

Run from a checkout: `python -m tests.support.demo [--events N] [--seed S]`.
"""

from __future__ import annotations

import secrets
import time
from datetime import date

import typer
from pymongo import MongoClient
from rich.table import Table

from console.auth import add_user
from devstack import stack, traffic
from flink_jobs.cli.console import console, fail
from flink_jobs.cli.stack import print_counts, produce_with_progress, stack_up
from flink_jobs.local import local_job_settings
from flink_jobs.offline.report import build_report, render_html
from flink_jobs.streaming import job
from tests.support.check import archive_report, compare
from udfs.cache import cache_dir


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
    job.main(settings)
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
    archived = archive_report(settings, truths, shared=True)
    console.print(f"archive: {len(archived)} events, each once, in {settings.archive_dir} (Parquet, date=/tenant=)")
    days = sorted({str(row["date"]) for row in archived})
    page = cache_dir() / "reports" / f"demo-{run}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    built = build_report(settings.archive_dir, settings.mongo_uri.get_secret_value(), settings.mongo_database, None,
                         date.fromisoformat(days[0]), date.fromisoformat(days[-1]),
                         {"anomalies": settings.anomalies_collection, "rule_changes": settings.rule_changes_collection})
    page.write_text(render_html(built), encoding="utf-8")
    console.print(f"compliance report: {page} (a PDF: llm-audit report --all-tenants --from {days[0]} "
                  f"--to {days[-1]} --out report.pdf)")
    user, password = f"demo-{run}", secrets.token_urlsafe(12)
    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        add_user(client[settings.mongo_database], user, "reviewer", ["*"], password, "make demo")
    console.print(f"review console: run [bold]llm-audit console serve[/], open http://127.0.0.1:8099/ and sign in "
                  f"as [bold]{user}[/] with password [bold]{password}[/] (a reviewer of every tenant)")


def _cell(value) -> str:
    if isinstance(value, dict):
        return "\n".join(f"{key} {count}" for key, count in value.items())
    return str(value)




if __name__ == "__main__":
    typer.run(demo)
