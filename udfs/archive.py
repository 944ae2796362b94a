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
from typing import TYPE_CHECKING, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from udfs.findings import Finding, redact
from udfs.rules import SCORERS

if TYPE_CHECKING:
    from udfs.events import AuditEvent

ARCHIVE_SCHEMA_VERSION = 2  # 2: tenant_full
TextMode = Literal["redacted", "none", "encrypted"]
TEXT_MODES: tuple[str, ...] = ("redacted", "none", "encrypted")

# What each finding keeps, as DuckDB reads the findings column: from_json(findings, FINDINGS_JSON_TYPE).
FINDING_FIELDS: dict[str, str] = {
    "rule_id": "VARCHAR",
    "rule_version": "INTEGER",
    "category": "VARCHAR",
    "severity": "VARCHAR",
    "entity": "VARCHAR",
    "field": "VARCHAR",
    "start": "INTEGER",
    "end": "INTEGER",
    "score": "DOUBLE",
    "snippet": "VARCHAR",
    "why": "VARCHAR",
}
FINDINGS_JSON_TYPE = json.dumps([FINDING_FIELDS])
# Flink SQL types; the Parquet files hold these columns in this order, then the partition columns.
COLUMNS: dict[str, str] = {
    "schema_version": "INT",
    "event_id": "STRING",
    "timestamp_ms": "BIGINT",
    "application": "STRING",
    "model": "STRING",
    "model_version": "STRING",
    "user_id": "STRING",
    "session_id": "STRING",
    "prompt": "STRING",
    "response": "STRING",
    "prompt_encrypted": "BYTES",
    "response_encrypted": "BYTES",
    "key_id": "STRING",
    # A JSON list of FINDING_FIELDS objects: PyFlink 2.3's thread mode hands a list of rows to Java as
    # copies of its last row (one reused object), so a nested ARRAY<ROW> column cannot come from Python.
    "findings": "STRING",
    **{scorer: "DOUBLE" for scorer in SCORERS},  # the highest score of the event's texts
    "prompt_tokens": "INT",
    "completion_tokens": "INT",
    "cost_usd": "DOUBLE",
    "latency_ms": "DOUBLE",
    "metadata": "STRING",  # JSON
    "rules_hash": "STRING",  # content hash of the ruleset that produced the findings
    "tenant_full": "STRING",  # the tenant as sent; the partition's `tenant` is tenant_partition(it)
}
# Hive-style directories date=YYYY-MM-DD/tenant=T/ (the event's UTC date, tenant_partition(the tenant)).
PARTITION_COLUMNS: dict[str, str] = {"date": "STRING", "tenant": "STRING"}
TEXT_FIELDS = ("prompt", "response")


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
    """The event's archive row: the values of COLUMNS then PARTITION_COLUMNS, in order.

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
    top = [max((s[scorer] for s in scores.values() if scorer in s), default=None) for scorer in SCORERS]
    return (
        ARCHIVE_SCHEMA_VERSION,
        event.event_id,
        event.timestamp,
        event.application,
        event.model,
        event.model_version,
        event.user_id,
        event.session_id,
        shown["prompt"],
        shown["response"],
        sealed["prompt"],
        sealed["response"],
        cipher.key_id if cipher and text == "encrypted" else None,
        json.dumps([{name: getattr(f, name) for name in FINDING_FIELDS} for f in findings], ensure_ascii=False),
        *top,
        event.prompt_tokens,
        event.completion_tokens,
        event.cost_usd,
        event.latency_ms,
        None if event.metadata is None else json.dumps(event.metadata, sort_keys=True, default=str),
        rules_hash,
        event.tenant,
        archive_date(event.timestamp),
        tenant_partition(event.tenant),
    )
