"""The review pages, for people signed in with a session cookie: the queue, a violation, and its review form."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console import auth
from console.routes.deps import AppServices, PageCaller, check_csrf, needs, query_filters, render, violation_path
from console.store import FILTERS, STATUSES, VERDICTS, must_not_match_line

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def queue(request: Request, page: PageCaller, services: AppServices, cursor: str | None = None):
    caller, session = page
    store = services.store
    filters = query_filters(request)
    items, following = store.page(caller, filters, cursor, services.settings.console_page_size)
    options = {name: store.distinct(caller, name) for name in FILTERS}
    next_url = "/?" + urlencode({**filters, "cursor": following}) if following else None
    return render(request, "queue.html", caller=caller, csrf=session.csrf, items=items, filters=filters,
                  options=options, statuses=STATUSES, next_url=next_url, stats=store.rule_stats(caller))  # fmt: skip


@router.get("/violations/{violation_id:path}", response_class=HTMLResponse)
def violation_page(request: Request, violation_id: str, page: PageCaller, services: AppServices):
    caller, session = page
    store = services.store
    doc = store.get(caller, violation_id)
    if doc is None:
        return render(request, "missing.html", status=404, caller=caller, csrf=session.csrf)
    return render(request, "violation.html", caller=caller, csrf=session.csrf, v=doc,
                  reviews=store.reviews(caller, doc), session_findings=store.session(caller, doc),
                  anomalies=store.anomalies_near(caller, doc),
                  verdicts=VERDICTS, can_review=auth.allowed(caller, "reviewer"),
                  fp_line=must_not_match_line(doc))  # fmt: skip


@router.post("/violations/{violation_id:path}/review")
def review_form(
    violation_id: str,
    page: PageCaller,
    services: AppServices,
    verdict: Annotated[str, Form()],
    csrf: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
):
    caller, session = page
    check_csrf(session, csrf)
    doc = services.store.get(caller, violation_id)
    if doc is None:
        raise HTTPException(404, "no such violation")
    needs(caller, "reviewer")
    services.review(caller, doc, verdict, note)
    return RedirectResponse(violation_path(violation_id), status_code=303)
