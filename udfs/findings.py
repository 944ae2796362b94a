"""Finding: one rule match in one event field, the core of a violation document."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args
from urllib.parse import quote

from udfs.events import CONTEXT_FIELDS, TEXT_FIELDS, AuditEvent

RuleCategory = Literal[
    "pii", "secret", "prompt_injection", "toxicity", "bias", "prohibited_content", "policy", "anomaly"
]
# audit_error: the engine's own findings on an event it could not fully audit (udfs.faults).
Category = Literal[RuleCategory, "audit_error"]
Severity = Literal["info", "low", "medium", "high", "critical"]
CATEGORIES: tuple[str, ...] = get_args(Category)


@dataclass(frozen=True, slots=True)
class Finding:
    """Why an event violated a rule: which rule, where in which field, and how sure."""

    event_id: str
    rule_id: str
    rule_version: int
    category: Category
    entity: str
    severity: Severity
    field: str  # prompt or response; the event field a `field` rule tested, or a sequence rule counted by
    start: int
    end: int
    score: float
    snippet: str
    why: str = ""  # what fired, for the auditor: pattern, keyword, model score and threshold, nearest attack

    @property
    def key(self) -> str:
        """Deterministic and unique among one tenant's findings (violation_id puts the tenant first).

        The event id is percent-encoded: a ':' in it cannot make two findings' keys alike."""
        event = quote(self.event_id, safe="")
        if self.category == "audit_error":  # one per stage and rule (or scorer, output) that failed
            return (
                f"{event}:{self.rule_id}@{self.rule_version}:{self.entity}:{quote(self.snippet, safe='')}:{self.field}"
            )
        return f"{event}:{self.rule_id}@{self.rule_version}:{self.field}:{self.start}-{self.end}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def redact(value: str, keep: int = 2) -> str:
    """Mask a matched value, keeping a short prefix so an analyst can tell matches apart."""
    if len(value) <= keep * 2:
        return "*" * len(value)
    return value[:keep] + "*" * (len(value) - keep)


MODEL_SCORED = {"toxicity", "bias"}
# Event fields copied into each violation so it can be filtered without the event.
EVENT_CONTEXT = CONTEXT_FIELDS


def violation_id(tenant: str, finding: Finding) -> str:
    """A violation document's _id: `<tenant>/<finding key>`, both percent-encoded, so that no event of
    one tenant can name (and so overwrite or suppress) another tenant's violation. A replay of the same
    event gives the same id, and the writer inserts only what is absent."""
    return f"{quote(tenant, safe='')}/{finding.key}"


def violation_context(event: AuditEvent) -> dict[str, Any]:
    """The event's context fields and its time, as stored with each of its violations."""
    context: dict[str, Any] = {name: getattr(event, name) for name in EVENT_CONTEXT}
    context["event_time"] = datetime.fromtimestamp(event.timestamp / 1000, tz=UTC)
    return context


def violation_document(
    event: AuditEvent,
    finding: Finding,
    store_raw_text: bool = False,
    scores: dict | None = None,
    evidence: dict | None = None,
) -> dict[str, Any]:
    """The stored violation: the finding plus the event's context, without raw text unless opted in.

    A model-score finding also carries the field's scores and their evidence (the social groups
    named, the most biased sentence): why the model flagged it.
    """
    doc = {"_id": violation_id(event.tenant, finding), **finding.to_dict(), **violation_context(event)}
    if finding.category in MODEL_SCORED and scores and finding.field in scores:
        # Dots in field names are legal in MongoDB 5+ but not in every server (FerretDB) nor handy in queries.
        doc["scores"] = {label.replace(".", "_"): value for label, value in scores[finding.field].items()}
        # Names are findings of their own (entities rules), and their spans, arrays of arrays, are what
        # FerretDB (MongoDB on SQLite) refuses to store.
        shown = {key: value for key, value in (evidence or {}).get(finding.field, {}).items() if key != "entities"}
        if shown:
            doc["evidence"] = shown
    if store_raw_text and finding.field in TEXT_FIELDS:
        doc["text"] = getattr(event, finding.field)
    return doc
