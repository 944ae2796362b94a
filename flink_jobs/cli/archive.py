"""`llm-audit archive retention` and `llm-audit erase`: the archive's age limit and a data subject's erasure."""

from __future__ import annotations

import typer

from flink_jobs.cli.console import console, fail

app = typer.Typer(no_args_is_help=True, help="The Parquet archive of every audited event.")


def _settings():
    from flink_jobs.local import archive_dir
    from flink_jobs.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    return settings, archive_dir(settings)


@app.command()
def retention(
    days: int = typer.Option(..., min=1, help="Keep this many days of events (by their UTC date, today's included)."),
    dry_run: bool = typer.Option(False, help="Only list the partitions that would go."),
) -> None:
    """Delete the archive's date partitions older than --days (LLM_AUDIT_ARCHIVE_DIR)."""
    from flink_jobs.erasure import drop_partitions_before, retention_cutoff

    _, archive = _settings()
    cutoff = retention_cutoff(days)
    dropped = drop_partitions_before(archive, cutoff, dry_run)
    for partition in dropped:
        console.print(f"{'would delete' if dry_run else 'deleted'} {partition.partition} ({partition.files} files)")
    console.print(f"{len(dropped)} partitions before {cutoff} {'to delete' if dry_run else 'deleted'} in {archive}")


def erase(
    user_id: str = typer.Option(..., "--user-id", help="The data subject: the events' user_id."),
    reason: str = typer.Option(..., help="Why (recorded): e.g. the request's ticket."),
    requested_by: str | None = typer.Option(None, help="Who asked (recorded); default: the OS user."),
) -> None:
    """Remove a user's records from every MongoDB collection and from the archive, and record the erasure.

    Idempotent: run it again after a crash and it finishes the same erasure."""
    from pymongo.errors import PyMongoError

    from flink_jobs.erasure import ERASURES, erase_user

    settings, archive = _settings()
    try:
        record = erase_user(
            settings.mongo_uri.get_secret_value(), settings.mongo_database, archive, user_id, reason, requested_by
        )
    except PyMongoError as exc:
        fail(f"MongoDB at LLM_AUDIT_MONGO_URI: {exc}")
    removed = {name: n for name, n in record["mongodb"].items() if n}
    rows = sum(f["rows"] for f in record["archive_files"])
    console.print(
        f"erased {user_id}: {sum(removed.values())} MongoDB documents {removed or ''}, "
        f"{rows} archive rows in {len(record['archive_files'])} files; "
        f"recorded as {record['_id']!r} in {settings.mongo_database}.{ERASURES}"
    )
