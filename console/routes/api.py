"""The JSON API, for automation: the violation queue, one violation, its context and reviews, and per-rule
precision. A bearer token names the caller; a violation of another tenant is a 404, as one that does not exist."""

from typing import Any

from bson import ObjectId
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from console.routes.deps import QUERY_FIELDS, ApiCaller, AppServices, needs, query_filters
from console.store import VERDICTS, BadRequest

router = APIRouter()


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: str = Field(description=f"one of {', '.join(VERDICTS)}")
    note: str = ""


def _json(doc: dict) -> dict[str, Any]:
    """A stored document as JSON (times as ISO 8601)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if hasattr(value, "isoformat"):
            out[key] = value.isoformat()
        elif isinstance(value, dict):
            out[key] = _json(value)
        elif isinstance(value, list):
            out[key] = [_json(v) if isinstance(v, dict) else v for v in value]
        elif isinstance(value, ObjectId):
            out[key] = str(value)
        else:
            out[key] = value
    return out


@router.get("/api/violations")
def api_violations(
    request: Request, caller: ApiCaller, services: AppServices, cursor: str | None = None, limit: int = 50
):
    """The queue, newest first: `items` and the `next` page's cursor (null on the last page). Filters:
    tenant, model, application, rule_id, category, severity, status (unreviewed or a verdict), since and until
    (ISO 8601)."""
    unknown = set(request.query_params) - {*QUERY_FIELDS, "cursor", "limit"}
    if unknown:
        raise BadRequest(
            f"unknown query parameters {sorted(unknown)}; valid: {', '.join((*QUERY_FIELDS, 'cursor', 'limit'))}"
        )
    items, following = services.store.page(caller, query_filters(request), cursor, max(1, min(limit, 500)))
    return {"items": [_json(d) for d in items], "next": following}


# The id's routes below take the rest of the path: /context and /reviews come before the bare id, which would
# take them as part of it.


@router.get("/api/violations/{violation_id:path}/context")
def api_context(violation_id: str, caller: ApiCaller, services: AppServices):
    """The findings of the violation's session (or event) in its tenant, and its tenant's anomalies within an
    hour."""
    doc = services.store.get(caller, violation_id)
    if doc is None:
        raise HTTPException(404, "no such violation")
    return {
        "session": [_json(d) for d in services.store.session(caller, doc)],
        "anomalies": [_json(d) for d in services.store.anomalies_near(caller, doc)],
    }


@router.post("/api/violations/{violation_id:path}/reviews", status_code=201)
def api_review(violation_id: str, body: ReviewIn, caller: ApiCaller, services: AppServices):
    """Records a verdict (needs the reviewer role)."""
    doc = services.store.get(caller, violation_id)
    if doc is None:
        raise HTTPException(404, "no such violation")
    needs(caller, "reviewer")
    return _json(services.review(caller, doc, body.verdict, body.note))


@router.get("/api/violations/{violation_id:path}")
def api_violation(violation_id: str, caller: ApiCaller, services: AppServices):
    """One violation (its id percent-encoded, '/' included)."""
    doc = services.store.get(caller, violation_id)
    if doc is None:
        raise HTTPException(404, "no such violation")
    return _json(doc)


@router.get("/api/rules/stats")
def api_rule_stats(caller: ApiCaller, services: AppServices):
    """Per rule, over the caller's tenants: the latest verdicts' counts and precision."""
    return {"rules": services.store.rule_stats(caller)}
