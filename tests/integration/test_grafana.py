"""Grafana as code on the real stack: after one real audit job run, every panel query of every
provisioned dashboard returns data from the real InfluxDB, and every alert rule evaluates to firing
on its incident and to normal on steady traffic.

Grafana does not run here: tests/support/grafana.py renders each query as Grafana sends it (dashboard
variables, v.timeRangeStart/Stop, v.windowPeriod, v.defaultBucket) and evaluates each rule's
reduce/threshold/math expressions, no-data handling and `for:` pending period as Grafana does;
the Flux itself runs on InfluxDB 1.8's Flux engine. One job run (scorers on, Flink's InfluxDB
metrics reporter on) audits a composed stream: 100 s of steady traffic for two tenants, then 20 s
of incident (leaked credentials, a jump in PII findings, toxic and biased text, a burst of
malformed messages). Event times lie in the recent past, so one dashboard time range holds both
the job's event-time points and the reporter's wall-clock ones; alert rules are evaluated at
chosen (virtual) times before, during and after the incident.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pymongo import MongoClient

from devstack import artifacts, stack, traffic
from flink_jobs.reporter import flink_influx_reporter_config
from flink_jobs.rules_topic import push_record
from udfs.rules import load_rules
from tests.support import grafana
from flink_jobs.settings import AuditJobSettings, load_settings
from tests.integration.conftest import job_env, produce
from tests.support.poison import MARKER

LLM_AUDIT = str(Path(sys.executable).parent / "llm-audit")
WINDOW_S = 10
STEADY_WINDOWS, INCIDENT_WINDOWS = 10, 2
STEADY_KEYS = (("acme", "gpt-4o", "2024-08-06"), ("globex", "claude-sonnet-4", "20250514"))
INCIDENT_KEY = STEADY_KEYS[0]
INCIDENT_MALFORMED = 30
UNSIGNED_PUSH_S = 60  # after t0: an unsigned push of the job's own rules
REVIEWED_RULE = "pii.email"  # the incident's PII jump gives acme several
SEVERITY_COLOURS = {"critical", "high", "medium", "low", "info"}  # the severity panel's colour overrides


@dataclass
class Audited:
    settings: AuditJobSettings
    t0: datetime  # start of the first event-time window
    steady_end: datetime  # end of the last steady window
    incident_end: datetime  # end of the last incident window
    job_started: datetime
    job_ended: datetime
    job_s: float

    @property
    def bucket(self) -> str:
        return self.settings.influx_bucket


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class _Pool:
    """Generator samples by what was planted in them, to compose windows from."""

    def __init__(self, seed: int):
        self.by_kind: dict[str, list[dict]] = {"clean": [], "email": [], "secret": [], "toxicity": [], "bias": []}
        # Without names: the windows' texts, and so their score metrics, as the steady baseline was written for.
        for sample in traffic.generate(6000, seed=seed, start_ms=0, names=False):
            if sample.malformed:
                continue
            kinds = {label.kind for label in sample.labels}
            kind = "clean" if not kinds else next(iter(kinds)) if len(kinds) == 1 else None
            if kind in self.by_kind:
                self.by_kind[kind].append(json.loads(sample.value))
        self.used = 0

    def take(self, kind: str, tenant: str, model: str, version: str, timestamp_ms: int) -> dict:
        event = dict(self.by_kind[kind].pop())
        self.used += 1
        event.update(tenant=tenant, model=model, model_version=version, timestamp=timestamp_ms,
                     event_id=f"evt-grafana-{timestamp_ms}-{self.used:05d}")
        return event


def _compose(t0_ms: int) -> list[tuple[int, str | None, str]]:
    """(Kafka/event timestamp ms, key, value) of the whole stream, in time order."""
    pool, messages = _Pool(seed=41), []
    for w in range(STEADY_WINDOWS + INCIDENT_WINDOWS):
        base = t0_ms + w * WINDOW_S * 1000
        incident = w >= STEADY_WINDOWS
        for tenant, model, version in STEADY_KEYS:
            if incident and (tenant, model, version) == INCIDENT_KEY:
                kinds = ["email"] * 5 + ["secret", "toxicity", "bias", "clean", "clean"]
            else:
                kinds = ["email"] + ["clean"] * 9  # a steady 10 % PII rate
            for i, kind in enumerate(kinds):
                ts = base + 200 + i * 900
                messages.append((ts, tenant, json.dumps(pool.take(kind, tenant, model, version, ts))))
        if not incident and w % 5 == 2:  # ~1 % malformed, as producers have
            messages.append((base + 5000, None, '{"event_id": "broken'))
        if incident and w == STEADY_WINDOWS:
            # An event a scorer raises on: not fully audited, a dead letter of its own reason (tests.support.poison).
            tenant, model, version = INCIDENT_KEY
            poisoned = pool.take("clean", tenant, model, version, base + 9500)
            poisoned.update(prompt=f"{poisoned.get('prompt') or ''} {MARKER}", event_id=f"evt-grafana-poisoned-{base}")
            messages.append((base + 9500, tenant, json.dumps(poisoned)))
            for i in range(INCIDENT_MALFORMED):  # a producer bug: a burst of malformed messages
                value = ('{"truncated": ' if i % 3 == 0 else '["not", "an", "object"]' if i % 3 == 1
                         else json.dumps({"event_id": f"bad-{i}", "timestamp": base + 100 * i}))
                messages.append((base + 300 + 250 * i, None, value))
    return sorted(messages, key=lambda m: m[0])


def _job_env(settings: AuditJobSettings, log_dir: Path) -> dict[str, str]:
    """The settings as LLM_AUDIT_* variables, plus PyFlink's lib/ with the InfluxDB reporter."""
    env = job_env(settings)
    # PYTHONPATH: the job imports the poison scorer (tests.support.poison), as it would a user's own backend.
    env.update(artifacts.flink_env(), FLINK_LOG_DIR=str(log_dir), PYTHONPATH=str(Path(__file__).parents[2]))
    return env


def _influx(url: str, query: str, db: str | None = None) -> dict:
    params = {"q": query, **({"db": db} if db else {})}
    req = urllib.request.Request(f"{url}/query", data=urllib.parse.urlencode(params).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def audited(stack_settings, tmp_path_factory):
    """One real job run over the composed stream, with the Flink metrics reporter on."""
    run = uuid.uuid4().hex[:10]
    database = f"llm_audit_grafana_{run}"
    settings = load_settings(
        kafka_bootstrap=stack_settings.kafka_bootstrap, source_topic=f"grafana-{run}.model-audit-logs",
        dlq_topic=f"grafana-{run}.model-audit-dlq", rules_topic=f"grafana-{run}.audit-rules", group_id=f"grafana-{run}",
        mongo_uri=stack_settings.mongo_uri, mongo_database=database, influx_url=stack_settings.influx_url,
        influx_bucket=f"{database}/autogen", checkpoint_interval_ms=300, restart_attempts=0, bounded=True,
        metrics_window_s=WINDOW_S, anomaly_window_s=WINDOW_S, anomaly_warmup=4, anomaly_min_events=8,
        scorers_path=Path(__file__).parents[1] / "fixtures" / "scorers" / "default_with_poison.yaml",
        # Buffer debloating keeps ~1 s of data in flight: with the scorers, the first checkpoint's barrier
        # otherwise queues behind the whole stream and completes as the job ends, before any report.
        flink_config={**flink_influx_reporter_config(stack_settings.influx_url, database, interval_s=1),
                      "taskmanager.network.memory.buffer-debloat.enabled": "true"},
    )
    stack.create_job_topics(settings.kafka_bootstrap, settings.source_topic, settings.dlq_topic, settings.rules_topic)
    stack.create_influx_database(settings.influx_url, database)
    now = datetime.now(timezone.utc)
    t0 = datetime.fromtimestamp((int(now.timestamp()) // WINDOW_S) * WINDOW_S - 300, timezone.utc)
    produce(settings.kafka_bootstrap, settings.source_topic, _compose(_ms(t0)))
    # The same rules as the job's file, pushed unsigned, as a local stack allows: alert llm-audit-rules-unsigned.
    push = push_record(load_rules(settings.rules_path), settings.ruleset_name, 1, "grafana-test", "unsigned")
    produce(settings.kafka_bootstrap, settings.rules_topic,
            [(_ms(t0) + UNSIGNED_PUSH_S * 1000, settings.ruleset_name, json.dumps(push))])
    logs = tmp_path_factory.mktemp("grafana-job")
    started = datetime.now(timezone.utc)
    began = time.monotonic()
    result = subprocess.run([LLM_AUDIT, "run", "audit", "--bounded"], env=_job_env(settings, logs), cwd=Path(__file__).parents[2],
                            capture_output=True, text=True, timeout=600)
    job_s = time.monotonic() - began
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _review(settings)
    yield Audited(settings, t0, t0 + timedelta(seconds=STEADY_WINDOWS * WINDOW_S),
                  t0 + timedelta(seconds=(STEADY_WINDOWS + INCIDENT_WINDOWS) * WINDOW_S), started,
                  datetime.now(timezone.utc), job_s)
    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        client.drop_database(database)
    _influx(settings.influx_url, f'DROP DATABASE "{database}"')


def _review(settings: AuditJobSettings) -> None:
    """Verdicts on three of acme's violations of one rule, through the console's store and metrics."""
    from console.metrics import ReviewMetrics
    from console.store import Caller, Store

    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        store = Store(client, settings.mongo_database, settings.violations_collection, settings.anomalies_collection)
        docs = list(store.violations.find({"tenant": "acme", "rule_id": REVIEWED_RULE}).limit(3))
        assert len(docs) == 3, "the stream has fewer violations to review than the test needs"
        metrics = ReviewMetrics(settings.influx_url, "", "-", settings.influx_bucket)
        for doc, verdict in zip(docs, ["confirmed", "confirmed", "false_positive"]):
            store.review(Caller("auditor", "reviewer", ("acme",)), doc, verdict, "grafana test")
            metrics.write("acme", REVIEWED_RULE, store.verdicts("acme", REVIEWED_RULE))


def _runner(settings: AuditJobSettings):
    def run(query: grafana.AlertQuery, flux: str) -> list[grafana.Frame]:
        return grafana.query_frames(settings.influx_url, settings.influx_token.get_secret_value(), settings.influx_org, flux)
    return run


def _rule(uid: str) -> grafana.AlertRule:
    return next(r for r in grafana.alert_rules() if r.uid == uid)


def _states(rule: grafana.AlertRule, audited: Audited, until: datetime, duration_s: float | None = None):
    tracker, evaluations = grafana.simulate(rule, until, _runner(audited.settings), audited.bucket, duration_s)
    errors = [i.error for e in evaluations for i in e.instances if i.state == grafana.ERROR]
    assert not errors, errors
    return tracker, evaluations


# --- dashboards ----------------------------------------------------------------------------------

SELECTIONS = {
    "all": {},
    "one tenant and model": {"tenant": ["acme"], "model": ["gpt-4o"]},
    "two tenants": {"tenant": ["acme", "globex"], "model": ["gpt-4o", "claude-sonnet-4"]},
}


@pytest.mark.parametrize("selection", SELECTIONS)
def test_every_panel_query_of_every_dashboard_returns_data(audited, selection):
    datasource = next(d for d in grafana.datasources({}) if d["uid"] == "llm-audit-influxdb")
    start = audited.t0 - timedelta(minutes=1)
    stop = max(audited.job_ended, audited.incident_end) + timedelta(minutes=1)
    empty, checked = [], 0
    for uid, board in grafana.dashboards().items():
        names = {v["name"] for v in grafana.template_variables(board)}
        chosen = {k: v for k, v in SELECTIONS[selection].items() if k in names}
        if selection != "all" and not chosen:
            continue
        for variable in grafana.template_variables(board):  # the variables' own queries
            flux = grafana.render_panel_query(board, None, variable["query"], start=start, stop=stop,
                                              bucket=audited.bucket, selected=chosen,
                                              min_interval_s=grafana.datasource_min_interval(datasource))
            values = [v for f in grafana.query_frames(audited.settings.influx_url, "", "-", flux)
                      for v in f.values or f.columns.get("_value", [])]
            if not values:
                empty.append(f"{uid} variable {variable['name']}")
        for query in grafana.panel_queries(board):
            panel = next(p for p in grafana.iter_panels(board) if p["id"] == query.panel_id)
            flux = grafana.render_panel_query(board, panel, query.query, start=start, stop=stop, bucket=audited.bucket,
                                              selected=chosen, min_interval_s=grafana.datasource_min_interval(datasource))
            assert "v." not in flux.replace("v: ", "") and "${" not in flux, flux  # nothing left unsubstituted
            frames = grafana.query_frames(audited.settings.influx_url, "", "-", flux)
            if not frames or not any(len(f) for f in frames):
                empty.append(f"{uid} #{query.panel_id} {query.panel_title!r} {query.ref_id}")
            checked += 1
    assert checked > 20 and not empty, f"queries without data ({selection}): {empty}"


def test_panels_show_what_the_stream_holds(audited):
    """A few panels' numbers, against what was produced."""
    start, stop = audited.t0, audited.incident_end + timedelta(seconds=1)

    def frames(uid: str, title: str) -> list[grafana.Frame]:
        board = grafana.dashboards()[uid]
        panel = next(p for p in grafana.iter_panels(board) if p["title"] == title)
        flux = grafana.render_panel_query(board, panel, panel["targets"][0]["query"], start=start, stop=stop,
                                          bucket=audited.bucket, min_interval_s=10)
        return grafana.query_frames(audited.settings.influx_url, "", "-", flux)

    events = len(STEADY_KEYS) * 10 * (STEADY_WINDOWS + INCIDENT_WINDOWS)  # and the poisoned one
    assert frames("llm-audit-violations", "Events audited")[0].values == [events + 1]
    assert frames("llm-audit-violations", "Critical violations")[0].values == [INCIDENT_WINDOWS]  # a credential each
    assert frames("llm-audit-pipeline", "Dead letters")[0].values == [INCIDENT_MALFORMED + 2 + 1]  # + audit_error
    table = frames("llm-audit-violations", "Tenants and models")[0].columns
    assert sorted(zip(table["tenant"], table["events"])) == [("acme", events // 2 + 1), ("globex", events // 2)]
    severities = {f.field_name: sum(f.values) for f in frames("llm-audit-violations", "Violations by severity")}
    assert severities["critical"] == INCIDENT_WINDOWS and set(severities) <= set(SEVERITY_COLOURS)
    anomalies = frames("llm-audit-anomalies", "Anomalous windows")[0].columns
    assert {"violation_rate.pii"} <= set(anomalies["metric"]) and set(anomalies["tenant"]) == {INCIDENT_KEY[0]}
    scored = {f.field_name: sum(f.values) for f in frames("llm-audit-scores", "Events scored")}
    assert scored["toxicity"] == events and 0 < scored["bias"] <= events  # not the poisoned event
    # The console's verdicts: two of three confirmed (the panel's range reaches the reviews, after the job).
    reviews = grafana.query_frames(audited.settings.influx_url, "", "-", grafana.render_panel_query(
        grafana.dashboards()["llm-audit-violations"], None,
        next(p for p in grafana.iter_panels(grafana.dashboards()["llm-audit-violations"])
             if p["title"] == "Precision from reviews")["targets"][0]["query"],
        start=start, stop=datetime.now(timezone.utc) + timedelta(minutes=1), bucket=audited.bucket, min_interval_s=10))
    row = reviews[0].columns
    assert row["rule_id"] == [REVIEWED_RULE] and row["confirmed"] == [2] and row["false_positive"] == [1]
    assert abs(row["precision"][0] - 2 / 3) < 1e-9


# --- alert rules ---------------------------------------------------------------------------------

def test_critical_violation_fires_for_the_leaked_credentials_only(audited):
    rule = _rule("llm-audit-critical-violation")
    steady, _ = _states(rule, audited, audited.steady_end + timedelta(seconds=5))
    assert steady.firing == [] and set(steady.states().values()) == {grafana.NORMAL}
    incident, evaluations = _states(rule, audited, audited.incident_end + timedelta(seconds=30))
    tenant, model, _ = INCIDENT_KEY
    assert incident.firing == [{"model": model, "rule_id": "secret.credential", "tenant": tenant}]
    assert evaluations[-1].values["B"][0].value >= INCIDENT_WINDOWS
    # Five minutes after the incident nothing critical is left in the window: resolved.
    after, _ = _states(rule, audited, audited.incident_end + timedelta(minutes=8), duration_s=240)
    assert after.firing == []


def test_events_not_fully_audited_fires_for_the_poisoned_event_only(audited):
    rule = _rule("llm-audit-not-fully-audited")
    steady, _ = _states(rule, audited, audited.steady_end + timedelta(seconds=5))
    assert steady.firing == [] and set(steady.states().values()) == {grafana.NORMAL}
    incident, evaluations = _states(rule, audited, audited.incident_end + timedelta(seconds=30))
    tenant, model, _ = INCIDENT_KEY
    assert incident.firing == [{"model": model, "tenant": tenant}]
    assert evaluations[-1].values["B"][0].value == 1


def test_unsigned_rules_fire_from_the_unsigned_push_on(audited):
    rule = _rule("llm-audit-rules-unsigned")
    before, _ = _states(rule, audited, audited.t0 + timedelta(seconds=UNSIGNED_PUSH_S - 1))
    assert before.firing == [] and set(before.states().values()) <= {grafana.NORMAL}
    after, evaluations = _states(rule, audited, audited.steady_end)
    assert after.firing == [{"ruleset": audited.settings.ruleset_name}]
    assert evaluations[-1].values["B"][0].value == 1


def test_violation_rate_anomaly_fires_for_the_pii_jump(audited):
    rule = _rule("llm-audit-violation-rate-anomaly")
    steady, _ = _states(rule, audited, audited.steady_end + timedelta(seconds=5))
    assert steady.firing == []
    incident, evaluations = _states(rule, audited, audited.incident_end + timedelta(seconds=30))
    tenant, model, _ = INCIDENT_KEY
    firing = {(f["tenant"], f["model"], f["metric"]) for f in incident.firing}
    assert (tenant, model, "violation_rate.pii") in firing
    assert all(f[:2] == (tenant, model) for f in firing)  # the steady tenant stays normal
    pii = next(n for n in evaluations[-1].values["B"] if dict(n.labels)["metric"] == "violation_rate.pii")
    assert pii.value >= 6  # LLM_AUDIT_ANOMALY_THRESHOLD deviations at least


def test_dlq_spike_fires_after_its_pending_period_and_not_on_the_steady_rate(audited):
    rule = _rule("llm-audit-dlq-spike")
    steady, evaluations = _states(rule, audited, audited.steady_end + timedelta(seconds=5))
    assert steady.firing == [] and evaluations[-1].values["C"][0].value == 2  # 2 of 200: 1 %
    # The burst is in the 5-minute window from the first incident window on; `for: 2m` must pass.
    first = audited.steady_end + timedelta(seconds=WINDOW_S + 5)
    pending, _ = _states(rule, audited, first + timedelta(minutes=1), duration_s=60)
    assert set(pending.states().values()) == {grafana.PENDING}
    incident, evaluations = _states(rule, audited, first + timedelta(minutes=3), duration_s=180)
    assert len(incident.firing) == 1
    dead, total = evaluations[-1].values["C"][0].value, evaluations[-1].values["D"][0].value
    assert dead == INCIDENT_MALFORMED + 2 and dead / total > 0.05


def test_job_stalled_fires_only_after_ten_minutes_without_audited_events(audited):
    rule = _rule("llm-audit-job-stalled")
    assert rule.no_data_state == "Alerting"
    running, _ = _states(rule, audited, audited.incident_end + timedelta(seconds=30))
    assert running.firing == [] and set(running.states().values()) == {grafana.NORMAL}
    # The newest window ends at incident_end: NoData from incident_end + 5 min, Alerting 5 min later.
    quiet = audited.incident_end + timedelta(minutes=5, seconds=30)
    pending, _ = _states(rule, audited, quiet + timedelta(minutes=3), duration_s=180)
    assert set(pending.states().values()) == {grafana.PENDING}
    stalled, evaluations = _states(rule, audited, quiet + timedelta(minutes=6), duration_s=360)
    assert len(stalled.firing) == 1 and evaluations[-1].instances[0].state == grafana.NODATA


def _reporter_series(audited: Audited, measurement: str) -> list[dict]:
    database = audited.settings.influx_bucket.split("/")[0]
    result = _influx(audited.settings.influx_url, f'SELECT * FROM "{measurement}"', database)["results"][0]
    series = result.get("series", [])
    return [dict(zip(series[0]["columns"], row)) for row in series[0]["values"]] if series else []


def _write_lines(audited: Audited, lines: list[str]) -> None:
    database = audited.settings.influx_bucket.split("/")[0]
    req = urllib.request.Request(f"{audited.settings.influx_url}/write?db={database}&precision=ms",
                                 data="\n".join(lines).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 204


def test_the_reporter_wrote_the_flink_metrics_the_dashboards_and_rules_read(audited):
    for measurement in ("jobmanager_job_numberOfFailedCheckpoints", "jobmanager_job_numberOfCompletedCheckpoints",
                        "jobmanager_job_uptime", "jobmanager_job_numRestarts", "jobmanager_job_lastCheckpointDuration",
                        "taskmanager_job_task_operator_pendingRecords", "taskmanager_job_task_operator_numRecordsOutPerSecond",
                        "taskmanager_job_task_operator_KafkaSourceReader_KafkaConsumer_records-lag-max",
                        "taskmanager_job_task_backPressuredTimeMsPerSecond"):
        rows = _reporter_series(audited, measurement)
        assert rows and all(r["job_name"] == "llm-audit" for r in rows), measurement
    completed = _reporter_series(audited, "jobmanager_job_numberOfCompletedCheckpoints")
    assert max(r["value"] for r in completed) >= 1


def test_checkpoint_failures_fire_on_failing_checkpoints_and_restarts_but_not_on_a_job_run(audited):
    rule = _rule("llm-audit-checkpoint-failures")
    # The real run: a few failed checkpoints while its tasks deployed and closed; normal.
    real, _ = _states(rule, audited, audited.job_ended + timedelta(seconds=5))
    assert real.firing == []
    # Incidents, written as the reporter writes (same measurements and tags as the real run's), a
    # day after it: job 1's checkpoints complete for 2 minutes, then fail every 30 s from minute 3;
    # job 2 restarts every 4 minutes while its checkpoints complete.
    host = _reporter_series(audited, "jobmanager_job_uptime")[0]["host"]
    start = audited.job_ended + timedelta(days=1)
    lines = []
    for i in range(0, 20 * 60, 10):
        ms = _ms(start) + i * 1000
        for job, failed, completed, restarts, uptime in (
            ("f" * 32, max(0, i - 180) // 30, min(i, 120) // 10, 0, i * 1000),
            ("e" * 32, 0, i // 10, i // 240, (i % 240) * 1000),
        ):
            tags = f"host={host},job_id={job},job_name=llm-audit"
            for measurement, value in (("numberOfFailedCheckpoints", failed), ("numberOfCompletedCheckpoints", completed),
                                       ("numRestarts", restarts), ("uptime", uptime)):
                lines.append(f"jobmanager_job_{measurement},{tags} value={value}i {ms}")
    _write_lines(audited, lines)
    # Job 1: failures outnumber the 12 completions from ~minute 10, firing 5 minutes later.
    # Job 2: its second restart at minute 8, firing from minute 13.
    early, _ = _states(rule, audited, start + timedelta(minutes=9, seconds=30))
    assert early.firing == [] and early.states()[(("job_id", "e" * 32), ("job_name", "llm-audit"))] == grafana.PENDING
    late, evaluations = _states(rule, audited, start + timedelta(minutes=19))
    assert sorted(f["job_id"] for f in late.firing) == ["e" * 32, "f" * 32]
    values = {dict(n.labels)["job_id"]: n.value for n in evaluations[-1].values["C"]}
    assert values["f" * 32] > 20 and values["e" * 32] == 0
