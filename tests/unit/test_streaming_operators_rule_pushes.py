"""Which records of the rules topic a job runs (flink_jobs/streaming/operators/rule_pushes.py): signatures checked
before rules are parsed, no rollback; driven through the audit operator without Flink (tests/support/pushes.py)."""

import json

import pytest

from flink_jobs.rules_topic import push_record
from tests.support.pushes import BroadcastContext, audit_operator, push
from udfs.rules import RuleSet
from udfs.signing import generate_key, load_private_key, sign

RULESET = RuleSet(rules=[])


def _key():
    pem, public = generate_key()
    return load_private_key(pem, "test.pem"), public


def _other_rules() -> dict:
    return RuleSet.model_validate({"rules": [{
        "id": "kw", "version": 1, "description": "d", "category": "policy", "severity": "low", "owner": "t",
        "match": {"type": "keywords", "words": ["forbidden"]}}]}).model_dump(mode="json")


def _job(public: str | None = None):
    return audit_operator(RULESET, trusted=(public,) if public else (), allow_unsigned=not public)


@pytest.mark.parametrize("signed", [True, False])
def test_rules_swapped_after_signing_are_rejected_before_they_are_parsed(monkeypatch, signed):
    import flink_jobs.streaming.operators.rule_pushes

    def parse(record):
        raise AssertionError("parsed a push whose rules were not checked")

    monkeypatch.setattr(flink_jobs.streaming.operators.rule_pushes, "ruleset_from_push", parse)
    private, public = _key()
    record = push_record(RULESET, "default", 3, "alice", "m")
    record = {**(sign(record, private) if signed else record), "rules": {"rules": [{"match": {"file": "/etc/shadow"}}]}}
    job, ctx = _job(public if signed else None), BroadcastContext()
    [change] = push(job, record, ctx)
    assert not change["accepted"] and "sha256 does not match the rules" in change["reason"]
    assert ctx.state == {}


def test_a_replayed_older_push_is_a_rollback_recorded_as_a_new_document():
    private, public = _key()
    job, ctx = _job(public), BroadcastContext()
    old = json.dumps(sign(push_record(RULESET, "default", 1, "alice", "first"), private))
    new = json.dumps(sign(push_record(RuleSet.model_validate(_other_rules()), "default", 2, "alice", "kw"), private))
    changes = [change for value in (old, new, old, new) for change in push(job, value, ctx)]
    assert [c["accepted"] for c in changes] == [True, True, False, False]
    assert "version 1 is not above the running version 2" in changes[2]["reason"]
    assert "push them again with a higher version" in changes[2]["reason"]
    assert "version 2 is not above the running version 2" in changes[3]["reason"]
    assert len({c["_id"] for c in changes}) == 4 and changes[2]["_id"].startswith(changes[0]["_id"].removesuffix("accepted"))
    assert json.loads(ctx.state["default"])["version"] == 2
