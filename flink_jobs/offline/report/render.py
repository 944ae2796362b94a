"""The compliance report as one self-contained HTML file (inline CSS and SVG charts, no script), a PDF printed
from it by headless Chromium, and either written to a path or an s3:// URI. Reads nothing but the `Report`."""

from __future__ import annotations

import html
import shutil
import subprocess
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from flink_jobs.offline.report.queries import Query, Report

SEVERITIES = ("critical", "high", "medium", "low", "info")
_SEVERITY_COLOURS = {"critical": "#7f1d1d", "high": "#dc2626", "medium": "#f59e0b", "low": "#3b82f6", "info": "#9ca3af"}


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape("" if value is None else str(value))


def _ref(query: Query) -> str:
    return f'<a class="ref" href="#{query.ref}">[{query.ref}]</a>'


def _table(query: Query, columns: list[str] | None = None) -> str:
    if not query.rows:
        return f'<p class="none">None in this period. {_ref(query)}</p>'
    columns = columns or list(query.rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_num(row.get(c))}</td>" for c in columns) + "</tr>" for row in query.rows)
    return f"<table><tr>{head}</tr>{body}</table>{_ref(query)}"


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
_KPIS = (
    ("events", "events"),
    ("events_with_violations", "events with violations"),
    ("users", "users"),
    ("tokens", "tokens"),
    ("cost_usd", "cost (USD)"),
)
_ANOMALY_COLUMNS = ["model", "metric", "window_start_ms", "observed", "baseline", "score"]


def _sections(report: Report) -> list[tuple[str, str]]:
    """(heading, HTML) of each section of the body, in order."""
    q = report.queries
    sections = [
        ("Violations over time", _daily_chart(report) + _ref(q["daily"])),
        ("Violations by severity", _table(q["severity"])),
        ("Violations by category", _table(q["category"])),
        ("Violations by rule", _table(q["rule"])),
        ("Top applications", _table(q["applications"])),
        ("Top users (pseudonymised: " + html.escape(report.pseudonyms) + ")", _table(q["users"])),
        ("Anomalies", _table(q["anomalies"], _ANOMALY_COLUMNS)),
        ("Rule changes", _table(q["rule_changes"])),
        ("Tokens and cost per model", _table(q["models"])),
    ]
    if "dead_letters" in q:
        sections.append(("Dead letters", _table(q["dead_letters"])))
    return sections


def render_html(report: Report) -> str:
    totals_query = report.queries["totals"]
    totals = totals_query.rows[0] if totals_query.rows else {}
    kpis = "".join(
        f'<div class="kpi"><b>{_num(totals.get(key))}</b>{label} {_ref(totals_query)}</div>' for key, label in _KPIS
    )
    appendix = "".join(
        f'<h3 id="{query.ref}">[{query.ref}] {html.escape(query.title)}</h3>'
        f"<p>{html.escape(query.source)}</p><pre>{html.escape(query.text)}</pre>"
        for query in report.queries.values()
    )
    scope = "all tenants" if report.tenant is None else f"tenant {report.tenant}"
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in _sections(report))
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


def default_name(tenant: str | None, first: date, last: date) -> str:
    """The report's file name in a directory: compliance-<tenant or all-tenants>-<first>-<last>.html."""
    return f"compliance-{'all-tenants' if tenant is None else tenant}-{first}-{last}.html"


def publish(report: Report, destination: str) -> None:
    """Writes the report to destination, a .html or .pdf file: a local path or an s3:// (s3a://) URI."""
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(render_html(report), encoding="utf-8")
        made = page
        if destination.endswith(".pdf"):
            made = Path(tmp) / "report.pdf"
            print_pdf(page, made)
        _put(made, destination)


def _put(local: Path, destination: str) -> None:
    """Copies a local file to a path or an s3:// (s3a://) URI."""
    from flink_jobs.offline.reader import archive_fs

    fs, path = archive_fs(destination)
    parent = path.rpartition("/")[0]
    if parent:
        fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as sink:
        sink.write(local.read_bytes())
