"""No event can stop the audit, on the real local stack: poison events among ordinary traffic.

The job runs with no restart allowed (restart_attempts=0): any failure an event caused would fail
the test. Every ordinary event's results must equal the generator's ground truth; each poison event
is in the dead-letter topic with its reason, and the ones that parsed have their audit.error finding,
but for the event from the year 2300: its violations are stored, and InfluxDB refuses its window's points
(a window's, not one event's: a dead letter each, no finding).
"""

import json
from collections import Counter
from pathlib import Path

from devstack import traffic
from flink_jobs.streaming import job
from flink_jobs.kafka import client_config
from tests.integration.conftest import produce
from tests.support.check import finding_rows, influx_totals, read_topic, stored_findings, time_range
from tests.support.poison import MARKER

START_MS = 1_795_100_000_000
SCORERS = Path(__file__).parents[1] / "fixtures" / "scorers" / "default_with_poison.yaml"


def _event(event_id: str, at: int, **fields) -> str:
    return json.dumps({"event_id": event_id, "timestamp": START_MS + at, "tenant": "acme", "model": "m",
                       "response": "ok", **fields})


POISON = {
    # The event: once a ValueError in the binary decoder that failed the job for every tenant.
    "poison-binary": _event("poison-binary", 2_000, prompt="my token is 01010101010101010101010101010101 thanks"),
    # A scorer raises on it: its batch is scored again event by event.
    "poison-scorer": _event("poison-scorer", 4_000, prompt=f"please review {MARKER}"),
    # Audited (its e-mail is a violation), but InfluxDB takes no time after 2262: its window's points are refused.
    "poison-sink": json.dumps({"event_id": "poison-sink", "timestamp": "2300-01-01T00:00:00Z", "tenant": "acme",
                               "model": "m", "prompt": "write to jane.doe@example.com", "response": "ok"}),
    # 300,000 levels of nesting: Flink SQL reads the timestamp in Java, then Python parses it.
    "poison-deep": f'{{"event_id": "poison-deep", "timestamp": {START_MS + 2_500}, "metadata": '
    + "[" * 150_000 + "]" * 150_000 + "}",
    # ~1 MB of quotes: not JSON, and its dead letter, escaped, would be twice the DLQ's max.message.bytes.
    "poison-quotes": '{"event_id": "poison-quotes", "prompt": "' + '\\"' * 490_000,
}


def test_poison_events_among_ordinary_traffic_are_isolated_and_the_rest_equals_the_truth(isolated_job):
    settings = isolated_job("poison", metrics_window_s=10, scorers_path=SCORERS)  # the default scorers, and a poison
    samples = list(traffic.generate(400, seed=31, start_ms=START_MS))
    # Logged as they happen: each record's Kafka time is its event's time (the generator's are 10 ms apart).
    messages = [(START_MS + 10 * i, s.key, s.value) for i, s in enumerate(samples)]
    for at, value in zip((100, 200, 250, 275, 300), POISON.values()):
        messages.insert(at, (START_MS + 10 * at, "acme", value))
    produce(settings.kafka_bootstrap, settings.source_topic, messages)

    job.main(settings)  # no restart allowed: an event that failed the job would fail the test

    truths = [s.truth() for s in samples]
    valid = [t for t in truths if not t["malformed"]]
    ordinary = stored_findings(settings, [t["event_id"] for t in valid])
    rows = finding_rows(truths, ordinary)
    assert all(row.ok for row in rows), [row for row in rows if not row.ok]
    assert not [d for d in ordinary if d["rule_id"] == "audit.error"]
    errors = {d["event_id"]: d for d in stored_findings(settings, list(POISON)) if d["rule_id"] == "audit.error"}
    assert set(errors) == {"poison-scorer"} and errors["poison-scorer"]["snippet"] == "toxicity"
    assert errors["poison-scorer"]["severity"] == "high" and MARKER not in json.dumps(errors, default=str)

    dead = [json.loads(m) for m in read_topic(client_config(settings), settings.dlq_topic)]
    malformed = Counter(t["malformed"] for t in truths if t["malformed"])
    refused = [d for d in dead if d["reason"] == "audit_error" and d["failures"][0]["stage"] == "write"]
    assert refused and all(f["where"].startswith("influxdb") and "time outside range" in f["message"]
                           for d in refused for f in d["failures"])
    assert {json.loads(d["raw"])["time_ms"] for d in refused} == {10_413_792_000_000 + 10_000}  # its window's end
    assert Counter(d["reason"] for d in dead) == malformed + Counter(invalid_json=2, audit_error=1 + len(refused))
    [scorer] = [d for d in dead if d["reason"] == "audit_error" and d["failures"][0]["stage"] == "score"]
    assert json.loads(scorer["raw"])["event_id"] == "poison-scorer" and MARKER in scorer["failures"][0]["message"]
    [quotes] = [d for d in dead if d.get("raw_truncated")]
    assert quotes["reason"] == "invalid_json" and quotes["raw_bytes"] == len(POISON["poison-quotes"].encode())
    assert POISON["poison-quotes"].startswith(quotes["raw"])
    # Every valid event counted once in its window, the poisoned ones included (not the one from 2300, whose
    # window InfluxDB refused): it did not move the watermark past the clock, so no later event was late.
    assert influx_totals(settings, *time_range(settings, truths))["events"] == len(valid) + 2
    [email] = [d for d in stored_findings(settings, ["poison-sink"]) if d["rule_id"] == "pii.email"]
    assert email["event_time"].year == 2300  # audited all the same
