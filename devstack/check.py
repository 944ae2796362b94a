"""Compare what the audit job stored (MongoDB, InfluxDB, DLQ) with the generator's ground truth."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    what: str
    expected: object
    actual: object

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@dataclass(frozen=True)
class Report:
    rows: list[Row]
    expected_violations: set[tuple]
    stored_violations: set[tuple]
    dead_letters: list[dict]

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows) and self.expected_violations == self.stored_violations


def expected_email_violations(truths: list[dict]) -> set[tuple]:
    """(event_id, field, start, end) of every planted email: what rule pii.email must find."""
    return {
        (t["event_id"], label["field"], label["start"], label["end"])
        for t in truths if not t["malformed"]
        for label in t["labels"] if label["kind"] == "email"
    }


def stored_violations(settings, event_ids: list[str], rule_id: str = "pii.email") -> set[tuple]:
    from pymongo import MongoClient

    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        coll = client[settings.mongo_database][settings.violations_collection]
        docs = coll.find({"rule_id": rule_id, "event_id": {"$in": event_ids}},
                         {"event_id": 1, "field": 1, "start": 1, "end": 1})
        found = [(d["event_id"], d["field"], d["start"], d["end"]) for d in docs]
    if len(found) != len(set(found)):
        raise AssertionError(f"duplicate violations stored: {len(found) - len(set(found))}")
    return set(found)


def read_topic(bootstrap: str, topic: str) -> list[str]:
    """Every committed message of a single-partition topic, oldest first."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        messages = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                messages.extend(r.value.decode() for r in records)
        return messages
    finally:
        consumer.close()


def influx_totals(settings, start_ms: int, stop_ms: int) -> dict[str, int]:
    """Sum of each audit_events field over [start_ms, stop_ms)."""
    from influxdb_client import InfluxDBClient

    query = f'''
from(bucket: "{settings.influx_bucket}")
  |> range(start: time(v: {start_ms * 1_000_000}), stop: time(v: {stop_ms * 1_000_000}))
  |> filter(fn: (r) => r._measurement == "audit_events")
  |> group(columns: ["_field"])
  |> sum()
'''
    with InfluxDBClient(url=settings.influx_url, token=settings.influx_token.get_secret_value(),
                        org=settings.influx_org) as client:
        tables = client.query_api().query(query, org=settings.influx_org)
    return {record.get_field(): int(record.get_value()) for table in tables for record in table.records}


def compare(settings, truths: list[dict]) -> Report:
    valid = [t for t in truths if not t["malformed"]]
    expected = expected_email_violations(truths)
    stored = stored_violations(settings, [t["event_id"] for t in valid])
    dead = [json.loads(m) for m in read_topic(settings.kafka_bootstrap, settings.dlq_topic)]
    window_ms = settings.metrics_window_s * 1000
    times = [t["timestamp"] for t in truths]
    # Points are stamped with their window's end, up to one window after the last event.
    totals = influx_totals(settings, min(times), max(times) + window_ms + 1)
    rows = [
        Row("valid events counted (InfluxDB)", len(valid), totals.get("events", 0)),
        Row("email violations (MongoDB)", len(expected), len(stored)),
        Row("  of which at the planted span", len(expected), len(expected & stored)),
        Row("violations counted (InfluxDB)", len(expected), totals.get("violations", 0)),
        Row("malformed -> DLQ", len(truths) - len(valid), len(dead)),
        Row("  DLQ reasons", dict(sorted(Counter(t["malformed"] for t in truths if t["malformed"]).items())),
            dict(sorted(Counter(d["reason"] for d in dead).items()))),
    ]
    return Report(rows, expected, stored, dead)
