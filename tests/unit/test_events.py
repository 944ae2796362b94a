"""The audit event (udfs/events.py): parsing and its errors, the JSON schema file, the bounds, dead letters, and
the field lists read off AuditEvent."""

import json

import jsonschema
import pytest

from devstack.traffic import generate
from udfs.events import (
    CONTEXT_FIELDS,
    IDENTIFIERS,
    MEASURE_FIELDS,
    SCHEMA_PATH,
    TEXT_FIELDS,
    AuditEvent,
    EventError,
    FieldBounds,
    Role,
    dead_letter,
    fields_of,
    parse_event,
)

SCHEMA = jsonschema.Draft202012Validator(
    json.loads(SCHEMA_PATH.read_text()), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


VALID = {"event_id": "e1", "timestamp": "2026-11-21T10:00:00Z", "tenant": "acme", "model": "gpt-4o", "prompt": "hi"}


def test_parses_rfc3339_and_epoch_ms_to_the_same_instant():
    a = parse_event(json.dumps(VALID))
    b = parse_event(json.dumps({**VALID, "timestamp": 1795255200000}))
    c = parse_event(json.dumps({**VALID, "timestamp": "2026-11-21T11:00:00+01:00"}))
    assert a.timestamp == b.timestamp == c.timestamp == 1795255200000
    assert a.texts() == [("prompt", "hi")]


@pytest.mark.parametrize(
    "raw, reason, message",
    [
        ('{"event_id": "e1", ', "invalid_json", "EOF"),
        ("[1, 2]", "not_an_object", "JSON object"),
        (json.dumps({k: v for k, v in VALID.items() if k != "tenant"}), "schema_violation", "tenant: Field required"),
        (json.dumps({**VALID, "timestamp": 1795255200}), "schema_violation", "looks like epoch seconds"),
        (json.dumps({**VALID, "timestamp": "2026-11-21T10:00:00"}), "schema_violation", "no UTC offset"),
        (json.dumps({**VALID, "timestamp": "yesterday"}), "schema_violation", "not RFC 3339"),
        (json.dumps({k: v for k, v in VALID.items() if k != "prompt"}), "schema_violation", "at least one of 'prompt' and 'response'"),
        (json.dumps({**VALID, "promt": "typo"}), "schema_violation", "promt: unknown field; valid fields: event_id"),
        (json.dumps({**VALID, "latency_ms": -1}), "schema_violation", "latency_ms: Input should be greater than or equal to 0"),
    ],
)
def test_rejects_with_reason_and_field(raw, reason, message):
    with pytest.raises(EventError, match=message) as info:
        parse_event(raw)
    assert info.value.reason == reason
    record = json.loads(dead_letter(raw, info.value))
    assert record["reason"] == reason and record["raw"] == raw and record["errors"]


def _schema_accepts(obj) -> bool:
    return SCHEMA.is_valid(obj)


def test_json_schema_file_agrees_with_the_validator_on_generated_traffic():
    samples = list(generate(3000, seed=11))
    assert sum(s.malformed is not None for s in samples) > 10
    for sample in samples:
        try:
            obj = json.loads(sample.value)
        except json.JSONDecodeError:
            assert sample.malformed == "invalid_json"
            continue
        try:
            parse_event(sample.value)
            pydantic_ok = True
        except EventError:
            pydantic_ok = False
        assert pydantic_ok == _schema_accepts(obj) == (sample.malformed is None), sample.value


@pytest.mark.parametrize(
    "patch",
    [{"prompt": None, "response": "r"}, {"prompt": None}, {"timestamp": True}, {"event_id": ""}, {"metadata": []},
     {"prompt_tokens": 1.5}, {"extra": 1}, {"timestamp": "2026-11-21T10:00:00"}, {"timestamp": "yesterday"},
     {"timestamp": "2026-11-21T10:00:00.123+05:30"}, {"timestamp": 1795255200}, {"application": "a" * 256},
     {"application": "a" * 257}, {"tenant": "ac\u0000me"}, {"user_id": "u\u202e1"}, {"session_id": "s\u200b"},
     {"model": "gpt\n4o"}, {"tenant": "ünïcödé 租户"}, {"prompt": "x" * 10_000_000}, {"response": "x" * 10_000_001}],
)
def test_json_schema_file_agrees_with_the_validator_on_edge_cases(patch):
    obj = {**VALID, **patch}
    try:
        parse_event(json.dumps(obj))
        ok = True
    except EventError:
        ok = False
    assert ok == _schema_accepts(obj)


def test_hostile_fields_are_refused_naming_the_field_and_the_bound():
    # Hole 6 of issue 30: a 300,000-character application was stored in every violation of its event.
    with pytest.raises(EventError) as info:
        parse_event(json.dumps({**VALID, "application": "a" * 300_000, "tenant": "ac\x1bme", "metadata": {"k": "v" * 70_000}}))
    assert info.value.reason == "schema_violation"
    assert info.value.errors == [
        "tenant: control character U+001B at 2; identifiers hold printable text only",
        "application: 300,000 characters, over the bound of 256 (LLM_AUDIT_MAX_ID_CHARS)",
        "metadata: 70,009 bytes of JSON, over the bound of 65,536 (LLM_AUDIT_MAX_METADATA_BYTES)",
    ]
    # The bounds are settings: a deployment with longer identifiers or texts raises them.
    wide = FieldBounds(id_chars=400_000, text_chars=10, metadata_bytes=100_000)
    assert parse_event(json.dumps({**VALID, "application": "a" * 300_000}), wide).application == "a" * 300_000
    with pytest.raises(EventError, match=r"prompt: 11 characters, over the bound of 10 \(LLM_AUDIT_MAX_TEXT_CHARS\)"):
        parse_event(json.dumps({**VALID, "prompt": "x" * 11}), wide)


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        (253_402_300_800_000, "not a time up to 9999-12-31"),
        ("1e400", "not a time up to"),
        ('"9999-12-31T23:59:59-01:00"', "not a time up to"),
        ("NaN", "not a time up to"),
    ],
)
def test_times_past_year_9999_are_schema_violations_not_crashes(timestamp, message):
    raw = f'{{"event_id":"a","timestamp":{timestamp},"tenant":"t","model":"m","prompt":"x"}}'
    with pytest.raises(EventError, match=message) as caught:
        parse_event(raw)
    assert caught.value.reason in ("schema_violation", "invalid_json")


@pytest.mark.parametrize("field", ["cost_usd", "latency_ms"])
def test_infinite_numbers_are_schema_violations(field):
    with pytest.raises(EventError, match=f"{field}: Input should be a finite number"):
        parse_event(f'{{"event_id":"a","timestamp":1800000000000,"tenant":"t","model":"m","prompt":"x","{field}":1e999}}')


def test_token_counts_past_32_bits_are_schema_violations_not_wrapped_in_the_archive():
    ok = '{"event_id":"a","timestamp":1800000000000,"tenant":"t","model":"m","prompt":"x","prompt_tokens":%d}'
    assert parse_event(ok % (2**31 - 1)).prompt_tokens == 2**31 - 1
    with pytest.raises(EventError, match="prompt_tokens: Input should be less than or equal to 2147483647"):
        parse_event(ok % 3_000_000_000)


def test_a_parser_defect_on_one_message_is_its_dead_letter_not_a_crash(monkeypatch):
    def broken(raw):
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(AuditEvent, "model_validate_json", broken)
    with pytest.raises(EventError) as caught:
        parse_event("{}")
    assert caught.value.reason == "audit_error"
    assert caught.value.errors == ["parse event: OverflowError: cannot convert float infinity to integer"]


def test_the_field_lists_read_off_the_model_are_the_ones_the_modules_wrote_out_before():
    assert TEXT_FIELDS == ("prompt", "response")
    assert CONTEXT_FIELDS == ("tenant", "application", "model", "model_version", "user_id", "session_id")
    assert IDENTIFIERS == ("event_id", *CONTEXT_FIELDS)
    assert MEASURE_FIELDS == ("latency_ms", "prompt_tokens", "completion_tokens", "cost_usd")


def test_each_field_has_at_most_one_role_and_only_time_and_metadata_have_none():
    roles = {name: [m for m in info.metadata if isinstance(m, Role)] for name, info in AuditEvent.model_fields.items()}
    assert all(len(found) <= 1 for found in roles.values())
    assert [name for name, found in roles.items() if not found] == ["timestamp", "metadata"]
    assert fields_of(*Role) == tuple(name for name, found in roles.items() if found)


@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_each_text_field_is_bounded_and_audited(field):
    from udfs.events import EventError, FieldBounds

    event = AuditEvent(event_id="e", timestamp=1795255200000, tenant="t", model="m", **{field: "x" * 2_000})
    assert event.texts() == [(field, "x" * 2_000)]
    assert FieldBounds(text_chars=1_000).problems(event) == [
        f"{field}: 2,000 characters, over the bound of 1,000 (LLM_AUDIT_MAX_TEXT_CHARS)"
    ]
    with pytest.raises(EventError, match="at least one of 'prompt' and 'response' is required"):
        parse_event('{"event_id": "e", "timestamp": 1795255200000, "tenant": "t", "model": "m"}')
