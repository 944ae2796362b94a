"""Failures as dead letters (udfs/faults.py): bounded, and each failure with its message. (The engine's side,
a rule that raises is that rule's failure only, is in test_engine.py.)"""

import hashlib
import json

import pytest

from udfs.events import EventError, dead_letter
from udfs.faults import Failure, bounded_dead_letter, failure_dead_letter

pytestmark = pytest.mark.unit


BASE = "version: 1\n    description: d\n    category: policy\n    severity: low\n    owner: t\n"


def test_a_dead_letter_never_exceeds_its_limit_and_says_what_was_cut():
    raw = '"\x01' * 600_000  # each character escaped in JSON: 2.4 MB of dead letter uncut
    text = bounded_dead_letter({"reason": "invalid_json", "errors": ["e"], "raw": raw}, max_bytes=100_000)
    record = json.loads(text)
    assert len(text.encode()) <= 100_000 and record["raw_truncated"] is True
    assert raw.startswith(record["raw"]) and len(record["raw"]) > 10_000
    assert record["raw_bytes"] == len(raw.encode()) and record["raw_sha256"] == hashlib.sha256(raw.encode()).hexdigest()
    small = json.loads(dead_letter("{oops", EventError("invalid_json", ["bad"])))
    assert small == {"reason": "invalid_json", "errors": ["bad"], "raw": "{oops"}  # nothing added when it fits


def test_the_dead_letter_of_a_failure_carries_every_failure_with_its_message():
    try:
        raise KeyError("boom")
    except KeyError as exc:
        failure = Failure.of("archive", "archive row", exc)
    record = json.loads(failure_dead_letter('{"event_id": "e"}', [failure]))
    assert record["reason"] == "audit_error" and record["raw"] == '{"event_id": "e"}'
    assert record["errors"] == ["archive archive row: KeyError: 'boom'"]
    assert record["failures"][0]["origin"].startswith("unit/test_faults.py:")  # none of ours: the innermost


