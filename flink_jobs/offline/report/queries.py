"""What the compliance report reads: each figure's query (DuckDB over the archive, MongoDB, InfluxDB), kept
with its rows in a `Report`. Nothing here renders."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
from pymongo import MongoClient

from flink_jobs.offline.reader import read_archive
from udfs.archive import FINDINGS_JSON_TYPE


@dataclass
class Query:
    """One query behind the report's figures: where it ran and its text, parameters included."""

    ref: str  # Q1, Q2 ...: cited next to the figures
    title: str
    source: str  # "archive (DuckDB)", "MongoDB <db>.<collection>"
    text: str
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Report:
    tenant: str | None  # None: every tenant (never a tenant's name: a tenant may be called "all")
    start: date
    end: date  # inclusive
    generated_at: datetime
    pseudonyms: str  # how user ids were pseudonymised
    queries: dict[str, Query] = field(default_factory=dict)

    def add(self, key: str, title: str, source: str, text: str, rows: list[dict]) -> Query:
        query = Query(f"Q{len(self.queries) + 1}", title, source, text, rows)
        self.queries[key] = query
        return query

    def rows(self, key: str) -> list[dict]:
        return self.queries[key].rows


@dataclass(frozen=True)
class ArchiveQuery:
    """A figure read from the archive. sql names {where} (the events of the period and tenant) and
    {findings} (a subquery: one row per finding of those events, `f` the finding)."""

    key: str
    title: str
    sql: str


_TOKENS = "coalesce(sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)), 0) AS tokens"
_WITH_VIOLATIONS = "count(*) FILTER (WHERE findings <> '[]') AS events_with_violations"

# In the report's order: their refs (Q1, Q2 ...) follow it.
ARCHIVE_QUERIES = (
    ArchiveQuery(
        "totals",
        "Events, users, tokens and cost",
        f"SELECT count(*) AS events, count(DISTINCT user_id) AS users, {_WITH_VIOLATIONS}, {_TOKENS}, "
        "coalesce(sum(cost_usd), 0) AS cost_usd FROM archive WHERE {where}",
    ),
    ArchiveQuery(
        "severity",
        "Violations by severity",
        "SELECT f.severity AS severity, count(*) AS violations FROM ({findings}) GROUP BY 1 ORDER BY 2 DESC",
    ),
    ArchiveQuery(
        "category",
        "Violations by category",
        "SELECT f.category AS category, count(*) AS violations FROM ({findings}) GROUP BY 1 ORDER BY 2 DESC, 1",
    ),
    ArchiveQuery(
        "rule",
        "Violations by rule",
        "SELECT f.rule_id AS rule, f.category AS category, f.severity AS severity, count(*) AS violations, "
        "count(DISTINCT event_id) AS events FROM ({findings}) GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1",
    ),
    ArchiveQuery(
        "daily",
        "Violations per day and severity",
        "SELECT date, f.severity AS severity, count(*) AS violations FROM ({findings}) GROUP BY 1, 2 ORDER BY 1, 2",
    ),
    ArchiveQuery(
        "applications",
        "Top applications",
        f"SELECT coalesce(application, '(none)') AS application, count(*) AS events, {_WITH_VIOLATIONS} "
        "FROM archive WHERE {where} GROUP BY 1 ORDER BY 3 DESC, 2 DESC, 1 LIMIT 10",
    ),
    ArchiveQuery(
        "users",  # user_id pseudonymised once read: see archive_figures
        "Top users by violations (pseudonymised)",
        "SELECT user_id, count(*) AS events, sum(json_array_length(findings)) AS violations "
        "FROM archive WHERE {where} GROUP BY 1 HAVING sum(json_array_length(findings)) > 0 "
        "ORDER BY 3 DESC, 2 DESC, 1 LIMIT 10",
    ),
    ArchiveQuery(
        "models",
        "Tokens and cost per model",
        f"SELECT model, count(*) AS events, {_TOKENS}, "
        "coalesce(sum(cost_usd), 0) AS cost_usd FROM archive WHERE {where} GROUP BY 1 ORDER BY 4 DESC, 1",
    ),
)
RULE_CHANGE_FIELDS = ("pushed_at", "name", "version", "author", "message", "hash", "accepted", "reason")


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def pseudonymiser(key: bytes | None) -> Callable[[str | None], str]:
    """user id -> a stable pseudonym: HMAC-SHA256 under `key` (the archive key), else SHA-256 (which a
    dictionary of user ids reverses: set LLM_AUDIT_ARCHIVE_KEY)."""

    def pseudonym(user_id: str | None) -> str:
        if user_id is None:
            return "(none)"
        digest = hmac.new(key, user_id.encode(), "sha256") if key else hashlib.sha256(user_id.encode())
        return "user-" + digest.hexdigest()[:10]

    return pseudonym


def day_range_ms(first: date, last: date) -> tuple[int, int]:
    """The UTC days first..last (inclusive) as epoch milliseconds [from, to)."""
    start_ms = int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() * 1000)
    return start_ms, start_ms + ((last - first).days + 1) * 86_400_000


def last_month(today: date | None = None) -> tuple[date, date]:
    first = (today or datetime.now(UTC).date()).replace(day=1)
    end = first - timedelta(days=1)
    return end.replace(day=1), end


def build_report(
    archive: str,
    mongo_uri: str,
    database: str,
    tenant: str | None,  # None: every tenant
    start: date,
    end: date,
    collections: dict[str, str],
    pseudonym_key: bytes | None = None,
) -> Report:
    """Runs every query of the report but the dead letters' (influx_dead_letters).
    collections: {"anomalies": name, "rule_changes": name}."""
    keyed = "HMAC-SHA256 keyed with the archive key" if pseudonym_key else "SHA-256 (no archive key: not keyed)"
    report = Report(tenant, start, end, datetime.now(UTC), keyed)
    archive_figures(report, archive, pseudonymiser(pseudonym_key))
    mongo_figures(report, mongo_uri, database, collections)
    return report


def archive_figures(report: Report, archive: str, pseudonym: Callable[[str | None], str]) -> None:
    """The ARCHIVE_QUERIES over the report's period and tenant, their user ids pseudonymised."""
    con = duckdb.connect()
    read_archive(archive, con).create_view("archive")
    where = f"date BETWEEN '{report.start}' AND '{report.end}'"
    if report.tenant is not None:
        where += f" AND tenant = {_sql_str(report.tenant)}"
    findings = (
        f"SELECT tenant, date, event_id, application, model, user_id, "
        f"unnest(from_json(findings, '{FINDINGS_JSON_TYPE}')) AS f FROM archive WHERE {where}"
    )
    for query in ARCHIVE_QUERIES:
        text = query.sql.format(where=where, findings=findings)
        report.add(query.key, query.title, "archive (DuckDB)", text, _fetch(con, text))
    for row in report.rows("users"):
        row["user_id"] = pseudonym(row["user_id"])


def _fetch(con: duckdb.DuckDBPyConnection, text: str) -> list[dict[str, Any]]:
    result = con.execute(text)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row)) for row in result.fetchall()]


def mongo_figures(report: Report, mongo_uri: str, database: str, collections: dict[str, str]) -> None:
    """Anomalies of the period (and tenant), and every rule push of the period."""
    start_ms, end_ms = day_range_ms(report.start, report.end)
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    with client:
        db = client[database]
        anomaly_filter: dict[str, Any] = {"window_start_ms": {"$gte": start_ms, "$lt": end_ms}}
        if report.tenant is not None:
            anomaly_filter["tenant"] = report.tenant
        anomalies = db[collections["anomalies"]].find(anomaly_filter, {"_id": 0}).sort("window_start_ms", 1)
        report.add(
            "anomalies",
            "Anomalies",
            f"MongoDB {database}.{collections['anomalies']}",
            f"find({json.dumps(anomaly_filter)}).sort({{window_start_ms: 1}})",
            list(anomalies),
        )
        # Rulesets are not per tenant: every push of the period, accepted or rejected.
        stop = (report.end + timedelta(days=1)).isoformat()
        change_filter = {"pushed_at": {"$gte": report.start.isoformat(), "$lt": stop}}
        changes = db[collections["rule_changes"]].find(change_filter).sort("pushed_at", 1)
        report.add(
            "rule_changes",
            "Rule changes (all tenants: rulesets are shared)",
            f"MongoDB {database}.{collections['rule_changes']}",
            f"find({json.dumps(change_filter)}).sort({{pushed_at: 1}})",
            [{k: c.get(k) for k in RULE_CHANGE_FIELDS} for c in changes],
        )


def influx_dead_letters(report: Report, url: str, token: str, org: str, bucket: str) -> None:
    """Dead letters by reason from the job's `dead_letters` points (they have no tenant: all tenants')."""
    from influxdb_client import InfluxDBClient

    stop = report.end + timedelta(days=1)
    flux = (
        f'from(bucket: "{bucket}") |> range(start: {report.start}T00:00:00Z, stop: {stop}T00:00:00Z) '
        f'|> filter(fn: (r) => r._measurement == "dead_letters" and r._field == "count") '
        f'|> group(columns: ["reason"]) |> sum()'
    )
    with InfluxDBClient(url=url, token=token, org=org) as client:
        tables = client.query_api().query(flux)
    rows = sorted(
        ({"reason": r.values["reason"], "dead_letters": int(r.get_value())} for t in tables for r in t.records),
        key=lambda row: (-row["dead_letters"], row["reason"]),
    )
    report.add(
        "dead_letters", "Dead letters by reason (all tenants: they are malformed)", f"InfluxDB {bucket}", flux, rows
    )
