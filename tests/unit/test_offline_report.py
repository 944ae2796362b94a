"""The compliance report (flink_jobs/offline/report/): its figures (queries.py) and its HTML (render.py), from a
small archive written here (MongoDB and InfluxDB figures: tests/integration/test_archive.py)."""

import json
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flink_jobs.offline.reader import ARCHIVE_SCHEMA
from flink_jobs.offline.report import SEVERITIES, Report, default_name, pseudonymiser, publish, render_html
from flink_jobs.offline.report.queries import ARCHIVE_QUERIES, archive_figures
from udfs.archive import ARCHIVE_COLUMNS, COLUMNS, archive_record
from udfs.events import parse_event
from udfs.findings import Finding

DAY = date(2026, 11, 18)


MIDNIGHT_MS = int(datetime(2026, 11, 18, tzinfo=UTC).timestamp() * 1000)


def _event(n: int, tenant: str, user: str):
    return parse_event(json.dumps({"event_id": f"e{n}", "timestamp": MIDNIGHT_MS + n * 1000, "tenant": tenant,
                                   "model": "m1" if n % 2 else "m2", "user_id": user, "application": "app",
                                   "prompt": "mail bob@example.com", "response": "ok", "prompt_tokens": 10,
                                   "completion_tokens": 5, "cost_usd": 0.5}))


def _finding(event_id: str, rule: str, severity: str) -> Finding:
    return Finding(event_id, rule, 1, "pii", "email", severity, "prompt", 5, 20, 1.0, "bo*")


@pytest.fixture
def archive(tmp_path):
    """acme: 3 events of 2 users, 2 with violations; o'hara (a tenant to quote): 1 event, none."""
    rows = [archive_record(_event(1, "acme", "u1"), [_finding("e1", "pii.email", "medium")], {}, "h"),
            archive_record(_event(2, "acme", "u1"), [_finding("e2", "pii.email", "medium"),
                                                     _finding("e2", "secrets.key", "critical")], {}, "h"),
            archive_record(_event(3, "acme", "u2"), [], {}, "h"),
            archive_record(_event(4, "o'hara", "u3"), [], {}, "h")]
    names = ARCHIVE_COLUMNS
    for tenant in ("acme", "o'hara"):
        mine = [dict(zip(names, row)) for row in rows if dict(zip(names, row))["tenant"] == tenant]
        folder = tmp_path / f"date={DAY}" / f"tenant={tenant}"
        folder.mkdir(parents=True)
        table = pa.Table.from_pylist([{k: r[k] for k in COLUMNS} for r in mine],
                                     pa.schema([ARCHIVE_SCHEMA.field(name) for name in COLUMNS]))
        pq.write_table(table, folder / "part-0.parquet")
    return str(tmp_path)


def _figures(archive, tenant, key=None) -> Report:
    report = Report(tenant, DAY, DAY, datetime(2026, 12, 1, tzinfo=UTC), "test")
    archive_figures(report, archive, pseudonymiser(key))
    return report


def test_the_archive_figures_count_one_tenants_events_findings_and_users_pseudonymised(archive):
    report = _figures(archive, "acme")
    assert [q.ref for q in report.queries.values()] == [f"Q{i + 1}" for i in range(len(ARCHIVE_QUERIES))]
    assert report.rows("totals") == [{"events": 3, "users": 2, "events_with_violations": 2, "tokens": 45,
                                      "cost_usd": 1.5}]
    assert {r["rule"]: (r["violations"], r["events"]) for r in report.rows("rule")} == {"pii.email": (2, 2),
                                                                                       "secrets.key": (1, 1)}
    assert report.rows("severity") == [{"severity": "medium", "violations": 2},
                                       {"severity": "critical", "violations": 1}]
    assert report.rows("users") == [{"user_id": pseudonymiser(None)("u1"), "events": 2, "violations": 3}]
    assert {r["model"]: r["events"] for r in report.rows("models")} == {"m1": 2, "m2": 1}
    assert all(q.source == "archive (DuckDB)" and "tenant = 'acme'" in q.text for q in report.queries.values())


def test_a_tenant_is_quoted_and_none_means_every_tenant(archive):
    assert _figures(archive, "o'hara").rows("totals")[0]["events"] == 1
    assert _figures(archive, "all").rows("totals")[0]["events"] == 0  # a tenant named "all" is one tenant
    every = _figures(archive, None)
    assert every.rows("totals")[0]["events"] == 4 and "tenant =" not in every.queries["totals"].text


def test_pseudonyms_are_stable_keyed_with_the_archive_key_and_never_the_user_id():
    plain, keyed = pseudonymiser(None), pseudonymiser(b"key")
    assert plain("u1") == plain("u1") != keyed("u1") and keyed("u1").startswith("user-") and "u1" not in keyed("u1")
    assert plain(None) == "(none)"


def test_the_html_cites_every_query_shows_the_figures_and_escapes_what_it_prints(archive, tmp_path):
    report = _figures(archive, "o'hara")
    report.add("anomalies", "Anomalies", "MongoDB db.anomalies", "find({})", [])
    report.add("rule_changes", "Rule changes", "MongoDB db.rule_changes", "find({})",
               [{"name": "<script>", "version": 2}])
    page = render_html(report)
    assert all(f'id="{q.ref}"' in page and f'href="#{q.ref}"' in page for q in report.queries.values())
    assert "<script>" not in page and "&lt;script&gt;" in page and "tenant o&#x27;hara" in page
    assert "<b>1</b>events" in page and "<svg" in page and "None in this period." in page
    assert "Dead letters" not in page
    report.add("dead_letters", "Dead letters", "InfluxDB b", "from(...)", [{"reason": "json", "dead_letters": 3}])
    assert "<h2>Dead letters</h2>" in render_html(report)
    assert all(severity in page for severity in SEVERITIES)  # the chart's legend

    publish(report, str(tmp_path / "out" / default_name("o'hara", DAY, DAY)))
    assert (tmp_path / "out" / "compliance-o'hara-2026-11-18-2026-11-18.html").read_text() == render_html(report)
