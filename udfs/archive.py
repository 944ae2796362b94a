"""The archive's rows: every valid audit event once, with its findings, scores, tokens and cost.

The text is kept as the archive's `text` mode says (docs/archive.md):
- redacted: each finding's span masked in place (same length, so every span still points at its text);
- none: no text at all, only the findings' spans and redacted snippets;
- encrypted: the redacted text, and the raw text encrypted with AES-GCM (the key's id in every row).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from udfs.events import CONTEXT_FIELDS, TEXT_FIELDS, AuditEvent
from udfs.findings import Finding, redact
from udfs.scorers.suite import MEASURED

if TYPE_CHECKING:
    import pyarrow as pa

ARCHIVE_SCHEMA_VERSION = 2  # 2: tenant_full
TextMode = Literal["redacted", "none", "encrypted"]
TEXT_MODES: tuple[str, ...] = ("redacted", "none", "encrypted")


class ColumnType(StrEnum):
    """A type of the archive's columns, in each language that reads or writes them. The value is the Flink SQL
    name (the sink's DDL; flink_jobs.streaming.records maps it to Flink's type), `arrow` the Arrow type (the
    readers) and `duckdb` the DuckDB name (FINDINGS_JSON_TYPE)."""

    STRING = "STRING", "string", "VARCHAR"
    INT = "INT", "int32", "INTEGER"
    BIGINT = "BIGINT", "int64", "BIGINT"
    DOUBLE = "DOUBLE", "float64", "DOUBLE"
    BYTES = "BYTES", "binary", "BLOB"

    duckdb: str
    _arrow: str  # the name of pyarrow's factory of the type

    def __new__(cls, sql: str, arrow: str, duckdb: str) -> ColumnType:
        member = str.__new__(cls, sql)
        member._value_ = sql
        member._arrow, member.duckdb = arrow, duckdb
        return member

    @property
    def arrow(self) -> pa.DataType:
        import pyarrow as pa  # here, not at the top: the job's workers load this module and need no Arrow

        return getattr(pa, self._arrow)()


# What each finding keeps, as DuckDB reads the findings column: from_json(findings, FINDINGS_JSON_TYPE).
FINDING_FIELDS: dict[str, ColumnType] = {
    "rule_id": ColumnType.STRING,
    "rule_version": ColumnType.INT,
    "category": ColumnType.STRING,
    "severity": ColumnType.STRING,
    "entity": ColumnType.STRING,
    "field": ColumnType.STRING,
    "start": ColumnType.INT,
    "end": ColumnType.INT,
    "score": ColumnType.DOUBLE,
    "snippet": ColumnType.STRING,
    "why": ColumnType.STRING,
}
FINDINGS_JSON_TYPE = json.dumps([{name: kind.duckdb for name, kind in FINDING_FIELDS.items()}])
# The Parquet files hold these columns in this order, then the partition columns. An event field is kept as it is
# in the column of its name (EVENT_COLUMNS), but for its time, its tenant, its texts and its metadata.
COLUMNS: dict[str, ColumnType] = {
    "schema_version": ColumnType.INT,
    "event_id": ColumnType.STRING,
    "timestamp_ms": ColumnType.BIGINT,
    **{name: ColumnType.STRING for name in CONTEXT_FIELDS if name != "tenant"},  # the tenant: see tenant_full
    **{name: ColumnType.STRING for name in TEXT_FIELDS},  # as the text mode says: redacted or none
    **{f"{name}_encrypted": ColumnType.BYTES for name in TEXT_FIELDS},  # the raw text (text mode encrypted)
    "key_id": ColumnType.STRING,
    # A JSON list of FINDING_FIELDS objects: PyFlink 2.3's thread mode hands a list of rows to Java as
    # copies of its last row (one reused object), so a nested ARRAY<ROW> column cannot come from Python.
    "findings": ColumnType.STRING,
    **{scorer: ColumnType.DOUBLE for scorer in MEASURED},  # the highest score of the event's texts
    # The event's measures (events.MEASURE_FIELDS), in the order of the first archives' files.
    "prompt_tokens": ColumnType.INT,
    "completion_tokens": ColumnType.INT,
    "cost_usd": ColumnType.DOUBLE,
    "latency_ms": ColumnType.DOUBLE,
    "metadata": ColumnType.STRING,  # JSON
    "rules_hash": ColumnType.STRING,  # content hash of the ruleset that produced the findings
    "tenant_full": ColumnType.STRING,  # the tenant as sent; the partition's `tenant` is tenant_partition(it)
}
# Hive-style directories date=YYYY-MM-DD/tenant=T/ (the event's UTC date, tenant_partition(the tenant)).
PARTITION_COLUMNS: dict[str, ColumnType] = {"date": ColumnType.STRING, "tenant": ColumnType.STRING}
# An archive row's values, in order: COLUMNS, then PARTITION_COLUMNS.
ARCHIVE_COLUMNS: dict[str, ColumnType] = {**COLUMNS, **PARTITION_COLUMNS}
# The event fields kept as they are, each in the column of its name.
EVENT_COLUMNS: tuple[str, ...] = tuple(
    name for name in COLUMNS if name in AuditEvent.model_fields and name not in (*TEXT_FIELDS, "metadata")
)


class ArchiveKeyError(ValueError):
    """An archive key that is not base64 of 16, 24 or 32 bytes, or that does not open a row."""


class TextCipher:
    """AES-GCM of one text field of one event; the event id and field are bound as associated data, so a
    ciphertext moved to another row or field does not decrypt."""

    def __init__(self, key: bytes):
        if len(key) not in (16, 24, 32):
            raise ArchiveKeyError(f"an archive key is 16, 24 or 32 bytes (AES-128/192/256), not {len(key)}")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"llm-audit archive key:" + key).hexdigest()[:16]

    @classmethod
    def from_base64(cls, value: str) -> TextCipher:
        try:
            key = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ArchiveKeyError(
                "the archive key is not base64; make one with: python -c 'import os, base64; "
                "print(base64.b64encode(os.urandom(32)).decode())'"
            ) from None
        return cls(key)

    def encrypt(self, text: str, event_id: str, field: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, text.encode(), f"{event_id}\0{field}".encode())

    def decrypt(self, blob: bytes, event_id: str, field: str) -> str:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], f"{event_id}\0{field}".encode()).decode()
        except (InvalidTag, ValueError):  # ValueError: a blob too short to hold a nonce
            raise ArchiveKeyError(f"event {event_id!r} {field}: wrong key or tampered ciphertext") from None


def redacted_text(text: str, field: str, findings: list[Finding]) -> str:
    """`text` with the spans of the findings on `field` masked in place (length kept)."""
    chars = list(text)
    for finding in findings:
        if finding.field == field and 0 <= finding.start < finding.end <= len(text):
            chars[finding.start : finding.end] = redact(text[finding.start : finding.end])
    return "".join(chars)


def archive_date(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


# What Flink's filesystem sink escapes in a partition's directory name, as %XX (PartitionPathUtils); any
# other character is written as it is, in UTF-8.
_ESCAPED = frozenset([*map(chr, range(0x20)), *"\"#%'*/:=?[\\]^{}", "\x7f"])
# The longest escaped tenant kept as its own directory name: `tenant=` and it stay under NAME_MAX (255 bytes).
PARTITION_MAX_BYTES = 200
# Directory values that readers take for a null partition: Flink's own, and Hive's (pyarrow, Spark).
_NULL_PARTITIONS = {"__DEFAULT_PARTITION__", "__HIVE_DEFAULT_PARTITION__"}
_HASHED = re.compile(r".*~[0-9a-f]{32}", re.DOTALL)  # tenant_partition's bounded form


def escaped_size(value: str) -> int:
    """Bytes of `value` as Flink names a partition directory with it."""
    return sum(3 if char in _ESCAPED else len(char.encode()) for char in value)


def tenant_partition(tenant: str) -> str:
    """The tenant's partition value (its directory, tenant=<value>/): the tenant itself, or where its name
    would not fit a directory's (NAME_MAX), be read back as null, or look like this bounded form, a prefix
    of it, '~' and 128 bits of its SHA-256. Distinct tenants, distinct values; the rows hold the tenant as
    sent (tenant_full), which readers take."""
    if escaped_size(tenant) <= PARTITION_MAX_BYTES and tenant not in _NULL_PARTITIONS and not _HASHED.fullmatch(tenant):
        return tenant
    prefix, size = [], 0
    for char in tenant:
        size += escaped_size(char)
        if size > 64:
            break
        prefix.append(char)
    return "".join(prefix) + "~" + hashlib.sha256(tenant.encode()).hexdigest()[:32]


def archive_record(
    event: AuditEvent,
    findings: list[Finding],
    scores: dict,
    rules_hash: str,
    text: TextMode = "redacted",
    cipher: TextCipher | None = None,
) -> tuple:
    """The event's archive row: the values of ARCHIVE_COLUMNS, in order.

    scores: {field: {scorer: score}} as the scorers give them; the highest of each scorer counts.
    """
    if text == "encrypted" and cipher is None:
        raise ArchiveKeyError("archive text mode 'encrypted' needs a key (LLM_AUDIT_ARCHIVE_KEY)")
    texts = {field: getattr(event, field) for field in TEXT_FIELDS}
    shown = {
        field: None if value is None or text == "none" else redacted_text(value, field, findings)
        for field, value in texts.items()
    }
    sealed = {
        field: cipher.encrypt(value, event.event_id, field) if cipher and text == "encrypted" and value else None
        for field, value in texts.items()
    }
    values = {
        "schema_version": ARCHIVE_SCHEMA_VERSION,
        **{name: getattr(event, name) for name in EVENT_COLUMNS},
        "timestamp_ms": event.timestamp,
        **shown,
        **{f"{field}_encrypted": value for field, value in sealed.items()},
        "key_id": cipher.key_id if cipher and text == "encrypted" else None,
        "findings": json.dumps(
            [{name: getattr(f, name) for name in FINDING_FIELDS} for f in findings], ensure_ascii=False
        ),
        **{scorer: max((s[scorer] for s in scores.values() if scorer in s), default=None) for scorer in MEASURED},
        "metadata": None if event.metadata is None else json.dumps(event.metadata, sort_keys=True, default=str),
        "rules_hash": rules_hash,
        "tenant_full": event.tenant,
        "date": archive_date(event.timestamp),
        "tenant": tenant_partition(event.tenant),
    }
    return tuple(values[name] for name in ARCHIVE_COLUMNS)  # a column without a value: a KeyError, not a shift
