"""Audit event schema v1: the JSON each LLM call logs to ``model-audit-logs``.

The pydantic model is the validator the job runs; ``schemas/audit_event.v1.json``
is the same contract for producers, and a test keeps the two in agreement.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).parent / "schemas" / "audit_event.v1.json"

# Epoch values below this (1973-03-03 in ms) are almost surely epoch *seconds*.
_MIN_EPOCH_MS = 100_000_000_000
# 9999-12-31T23:59:59.999Z: the last time Python's datetime, BSON dates and RFC 3339 all hold.
MAX_EPOCH_MS = 253_402_300_799_999
# Token counts above this are no LLM call's; the archive keeps each as a 32-bit integer.
_MAX_TOKENS = 2**31 - 1


# Characters an identifier may not hold: C0 and C1 controls, zero-width and bidi controls, line and paragraph
# separators, the BOM and lone surrogates. They forge log lines and hide or reorder what a reviewer reads.
_HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")


class Role(Enum):
    """What a field of an event is to the audit. AuditEvent marks its fields with one; the field lists that
    the rules, findings, archive and its re-audit use are read off the model (below it), never written out."""

    ID = "id"  # the event's own id
    CONTEXT = "context"  # who called which model: copied into each violation, compared by `field` rules
    TEXT = "text"  # what the rules and scorers read
    MEASURE = "measure"  # numbers of the call: compared by `field` rules, counted in metrics


@dataclass(frozen=True, slots=True)
class FieldBounds:
    """The most an event's fields may hold (the job's settings name them). Identifiers are copied into every
    violation and filter of the console; an event over a bound is a dead letter naming the field."""

    id_chars: int = 256  # each identifier (LLM_AUDIT_MAX_ID_CHARS)
    # prompt and response, each (LLM_AUDIT_MAX_TEXT_CHARS); of a longer text than the ruleset's
    # limits.max_text_chars, the rules inspect that much and report the rest (audit.not_inspected)
    text_chars: int = 10_000_000
    metadata_bytes: int = 65_536  # metadata as UTF-8 JSON (LLM_AUDIT_MAX_METADATA_BYTES)

    def problems(self, event: AuditEvent) -> list[str]:
        """What in `event` is over a bound or hidden in an identifier, one line per field ([] if nothing)."""
        found = []
        for name in IDENTIFIERS:
            value = getattr(event, name)
            if value is None:
                continue
            if len(value) > self.id_chars:
                found.append(
                    f"{name}: {len(value):,} characters, over the bound of {self.id_chars:,} (LLM_AUDIT_MAX_ID_CHARS)"
                )
            elif hidden := _HIDDEN.search(value):
                found.append(
                    f"{name}: control character U+{ord(hidden.group()):04X} at {hidden.start()}; "
                    "identifiers hold printable text only"
                )
        for name in TEXT_FIELDS:
            text = getattr(event, name)
            if text is not None and len(text) > self.text_chars:
                found.append(
                    f"{name}: {len(text):,} characters, over the bound of {self.text_chars:,} (LLM_AUDIT_MAX_TEXT_CHARS)"
                )
        if event.metadata:
            size = len(json.dumps(event.metadata, ensure_ascii=False).encode("utf-8", "surrogatepass"))
            if size > self.metadata_bytes:
                found.append(
                    f"metadata: {size:,} bytes of JSON, over the bound of {self.metadata_bytes:,} "
                    "(LLM_AUDIT_MAX_METADATA_BYTES)"
                )
        return found


class EventError(ValueError):
    """A message that is not a valid audit event; ``reason`` is a stable code for the DLQ."""

    def __init__(self, reason: str, errors: list[str]):
        super().__init__(f"{reason}: {'; '.join(errors)}")
        self.reason = reason
        self.errors = errors


class AuditEvent(BaseModel):
    """One LLM call: who asked which model what, and what it answered."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    event_id: Annotated[str, Role.ID] = Field(min_length=1)
    timestamp: int = Field(description="Event time in epoch milliseconds (RFC 3339 accepted on input).")
    tenant: Annotated[str, Role.CONTEXT] = Field(min_length=1)
    application: Annotated[str | None, Role.CONTEXT] = None
    model: Annotated[str, Role.CONTEXT] = Field(min_length=1)
    model_version: Annotated[str | None, Role.CONTEXT] = None
    user_id: Annotated[str | None, Role.CONTEXT] = None
    session_id: Annotated[str | None, Role.CONTEXT] = None
    prompt: Annotated[str | None, Role.TEXT] = None
    response: Annotated[str | None, Role.TEXT] = None
    latency_ms: Annotated[float | None, Role.MEASURE] = Field(default=None, ge=0, allow_inf_nan=False)
    prompt_tokens: Annotated[int | None, Role.MEASURE] = Field(default=None, ge=0, le=_MAX_TOKENS)
    completion_tokens: Annotated[int | None, Role.MEASURE] = Field(default=None, ge=0, le=_MAX_TOKENS)
    cost_usd: Annotated[float | None, Role.MEASURE] = Field(default=None, ge=0, allow_inf_nan=False)
    metadata: dict[str, Any] | None = None

    @field_validator("timestamp", mode="before")
    @classmethod
    def _parse_timestamp(cls, value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be an RFC 3339 string or epoch milliseconds, not a boolean")
        if isinstance(value, (int, float)):
            if value < _MIN_EPOCH_MS:
                raise ValueError(f"{value} looks like epoch seconds; send epoch milliseconds")
            ms = value
        elif isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise ValueError(f"{value!r} is not RFC 3339, e.g. 2026-11-21T10:00:00Z") from None
            if parsed.tzinfo is None:
                raise ValueError(f"{value!r} has no UTC offset; add 'Z' or '+00:00'")
            ms = parsed.timestamp() * 1000
        else:
            raise ValueError("must be an RFC 3339 string or epoch milliseconds")
        if not ms <= MAX_EPOCH_MS:  # NaN too
            raise ValueError(f"{value} is not a time up to 9999-12-31T23:59:59.999Z (epoch ms {MAX_EPOCH_MS})")
        return int(ms)

    @model_validator(mode="after")
    def _prompt_or_response(self) -> AuditEvent:
        if all(getattr(self, name) is None for name in TEXT_FIELDS):
            raise ValueError("at least one of 'prompt' and 'response' is required")
        return self

    def texts(self) -> list[tuple[str, str]]:
        """The audited fields present in this event, as (field name, text)."""
        return [(name, text) for name in TEXT_FIELDS if (text := getattr(self, name))]


def fields_of(*roles: Role) -> tuple[str, ...]:
    """The names of the event's fields of these roles, in the model's order."""
    return tuple(name for name, info in AuditEvent.model_fields.items() if any(role in info.metadata for role in roles))


TEXT_FIELDS = fields_of(Role.TEXT)  # prompt, response
CONTEXT_FIELDS = fields_of(Role.CONTEXT)  # tenant, application, model, model_version, user_id, session_id
IDENTIFIERS = fields_of(Role.ID, Role.CONTEXT)  # the event id and its context: bounded, printable text only
MEASURE_FIELDS = fields_of(Role.MEASURE)  # latency_ms, prompt_tokens, completion_tokens, cost_usd


def parse_event(raw: str | bytes, bounds: FieldBounds = FieldBounds()) -> AuditEvent:
    """Parse one Kafka message into an event within `bounds`, or raise EventError naming every problem."""
    try:
        event = AuditEvent.model_validate_json(raw)
        problems = bounds.problems(event)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    except Exception as exc:  # a defect of ours on this input: this message's failure (udfs.faults), not the job's
        from udfs.faults import Failure  # not at the top: faults -> findings -> this module's field lists

        raise EventError("audit_error", [Failure.of("parse", "event", exc).describe()]) from exc
    else:
        if problems:
            raise EventError("schema_violation", problems)
        return event
    if any(err["type"] == "json_invalid" for err in errors):
        raise EventError("invalid_json", [errors[0]["msg"]])
    if any(err["type"] == "model_type" for err in errors):
        raise EventError("not_an_object", ["an audit event must be a JSON object"])
    raise EventError("schema_violation", [_describe(err) for err in errors])


def _describe(err: Any) -> str:  # a pydantic ErrorDetails
    field = ".".join(str(part) for part in err["loc"]) or "event"
    if err["type"] == "extra_forbidden":
        return f"{field}: unknown field; valid fields: {', '.join(AuditEvent.model_fields)} (put custom data under 'metadata')"
    return f"{field}: {err['msg'].removeprefix('Value error, ')}"


def dead_letter(raw: str | bytes, error: EventError) -> str:
    """The DLQ record for a rejected message: reason code, every error, and the message itself."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    from udfs.faults import bounded_dead_letter  # not at the top: faults -> findings -> this module

    return bounded_dead_letter({"reason": error.reason, "errors": error.errors, "raw": text})
