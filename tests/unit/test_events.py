import json

import jsonschema
import pytest

from devstack.traffic import generate
from udfs.events import SCHEMA_PATH, EventError, FieldBounds, dead_letter, parse_event

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


def test_a_dead_letter_is_never_stamped_beyond_what_the_dlq_broker_accepts():
    from pyflink.common import Instant

    from flink_jobs.streaming.operators.parse import parse_or_dead_letter

    arrival = Instant.of_epoch_milli(1_796_000_000_000)
    # Normally its arrival, or just past the watermark so that it counts in a window still open...
    assert parse_or_dead_letter("{", arrival, 1_795_000_000_000)[1][1] == 1_796_000_000_000
    assert parse_or_dead_letter("{", arrival, 1_796_000_060_000)[1][1] == 1_796_000_060_001
    # ...but events a week ahead of the clock do not drag it past the broker's limit (1 h ahead).
    event, (record, time_ms) = parse_or_dead_letter("{", arrival, 1_796_600_000_000)
    assert event is None and '"reason": "invalid_json"' in record and time_ms == 1_796_000_000_000 + 3_000_000
