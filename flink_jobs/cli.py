"""`llm-audit`: the local stack, sample traffic, running the audit job, and the demo."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from devstack import artifacts, stack, traffic
from flink_jobs import models_cli, rules_cli

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
stack_app = typer.Typer(no_args_is_help=True, help="The local stack: Kafka (KRaft), FerretDB, InfluxDB on 127.0.0.1.")
run_app = typer.Typer(no_args_is_help=True, help="Run a job on the local Flink MiniCluster.")
app.add_typer(stack_app, name="stack")
app.add_typer(run_app, name="run")
app.add_typer(rules_cli.app, name="rules")
app.add_typer(models_cli.app, name="models")
app.command("scan")(rules_cli.scan)
app.command("eval")(rules_cli.evaluate)
console = artifacts.console


def _fail(message: str) -> None:
    console.print(f"[red]error:[/] {message}")
    raise typer.Exit(1)


@stack_app.command("up")
def stack_up() -> None:
    """Build what is missing (cached), start every service, create topics and databases."""
    try:
        stack.up()
    except (stack.StackError, artifacts.BuildError) as exc:
        _fail(str(exc))


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services; their data stays for the next `up`."""
    stack.down()


@stack_app.command("status")
def stack_status() -> None:
    """Show each service's state; exit code 1 unless all are healthy."""
    states = stack.status()
    for name, state in states.items():
        colour = {"healthy": "green", "stopped": "yellow"}.get(state, "red")
        console.print(f"{name:10} [{colour}]{state}[/]")
    if any(state != "healthy" for state in states.values()):
        raise typer.Exit(1)


@app.command()
def produce(
    events: int = typer.Option(..., "--events", "-n", min=1, help="How many messages to write."),
    rate: Optional[float] = typer.Option(None, "--rate", "-r", min=0.001, help="Messages per second (default: as fast as possible)."),
    seed: int = typer.Option(7, "--seed", "-s", help="Same seed, same events."),
    topic: str = typer.Option("model-audit-logs", help="Target topic."),
    bootstrap: str = typer.Option("127.0.0.1:9092", envvar="LLM_AUDIT_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers."),
    labels: Optional[Path] = typer.Option(None, help="Where to write the ground truth (JSON lines); default beside the cache."),
    start_ms: Optional[int] = typer.Option(None, help="Timestamp of the first event, epoch ms (default: now)."),
) -> None:
    """Write synthetic LLM traffic to Kafka and its ground-truth labels to a file."""
    labels = labels or artifacts.cache_dir() / "traffic" / f"labels-seed{seed}.jsonl"
    truths = _produce_with_progress(bootstrap, topic, events, seed, rate, labels, start_ms)
    _print_counts(traffic.summarize(truths))
    console.print(f"ground truth: {labels}")


def _produce_with_progress(bootstrap, topic, events, seed, rate, labels, start_ms) -> list[dict]:
    with Progress(TextColumn("producing to [bold]{task.fields[topic]}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("produce", total=events, topic=topic)
        return traffic.produce(bootstrap, topic, events, seed, rate, labels, start_ms,
                               progress=lambda done: bar.update(task, completed=done))


def _print_counts(counts) -> None:
    table = Table("label", "events", title="generated traffic")
    for kind, count in sorted(counts.items()):
        table.add_row(kind, str(count))
    console.print(table)


def _quiet_beam_shutdown() -> None:
    """Local runs host the Python worker in-process; when a job ends, Beam's gRPC reader thread
    dies with CANCELLED "Multiplexer hanging up". That is shutdown, not an error: keep it off the console."""
    default = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.thread is not None and args.thread.name == "read_grpc_client_inputs" and "CANCELLED" in str(args.exc_value):
            return
        default(args)

    threading.excepthook = hook


def local_job_settings(**overrides):
    """AuditJobSettings from the environment, plus what a local MiniCluster run needs."""
    from flink_jobs.settings import load_settings

    from devstack.grafana import flink_influx_reporter_config

    settings = load_settings(**overrides)
    _quiet_beam_shutdown()
    # A MiniCluster loads metric reporters from the gateway JVM's classpath (FLINK_LIB_DIR), fixed when
    # this process's first PyFlink call starts the gateway; one already running keeps its classpath.
    if "FLINK_HOME" not in os.environ:
        os.environ.update(artifacts.flink_env())
    database, _, policy = settings.influx_bucket.partition("/")
    local = {
        "python_executable": settings.python_executable or sys.executable,
        "pipeline_jars": settings.pipeline_jars or [artifacts.flink_kafka_connector_jar().as_uri()],
        "checkpoint_dir": settings.checkpoint_dir or (artifacts.cache_dir() / "checkpoints").as_uri(),
        # Flink's own metrics (checkpoints, throughput, Kafka lag) beside the job's: the pipeline dashboard.
        "flink_config": {**flink_influx_reporter_config(settings.influx_url, database, retention_policy=policy),
                         **settings.flink_config},
    }
    return settings.model_copy(update=local)


def latest_checkpoint(checkpoint_dir: str) -> str | None:
    """The newest complete checkpoint (a chk-N directory with its _metadata) under a file:// checkpoint dir."""
    root = Path(checkpoint_dir.removeprefix("file://"))
    done = [meta.parent for meta in root.glob("*/chk-*/_metadata")]
    return max(done, key=lambda d: d.stat().st_mtime).as_uri() if done else None


@run_app.command("audit")
def run_audit(
    bounded: bool = typer.Option(False, help="Stop once the input present at start is consumed."),
    restore: Optional[str] = typer.Option(None, help="Start from a checkpoint or savepoint: its path, or 'latest' "
                                                     "(the newest complete checkpoint in LLM_AUDIT_CHECKPOINT_DIR)."),
) -> None:
    """Run the audit job on a local MiniCluster (settings: LLM_AUDIT_* env vars)."""
    from flink_jobs import audit_job
    from flink_jobs.settings import SettingsError
    from udfs.rules import RuleError
    from udfs.scorers import ScorerError

    try:
        settings = local_job_settings(bounded=bounded)
        if restore == "latest":
            found = latest_checkpoint(settings.checkpoint_dir)
            console.print(f"restoring from {found}" if found else
                          f"no complete checkpoint in {settings.checkpoint_dir}: starting afresh")
            restore = found
        audit_job.main(settings.model_copy(update={"restore_from": restore}) if restore else settings)
    except (RuleError, SettingsError, ScorerError, ConnectionError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        console.print("stopped (offsets are committed to the consumer group at each checkpoint)")


@app.command()
def demo(
    events: int = typer.Option(2000, "--events", "-n", min=1, help="How many messages to audit."),
    seed: int = typer.Option(7, "--seed", "-s"),
) -> None:
    """Start the stack, produce a sample stream, audit it end to end, compare with the ground truth."""
    from flink_jobs import audit_job

    stack_up()
    run = time.strftime("%Y%m%d-%H%M%S")
    settings = local_job_settings(
        source_topic=f"demo-{run}.model-audit-logs", dlq_topic=f"demo-{run}.model-audit-dlq",
        rules_topic=f"demo-{run}.audit-rules",
        group_id=f"llm-audit-demo-{run}", bounded=True,
    )
    stack.create_job_topics(settings.kafka_bootstrap, settings.source_topic, settings.dlq_topic, settings.rules_topic)
    labels = artifacts.cache_dir() / "traffic" / f"demo-{run}.jsonl"
    truths = _produce_with_progress(settings.kafka_bootstrap, settings.source_topic, events, seed, None, labels, None)
    _print_counts(traffic.summarize(truths))
    console.print(f"[bold]==>[/] auditing {events} events with {settings.rules_path} (PyFlink MiniCluster)")
    began = time.monotonic()
    audit_job.main(settings)
    console.print(f"[bold]==>[/] job finished in {time.monotonic() - began:.1f}s")
    from devstack.check import compare

    report = compare(settings, truths)
    table = Table("what", "generator (truth)", "audit job", "", title=f"demo {run}: truth vs. stored results")
    for row in report.rows:
        table.add_row(row.what, _cell(row.expected), _cell(row.actual), "[green]✓[/]" if row.ok else "[red]✗[/]")
    console.print(table)
    console.print(f"violations: MongoDB {settings.mongo_database}.{settings.violations_collection}; "
                  f"counts: InfluxDB {settings.influx_bucket}; dead letters: topic {settings.dlq_topic}")
    if not report.ok:
        _fail("the stored results differ from the ground truth")


def _cell(value) -> str:
    if isinstance(value, dict):
        return "\n".join(f"{key} {count}" for key, count in value.items())
    return str(value)


@app.command()
def replay(
    start: str = typer.Option(..., "--from", help="First Kafka record time to re-audit: ISO 8601 (UTC if no zone) or epoch ms."),
    end: str = typer.Option(..., "--to", help="End of the range (exclusive)."),
    rules: Path = typer.Option(..., "--rules", "-r", exists=True, dir_okay=False, help="The ruleset to audit with."),
    collection: Optional[str] = typer.Option(None, help="MongoDB collection of the results (default: replay_<time>); "
                                                        "re-running into it upserts the same documents."),
) -> None:
    """Re-audit past traffic from Kafka with a ruleset into a separate collection, and compare it with the live one."""
    from flink_jobs import replay as rp
    from flink_jobs.settings import SettingsError
    from udfs.rules import RuleError
    from udfs.scorers import ScorerError

    try:
        from_ms, to_ms = rp.parse_time(start), rp.parse_time(end)
    except ValueError as exc:
        _fail(str(exc))
    if from_ms >= to_ms:
        _fail(f"--from ({start}) must be before --to ({end})")
    collection = collection or f"replay_{time.strftime('%Y%m%d_%H%M%S')}"
    try:
        live = local_job_settings()
        settings = rp.replay_settings(live, rules, collection,
                                      (artifacts.cache_dir() / "checkpoints" / collection).as_uri())
        with Progress(TextColumn("re-auditing [bold]{task.fields[topic]}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("replay", total=None, topic=settings.source_topic)
            total = rp.run_replay(settings, from_ms, to_ms, lambda done, n: bar.update(task, completed=done, total=n))
    except (RuleError, SettingsError, ScorerError, ConnectionError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"re-audited {total} records of {settings.source_topic} "
                  f"into {settings.mongo_database}.{collection}")
    replayed = rp.rule_counts(settings, collection, from_ms, to_ms)
    current = rp.rule_counts(settings, live.violations_collection, from_ms, to_ms)
    table = Table("rule", f"replay ({rules.name})", f"live ({live.violations_collection})", "difference",
                  title="violations by rule, events in the range")
    for rule in sorted(set(replayed) | set(current)):
        diff = replayed.get(rule, 0) - current.get(rule, 0)
        table.add_row(rule, str(replayed.get(rule, 0)), str(current.get(rule, 0)), f"{diff:+d}" if diff else "")
    console.print(table)


@app.command("schema")
def schema() -> None:
    """Print the audit event JSON Schema (v1)."""
    from udfs.events import SCHEMA_PATH

    sys.stdout.write(SCHEMA_PATH.read_text())


if __name__ == "__main__":
    app()
