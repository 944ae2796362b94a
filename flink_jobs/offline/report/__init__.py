"""The compliance report: one tenant (or all) over a date range, from the archive (DuckDB) and MongoDB.

Every figure comes from a query kept with it (`Query`), and the report's appendix prints them all, so
that an auditor can re-run any number. `queries` reads the figures; `render` makes them one
self-contained HTML file (inline CSS and SVG charts), and a PDF by headless Chromium.
"""

from __future__ import annotations

from flink_jobs.offline.report.queries import (
    Query,
    Report,
    build_report,
    day_range_ms,
    influx_dead_letters,
    last_month,
    pseudonymiser,
)
from flink_jobs.offline.report.render import (
    CHROMIUM_FLAGS,
    SEVERITIES,
    chromium,
    default_name,
    print_pdf,
    publish,
    render_html,
)

__all__ = [
    "CHROMIUM_FLAGS",
    "SEVERITIES",
    "Query",
    "Report",
    "build_report",
    "chromium",
    "day_range_ms",
    "default_name",
    "influx_dead_letters",
    "last_month",
    "print_pdf",
    "pseudonymiser",
    "publish",
    "render_html",
]
