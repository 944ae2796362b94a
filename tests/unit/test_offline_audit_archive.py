"""Re-auditing the archive (flink_jobs/offline/audit_archive.py): an archived row back into its event."""

import base64
import json

from udfs.archive import ARCHIVE_COLUMNS, TextCipher, archive_record
from udfs.events import parse_event
from udfs.findings import Finding

KEY = base64.b64encode(bytes(range(32))).decode()


EVENT = parse_event('{"event_id": "e1", "timestamp": "2026-12-05T23:59:59.999Z", "tenant": "acme", "model": "m", '
                    '"prompt": "mail bob@example.com now", "response": "ok", "prompt_tokens": 7, '
                    '"metadata": {"b": 1, "a": [2]}}')


EMAIL = Finding("e1", "pii.email", 1, "pii", "email", "medium", "prompt", 5, 20, 1.0, "bo*************")


def _sealed_row(cipher: TextCipher, **changes) -> dict:
    row = dict(zip(ARCHIVE_COLUMNS, archive_record(EVENT, [EMAIL], {}, "h1", "encrypted", cipher)))
    return {**row, **changes}


def test_an_archived_ciphertext_that_does_not_open_falls_back_to_the_redacted_text():
    from flink_jobs.offline.audit_archive import archived_event

    cipher = TextCipher.from_base64(KEY)
    row = _sealed_row(cipher)
    event, unopened = archived_event(row, cipher)
    assert json.loads(event)["prompt"] == EVENT.prompt and unopened == []
    tampered = bytearray(row["prompt_encrypted"])
    tampered[-1] ^= 1
    for bad in (bytes(tampered), b"short", b""):
        event, unopened = archived_event({**row, "prompt_encrypted": bad}, cipher)
        assert unopened == ["prompt"] and json.loads(event)["prompt"] == "mail bo************* now"
        assert json.loads(event)["response"] == "ok"  # the other field still opens
    # Another key under the row's key id (a key id collision, a swapped key): redacted text too.
    other = TextCipher(bytes(32))
    other.key_id = cipher.key_id
    event, unopened = archived_event(row, other)
    assert unopened == ["prompt", "response"] and json.loads(event)["prompt"] == "mail bo************* now"
    # Rows of schema 1 have no tenant_full: the directory's tenant is the tenant.
    assert json.loads(archived_event({**row, "tenant_full": None}, None)[0])["tenant"] == "acme"
