"""Findings and violation documents (udfs/findings.py): redaction, ids, and what a document holds."""

from udfs.events import CONTEXT_FIELDS, parse_event
from udfs.findings import Finding, redact, violation_document, violation_id

EVENT = parse_event('{"event_id": "e1", "timestamp": 1795255200000, "tenant": "acme", "model": "m", '
                    '"prompt": "mail jane@example.com"}')


FINDING = Finding("e1", "pii.email", 1, "pii", "email", "medium", "prompt", 5, 21, 1.0, redact("jane@example.com"))


def test_redact_keeps_a_short_prefix_only():
    assert redact("jane@example.com") == "ja**************"
    assert redact("abc") == "***"


def test_violation_id_is_deterministic_and_distinguishes_spans():
    same = Finding(*[getattr(FINDING, f) for f in FINDING.__slots__])
    assert violation_id("acme", same) == violation_id("acme", FINDING) == "acme/e1:pii.email@1:prompt:5-21"
    moved = Finding(**{**FINDING.to_dict(), "start": 6})
    assert violation_id("acme", moved) != violation_id("acme", FINDING)


def test_violation_id_cannot_name_another_tenants_violation():
    # Hole 5 of issue 30: the same event_id and span in tenant B named tenant A's document.
    assert violation_id("evil", FINDING) != violation_id("acme", FINDING)
    # Separators in a tenant or event id are encoded: no crafted pair of them spells another's id.
    crafted = Finding(**{**FINDING.to_dict(), "event_id": "x:pii.email@1:prompt:5-21"})
    ids = {violation_id("a/b", FINDING), violation_id("a", Finding(**{**FINDING.to_dict(), "event_id": "b/e1"})),
           violation_id("acme", crafted), violation_id("acme:x", FINDING), violation_id("acme", FINDING)}
    assert len(ids) == 5 and all(i.count("/") == 1 for i in ids)


def test_violation_document_stores_raw_text_only_when_opted_in():
    doc = violation_document(EVENT, FINDING)
    assert "jane@example.com" not in repr(doc)
    assert doc["_id"] == violation_id("acme", FINDING) and doc["tenant"] == "acme"
    assert doc["event_time"].isoformat() == "2026-11-21T10:00:00+00:00"
    assert violation_document(EVENT, FINDING, store_raw_text=True)["text"] == EVENT.prompt


def test_a_violation_carries_the_context_fields_in_the_models_order():
    from udfs.findings import Finding, violation_document

    event = parse_event('{"event_id": "e1", "timestamp": 1795255200000, "tenant": "acme", "model": "m", '
                        '"user_id": "u1", "prompt": "hi"}')
    doc = violation_document(event, Finding("e1", "r", 1, "pii", "x", "low", "prompt", 0, 2, 1.0, "**"))
    context = [key for key in doc if key in CONTEXT_FIELDS]
    assert context == list(CONTEXT_FIELDS)
    assert {key: doc[key] for key in context} == {**dict.fromkeys(CONTEXT_FIELDS), "tenant": "acme", "model": "m",
                                                  "user_id": "u1"}


def test_a_score_finding_carries_its_models_evidence_but_not_the_names_spans():
    # FerretDB refused the whole document: {"entities": [[53, 59, "NRP", "NORP"]]} is an array of arrays.
    toxic = Finding("e1", "toxicity.high", 1, "toxicity", "toxicity", "high", "prompt", 0, 21, 0.97, "")
    evidence = {"prompt": {"toxicity_span": [0, 21], "entities": [[5, 9, "NRP", "NORP"]]}}
    doc = violation_document(EVENT, toxic, scores={"prompt": {"toxicity": 0.97}}, evidence=evidence)
    assert doc["evidence"] == {"toxicity_span": [0, 21]} and doc["scores"] == {"toxicity": 0.97}
    only_names = violation_document(EVENT, toxic, scores={"prompt": {"toxicity": 0.97}},
                                    evidence={"prompt": {"entities": [[5, 9, "NRP", "NORP"]]}})
    assert "evidence" not in only_names
