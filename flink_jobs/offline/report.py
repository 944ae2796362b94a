"""The compliance report: one tenant (or all) over a date range, from the archive (DuckDB) and MongoDB.

Every figure comes from a query kept with it (`Query`), and the report's appendix prints them all, so
that an auditor can re-run any number. Rendered as one self-contained HTML file (inline CSS and SVG
charts), and to PDF by headless Chromium.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from pymongo import MongoClient

from flink_jobs.offline.reader import read_archive
from udfs.archive import FINDINGS_JSON_TYPE

SEVERITIES = ("critical", "high", "medium", "low", "info")
_SEVERITY_COLOURS = {"critical": "#7f1d1d", "high": "#dc2626", "medium": "#f59e0b", "low": "#3b82f6", "info": "#9ca3af"}


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


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def pseudonymiser(key: bytes | None):
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
    """Runs every query of the report. collections: {"anomalies": name, "rule_changes": name}."""
    pseudonym = pseudonymiser(pseudonym_key)
    report = Report(
        tenant,
        start,
        end,
        datetime.now(UTC),
        "HMAC-SHA256 keyed with the archive key" if pseudonym_key else "SHA-256 (no archive key: not keyed)",
    )
    con = duckdb.connect()
    read_archive(archive, con).create_view("archive")
    where = f"date BETWEEN '{start}' AND '{end}'" + ("" if tenant is None else f" AND tenant = {_sql_str(tenant)}")
    findings = (
        f"SELECT tenant, date, event_id, application, model, user_id, "
        f"unnest(from_json(findings, '{FINDINGS_JSON_TYPE}')) AS f FROM archive WHERE {where}"
    )

    def sql(key: str, title: str, text: str) -> None:
        rows = [dict(zip(names, row)) for names, row in _fetch(con, text)]
        report.add(key, title, "archive (DuckDB)", text, rows)

    sql(
        "totals",
        "Events, users, tokens and cost",
        f"SELECT count(*) AS events, count(DISTINCT user_id) AS users, "
        f"count(*) FILTER (WHERE findings <> '[]') AS events_with_violations, "
        f"coalesce(sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)), 0) AS tokens, "
        f"coalesce(sum(cost_usd), 0) AS cost_usd FROM archive WHERE {where}",
    )
    sql(
        "severity",
        "Violations by severity",
        f"SELECT f.severity AS severity, count(*) AS violations FROM ({findings}) GROUP BY 1 ORDER BY 2 DESC",
    )
    sql(
        "category",
        "Violations by category",
        f"SELECT f.category AS category, count(*) AS violations FROM ({findings}) GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    sql(
        "rule",
        "Violations by rule",
        f"SELECT f.rule_id AS rule, f.category AS category, f.severity AS severity, count(*) AS violations, "
        f"count(DISTINCT event_id) AS events FROM ({findings}) GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1",
    )
    sql(
        "daily",
        "Violations per day and severity",
        f"SELECT date, f.severity AS severity, count(*) AS violations FROM ({findings}) GROUP BY 1, 2 ORDER BY 1, 2",
    )
    sql(
        "applications",
        "Top applications",
        f"SELECT coalesce(application, '(none)') AS application, count(*) AS events, "
        f"count(*) FILTER (WHERE findings <> '[]') AS events_with_violations FROM archive WHERE {where} "
        f"GROUP BY 1 ORDER BY 3 DESC, 2 DESC, 1 LIMIT 10",
    )
    sql(
        "users",
        "Top users by violations (pseudonymised)",
        f"SELECT user_id, count(*) AS events, sum(json_array_length(findings)) AS violations "
        f"FROM archive WHERE {where} GROUP BY 1 HAVING sum(json_array_length(findings)) > 0 "
        f"ORDER BY 3 DESC, 2 DESC, 1 LIMIT 10",
    )
    for row in report.rows("users"):
        row["user_id"] = pseudonym(row["user_id"])
    sql(
        "models",
        "Tokens and cost per model",
        f"SELECT model, count(*) AS events, "
        f"coalesce(sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)), 0) AS tokens, "
        f"coalesce(sum(cost_usd), 0) AS cost_usd FROM archive WHERE {where} GROUP BY 1 ORDER BY 4 DESC, 1",
    )

    start_ms, end_ms = day_range_ms(start, end)
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    with client:
        db = client[database]
        anomaly_filter: dict[str, Any] = {"window_start_ms": {"$gte": start_ms, "$lt": end_ms}}
        if tenant is not None:
            anomaly_filter["tenant"] = tenant
        anomalies = db[collections["anomalies"]].find(anomaly_filter, {"_id": 0}).sort("window_start_ms", 1)
        report.add(
            "anomalies",
            "Anomalies",
            f"MongoDB {database}.{collections['anomalies']}",
            f"find({json.dumps(anomaly_filter)}).sort({{window_start_ms: 1}})",
            list(anomalies),
        )
        # Rulesets are not per tenant: every push of the period, accepted or rejected.
        change_filter = {"pushed_at": {"$gte": start.isoformat(), "$lt": (end + timedelta(days=1)).isoformat()}}
        changes = db[collections["rule_changes"]].find(change_filter).sort("pushed_at", 1)
        report.add(
            "rule_changes",
            "Rule changes (all tenants: rulesets are shared)",
            f"MongoDB {database}.{collections['rule_changes']}",
            f"find({json.dumps(change_filter)}).sort({{pushed_at: 1}})",
            [
                {
                    k: c.get(k)
                    for k in ("pushed_at", "name", "version", "author", "message", "hash", "accepted", "reason")
                }
                for c in changes
            ],
        )
    return report


def _fetch(con: duckdb.DuckDBPyConnection, text: str):
    result = con.execute(text)
    names = [d[0] for d in result.description]
    return [(names, row) for row in result.fetchall()]


# --- rendering --------------------------------------------------------------------------------------


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape("" if value is None else str(value))


def _table(query: Query, columns: list[str] | None = None) -> str:
    if not query.rows:
        return f'<p class="none">None in this period. <a class="ref" href="#{query.ref}">[{query.ref}]</a></p>'
    columns = columns or list(query.rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_num(row.get(c))}</td>" for c in columns) + "</tr>" for row in query.rows)
    return f'<table><tr>{head}</tr>{body}</table><a class="ref" href="#{query.ref}">[{query.ref}]</a>'


def _daily_chart(report: Report) -> str:
    """Stacked bars of violations per day by severity, as inline SVG (no script, prints as it shows)."""
    days = [report.start + timedelta(days=i) for i in range((report.end - report.start).days + 1)]
    counts: dict[tuple[str, str], int] = {
        (str(r["date"]), r["severity"]): r["violations"] for r in report.rows("daily")
    }
    totals = [sum(counts.get((str(d), s), 0) for s in SEVERITIES) for d in days]
    top = max(totals, default=0) or 1
    width, height, left = 720, 200, 40
    bar = min((width - left) / max(len(days), 1), 48.0)  # one day is a bar, not the whole chart
    parts = [f'<svg viewBox="0 0 {width} {height + 40}" role="img" aria-label="violations per day by severity">']
    for i, day in enumerate(days):
        y = float(height)
        for severity in reversed(SEVERITIES):
            n = counts.get((str(day), severity), 0)
            if n:
                h = n / top * (height - 10)
                y -= h
                parts.append(
                    f'<rect x="{left + i * bar + 1:.1f}" y="{y:.1f}" width="{max(bar - 2, 1):.1f}" height="{h:.1f}" '
                    f'fill="{_SEVERITY_COLOURS[severity]}"><title>{day} {severity}: {n}</title></rect>'
                )
        if len(days) <= 31 or i % 7 == 0:
            parts.append(
                f'<text x="{left + i * bar + bar / 2:.1f}" y="{height + 14}" font-size="9" '
                f'text-anchor="middle">{day.day}</text>'
            )
    parts.append(f'<text x="{left - 4}" y="14" font-size="10" text-anchor="end">{top}</text>')
    parts.append(f'<line x1="{left}" y1="{height}" x2="{width}" y2="{height}" stroke="#555"/>')
    legend = "".join(
        f'<rect x="{left + i * 90}" y="{height + 24}" width="10" height="10" fill="{_SEVERITY_COLOURS[s]}"/>'
        f'<text x="{left + i * 90 + 14}" y="{height + 33}" font-size="10">{s}</text>'
        for i, s in enumerate(SEVERITIES)
    )
    return "".join(parts) + legend + "</svg>"


_CSS = """
body { font: 13px/1.45 system-ui, sans-serif; color: #111; margin: 2em auto; max-width: 60em; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }
.meta { color: #555; } .none { color: #666; font-style: italic; }
table { border-collapse: collapse; margin: .4em 0; } th, td { padding: .2em .7em; border-bottom: 1px solid #e5e5e5; }
th { text-align: left; background: #f4f4f5; } td { font-variant-numeric: tabular-nums; }
.kpis { display: flex; gap: 1em; flex-wrap: wrap; } .kpi { border: 1px solid #ddd; border-radius: 6px; padding: .5em 1em; }
.kpi b { display: block; font-size: 1.5em; } .ref { font-size: .85em; color: #2563eb; text-decoration: none; }
pre { background: #f8f8f8; padding: .6em; white-space: pre-wrap; font-size: .85em; }
@media print { h2 { break-after: avoid; } table, svg { break-inside: avoid; } }
"""


def render_html(report: Report) -> str:
    q = report.queries
    totals = q["totals"].rows[0] if q["totals"].rows else {}
    kpis = "".join(
        f'<div class="kpi"><b>{_num(totals.get(key))}</b>{label} <a class="ref" href="#{q["totals"].ref}">'
        f"[{q['totals'].ref}]</a></div>"
        for key, label in (
            ("events", "events"),
            ("events_with_violations", "events with violations"),
            ("users", "users"),
            ("tokens", "tokens"),
            ("cost_usd", "cost (USD)"),
        )
    )
    sections = [
        (
            "Violations over time",
            _daily_chart(report) + f'<a class="ref" href="#{q["daily"].ref}">[{q["daily"].ref}]</a>',
        ),
        ("Violations by severity", _table(q["severity"])),
        ("Violations by category", _table(q["category"])),
        ("Violations by rule", _table(q["rule"])),
        ("Top applications", _table(q["applications"])),
        ("Top users (pseudonymised: " + html.escape(report.pseudonyms) + ")", _table(q["users"])),
        (
            "Anomalies",
            _table(q["anomalies"], ["model", "metric", "window_start_ms", "observed", "baseline", "score"]),
        ),
        ("Rule changes", _table(q["rule_changes"])),
        ("Tokens and cost per model", _table(q["models"])),
    ]
    if "dead_letters" in q:
        sections.append(("Dead letters", _table(q["dead_letters"])))
    appendix = "".join(
        f'<h3 id="{query.ref}">[{query.ref}] {html.escape(query.title)}</h3>'
        f"<p>{html.escape(query.source)}</p><pre>{html.escape(query.text)}</pre>"
        for query in q.values()
    )
    scope = "all tenants" if report.tenant is None else f"tenant {report.tenant}"
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>LLM audit compliance report: {html.escape(scope)}, {report.start} to {report.end}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>LLM audit compliance report</h1><p class='meta'>{html.escape(scope)} · {report.start} to {report.end} "
        f"(UTC, inclusive) · generated {report.generated_at:%Y-%m-%d %H:%M} UTC</p>"
        f'<div class="kpis">{kpis}</div>{body}<h2>Appendix: the queries behind every figure</h2>{appendix}'
        "</body></html>"
    )


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("a PDF needs Chromium: install Debian's `chromium` package (make install does)")


def print_pdf(html_path: Path, pdf_path: Path, timeout_s: float = 120) -> None:
    """Renders the HTML file to PDF in headless Chromium."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
             f"--print-to-pdf={pdf_path}", html_path.resolve().as_uri()],
            check=True, capture_output=True, timeout=timeout_s,
        )  # fmt: skip
    if not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        raise RuntimeError(f"Chromium wrote no PDF to {pdf_path}")


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
