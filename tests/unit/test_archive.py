"""The archive's rows: masked spans, AES-GCM of the raw text, key errors, and the settings that pick them."""

import base64
import json
from dataclasses import replace

import pytest

from flink_jobs.settings import SettingsError, load_settings
from udfs.archive import COLUMNS, PARTITION_COLUMNS, ArchiveKeyError, TextCipher, archive_record, redacted_text
from udfs.events import parse_event
from udfs.findings import Finding

KEY = base64.b64encode(bytes(range(32))).decode()
EVENT = parse_event('{"event_id": "e1", "timestamp": "2026-12-05T23:59:59.999Z", "tenant": "acme", "model": "m", '
                    '"prompt": "mail bob@example.com now", "response": "ok", "prompt_tokens": 7, '
                    '"metadata": {"b": 1, "a": [2]}}')
EMAIL = Finding("e1", "pii.email", 1, "pii", "email", "medium", "prompt", 5, 20, 1.0, "bo*************")


def test_redaction_masks_each_span_in_place_and_keeps_the_rest():
    assert redacted_text(EVENT.prompt, "prompt", [EMAIL]) == "mail bo************* now"
    assert redacted_text(EVENT.prompt, "response", [EMAIL]) == EVENT.prompt  # another field's span
    assert redacted_text(EVENT.prompt, "prompt", [replace(EMAIL, start=90, end=99)]) == EVENT.prompt


@pytest.mark.parametrize("mode", ["redacted", "none", "encrypted"])
def test_a_record_has_every_column_in_order_and_the_text_its_mode_says(mode):
    cipher = TextCipher.from_base64(KEY) if mode == "encrypted" else None
    row = dict(zip([*COLUMNS, *PARTITION_COLUMNS], archive_record(EVENT, [EMAIL], {"prompt": {"toxicity": 0.2},
                                                                                  "response": {"toxicity": 0.7}},
                                                                    "h1", mode, cipher), strict=True))
    assert (row["date"], row["tenant"], row["timestamp_ms"]) == ("2026-12-05", "acme", EVENT.timestamp)
    assert row["toxicity"] == 0.7 and row["bias"] is None and row["rules_hash"] == "h1"
    assert row["metadata"] == '{"a": [2], "b": 1}' and row["prompt_tokens"] == 7 and row["completion_tokens"] is None
    assert json.loads(row["findings"]) == [{"rule_id": "pii.email", "rule_version": 1, "category": "pii",
                                            "severity": "medium", "entity": "email", "field": "prompt", "start": 5,
                                            "end": 20, "score": 1.0, "snippet": "bo*************", "why": ""}]
    assert row["prompt"] == (None if mode == "none" else "mail bo************* now")
    if mode == "encrypted":
        assert row["key_id"] == cipher.key_id and cipher.decrypt(row["prompt_encrypted"], "e1", "prompt") == EVENT.prompt
        assert b"bob@example.com" not in row["prompt_encrypted"]
    else:
        assert row["prompt_encrypted"] is row["response_encrypted"] is row["key_id"] is None


def test_a_ciphertext_opens_only_with_its_key_in_its_own_row_and_field():
    cipher = TextCipher.from_base64(KEY)
    blob = cipher.encrypt("secret text", "e1", "prompt")
    assert cipher.encrypt("secret text", "e1", "prompt") != blob  # a fresh nonce each time
    with pytest.raises(ArchiveKeyError, match="'e2' prompt: wrong key or tampered"):
        cipher.decrypt(blob, "e2", "prompt")
    with pytest.raises(ArchiveKeyError, match="response"):
        cipher.decrypt(blob, "e1", "response")
    other = TextCipher(bytes(32))
    assert other.key_id != cipher.key_id
    with pytest.raises(ArchiveKeyError):
        other.decrypt(blob, "e1", "prompt")
    with pytest.raises(ArchiveKeyError, match="not base64; make one with"):
        TextCipher.from_base64("not a key!")
    with pytest.raises(ArchiveKeyError, match="16, 24 or 32 bytes .* not 5"):
        TextCipher.from_base64(base64.b64encode(b"short").decode())


def test_encrypted_archive_text_needs_a_valid_key(monkeypatch):
    monkeypatch.setenv("LLM_AUDIT_ARCHIVE_TEXT", "encrypted")
    with pytest.raises(SettingsError, match="needs LLM_AUDIT_ARCHIVE_KEY"):
        load_settings()
    monkeypatch.setenv("LLM_AUDIT_ARCHIVE_KEY", "c2hvcnQ=")
    with pytest.raises(SettingsError, match="not 5"):
        load_settings()
    monkeypatch.setenv("LLM_AUDIT_ARCHIVE_KEY", KEY)
    assert load_settings().archive_key.get_secret_value() == KEY
    monkeypatch.setenv("LLM_AUDIT_ARCHIVE_TEXT", "plain")
    with pytest.raises(SettingsError, match="LLM_AUDIT_ARCHIVE_TEXT='plain'.*'redacted', 'none' or 'encrypted'"):
        load_settings()
