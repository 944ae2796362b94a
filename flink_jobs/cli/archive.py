"""`llm-audit archive retention`, `llm-audit erase` and `llm-audit report`: the archive's age limit, a data
subject's erasure, and the compliance report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from flink_jobs.cli.console import console, fail, progress_bar, warn_not_fully_audited

if TYPE_CHECKING:
    from rich.table import Table

    from flink_jobs.offline.reaudit import Comparison

app = typer.Typer(no_args_is_help=True, help="The Parquet archive of every audited event.")


def _days(start: str, end: str):
    """--from and --to as dates, the first not after the last (a usage error otherwise)."""
    from datetime import date

    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        fail(f"--from/--to: {exc}; use YYYY-MM-DD", 2)
    if last < first:
        fail(f"--to {last} is before --from {first}", 2)
    return first, last


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
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list the partitions that would go."),
) -> None:
    """Delete the archive's date partitions older than --days (LLM_AUDIT_ARCHIVE_DIR)."""
    from flink_jobs.offline.erasure import drop_partitions_before, retention_cutoff

    _, archive = _settings()
    cutoff = retention_cutoff(days)
    dropped = drop_partitions_before(archive, cutoff, dry_run)
    for partition in dropped:
        console.print(f"{'would delete' if dry_run else 'deleted'} {partition.partition} ({partition.files} files)")
    console.print(f"{len(dropped)} partitions before {cutoff} {'to delete' if dry_run else 'deleted'} in {archive}")


def erase(
    user_id: str | None = typer.Option(None, "--user-id", help="The data subject: the events' user_id."),
    reason: str | None = typer.Option(None, help="Why (recorded): e.g. the request's ticket."),
    tenant: str | None = typer.Option(None, help="Only the user of this tenant; default: in every tenant."),
    requested_by: str | None = typer.Option(None, help="Who asked (recorded); default: the OS user."),
    settle_s: int | None = typer.Option(
        None,
        "--settle-s",
        min=0,
        help="Seconds before the final sweep may run (default: 10 min, or longer for long checkpoint intervals).",
    ),
    finish: bool = typer.Option(
        False, "--finish", help="Only run the final sweep of every erasure whose settle time has passed (e.g. hourly)."
    ),
) -> None:
    """Remove a user's records from every MongoDB collection, their reviews (pseudonymised in audit_log)
    and the archive, record the erasure (a tombstone: replays and restores do not store them again),
    and after it settles sweep what the job committed since with --finish.

    Idempotent: run it again after a crash and it finishes the same erasure."""
    from pymongo.errors import PyMongoError

    from flink_jobs.offline.erasure import ERASURES, default_settle_s, erase_user, finish_erasures

    settings, archive = _settings()
    uri, database = settings.mongo_uri.get_secret_value(), settings.mongo_database
    if finish:
        if user_id or reason:
            fail("--finish sweeps every erasure that has settled: give it alone", 2)
        try:
            finished = finish_erasures(uri, database, archive)
        except PyMongoError as exc:
            fail(f"MongoDB at LLM_AUDIT_MONGO_URI: {exc}")
        for done in finished:
            late = done["late"]
            console.print(
                f"finished {done['_id']!r}: {sum(late['mongodb'].values())} MongoDB documents, "
                f"{sum(f['rows'] for f in late['archive_files'])} archive rows stored or committed since"
            )
        console.print(f"{len(finished)} erasures finished")
        return
    if not (user_id and reason):
        fail("give --user-id and --reason (or --finish alone)", 2)
    settle = default_settle_s(settings.checkpoint_interval_ms) if settle_s is None else settle_s
    try:
        record = erase_user(uri, database, archive, user_id, reason, requested_by, tenant=tenant, settle_s=settle)
    except PyMongoError as exc:
        fail(f"MongoDB at LLM_AUDIT_MONGO_URI: {exc}")
    removed = {name: n for name, n in record["mongodb"].items() if n}
    rows = sum(f["rows"] for f in record["archive_files"])
    console.print(
        f"erased {user_id}: {sum(removed.values())} MongoDB documents {removed or ''}, "
        f"{record['reviews']} reviews, {record['audit_log']} audit_log entries pseudonymised, "
        f"{rows} archive rows in {len(record['archive_files'])} files; "
        f"recorded as {record['_id']!r} in {database}.{ERASURES}; "
        f"run `llm-audit erase --finish` after {record['settle_until']:%Y-%m-%d %H:%M:%S} UTC"
    )


def report(
    tenant: str | None = typer.Option(None, help="The tenant (or --all-tenants)."),
    all_tenants: bool = typer.Option(False, "--all-tenants", help="Every tenant, instead of --tenant."),
    start: str | None = typer.Option(None, "--from", help="First day (YYYY-MM-DD, UTC)."),
    end: str | None = typer.Option(None, "--to", help="Last day, included (YYYY-MM-DD, UTC)."),
    month: bool = typer.Option(False, "--last-month", help="The previous calendar month, instead of --from/--to."),
    out: str = typer.Option(
        ..., help="FILE.html or FILE.pdf; a directory (ending in /, local or s3://) gets a dated name."
    ),
) -> None:
    """A compliance report over the archive and MongoDB: events, violations, users, anomalies, rule changes,
    dead letters, tokens and cost, each figure with the query behind it."""
    import time

    from flink_jobs.offline.report import build_report, default_name, influx_dead_letters, last_month, publish

    settings, archive = _settings()
    if month == bool(start or end):
        fail("give either --from and --to, or --last-month", 2)
    if all_tenants == (tenant is not None):
        fail("give either --tenant T or --all-tenants", 2)
    first, last = last_month() if month else _days(start or "", end or "")
    if out.endswith("/"):
        out += default_name(tenant, first, last)
    if not out.endswith((".html", ".pdf")):
        fail(f"--out {out!r}: name a .html or .pdf file (or a directory ending in /)", 2)
    began = time.monotonic()
    key = settings.archive_key.get_secret_value().encode() if settings.archive_key else None
    built = build_report(
        archive,
        settings.mongo_uri.get_secret_value(),
        settings.mongo_database,
        tenant,
        first,
        last,
        {"anomalies": settings.anomalies_collection, "rule_changes": settings.rule_changes_collection},
        key,
    )
    bucket = settings.influx_bucket
    influx_dead_letters(
        built, settings.influx_url, settings.influx_token.get_secret_value(), settings.influx_org, bucket
    )
    publish(built, out)
    totals = built.rows("totals")[0]
    console.print(
        f"wrote {out}: {totals['events']} events, {totals['events_with_violations']} with violations, "
        f"{len(built.queries)} queries, in {time.monotonic() - began:.1f} s"
    )


def audit_archive(
    start: str = typer.Option(..., "--from", help="First day (YYYY-MM-DD, UTC) of the archived events."),
    end: str = typer.Option(..., "--to", help="Last day, included."),
    rules: Path = typer.Option(..., "--rules", "-r", exists=True, help="The ruleset: a file or a directory."),
    collection: str | None = typer.Option(
        None,
        help="MongoDB collection of the results (default: archive_audit_<time>); re-running adds only what is missing.",
    ),
) -> None:
    """Re-audit the archive's events of a date range with a ruleset (the job's pipeline, Flink batch mode)
    into a collection of its own, and compare with what the job found when it audited them."""
    import time

    from flink_jobs.local import local_job_settings
    from flink_jobs.offline import audit_archive as aa
    from flink_jobs.settings import SettingsError
    from udfs.rules import RuleError, load_rules
    from udfs.scorers import ScorerError

    first, last = _days(start, end)
    collection = collection or f"archive_audit_{time.strftime('%Y%m%d_%H%M%S')}"
    try:
        ruleset = load_rules(rules)
        live = local_job_settings()
        archive = live.archive_dir or ""
        key = live.archive_key.get_secret_value() if live.archive_key else None
        covered = aa.coverage(archive, first, last, key)
        settings = aa.archive_audit_settings(live, rules, collection, ruleset)
        if covered.events == 0:
            fail(f"the archive {archive} holds no events from {first} to {last}")
        with progress_bar("auditing {task.fields[events]} archived events (Flink batch)") as bar:
            bar.add_task("audit", total=None, events=f"{covered.events:,}")
            aa.run_archive_audit(settings, archive, first, last, ruleset)
    except (RuleError, SettingsError, ScorerError, ConnectionError, ValueError) as exc:
        fail(str(exc))
    console.print(f"re-audited {covered.events} archived events into {settings.mongo_database}.{collection}")
    comparison = aa.compare_with_archive(settings, archive, first, last, ruleset, covered)
    warn_not_fully_audited(comparison.again, collection)
    if comparison.not_evaluated:
        console.print(
            f"{covered.redacted_only} of {covered.events} events hold redacted text only "
            f"({'no LLM_AUDIT_ARCHIVE_KEY' if not key else 'not encrypted with LLM_AUDIT_ARCHIVE_KEY'}): "
            f"the rules that read the text could not be re-evaluated: {', '.join(sorted(comparison.not_evaluated))}"
        )
    console.print(comparison_table(comparison, f"re-audit ({rules.name})", "archived findings"))


def comparison_table(comparison: Comparison, again: str, before: str) -> Table:
    """A re-audit's comparison by rule as a table: `again` and `before` head its two columns of counts."""
    from rich.table import Table

    table = Table("rule", again, before, "difference", title="violations by rule, events in the range")
    for row in comparison.rows():
        table.add_row(*row)
    return table
