"""The console's store (console/store.py): its paging cursors, without services."""

import base64

import pytest

from console.store import BadRequest, decode_cursor, encode_cursor


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "raw",
    [
        '[1e400,"x"]',
        '[1e300,"x"]',
        '[-1e20,"x"]',
        '[10e400,"x"]',
        f'[{10**400},"x"]',
        '[true,"x"]',
        '[1.5,"x"]',
        "[1,2]",
        '{"a":1,"b":2}',
        '"xy"',
        "[]",
        "{",
        "",
    ],
)
def test_a_cursor_the_console_did_not_give_is_a_bad_request(raw):
    with pytest.raises(BadRequest, match="not one this console gave"):
        decode_cursor(_cursor(raw) or "%%")


def test_a_cursor_round_trips():
    from datetime import UTC, datetime

    doc = {"event_time": datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC), "_id": "acme/e%2F1:r@1:prompt:0-5"}
    assert decode_cursor(encode_cursor(doc)) == (doc["event_time"], doc["_id"])
