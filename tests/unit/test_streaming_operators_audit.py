"""The audit operator's side of rule pushes (flink_jobs/streaming/operators/audit.py,
AuditEvents.process_broadcast_element): the flag and point of unsigned rules while they run, and no record of
the rules topic fails the job; without Flink (tests/support/pushes.py)."""

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from flink_jobs.rules_topic import push_record
from tests.support.pushes import BroadcastContext, audit_operator
from udfs.rules import RuleSet
from udfs.signing import generate_key, load_private_key, sign

RULESET = RuleSet(rules=[])


def _key():
    pem, public = generate_key()
    return load_private_key(pem, "test.pem"), public


def test_unsigned_rules_are_flagged_while_they_run_and_a_forged_signature_is_refused_even_so():
    from flink_jobs.streaming.records import RULE_CHANGES, RULES_POINTS

    private, public = _key()
    eve, _ = _key()
    job, ctx = audit_operator(RULESET, trusted=(public,), allow_unsigned=True), BroadcastContext()

    def pushed(record: dict) -> tuple[dict, dict]:
        [(changes, change), (points, point)] = job.process_broadcast_element(json.dumps(record), ctx)
        assert (changes, points) == (RULE_CHANGES, RULES_POINTS) and point[1]["time_ms"] == ctx.timestamp_ms
        return change[1], point[1]

    # LLM_AUDIT_RULES_ALLOW_UNSIGNED=true: an unsigned push runs, and is flagged (alert llm-audit-rules-unsigned).
    change, point = pushed(push_record(RULESET, "default", 1, "bob", "unsigned"))
    assert change["accepted"] and not change["rules_signed"]
    assert (point["measurement"], point["tags"], point["fields"]) == ("rules", {"ruleset": "default"}, {"unsigned": 1})
    change, point = pushed(sign(push_record(RULESET, "default", 2, "alice", "signed"), private))
    assert change["accepted"] and change["rules_signed"] and point["fields"] == {"unsigned": 0}
    # A push naming a trusted key is held to its signature: no forgery rides on unsigned mode.
    forged = {**sign(push_record(RULESET, "default", 3, "alice", "m"), private), "author": "mallory"}
    change, point = pushed(forged)
    assert not change["accepted"] and "bad signature" in change["reason"] and point["fields"] == {"unsigned": 0}
    # Signed by a key the job does not trust: unsigned as far as the job knows.
    change, point = pushed(sign(push_record(RULESET, "default", 4, "eve", "m"), eve))
    assert change["accepted"] and not change["rules_signed"] and point["fields"] == {"unsigned": 1}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


_PUSH_FIELDS = ("version", "sha256", "hash", "author", "message", "pushed_at", "key_id", "signature", "rules")


_TRUSTED = _key()[1]


@given(st.fixed_dictionaries({}, optional={field: _JSON for field in _PUSH_FIELDS}), st.booleans())
# Each record that once raised, kept as a regression case: an unhashable key_id, in either mode.
@example({"key_id": [1], "signature": "x"}, True)
@example({"key_id": {"a": 1}, "signature": "x"}, False)
@example({"key_id": "k", "signature": ["x"]}, False)
@settings(max_examples=400, deadline=None)
def test_no_record_on_the_rules_topic_fails_the_job(fields, allow_unsigned):
    # Anyone who can write the topic writes any JSON: once, a list as key_id raised in the operator, and the
    # job, which reads the topic from the start, would have failed at every restart.
    job = audit_operator(RULESET, trusted=(_TRUSTED,), allow_unsigned=allow_unsigned)
    outputs = list(job.process_broadcast_element(json.dumps({"name": "default", **fields}), BroadcastContext()))
    [(_, change), (_, point)] = outputs
    assert change[1]["accepted"] is False or allow_unsigned  # nothing unsigned runs without unsigned mode
    assert point[1]["fields"]["unsigned"] in (0, 1)
