"""The audit operator's rule-push handling, driven without Flink: its broadcast state is a dict."""

from __future__ import annotations

import json
from pathlib import Path

from flink_jobs.rules_topic import push_record
from flink_jobs.settings import AuditJobSettings
from flink_jobs.streaming.operators.audit import AuditEvents
from flink_jobs.streaming.records import RULE_CHANGES
from udfs.rules import RuleSet, load_rules

DEFAULT_RULES = Path(__file__).parents[2] / "rules" / "default.yaml"


class BroadcastState(dict):
    def put(self, key, value):
        self[key] = value


class BroadcastContext:
    def __init__(self, timestamp_ms: int = 1_795_000_000_000):
        self.state = BroadcastState()
        self.timestamp_ms = timestamp_ms  # the push's Kafka time

    def get_broadcast_state(self, descriptor):
        return self.state

    def timestamp(self) -> int:
        return self.timestamp_ms


def audit_operator(
    initial: RuleSet, name: str = "default", trusted: tuple[str, ...] = (), allow_unsigned: bool = False
):
    job = AuditEvents(
        initial,
        ruleset_name=name,
        store_raw_text=False,
        scorers=(),
        buckets=1,
        trusted_keys=trusted,
        allow_unsigned=allow_unsigned,
    )
    job.open(None)
    return job


def deployed_operator(settings: AuditJobSettings, initial: RuleSet) -> AuditEvents:
    """The audit operator as a deployment's settings configure its rule pushes."""
    return audit_operator(
        initial, settings.ruleset_name, tuple(settings.rules_trusted_keys), settings.rules_allow_unsigned
    )


def push(job: AuditEvents, record: dict | str, ctx: BroadcastContext) -> list[dict]:
    """The rule_changes documents of one record on the rules topic (a dict is sent as its JSON)."""
    value = record if isinstance(record, str) else json.dumps(record)
    return [row[1] for tag, row in job.process_broadcast_element(value, ctx) if tag == RULE_CHANGES]


def assert_unsigned_empty_push_is_refused(settings: AuditJobSettings) -> None:
    """The attack on a deployment: an unsigned push of no rules, correct in every other way, is rejected,
    and the job's rules keep running."""
    job, ctx = deployed_operator(settings, load_rules(DEFAULT_RULES)), BroadcastContext()
    [change] = push(job, push_record(RuleSet(rules=[]), settings.ruleset_name, 1, "mallory", "audit off"), ctx)
    assert not change["accepted"] and change["reason"].startswith("unsigned push"), change
    assert ctx.state == {}
