"""Poison-message policy: what becomes of an event that a part of the audit fails on.

Event fields are written by whoever talks to the LLM, so no event may stop the audit. Wherever
Python touches an event (parsing, each rule, scoring, sequences, the archive row, the violation
document, a sink's write), an exception caught there becomes a `Failure` of that stage and place,
and the event's audit goes on without it. A failure is reported twice:

- a finding of the built-in rule `audit.error` (category `audit_error`, severity high) on the
  event, so that auditors see it was not fully inspected and the window counts stay true; it
  names the stage, the rule or scorer and the exception type and line, not the message, which
  may quote the event's text;
- a dead letter with reason `audit_error`: the failures with their messages, and the event.

Defects of ours that affect every event (a broken rule file, a missing model) are not caught
per event: they raise where they are loaded (`RuleEngine(...)`, `open()`), before any event.
"""

from __future__ import annotations

import hashlib
import json
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from udfs.findings import Finding

# push: a record on the rules topic (rejected in rule_changes; no event is concerned)
Stage = Literal["parse", "rule", "time_budget", "score", "sequence", "violation", "archive", "write", "audit", "push"]

AUDIT_ERROR_RULE = "audit.error"
_MESSAGE_CHARS = 2_000  # of an exception's message in a dead letter


@dataclass(frozen=True)
class Failure:
    """Where the audit of one event failed, and how."""

    stage: Stage
    where: str  # the rule id, scorer, field or output
    error: str  # the exception's type
    message: str  # may quote the event: dead letters only, never the violation
    origin: str = ""  # file:line that raised, in our code where it passed through it

    @classmethod
    def of(cls, stage: Stage, where: str, exc: BaseException) -> Failure:
        return cls(stage, where, type(exc).__name__, str(exc)[:_MESSAGE_CHARS], _origin(exc))

    def finding(self, event_id: str, field: str = "") -> Finding:
        at = f" at {self.origin}" if self.origin else ""
        what = "not inspected: time budget" if self.stage == "time_budget" else f"{self.error}{at}"
        return Finding(
            event_id=event_id,
            rule_id=AUDIT_ERROR_RULE,
            rule_version=1,
            category="audit_error",
            entity=self.stage,
            severity="high",
            field=field,
            start=0,
            end=0,
            score=1.0,
            snippet=self.where,
            why=f"{self.stage} {self.where}: {what}; the event was not fully audited "
            "(message and event in the dead-letter topic)",
        )

    def describe(self) -> str:
        return f"{self.stage} {self.where}: {self.error}: {self.message}"


def _origin(exc: BaseException) -> str:
    """The innermost frame of ours (udfs/, flink_jobs/) the exception passed through, else the innermost."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if any(part in ("udfs", "flink_jobs") for part in Path(f.filename).parts)]
    if not frames:
        return ""
    frame = (ours or frames)[-1]
    parts = Path(frame.filename).parts
    for root in ("udfs", "flink_jobs"):
        if root in parts:
            parts = parts[parts.index(root) :]
            break
    else:
        parts = parts[-2:]
    return f"{'/'.join(parts)}:{frame.lineno}"


# Under the dead-letter topic's max.message.bytes (Kafka's default 1048588) and the producer's
# max.request.size (1048576), with room for the record's own overhead.
DEAD_LETTER_MAX_BYTES = 1_000_000


def bounded_dead_letter(record: dict[str, Any], max_bytes: int = DEAD_LETTER_MAX_BYTES) -> str:
    """A dead-letter record as JSON of at most max_bytes UTF-8 bytes: a `raw` that does not fit is cut
    (`raw_truncated`, with `raw_bytes` and `raw_sha256` of the whole), so that no message, however
    large or full of characters JSON escapes, makes a dead letter the topic refuses."""
    text = json.dumps(record, ensure_ascii=False)
    if _size(text) <= max_bytes:
        return text
    raw = record.get("raw") or ""
    whole = raw.encode("utf-8", "surrogatepass")
    cut = {
        **record,
        "errors": [str(e)[:_MESSAGE_CHARS] for e in record.get("errors", [])][:50],
        "raw": "",
        "raw_truncated": True,
        "raw_bytes": len(whole),
        "raw_sha256": hashlib.sha256(whole).hexdigest(),
    }
    room = max_bytes - _size(json.dumps(cut, ensure_ascii=False))
    cut["raw"] = raw[: max(0, room // 6)]  # six bytes: the most one character takes in JSON (\u001f)
    return json.dumps(cut, ensure_ascii=False)


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def failure_dead_letter(raw: str, failures: list[Failure], max_bytes: int = DEAD_LETTER_MAX_BYTES) -> str:
    """The dead letter of an event that parsed but whose audit failed somewhere (reason `audit_error`)."""
    record = {
        "reason": "audit_error",
        "errors": [f.describe() for f in failures],
        "failures": [asdict(f) for f in failures],
        "raw": raw,
    }
    return bounded_dead_letter(record, max_bytes)
