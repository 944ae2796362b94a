"""The audit job end to end on the real local stack: Kafka -> PyFlink -> FerretDB, InfluxDB, DLQ."""

import json

import pytest
from influxdb_client import InfluxDBClient

from devstack import stack, traffic
from tests.support.check import archive_report, compare, influx_totals, planted_spans, read_topic, stored_findings, time_range
from flink_jobs.kafka import client_config
from flink_jobs.streaming import job
from udfs.findings import Finding, violation_id

WINDOW_S = 10
START_MS = 1_795_000_000_000  # fixed, in the past: points must carry event time, not arrival time


@pytest.fixture
def job_settings(isolated_job):
    return isolated_job("it", metrics_window_s=WINDOW_S)


def test_job_stores_exactly_the_ground_truth_and_a_replay_changes_nothing(job_settings, tmp_path):
    truths = traffic.produce(job_settings.kafka_bootstrap, job_settings.source_topic, 1500, seed=99,
                             labels_path=tmp_path / "labels.jsonl", start_ms=START_MS)
    assert json.loads((tmp_path / "labels.jsonl").read_text().splitlines()[0])["event_id"] == truths[0]["event_id"]

    job.main(job_settings)

    report = compare(job_settings, truths)
    assert report.ok, [row for row in report.rows if not row.ok]
    assert len(planted_spans(truths, "email")) > 50 and len(planted_spans(truths, "secret")) > 10

    # Violations: deterministic _id, context, redacted snippet, no raw text.
    valid = {t["event_id"]: t for t in truths if not t["malformed"]}
    for doc in report.findings:
        assert doc["_id"] == violation_id(doc["tenant"], Finding(**{f: doc[f] for f in Finding.__slots__}))
        assert "text" not in doc and doc["tenant"] in traffic.TENANTS
        planted = [lb["value"] for lb in valid[doc["event_id"]]["labels"]
                   if lb.get("start") == doc["start"] and lb.get("field") == doc["field"]]
        if doc["rule_id"] in ("pii.email", "secret.credential"):
            assert planted and planted[0] not in json.dumps(doc, default=str)  # only a redacted snippet
            assert doc["snippet"].startswith(planted[0][:2]) and set(doc["snippet"][2:]) == {"*"}

    # Metrics: one point per (tenant, model, window), stamped with the event-time window end.
    with InfluxDBClient(url=job_settings.influx_url, token="", org="-") as client:
        tables = client.query_api().query(
            f'from(bucket: "{job_settings.influx_bucket}") |> range(start: 0) '
            f'|> filter(fn: (r) => r._measurement == "audit_events" and r._field == "events")')
    times = [int(r.get_time().timestamp() * 1000) for t in tables for r in t.records]
    with InfluxDBClient(url=job_settings.influx_url, token="", org="-") as client:
        scored = client.query_api().query(
            f'from(bucket: "{job_settings.influx_bucket}") |> range(start: 0) '
            f'|> filter(fn: (r) => r._measurement == "scores" and r.scorer == "toxicity" and r._field == "scored") '
            f'|> group() |> sum()')
    assert sum(r.get_value() for t in scored for r in t.records) == len(valid)  # every event scored once
    toxic = [d for d in report.findings if d["rule_id"] == "toxicity.high"]
    assert toxic and all(d["scores"]["toxicity"] >= 0.8 and d["evidence"]["toxicity_span"] for d in toxic)
    last_ms = max(t["timestamp"] for t in truths)
    assert times and all(ms % (WINDOW_S * 1000) == 0 and START_MS < ms <= last_ms + WINDOW_S * 1000 for ms in times)

    # Dead letters: every malformed message, verbatim, with its reason.
    dead = [json.loads(m) for m in read_topic(client_config(job_settings), job_settings.dlq_topic)]
    malformed = [t["malformed"] for t in truths if t["malformed"]]
    assert sorted(d["reason"] for d in dead) == sorted(malformed) and len(dead) >= 5

    # The archive: every valid event once, its findings with it, nothing planted in clear.
    archived = archive_report(job_settings, truths)
    assert sum(len(json.loads(row["findings"])) for row in archived) == len(report.findings) - sum(
        doc["rule_id"] == "injection.repeated" for doc in report.findings)  # sequence rules: violations only
    assert {row["tenant"] for row in archived} == set(traffic.TENANTS)

    # Replaying the whole topic (a new consumer group, no archive) writes the same documents and points.
    totals = influx_totals(job_settings, *time_range(job_settings, truths))
    stack.create_topics(job_settings.kafka_bootstrap, {job_settings.dlq_topic + "-replay": {}})
    job.main(job_settings.model_copy(update={"group_id": job_settings.group_id + "-replay", "archive_dir": None,
                                                   "dlq_topic": job_settings.dlq_topic + "-replay"}))
    assert sorted(d["_id"] for d in stored_findings(job_settings, list(valid))) == sorted(d["_id"] for d in report.findings)
    assert influx_totals(job_settings, *time_range(job_settings, truths)) == totals
