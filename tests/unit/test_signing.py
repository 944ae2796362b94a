"""Signed rule pushes (udfs/signing.py): keys, signatures, and what a signature covers."""

import pytest

from flink_jobs.rules_topic import push_record
from flink_jobs.settings import SettingsError, load_settings
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
