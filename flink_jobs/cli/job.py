"""`llm-audit run audit`, `llm-audit replay` and `llm-audit schema`: the audit job, locally."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from flink_jobs.cli.archive import comparison_table
from flink_jobs.cli.console import console, fail, progress_bar, warn_not_fully_audited
from flink_jobs.local import latest_checkpoint, local_job_settings
from udfs.cache import cache_dir

run_app = typer.Typer(no_args_is_help=True, help="Run a job on the local Flink MiniCluster.")


@run_app.command("audit")
def run_audit(
    bounded: bool = typer.Option(False, "--bounded", help="Stop once the input present at start is consumed."),
    restore: str | None = typer.Option(
        None,
        help="Start from a checkpoint or savepoint: its path, or 'latest' "
        "(the newest complete checkpoint in LLM_AUDIT_CHECKPOINT_DIR).",
    ),
) -> None:
    """Run the audit job on a local MiniCluster (settings: LLM_AUDIT_* env vars)."""
    from flink_jobs.settings import SettingsError
    from flink_jobs.streaming import job
    from udfs.rules import RuleError
    from udfs.scorers import ScorerError

    try:
        settings = local_job_settings(bounded=bounded)
        if restore == "latest" and settings.checkpoint_dir:  # local runs always have one
            found = latest_checkpoint(settings.checkpoint_dir)
            console.print(
                f"restoring from {found}"
                if found
                else f"no complete checkpoint in {settings.checkpoint_dir}: starting afresh"
            )
            restore = found
        job.main(settings.model_copy(update={"restore_from": restore}) if restore else settings)
    except (RuleError, SettingsError, ScorerError, ConnectionError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print("stopped (offsets are committed to the consumer group at each checkpoint)")


def replay(
    start: str = typer.Option(
        ..., "--from", help="First Kafka record time to re-audit: ISO 8601 (UTC if no zone) or epoch ms."
    ),
    end: str = typer.Option(..., "--to", help="End of the range (exclusive)."),
    rules: Path = typer.Option(
        ..., "--rules", "-r", exists=True, help="The ruleset to audit with: a file or a directory."
    ),
    collection: str | None = typer.Option(
        None,
        help="MongoDB collection of the results (default: replay_<time>); "
        "re-running into it writes only the documents not stored yet.",
    ),
) -> None:
    """Re-audit past traffic from Kafka with a ruleset into a separate collection, and compare it with the live one."""
    from flink_jobs.offline import replay as rp
    from flink_jobs.settings import SettingsError
    from udfs.rules import RuleError
    from udfs.scorers import ScorerError

    try:
        from_ms, to_ms = rp.parse_time(start), rp.parse_time(end)
    except ValueError as exc:
        fail(str(exc))
    if from_ms >= to_ms:
        fail(f"--from ({start}) must be before --to ({end})")
    collection = collection or f"replay_{time.strftime('%Y%m%d_%H%M%S')}"
    try:
        live = local_job_settings()
        settings = rp.replay_settings(live, rules, collection, (cache_dir() / "checkpoints" / collection).as_uri())
        with progress_bar("re-auditing [bold]{task.fields[topic]}") as bar:
            task = bar.add_task("replay", total=None, topic=settings.source_topic)
            total = rp.run_replay(settings, from_ms, to_ms, lambda done, n: bar.update(task, completed=done, total=n))
    except (RuleError, SettingsError, ScorerError, ConnectionError, ValueError) as exc:
        fail(str(exc))
    console.print(f"re-audited {total} records of {settings.source_topic} into {settings.mongo_database}.{collection}")
    comparison = rp.compare_with_live(settings, live.violations_collection, from_ms, to_ms)
    warn_not_fully_audited(comparison.again, collection)
    console.print(comparison_table(comparison, f"replay ({rules.name})", f"live ({live.violations_collection})"))


def migrate_ids() -> None:
    """Give violations stored by an llm-audit before their ids named the tenant the ids the job gives now (once,
    after the upgrade; reviews follow; safe to run again)."""
    from pymongo import MongoClient

    from console.store import REVIEWS
    from flink_jobs.offline.migrations import migrate_violation_ids
    from flink_jobs.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    client: MongoClient[dict] = MongoClient(settings.mongo_uri.get_secret_value())
    with client:
        db = client[settings.mongo_database]
        with console.status(f"moving violations of {settings.mongo_database}.{settings.violations_collection}"):
            moved = migrate_violation_ids(db[settings.violations_collection], db[REVIEWS])
    console.print(f"moved {moved} violations (and their reviews) to their new ids")


def schema() -> None:
    """Print the audit event JSON Schema (v1)."""
    from udfs.events import SCHEMA_PATH

    sys.stdout.write(SCHEMA_PATH.read_text())
