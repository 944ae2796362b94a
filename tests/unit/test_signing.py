"""Signed rule pushes: who may change the rules a job runs."""

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flink_jobs.rules_topic import push_record
from flink_jobs.settings import SettingsError, load_settings
from tests.support.pushes import BroadcastContext, audit_operator, push
from udfs.rules import RuleSet, rules_digest
from udfs.signing import SignatureError, generate_key, load_private_key, parse_public_key, sign, trusted_keys, verify

RULESET = RuleSet(rules=[])


def _key():
    pem, public = generate_key()
    return load_private_key(pem, "test.pem"), public


def test_a_push_signed_by_a_trusted_key_verifies_and_names_it():
    private, public = _key()
    record = sign(push_record(RULESET, "default", 3, "alice", "tighten pii"), private)
    trusted = trusted_keys([public])
    assert verify(record, trusted) == record["key_id"] == next(iter(trusted))


@pytest.mark.parametrize("change", [{"version": 4}, {"hash": "0" * 16}, {"author": "mallory"}, {"message": "x"},
                                    {"pushed_at": "2030-01-01T00:00:00+00:00"}, {"name": "staging"}])
def test_any_change_after_signing_breaks_the_signature(change):
    private, public = _key()
    record = {**sign(push_record(RULESET, "default", 3, "alice", "m"), private), **change}
    with pytest.raises(SignatureError, match="bad signature .* altered after signing"):
        verify(record, trusted_keys([public]))


def test_unsigned_and_untrusted_pushes_are_refused_with_the_reason():
    private, public = _key()
    _, other = _key()
    record = push_record(RULESET, "default", 1, "alice", "m")
    with pytest.raises(SignatureError, match="unsigned push"):
        verify(record, trusted_keys([public]))
    with pytest.raises(SignatureError, match="which this job does not trust"):
        verify(sign(record, private), trusted_keys([other]))


def test_key_errors_say_what_to_give(tmp_path, monkeypatch):
    with pytest.raises(SignatureError, match="not an Ed25519 public key"):
        parse_public_key("bm90IGEga2V5")
    with pytest.raises(SignatureError, match="x.pem: not an unencrypted PEM private key"):
        load_private_key(b"nonsense", "x.pem")
    monkeypatch.setenv("LLM_AUDIT_RULES_TRUSTED_KEYS", '["nope"]')
    with pytest.raises(SettingsError, match="not an Ed25519 public key"):
        load_settings()
    _, public = _key()
    monkeypatch.setenv("LLM_AUDIT_RULES_TRUSTED_KEYS", f'["{public}"]')
    assert load_settings().rules_trusted_keys == [public]


def _other_rules() -> dict:
    return RuleSet.model_validate({"rules": [{
        "id": "kw", "version": 1, "description": "d", "category": "policy", "severity": "low", "owner": "t",
        "match": {"type": "keywords", "words": ["forbidden"]}}]}).model_dump(mode="json")


def test_a_collision_of_the_short_hash_does_not_carry_other_rules():
    # Two rulesets with the same 16-character hash (about 2^32 work to find): the benign one is signed,
    # the other is shipped under its signature, with or without its own sha256.
    private, public = _key()
    benign = sign(push_record(RULESET, "default", 3, "alice", "m"), private)
    shipped = {**benign, "rules": _other_rules()}
    with pytest.raises(SignatureError, match="sha256 does not match the rules"):
        verify(shipped, trusted_keys([public]))
    with pytest.raises(SignatureError, match="bad signature"):
        verify({**shipped, "sha256": rules_digest(shipped["rules"])}, trusted_keys([public]))


def test_a_push_signed_by_an_older_llm_audit_is_refused_with_the_reason():
    private, public = _key()
    record = push_record(RULESET, "default", 3, "alice", "m")
    del record["sha256"]
    with pytest.raises(SignatureError, match="signed by an older llm-audit: push again"):
        verify(sign(record, private), trusted_keys([public]))


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


def test_a_job_without_trusted_keys_must_ask_for_unsigned_pushes(monkeypatch):
    monkeypatch.delenv("LLM_AUDIT_RULES_ALLOW_UNSIGNED", raising=False)
    with pytest.raises(SettingsError, match=r"set LLM_AUDIT_RULES_TRUSTED_KEYS .* or LLM_AUDIT_RULES_ALLOW_UNSIGNED=true"):
        load_settings()
    monkeypatch.setenv("LLM_AUDIT_RULES_ALLOW_UNSIGNED", "true")
    assert load_settings().rules_allow_unsigned


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
