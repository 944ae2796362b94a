"""One place per concept (issue 31): the event's field lists are read off AuditEvent, and every module that
names event fields takes them from there."""

import pytest

from udfs.events import (
    CONTEXT_FIELDS,
    IDENTIFIERS,
    MEASURE_FIELDS,
    TEXT_FIELDS,
    AuditEvent,
    Role,
    fields_of,
    parse_event,
)


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


def test_field_rules_compare_the_measures_and_the_context_and_sequences_count_by_context():
    from udfs.rules import SEQUENCE_KEYS, Condition, SequenceMatch, rules_json_schema

    defs = rules_json_schema()["$defs"]
    assert tuple(defs[Condition.__name__]["properties"]["field"]["enum"]) == MEASURE_FIELDS + CONTEXT_FIELDS
    assert set(SEQUENCE_KEYS) <= set(CONTEXT_FIELDS)
    assert tuple(defs[SequenceMatch.__name__]["properties"]["per"]["enum"]) == SEQUENCE_KEYS


def test_a_violation_carries_the_context_fields_in_the_models_order():
    from udfs.findings import Finding, violation_document

    event = parse_event('{"event_id": "e1", "timestamp": 1795255200000, "tenant": "acme", "model": "m", '
                        '"user_id": "u1", "prompt": "hi"}')
    doc = violation_document(event, Finding("e1", "r", 1, "pii", "x", "low", "prompt", 0, 2, 1.0, "**"))
    context = [key for key in doc if key in CONTEXT_FIELDS]
    assert context == list(CONTEXT_FIELDS)
    assert {key: doc[key] for key in context} == {**dict.fromkeys(CONTEXT_FIELDS), "tenant": "acme", "model": "m",
                                                  "user_id": "u1"}


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
