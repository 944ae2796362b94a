"""InfluxDB points per window (udfs.metrics) and the sinks' retry loop, without services."""

import json
import logging

import pytest

from flink_jobs.streaming.sinks.influx import influx_transient

from flink_jobs.streaming.sinks.mongo import mongo_transient

from flink_jobs.streaming.sinks.retry import retrying
from udfs.metrics import WindowCounts, anomaly_point


def test_window_counts_emit_one_point_per_series_and_count_only_the_events_own_violations_as_theirs():
    counts = WindowCounts(events=3, event_violations=3, tokens=45, cost_usd=0.0120004,
                          violations={("pii.email", "pii", "high"): 2, ("secret.credential", "secret", "critical"): 1,
                                      ("injection.repeated", "prompt_injection", "critical"): 1},
                          scores={"toxicity": (2, 1.1, 0.9), "bias": (1, 0.4, 0.4)})
    points = {(p["measurement"], tuple(sorted(p["tags"].items()))): p for p in counts.points("acme", "gpt-4o", 60_000)}
    assert all(p["time_ms"] == 60_000 for p in points.values())
    events = points[("audit_events", (("model", "gpt-4o"), ("tenant", "acme")))]["fields"]
    assert events == {"events": 3, "violations": 3, "tokens": 45, "cost_usd": 0.012}
    email = points[("violations", (("category", "pii"), ("model", "gpt-4o"), ("rule_id", "pii.email"),
                                   ("severity", "high"), ("tenant", "acme")))]
    assert email["fields"] == {"count": 2}
    toxicity = points[("scores", (("model", "gpt-4o"), ("scorer", "toxicity"), ("tenant", "acme")))]["fields"]
    assert toxicity == {"scored": 2, "mean": 0.55, "max": 0.9}
    assert len(points) == 1 + 3 + 2  # events, three rules, two scorers


def test_a_window_of_fired_sequence_rules_only_has_no_events_point():
    counts = WindowCounts(violations={("injection.repeated", "prompt_injection", "critical"): 2})
    assert [(p["measurement"], p["fields"]) for p in counts.points("acme", "m", 60_000)] == [("violations", {"count": 2})]


def test_anomaly_point_is_stamped_with_its_window_end():
    doc = {"_id": "x", "tenant": "acme", "model": "m", "metric": "violation_rate.pii", "window_start_ms": 0,
           "window_end_ms": 60_000, "observed": 0.5, "baseline": 0.05, "deviation": 0.01, "score": 45.0}
    p = anomaly_point(doc)
    assert (p["measurement"], p["time_ms"], p["tags"]["metric"], p["fields"]["score"]) == \
        ("anomalies", 60_000, "violation_rate.pii", 45.0)


def test_retrying_backs_off_until_the_store_answers_and_logs_each_failure(caplog):
    calls, waits = [], []

    def attempt():
        calls.append(1)
        if len(calls) < 5:
            raise ConnectionError("connection refused")
        return "stored"

    with caplog.at_level(logging.WARNING, logger="llm_audit.sinks"):
        assert retrying("mongodb db.violations", attempt, lambda exc: True, first_delay_s=1, max_delay_s=4,
                        sleep=waits.append) == "stored"
    assert waits == [1, 2, 4, 4]
    logged = [json.loads(r.getMessage()) for r in caplog.records]
    assert [e["event"] for e in logged] == ["sink_retry"] * 4 + ["sink_recovered"]
    assert logged[0]["sink"] == "mongodb db.violations" and "connection refused" in logged[0]["error"]


def test_a_rejected_write_is_raised_at_once_not_retried():
    from pymongo.errors import AutoReconnect, OperationFailure

    calls = []

    def attempt():
        calls.append(1)
        raise OperationFailure('Index option "expireAfterSeconds" is not implemented yet', code=238)

    with pytest.raises(OperationFailure, match="expireAfterSeconds"):
        retrying("mongodb", attempt, mongo_transient, sleep=lambda s: None)
    assert calls == [1]
    assert mongo_transient(AutoReconnect("connection refused"))


def test_influx_failures_are_transient_only_when_the_server_may_recover():
    from influxdb_client.rest import ApiException
    from urllib3.exceptions import NewConnectionError

    def status(code):
        exc = ApiException(status=code)
        return influx_transient(exc)

    assert status(503) and status(429) and not status(400) and not status(401)
    assert influx_transient(NewConnectionError(None, "refused")) and influx_transient(ConnectionRefusedError())
    assert not influx_transient(ValueError("bad point"))
