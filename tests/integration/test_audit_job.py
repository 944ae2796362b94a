"""The audit job end to end on the real local stack: Kafka -> PyFlink -> FerretDB, InfluxDB, DLQ."""

import json

import pytest
from influxdb_client import InfluxDBClient
from pymongo import MongoClient

from devstack import traffic
from devstack.check import compare, expected_email_violations, influx_totals, read_topic, stored_violations
from flink_jobs import audit_job

WINDOW_S = 10
START_MS = 1_795_000_000_000  # fixed, in the past: points must carry event time, not arrival time


@pytest.fixture
def job_settings(isolated_job):
    return isolated_job("it", metrics_window_s=WINDOW_S)


def test_job_stores_exactly_the_ground_truth_and_a_replay_changes_nothing(job_settings, tmp_path):
    truths = traffic.produce(job_settings.kafka_bootstrap, job_settings.source_topic, 1500, seed=99,
                             labels_path=tmp_path / "labels.jsonl", start_ms=START_MS)
    assert json.loads((tmp_path / "labels.jsonl").read_text().splitlines()[0])["event_id"] == truths[0]["event_id"]

    audit_job.main(job_settings)

    report = compare(job_settings, truths)
    assert report.ok, [row for row in report.rows if not row.ok]
    assert report.stored_violations == expected_email_violations(truths) != set()

    # Violations: deterministic _id, context, redacted snippet, no raw text.
    valid = {t["event_id"]: t for t in truths if not t["malformed"]}
    with MongoClient(job_settings.mongo_uri.get_secret_value()) as client:
        docs = list(client[job_settings.mongo_database][job_settings.violations_collection].find())
    assert len(docs) == len(report.expected_violations)
    for doc in docs:
        assert doc["_id"] == f"{doc['event_id']}:pii.email@1:{doc['field']}:{doc['start']}-{doc['end']}"
        planted = next(lb["value"] for lb in valid[doc["event_id"]]["labels"]
                       if lb["kind"] == "email" and lb["start"] == doc["start"] and lb["field"] == doc["field"])
        assert planted not in json.dumps(doc, default=str) and doc["snippet"].startswith(planted[:2])
        assert "text" not in doc and doc["severity"] == "medium" and doc["tenant"] in traffic.TENANTS

    # Metrics: one point per (tenant, model, window), stamped with the event-time window end.
    with InfluxDBClient(url=job_settings.influx_url, token="", org="-") as client:
        tables = client.query_api().query(
            f'from(bucket: "{job_settings.influx_bucket}") |> range(start: 0) '
            f'|> filter(fn: (r) => r._measurement == "audit_events" and r._field == "events")')
    times = [int(r.get_time().timestamp() * 1000) for t in tables for r in t.records]
    last_ms = max(t["timestamp"] for t in truths)
    assert times and all(ms % (WINDOW_S * 1000) == 0 and START_MS < ms <= last_ms + WINDOW_S * 1000 for ms in times)

    # Dead letters: every malformed message, verbatim, with its reason.
    dead = [json.loads(m) for m in read_topic(job_settings.kafka_bootstrap, job_settings.dlq_topic)]
    malformed = {t["event_id"]: t["malformed"] for t in truths if t["malformed"]}
    assert sorted(d["reason"] for d in dead) == sorted(malformed.values()) and len(dead) >= 5

    # Replaying the whole topic (a new consumer group) upserts the same documents and points.
    totals = influx_totals(job_settings, START_MS - WINDOW_S * 1000, last_ms + WINDOW_S * 1000 + 1)
    audit_job.main(job_settings.model_copy(update={"group_id": job_settings.group_id + "-replay",
                                                   "dlq_topic": job_settings.dlq_topic + "-replay"}))
    assert stored_violations(job_settings, list(valid)) == report.stored_violations
    assert influx_totals(job_settings, START_MS - WINDOW_S * 1000, last_ms + WINDOW_S * 1000 + 1) == totals
