"""The archive's rows (udfs/archive.py): masked spans, AES-GCM of the raw text, key errors, partition values, and
columns named once."""

import base64
import json
from dataclasses import replace

import pytest

from udfs.archive import (
    ARCHIVE_COLUMNS,
    PARTITION_MAX_BYTES,
    ArchiveKeyError,
    TextCipher,
    archive_record,
    escaped_size,
    redacted_text,
    tenant_partition,
)
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
    row = dict(zip(ARCHIVE_COLUMNS, archive_record(EVENT, [EMAIL], {"prompt": {"toxicity": 0.2},
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


ODD_TENANTS = ["é" * 256, "/" * 256, "%" * 256, "\x00" * 256, "a" * 256, "😀" * 256, "__DEFAULT_PARTITION__",
               "__HIVE_DEFAULT_PARTITION__", "x~" + "0" * 32, tenant_partition("é" * 256)]


@pytest.mark.parametrize("tenant", ["acme", "..", ".", "a\nb", "a\x00b", "a/b=c:d%", "é" * 100, "a" * 200,
                                    "~", "x~" + "0" * 31, "__DEFAULT_PARTITION"])
def test_a_tenant_whose_directory_name_fits_is_its_own_partition_value(tenant):
    assert tenant_partition(tenant) == tenant  # the layout of every archive so far


@pytest.mark.parametrize("tenant", ODD_TENANTS)
def test_a_long_or_odd_tenant_gets_a_bounded_partition_value_with_a_readable_prefix(tenant):
    value = tenant_partition(tenant)
    assert value != tenant and escaped_size(value) <= PARTITION_MAX_BYTES
    assert len(("tenant=" + value).encode()) < 255 and value[:4] == tenant[:4]
    assert tenant_partition(tenant) == value  # the same every time, on every worker


def test_distinct_tenants_get_distinct_partition_values():
    tenants = {*ODD_TENANTS, "é" * 255, "é" * 255 + "e", "/" * 255, "a" * 201, "a" * 202}
    tenants |= {tenant_partition(t) for t in tenants}  # a tenant that is another's bounded value
    assert len({tenant_partition(t) for t in tenants}) == len(tenants)


def test_escaped_size_counts_what_flink_escapes_as_three_bytes():
    # Flink's PartitionPathUtils: control characters, "#%'*/:=?[\]^{} and DEL as %XX; the rest as UTF-8.
    assert escaped_size('\x00\x1f"#%\'*/:=?[\\]^{}\x7f') == 3 * 18
    assert escaped_size("az09 .-_~!@$&()+,;<>|`") == 22 and escaped_size("é😀") == 2 + 4


def test_a_row_holds_the_tenant_as_sent_and_its_partition_value():
    event = EVENT.model_copy(update={"tenant": "/" * 256})
    row = dict(zip(ARCHIVE_COLUMNS, archive_record(event, [], {}, "h1"), strict=True))
    assert row["tenant_full"] == "/" * 256 and row["tenant"] == tenant_partition("/" * 256)
    assert row["schema_version"] == 2


def test_every_event_field_is_archived_and_read_back_as_it_was():
    from flink_jobs.offline.audit_archive import archived_event
    from udfs.archive import EVENT_COLUMNS
    from udfs.events import AuditEvent

    full = {"event_id": "e:1", "timestamp": 1795255200123, "tenant": "t/1", "application": "app", "model": "m",
            "model_version": "v2", "user_id": "u", "session_id": "s", "prompt": "mail bob@example.com",
            "response": "ok", "latency_ms": 12.5, "prompt_tokens": 3, "completion_tokens": 4, "cost_usd": 0.25,
            "metadata": {"k": [1, {"n": None}]}}
    assert set(full) == set(AuditEvent.model_fields)  # a new field: add it here, and to the archive
    event = AuditEvent(**full)
    cipher = TextCipher.from_base64(KEY)
    row = dict(zip(ARCHIVE_COLUMNS, archive_record(event, [EMAIL], {}, "h1", "encrypted", cipher), strict=True))
    assert {name: row[name] for name in EVENT_COLUMNS} == {name: full[name] for name in EVENT_COLUMNS}
    assert parse_event(archived_event(row, cipher)[0]) == event


def test_each_column_type_is_named_once_for_flink_sql_arrow_duckdb_and_flink():
    import pyarrow as pa
    from pyflink.common import Types

    from flink_jobs.offline.reader import ARCHIVE_SCHEMA
    from flink_jobs.streaming.records import ARCHIVED
    from udfs.archive import FINDINGS_JSON_TYPE, ColumnType

    types = {ColumnType.STRING: ("STRING", pa.string(), "VARCHAR", Types.STRING()),
             ColumnType.INT: ("INT", pa.int32(), "INTEGER", Types.INT()),
             ColumnType.BIGINT: ("BIGINT", pa.int64(), "BIGINT", Types.LONG()),
             ColumnType.DOUBLE: ("DOUBLE", pa.float64(), "DOUBLE", Types.DOUBLE()),
             ColumnType.BYTES: ("BYTES", pa.binary(), "BLOB", Types.PRIMITIVE_ARRAY(Types.BYTE()))}
    assert set(types) == set(ColumnType)
    for kind, (sql, arrow, duckdb, _) in types.items():
        assert (f"{kind}", kind.arrow, kind.duckdb) == (sql, arrow, duckdb)  # f"{kind}": the sink's DDL
    assert [(f.name, f.type) for f in ARCHIVE_SCHEMA] == [(n, types[k][1]) for n, k in ARCHIVE_COLUMNS.items()]
    assert ARCHIVED == Types.ROW_NAMED(list(ARCHIVE_COLUMNS), [types[k][3] for k in ARCHIVE_COLUMNS.values()])
    assert json.loads(FINDINGS_JSON_TYPE) == [{"rule_id": "VARCHAR", "rule_version": "INTEGER", "category": "VARCHAR",
                                               "severity": "VARCHAR", "entity": "VARCHAR", "field": "VARCHAR",
                                               "start": "INTEGER", "end": "INTEGER", "score": "DOUBLE",
                                               "snippet": "VARCHAR", "why": "VARCHAR"}]
