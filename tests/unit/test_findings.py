from udfs.events import parse_event
from udfs.findings import Finding, redact, violation_document

EVENT = parse_event('{"event_id": "e1", "timestamp": 1795255200000, "tenant": "acme", "model": "m", '
                    '"prompt": "mail jane@example.com"}')
FINDING = Finding("e1", "pii.email", 1, "pii", "email", "medium", "prompt", 5, 21, 1.0, redact("jane@example.com"))


def test_redact_keeps_a_short_prefix_only():
    assert redact("jane@example.com") == "ja**************"
    assert redact("abc") == "***"


def test_violation_id_is_deterministic_and_distinguishes_spans():
    same = Finding(*[getattr(FINDING, f) for f in FINDING.__slots__])
    assert same.violation_id == FINDING.violation_id == "e1:pii.email@1:prompt:5-21"
    moved = Finding(**{**FINDING.to_dict(), "start": 6})
    assert moved.violation_id != FINDING.violation_id


def test_violation_document_stores_raw_text_only_when_opted_in():
    doc = violation_document(EVENT, FINDING)
    assert "jane@example.com" not in repr(doc)
    assert doc["_id"] == FINDING.violation_id and doc["tenant"] == "acme"
    assert doc["event_time"].isoformat() == "2026-11-21T10:00:00+00:00"
    assert violation_document(EVENT, FINDING, store_raw_text=True)["text"] == EVENT.prompt
