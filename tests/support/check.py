"""Compare what the audit job stored (MongoDB, InfluxDB, DLQ) with the generator's ground truth."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from flink_jobs.kafka import client_config
from flink_jobs.rules_topic import read_topic
from udfs.archive import archive_date
from udfs.rules import SequenceMatch, load_rules


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
    findings: list[dict]  # every stored violation of the run's events
    dead_letters: list[dict]

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)


def planted_spans(truths: list[dict], kind: str) -> set[tuple]:
    """(event_id, field, start, end) of every planted value of one kind."""
    return {
        (t["event_id"], label["field"], label["start"], label["end"])
        for t in truths if not t["malformed"]
        for label in t["labels"] if label["kind"] == kind
    }


def labelled_events(truths: list[dict], kind: str) -> set[str]:
    return {t["event_id"] for t in truths if any(label["kind"] == kind for label in t["labels"])}


def archive_report(settings, truths: list[dict], shared: bool = False) -> list[dict]:
    """Checks the archive against the truth (one row per valid event, in its date's partition, no planted
    value in clear) -> the rows of the truth's events. shared: the archive holds other runs' events too."""
    from flink_jobs.offline.reader import read_archive

    valid = {t["event_id"]: t for t in truths if not t["malformed"]}
    rows = [row for row in read_archive(settings.archive_dir).df().to_dict("records")
            if not shared or row["event_id"] in valid]
    ids = [row["event_id"] for row in rows]
    assert len(ids) == len(set(ids)), "an event archived twice"
    assert set(ids) == set(valid), f"{len(set(valid) - set(ids))} events missing, {len(set(ids) - set(valid))} unknown"
    for row in rows:
        assert str(row["date"]) == archive_date(row["timestamp_ms"])
        text = f"{row['prompt']} {row['response']}"
        for label in valid[row["event_id"]]["labels"]:
            if label["kind"] in ("email", "secret") and "start" in label:
                assert label["value"] not in text, (row["event_id"], label)
    return rows


def stored_findings(settings, event_ids: list[str]) -> list[dict]:
    """The violation documents of these events."""
    from pymongo import MongoClient

    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        coll = client[settings.mongo_database][settings.violations_collection]
        return list(coll.find({"event_id": {"$in": event_ids}}))


def influx_totals(settings, start_ms: int, stop_ms: int) -> dict[str, int]:
    """Sum of each audit_events field over [start_ms, stop_ms), and of the `violations` counts (all rules')."""
    from influxdb_client import InfluxDBClient

    def query(measurement: str) -> str:
        return f'''
from(bucket: "{settings.influx_bucket}")
  |> range(start: time(v: {start_ms * 1_000_000}), stop: time(v: {stop_ms * 1_000_000}))
  |> filter(fn: (r) => r._measurement == "{measurement}")
  |> group(columns: ["_field"])
  |> sum()
'''
    with InfluxDBClient(url=settings.influx_url, token=settings.influx_token.get_secret_value(),
                        org=settings.influx_org) as client:
        totals = {record.get_field(): int(record.get_value())
                  for table in client.query_api().query(query("audit_events"), org=settings.influx_org)
                  for record in table.records}
        for table in client.query_api().query(query("violations"), org=settings.influx_org):
            for record in table.records:
                totals["violation_points"] = int(record.get_value())
    return totals


def time_range(settings, truths: list[dict]) -> tuple[int, int]:
    """Event-time range holding the run's metric points (stamped with their window's end)."""
    times = [t["timestamp"] for t in truths]
    return min(times), max(times) + settings.metrics_window_s * 1000 + 1


# Which rule must flag each planted kind, and whether the spans must match exactly.
EXACT_SPANS = {"email": "pii.email", "secret": "secret.credential", "person": "pii.person",
               "location": "pii.location"}
PER_EVENT = {"prompt_injection": "injection.pattern", "slow": "policy.slow_response",
             "token_heavy": "policy.token_heavy", "toxicity": "toxicity.high", "bias": "bias.stereotype"}
# Rules that may miss some planted values but must never flag an event without them.
NO_FALSE_ALARMS = {"prompt_injection": "injection.similar"}
# The scorer each model kind needs: a run without it is judged on the other kinds.
SCORER_OF = {"toxicity": "toxicity", "bias": "bias", "person": "entities", "location": "entities"}


def finding_rows(truths: list[dict], findings: list[dict], scorers=frozenset(SCORER_OF.values())) -> list[Row]:
    """Judge findings (violation documents) against the planted labels, rule by rule; `scorers`: the
    scorers the run had (the kinds of the others have no row, and their rules must not fire)."""
    by_rule: dict[str, list[dict]] = {}
    for doc in findings:
        by_rule.setdefault(doc["rule_id"], []).append(doc)
    rows = []
    judged = {kind for kind in (*EXACT_SPANS, *PER_EVENT) if kind not in SCORER_OF or SCORER_OF[kind] in scorers}
    for kind, rule_id in EXACT_SPANS.items():
        if kind not in judged:
            continue
        expected = planted_spans(truths, kind)
        actual = {(d["event_id"], d["field"], d["start"], d["end"]) for d in by_rule.get(rule_id, [])}
        rows.append(Row(f"{rule_id} at the planted spans", len(expected), len(expected & actual)))
        rows.append(Row(f"{rule_id} elsewhere", 0, len(actual - expected)))
    for kind, rule_id in PER_EVENT.items():
        if kind not in judged:
            continue
        expected = labelled_events(truths, kind)
        actual = {d["event_id"] for d in by_rule.get(rule_id, [])}
        rows.append(Row(f"{rule_id}: events flagged", len(expected), len(expected & actual)))
        rows.append(Row(f"{rule_id}: clean events flagged", 0, len(actual - expected)))
    for kind, rule_id in NO_FALSE_ALARMS.items():
        actual = {d["event_id"] for d in by_rule.get(rule_id, [])}
        rows.append(Row(f"{rule_id}: clean events flagged", 0, len(actual - labelled_events(truths, kind))))
    expected = repeated_injections(truths)
    actual = {d["event_id"] for d in by_rule.get(SEQUENCE_RULE, [])}
    rows.append(Row(f"{SEQUENCE_RULE}: 3 attempts by one user in 10 min", len(expected), len(expected & actual)))
    rows.append(Row(f"{SEQUENCE_RULE}: fired wrongly", 0, len(actual - expected)))
    covered = {rule for kind, rule in (*EXACT_SPANS.items(), *PER_EVENT.items()) if kind in judged}
    covered |= set(NO_FALSE_ALARMS.values()) | {SEQUENCE_RULE}
    rows.append(Row("findings of other rules", 0, sum(len(d) for rule, d in by_rule.items() if rule not in covered)))
    return rows


SEQUENCE_RULE = "injection.repeated"


def repeated_injections(truths: list[dict], count: int = 3, within_ms: int = 600_000) -> set[str]:
    """Event ids that complete `count` injection attempts by one user within the window (the default rule)."""
    from udfs.engine import SequenceWindow

    windows: dict[str, SequenceWindow] = {}
    fired = set()
    attempts = sorted((t["timestamp"], t["event_id"], t["user_id"]) for t in truths
                      if not t["malformed"] and any(lb["kind"] == "prompt_injection" for lb in t["labels"]))
    for timestamp, event_id, user in attempts:
        if windows.setdefault(user, SequenceWindow(count, within_ms)).add(timestamp):
            fired.add(event_id)
    return fired


def compare(settings, truths: list[dict]) -> Report:
    """Everything the job stored for these events, judged against the ground truth."""
    valid = [t for t in truths if not t["malformed"]]
    findings = stored_findings(settings, [t["event_id"] for t in valid])
    dead = [json.loads(m) for m in read_topic(client_config(settings), settings.dlq_topic)]
    totals = influx_totals(settings, *time_range(settings, truths))
    sequence_rules = {r.id for r in load_rules(settings.rules_path).rules if isinstance(r.match, SequenceMatch)}
    rows = [
        Row("valid events counted (InfluxDB)", len(valid), totals.get("events", 0)),
        *finding_rows(truths, findings, settings.scorers),
        Row("violations counted (InfluxDB)", len(findings), totals.get("violation_points", 0)),
        Row("violations of events counted (InfluxDB audit_events)",
            sum(f["rule_id"] not in sequence_rules for f in findings), totals.get("violations", 0)),
        Row("malformed -> DLQ", len(truths) - len(valid), len(dead)),
        Row("  DLQ reasons", dict(sorted(Counter(t["malformed"] for t in truths if t["malformed"]).items())),
            dict(sorted(Counter(d["reason"] for d in dead).items()))),
    ]
    return Report(rows, findings, dead)
