"""The archive the job wrote, on the real stack: retention by partition age, a user's erasure that
survives a crash at every step, and events of any tenant archived among the others."""

import json
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime

import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

from devstack import traffic
from flink_jobs.streaming import job
from flink_jobs.offline.reader import read_archive
from flink_jobs.cli import app
from flink_jobs.offline.erasure import ERASURES, drop_partitions_before, erase_user
from tests.integration.conftest import job_env, produce
from flink_jobs.offline.report import CHROMIUM_FLAGS, build_report, chromium, influx_dead_letters, render_html
from tests.support.check import (
    EXACT_SPANS,
    PER_EVENT,
    SCORER_OF,
    archive_report,
    labelled_events,
    planted_spans,
    repeated_injections,
)

MIDNIGHT_MS = 1_795_046_400_000  # 2026-11-19T00:00:00Z: the stream straddles it, so two date partitions


@pytest.fixture
def archived(isolated_job, unscored_rules):
    """A bounded run of the job (no scorers) over 12 s of events across midnight -> (settings, truths)."""
    settings = isolated_job("ar", scorers=[], rules_path=unscored_rules)
    truths = traffic.produce(settings.kafka_bootstrap, settings.source_topic, 600, seed=17, rate=50,
                             start_ms=MIDNIGHT_MS - 6000)
    job.main(settings)
    archive_report(settings, truths)
    return settings, truths


def _rows(settings) -> list[dict]:
    return read_archive(settings.archive_dir).df().to_dict("records")


def test_retention_drops_whole_date_partitions_older_than_its_cutoff(archived):
    settings, _ = archived
    before = _rows(settings)
    assert {r["date"] for r in before} == {"2026-11-18", "2026-11-19"}
    assert drop_partitions_before(settings.archive_dir, date(2026, 11, 18)) == []

    # The CLI, in days from today: keep 2026-11-19 and later.
    days = (datetime.now(UTC).date() - date(2026, 11, 19)).days + 1
    cli = CliRunner().invoke(app, ["archive", "retention", "--days", str(days), "--dry-run"], env=job_env(settings))
    assert cli.exit_code == 0 and "would delete date=2026-11-18" in cli.output and len(_rows(settings)) == len(before)
    cli = CliRunner().invoke(app, ["archive", "retention", "--days", str(days)], env=job_env(settings))
    assert cli.exit_code == 0 and "1 partitions before 2026-11-19 deleted" in cli.output, cli.output
    after = _rows(settings)
    assert sorted(r["event_id"] for r in after) == sorted(r["event_id"] for r in before if r["date"] == "2026-11-19")


class Crash(Exception):
    """Stands for the process dying at a step boundary."""


def test_an_erasure_crashed_at_every_step_in_turn_still_removes_exactly_the_users_records(archived):
    settings, _ = archived
    uri, database = settings.mongo_uri.get_secret_value(), settings.mongo_database
    rows = _rows(settings)
    counts = {}
    for row in rows:
        counts[row["user_id"]] = counts.get(row["user_id"], 0) + 1
    with MongoClient(uri) as client:
        violations = client[database][settings.violations_collection]
        # The user with the most violations: an attacker of the generator's, with events in several files.
        per_user = violations.aggregate([{"$group": {"_id": "$user_id", "n": {"$sum": 1}}}, {"$sort": {"n": -1}}])
        user = next(per_user)["_id"]
        theirs, others = violations.count_documents({"user_id": user}), violations.count_documents({"user_id": {"$ne": user}})
    assert counts[user] >= 3 and theirs >= 3

    steps: list[str] = []
    crashes = 0
    while True:  # crash at the 1st step, then (resumed) at the 2nd, ... until a run gets through
        seen = []

        def step(name: str) -> None:
            seen.append(name)
            if len(seen) == crashes + 1:
                raise Crash(name)

        try:
            record = erase_user(uri, database, settings.archive_dir, user, "ticket GDPR-1", "dpo", on_step=step)
            break
        except Crash as crash:
            steps.append(str(crash))
            crashes += 1
            # Whatever step it died at, no other user's row has gone for good, and none appears twice.
            visible = [r["event_id"] for r in _rows(settings)]
            assert len(visible) == len(set(visible))
    assert crashes >= 4 and any(s.startswith("deleted:") for s in steps), steps  # mid-file crashes too

    after = _rows(settings)
    assert sorted(r["event_id"] for r in after) == sorted(r["event_id"] for r in rows if r["user_id"] != user)
    with MongoClient(uri) as client:
        db = client[database]
        assert db[settings.violations_collection].count_documents({"user_id": user}) == 0
        assert db[settings.violations_collection].count_documents({}) == others
        records = list(db[ERASURES].find({"user_id": user}))
    assert len(records) == 1 and records[0]["status"] == "settling" and records[0]["requested_by"] == "dpo"
    assert records[0]["mongodb"][settings.violations_collection] == theirs == record["mongodb"]["violations"]
    assert sum(f["rows"] for f in records[0]["archive_files"]) == counts[user]

    # A real kill: the process SIGKILLs itself at the worst moment (a file deleted, its rewrite not yet in
    # place), then the CLI runs the same erasure to its end.
    other = next(u for u, _ in sorted(counts.items(), key=lambda c: -c[1]) if u != user)
    before = _rows(settings)
    killer = (
        "import os, signal, sys\n"
        "from flink_jobs.offline.erasure import erase_user\n"
        "uri, db, archive, user = sys.argv[1:]\n"
        "erase_user(uri, db, archive, user, 'ticket GDPR-2', 'dpo', on_step=lambda step: step.startswith('deleted:')"
        " and os.kill(os.getpid(), signal.SIGKILL))\n"
    )
    died = subprocess.run([sys.executable, "-c", killer, uri, database, settings.archive_dir, other],
                          env=job_env(settings), capture_output=True, timeout=120)
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    with MongoClient(uri) as client:
        assert client[database][ERASURES].find_one({"user_id": other})["status"] == "running"
    resumed = CliRunner().invoke(app, ["erase", "--user-id", other, "--reason", "ticket GDPR-2"], env=job_env(settings))
    assert resumed.exit_code == 0, resumed.output
    assert sorted(r["event_id"] for r in _rows(settings)) == sorted(r["event_id"] for r in before if r["user_id"] != other)
    with MongoClient(uri) as client:
        done = list(client[database][ERASURES].find({"user_id": other}))
    assert [d["status"] for d in done] == ["settling"] and done[0]["requested_by"] == "dpo"  # resumed, not restarted
    after = _rows(settings)

    # Idempotent: once done, another run is a new erasure that finds nothing left.
    again = CliRunner().invoke(app, ["erase", "--user-id", user, "--reason", "ticket GDPR-1"], env=job_env(settings))
    assert again.exit_code == 0 and "0 MongoDB documents" in again.output and "0 archive rows" in again.output
    assert len(_rows(settings)) == len(after)


def test_the_compliance_report_equals_the_ground_truth_and_renders_in_chromium(archived, tmp_path):
    settings, truths = archived
    tenant = "acme"
    samples = [json.loads(s.value) for s in traffic.generate(600, seed=17, start_ms=MIDNIGHT_MS - 6000) if not s.malformed]
    events = [e for e in samples if e["tenant"] == tenant]
    mine = {e["event_id"] for e in events}
    report = build_report(settings.archive_dir, settings.mongo_uri.get_secret_value(), settings.mongo_database,
                          tenant, date(2026, 11, 18), date(2026, 11, 19),
                          {"anomalies": settings.anomalies_collection, "rule_changes": settings.rule_changes_collection})
    influx_dead_letters(report, settings.influx_url, "", "-", settings.influx_bucket)

    totals = report.rows("totals")[0]
    assert totals["events"] == len(events) > 50 and totals["users"] == len({e["user_id"] for e in events})
    assert totals["tokens"] == sum(e["prompt_tokens"] + e["completion_tokens"] for e in events)
    assert totals["cost_usd"] == pytest.approx(sum(e["cost_usd"] for e in events))
    by_model = {row["model"]: row["events"] for row in report.rows("models")}
    assert by_model == dict(Counter(e["model"] for e in events))
    # Violations by rule: exactly the planted values of this tenant's events.
    own = [t for t in truths if t["event_id"] in mine]
    rules = {row["rule"]: row for row in report.rows("rule")}
    for kind, rule_id in EXACT_SPANS.items():
        if kind not in SCORER_OF:  # no scorers in this run
            assert rules[rule_id]["violations"] == len(planted_spans(own, kind)), rule_id
    for kind, rule_id in PER_EVENT.items():
        if kind not in ("toxicity", "bias"):  # no scorers in this run
            assert rules.get(rule_id, {}).get("events", 0) == len(labelled_events(own, kind)), rule_id
    assert sum(r["violations"] for r in report.rows("severity")) == sum(r["violations"] for r in rules.values())
    assert {str(r["date"]) for r in report.rows("daily")} == {"2026-11-18", "2026-11-19"}
    # Dead letters count on the day they arrived (they have no event time): today, for every tenant.
    assert report.rows("dead_letters") == []
    today = datetime.now(UTC).date()
    arrived = build_report(settings.archive_dir, settings.mongo_uri.get_secret_value(), settings.mongo_database,
                           None, today, today, {"anomalies": settings.anomalies_collection,
                                                "rule_changes": settings.rule_changes_collection})
    influx_dead_letters(arrived, settings.influx_url, "", "-", settings.influx_bucket)
    dead = {r["reason"]: r["dead_letters"] for r in arrived.rows("dead_letters")}
    assert dead == dict(Counter(t["malformed"] for t in truths if t["malformed"]))
    assert report.rows("rule_changes") == []  # none pushed in November 2026
    # A tenant called "all" is one tenant, not every tenant (hole 14 of issue 30).
    named_all = build_report(settings.archive_dir, settings.mongo_uri.get_secret_value(), settings.mongo_database,
                             "all", date(2026, 11, 18), date(2026, 11, 19), {"anomalies": settings.anomalies_collection,
                                                                              "rule_changes": settings.rule_changes_collection})
    assert not named_all.rows("totals")[0]["events"]

    # The HTML: every query in the appendix, user ids pseudonymised, and what Chromium shows.
    page = tmp_path / "report.html"
    page.write_text(render_html(report))
    text = page.read_text()
    assert all(f'id="{q.ref}"' in text for q in report.queries.values())
    assert not any(e["user_id"] in text for e in events) and "user-" in text
    dom = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    assert f"<b>{totals['events']:,}</b>events" in dom and "<svg" in dom
    shot = tmp_path / "report.png"
    subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,1400",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

    # The CLI, to PDF.
    pdf = tmp_path / "out" / "report.pdf"
    cli = CliRunner().invoke(app, ["report", "--tenant", tenant, "--from", "2026-11-18", "--to", "2026-11-19",
                                   "--out", str(pdf)], env=job_env(settings))
    assert cli.exit_code == 0, cli.output
    assert f"{totals['events']} events" in cli.output and pdf.read_bytes()[:5] == b"%PDF-"
    bad = CliRunner().invoke(app, ["report", "--tenant", tenant, "--last-month", "--from", "2026-11-18",
                                   "--out", str(pdf)], env=job_env(settings))
    assert bad.exit_code == 2 and "either --from and --to, or --last-month" in bad.output
    both = CliRunner().invoke(app, ["report", "--tenant", tenant, "--all-tenants", "--last-month", "--out", str(pdf)],
                              env=job_env(settings))
    assert both.exit_code == 2 and "either --tenant T or --all-tenants" in both.output


def _violations_by_rule(settings, collection: str) -> dict[str, int]:
    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        docs = client[settings.mongo_database][collection].find({}, {"rule_id": 1})
        return dict(Counter(d["rule_id"] for d in docs))


def test_audit_archive_on_redacted_text_re_evaluates_the_field_rules_and_names_the_others(archived, tmp_path):
    settings, _ = archived
    cli = CliRunner().invoke(app, ["audit-archive", "--from", "2026-11-18", "--to", "2026-11-19", "--rules",
                                   str(settings.rules_path), "--collection", "again"], env=job_env(settings))
    assert cli.exit_code == 0, cli.output
    assert f"re-audited {len(_rows(settings))} archived events" in cli.output
    assert "hold redacted text only (no LLM_AUDIT_ARCHIVE_KEY)" in cli.output
    assert "could not be re-evaluated: " in cli.output and "pii.email" in cli.output.split("could not")[1]
    live, again = (_violations_by_rule(settings, c) for c in (settings.violations_collection, "again"))
    for rule in ("policy.token_heavy", "policy.slow_response"):  # field rules: the same as when it went live
        assert again[rule] == live[rule] > 0, rule
    assert "not re-evaluated (redacted text)" in cli.output


def test_audit_archive_with_the_key_re_evaluates_every_rule_on_the_raw_text(isolated_job, unscored_rules):
    import base64

    key = base64.b64encode(bytes(range(32))).decode()
    settings = isolated_job("aa", scorers=[], rules_path=unscored_rules, archive_text="encrypted", archive_key=key)
    truths = traffic.produce(settings.kafka_bootstrap, settings.source_topic, 1500, seed=23, rate=150,
                             start_ms=MIDNIGHT_MS)
    assert repeated_injections(truths)  # the stream holds sequence-rule hits, to re-find in the batch run
    job.main(settings)
    cli = CliRunner().invoke(app, ["audit-archive", "--from", "2026-11-19", "--to", "2026-11-19", "--rules",
                                   str(settings.rules_path), "--collection", "again"], env=job_env(settings))
    assert cli.exit_code == 0, cli.output
    assert "redacted" not in cli.output  # every event's raw text was read back
    live, again = (_violations_by_rule(settings, c) for c in (settings.violations_collection, "again"))
    assert again == live and live["pii.email"] > 10 and live["injection.repeated"] > 0  # sequence rules too


# Tenants (any 1 to 256 characters) whose directory name once failed the job at every restart (longer
# than NAME_MAX once escaped: "Failed to create the parent directory"), or read back as null (the default
# partition names: Flink's source would not even plan over the archive), or that are merely odd. (Control
# characters are not in identifiers: such an event is a dead letter, udfs.events.FieldBounds.)
ODD_TENANTS = ["é" * 256, "/" * 256, "%" * 100, "__DEFAULT_PARTITION__", "__HIVE_DEFAULT_PARTITION__",
               "..", ".", "a b\\", "租户 ☃ =?&#", "x~" + "0" * 32]


def test_events_of_any_tenant_are_archived_and_found_by_tenant_among_the_others(isolated_job, unscored_rules):
    import base64
    from urllib.parse import unquote

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from flink_jobs.offline.reader import archive_dataset, archive_fs
    from udfs.archive import tenant_partition

    key = base64.b64encode(bytes(range(32))).decode()
    settings = isolated_job("at", scorers=[], rules_path=unscored_rules, archive_text="encrypted", archive_key=key)
    samples = list(traffic.generate(300, seed=29, start_ms=MIDNIGHT_MS, rate=50))
    odd = {}
    for i, tenant in enumerate(ODD_TENANTS * 2):  # two events each, in different places of the stream
        odd[f"odd-{i}"] = {"event_id": f"odd-{i}", "timestamp": MIDNIGHT_MS + 100 * i, "tenant": tenant, "model": "m",
                           "user_id": "odd-user", "prompt": f"mail bob{i}@example.com now", "response": "ok"}
    values = [s.value for s in samples]
    for i, event in enumerate(odd.values()):
        values.insert(10 * i + 5, json.dumps(event))
    produce(settings.kafka_bootstrap, settings.source_topic, [(None, None, value) for value in values])
    job.main(settings)  # no restart allowed: an event that failed the job would fail the test

    # Every event archived once, each with its tenant as sent; no directory name near NAME_MAX.
    rows = _rows(settings)
    valid = {s.event_id for s in samples if not s.malformed}
    assert sorted(r["event_id"] for r in rows) == sorted(valid | set(odd))
    assert {r["event_id"]: r["tenant"] for r in rows if r["event_id"] in odd} == {i: e["tenant"] for i, e in odd.items()}
    fs, root = archive_fs(settings.archive_dir)
    names = [info.base_name for info in fs.get_file_info(pafs.FileSelector(root, recursive=True))]
    assert max(len(name.encode()) for name in names) < 255
    directories = {unquote(name.removeprefix("tenant=")) for name in names if name.startswith("tenant=")}
    assert directories == {tenant_partition(r["tenant"]) for r in rows}
    assert "__DEFAULT_PARTITION__" not in directories and "/" * 256 not in directories

    # The compliance report of each odd tenant counts its own two events.
    for tenant in ODD_TENANTS:
        report = build_report(settings.archive_dir, settings.mongo_uri.get_secret_value(), settings.mongo_database,
                              tenant, date(2026, 11, 19), date(2026, 11, 19),
                              {"anomalies": settings.anomalies_collection,
                               "rule_changes": settings.rule_changes_collection})
        assert report.rows("totals")[0]["events"] == 2, repr(tenant)
        assert {r["rule"]: r["violations"] for r in report.rows("rule")} == {"pii.email": 2}, repr(tenant)

    # A tampered ciphertext: audit-archive audits that event on its redacted text instead of failing.
    tampered = next(r for r in rows if r["event_id"] == "odd-0")
    path = next(f.path for f in archive_dataset(settings.archive_dir).get_fragments()
                if f.count_rows(filter=pc.field("event_id") == "odd-0"))
    table = pq.read_table(path, filesystem=fs)
    sealed = [bytes(b) if b is not None else None for b in table["prompt_encrypted"].to_pylist()]
    index = table["event_id"].to_pylist().index("odd-0")
    sealed[index] = sealed[index][:-1] + bytes([sealed[index][-1] ^ 1])
    table = table.set_column(table.schema.get_field_index("prompt_encrypted"), "prompt_encrypted",
                             pa.array(sealed, pa.binary()))
    pq.write_table(table, path, filesystem=fs)
    assert tampered["prompt"].startswith("mail bo*") and "@" not in tampered["prompt"]  # what it falls back to
    cli = CliRunner().invoke(app, ["audit-archive", "--from", "2026-11-19", "--to", "2026-11-19", "--rules",
                                   str(settings.rules_path), "--collection", "again"], env=job_env(settings))
    assert cli.exit_code == 0, cli.output
    assert f"re-audited {len(rows)} archived events" in cli.output
    live, again = (_violations_by_rule(settings, c) for c in (settings.violations_collection, "again"))
    assert again == {**live, "pii.email": live["pii.email"] - 1}  # the tampered event's email went unseen
    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        docs = client[settings.mongo_database]["again"].find({"event_id": {"$in": list(odd)}})
        assert {(d["event_id"], d["tenant"]) for d in docs} == {(i, e["tenant"]) for i, e in odd.items() if i != "odd-0"}

    # Erasure: the user of the odd tenants' events, wherever their rows are.
    erase_user(settings.mongo_uri.get_secret_value(), settings.mongo_database, settings.archive_dir, "odd-user", "t")
    assert sorted(r["event_id"] for r in _rows(settings)) == sorted(valid)
