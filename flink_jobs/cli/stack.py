"""`llm-audit stack ...` (the local stack) and `llm-audit produce` (sample traffic with its ground truth)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from devstack import artifacts, stack, traffic
from flink_jobs.cli.console import console, fail, progress_bar
from udfs.cache import cache_dir

app = typer.Typer(no_args_is_help=True, help="The local stack: Kafka (KRaft), FerretDB, InfluxDB on 127.0.0.1.")


@app.command("up")
def stack_up() -> None:
    """Build what is missing (cached), start every service, create topics and databases."""
    try:
        stack.up()
    except (stack.StackError, artifacts.BuildError) as exc:
        fail(str(exc))


@app.command("down")
def stack_down() -> None:
    """Stop the services; their data stays for the next `up`."""
    stack.down()


@app.command("status")
def stack_status() -> None:
    """Show each service's state; exit code 1 unless all are healthy."""
    states = stack.status()
    for name, state in states.items():
        colour = {"healthy": "green", "stopped": "yellow"}.get(state, "red")
        console.print(f"{name:10} [{colour}]{state}[/]")
    if any(state != "healthy" for state in states.values()):
        raise typer.Exit(1)


def produce(
    events: int = typer.Option(..., "--events", "-n", min=1, help="How many messages to write."),
    rate: float | None = typer.Option(
        None, "--rate", "-r", min=0.001, help="Messages per second (default: as fast as possible)."
    ),
    seed: int = typer.Option(7, "--seed", "-s", help="Same seed, same events."),
    topic: str = typer.Option("model-audit-logs", help="Target topic."),
    bootstrap: str = typer.Option(
        "127.0.0.1:9092", envvar="LLM_AUDIT_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers."
    ),
    labels: Path | None = typer.Option(
        None, help="Where to write the ground truth (JSON lines); default beside the cache."
    ),
    start_ms: int | None = typer.Option(None, help="Timestamp of the first event, epoch ms (default: now)."),
) -> None:
    """Write synthetic LLM traffic to Kafka and its ground-truth labels to a file."""
    labels = labels or cache_dir() / "traffic" / f"labels-seed{seed}.jsonl"
    truths = produce_with_progress(bootstrap, topic, events, seed, rate, labels, start_ms)
    print_counts(traffic.summarize(truths))
    console.print(f"ground truth: {labels}")


def produce_with_progress(bootstrap, topic, events, seed, rate, labels, start_ms) -> list[dict]:
    """Write the events with a progress bar; their ground truth comes back."""
    with progress_bar("producing to [bold]{task.fields[topic]}") as bar:
        task = bar.add_task("produce", total=events, topic=topic)
        return traffic.produce(
            bootstrap,
            topic,
            events,
            seed,
            rate,
            labels,
            start_ms,
            progress=lambda done: bar.update(task, completed=done),
        )


def print_counts(counts) -> None:
    """A table of what the generator planted."""
    table = Table("label", "events", title="generated traffic")
    for kind, count in sorted(counts.items()):
        table.add_row(kind, str(count))
    console.print(table)
