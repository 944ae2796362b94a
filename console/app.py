"""The console's web app: server-rendered pages for people, a JSON API for automation, one set of rules.

Pages sign in with a password and a session cookie; the API takes `Authorization: Bearer TOKEN`.
Both see only their tenants: a violation of another tenant is a 404, as one that does not exist.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' Annotated dependencies, defined in create_app, at runtime.

import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from bson import ObjectId
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from pymongo import MongoClient

from console import auth, oidc
from console.metrics import ReviewMetrics
from console.settings import ConsoleSettings
from console.store import FILTERS, STATUSES, VERDICTS, BadRequest, Caller, Store, must_not_match_line

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
_QUERY_FIELDS = (*FILTERS, "status", "since", "until")


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: str = Field(description=f"one of {', '.join(VERDICTS)}")
    note: str = ""


OIDC_COOKIE = "llm_audit_oidc"


def _local(path: str) -> str:
    """A redirect target within the console only (no open redirect to another site)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


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


def create_app(settings: ConsoleSettings, client: MongoClient | None = None) -> FastAPI:
    client = client or MongoClient(settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=10_000)
    store = Store(client, settings.mongo_database, settings.violations_collection, settings.anomalies_collection)
    store.create_indexes()
    metrics = ReviewMetrics(
        settings.influx_url, settings.influx_token.get_secret_value(), settings.influx_org, settings.influx_bucket
    )

    def reviewed(caller: Caller, doc: dict, verdict: str, note: str) -> dict:
        record = store.review(caller, doc, verdict, note)
        metrics.write(doc["tenant"], doc["rule_id"], store.verdicts(doc["tenant"], doc["rule_id"]))
        return record

    secret = settings.console_session_secret
    sessions = auth.Sessions(
        secret.get_secret_value().encode() if secret else secrets.token_bytes(32), settings.console_session_hours
    )
    provider = None
    if settings.console_oidc_issuer:
        if not (
            settings.console_oidc_client_id and settings.console_oidc_client_secret and settings.console_public_url
        ):
            raise ValueError(
                "LLM_AUDIT_CONSOLE_OIDC_ISSUER needs LLM_AUDIT_CONSOLE_OIDC_CLIENT_ID, "
                "LLM_AUDIT_CONSOLE_OIDC_CLIENT_SECRET and LLM_AUDIT_CONSOLE_PUBLIC_URL"
            )
        provider = oidc.Provider(
            settings.console_oidc_issuer,
            settings.console_oidc_client_id,
            settings.console_oidc_client_secret.get_secret_value(),
            settings.console_public_url.rstrip("/") + "/login/oidc/callback",
            settings.console_oidc_user_claim,
        )

    app = FastAPI(
        title="llm-audit review console", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json"
    )

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    # --- who is asking --------------------------------------------------------------------------------

    def api_caller(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        caller = auth.by_token(store.db, token.strip()) if scheme.lower() == "bearer" else None
        if caller is None:
            raise HTTPException(401, "a valid API token is needed: Authorization: Bearer TOKEN",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        return caller

    def page_session(request: Request) -> tuple[Caller, auth.Session]:
        session = sessions.read(request.cookies.get(sessions.COOKIE))
        caller = auth.by_name(store.db, session.user) if session else None
        if caller is None or session is None:
            raise HTTPException(303, headers={"Location": "/login?" + urlencode({"next": request.url.path})})
        return caller, session

    def needs(caller: Caller, role: str) -> None:
        if not auth.allowed(caller, role):
            raise HTTPException(403, f"{caller.name} is a {caller.role}; this needs {role}")

    API = Annotated[Caller, Depends(api_caller)]
    PAGE = Annotated[tuple[Caller, auth.Session], Depends(page_session)]

    def filters_of(request: Request) -> dict[str, str]:
        return {k: v for k, v in request.query_params.items() if k in _QUERY_FIELDS and v}

    # --- JSON API -----------------------------------------------------------------------------------------

    @app.get("/api/violations")
    def api_violations(request: Request, caller: API, cursor: str | None = None, limit: int = 50):
        unknown = set(request.query_params) - {*_QUERY_FIELDS, "cursor", "limit"}
        if unknown:
            raise BadRequest(
                f"unknown query parameters {sorted(unknown)}; valid: {', '.join((*_QUERY_FIELDS, 'cursor', 'limit'))}"
            )
        items, following = store.page(caller, filters_of(request), cursor, max(1, min(limit, 500)))
        return {"items": [_json(d) for d in items], "next": following}

    @app.get("/api/violations/{violation_id}/context")
    def api_context(violation_id: str, caller: API):
        doc = store.get(caller, violation_id)
        if doc is None:
            raise HTTPException(404, "no such violation")
        return {
            "session": [_json(d) for d in store.session(doc)],
            "anomalies": [_json(d) for d in store.anomalies_near(doc)],
        }

    @app.post("/api/violations/{violation_id}/reviews", status_code=201)
    def api_review(violation_id: str, body: ReviewIn, caller: API):
        doc = store.get(caller, violation_id)
        if doc is None:
            raise HTTPException(404, "no such violation")
        needs(caller, "reviewer")
        return _json(reviewed(caller, doc, body.verdict, body.note))

    @app.get("/api/violations/{violation_id}")
    def api_violation(violation_id: str, caller: API):
        doc = store.get(caller, violation_id)
        if doc is None:
            raise HTTPException(404, "no such violation")
        return _json(doc)

    @app.get("/api/rules/stats")
    def api_rule_stats(caller: API):
        return {"rules": store.rule_stats(caller)}

    # --- pages --------------------------------------------------------------------------------------------

    def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        response = TEMPLATES.TemplateResponse(request, template, context, status_code=status)
        response.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/"):
        return render(request, "login.html", next=_local(next), error=None, sso=provider is not None)

    @app.post("/login")
    def login(
        request: Request,
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        next: Annotated[str, Form()] = "/",
    ):
        caller = auth.by_password(store.db, username, password)
        if caller is None:
            store.log(username, "sign-in failed", username, "wrong name or password")
            return render(request, "login.html", status=401, next=_local(next), error="Wrong name or password.",
                          sso=provider is not None)  # fmt: skip
        store.log(caller.name, "sign-in", caller.name, "password")
        return signed_in(caller.name, next)

    def signed_in(user: str, next_path: str) -> Response:
        response = RedirectResponse(_local(next_path), status_code=303)
        # Lax, not Strict: the redirect back from an OpenID Connect issuer must carry it; forms carry a CSRF token.
        response.set_cookie(sessions.COOKIE, sessions.issue(user), max_age=sessions.max_age, httponly=True,
                            secure=True, samesite="lax")  # fmt: skip
        return response

    @app.get("/login/oidc")
    def oidc_start(next: str = "/"):
        if provider is None:
            raise HTTPException(404, "single sign-on is not configured (LLM_AUDIT_CONSOLE_OIDC_ISSUER)")
        url, flow = provider.start(_local(next))
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(OIDC_COOKIE, sessions.seal(flow.__dict__, 600), max_age=600, httponly=True, secure=True,
                            samesite="lax", path="/login/oidc")  # fmt: skip
        return response

    @app.get("/login/oidc/callback")
    def oidc_callback(request: Request, state: str = "", code: str = ""):
        data = sessions.unseal(request.cookies.get(OIDC_COOKIE))
        if provider is None or data is None:
            return render(request, "login.html", status=400, next="/", error="The sign-in expired: start again.",
                          sso=provider is not None)  # fmt: skip
        try:
            user = provider.finish(oidc.Flow(data["state"], data["nonce"], data["verifier"], data["next"]), state, code)
        except oidc.OidcError as exc:
            store.log("(oidc)", "sign-in failed", "", str(exc))
            return render(request, "login.html", status=400, next="/", error=f"Single sign-on failed: {exc}", sso=True)
        if auth.by_name(store.db, user) is None:
            store.log(user, "sign-in failed", user, "not a console user")
            return render(request, "login.html", status=403, next="/", sso=True,
                          error=f"{user} is not a console user: ask an admin to add you.")  # fmt: skip
        store.log(user, "sign-in", user, "oidc")
        response = signed_in(user, data["next"])
        response.delete_cookie(OIDC_COOKIE, path="/login/oidc")
        return response

    @app.post("/logout")
    def logout(page: PAGE, csrf: Annotated[str, Form()]):
        check_csrf(page[1], csrf)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(sessions.COOKIE)
        return response

    def check_csrf(session: auth.Session, token: str) -> None:
        if not secrets.compare_digest(session.csrf, token):
            raise HTTPException(403, "the form's CSRF token does not match this session: reload the page")

    @app.get("/", response_class=HTMLResponse)
    def queue(request: Request, page: PAGE, cursor: str | None = None):
        caller, session = page
        filters = filters_of(request)
        items, following = store.page(caller, filters, cursor, settings.console_page_size)
        options = {name: store.distinct(caller, name) for name in FILTERS}
        next_url = "/?" + urlencode({**filters, "cursor": following}) if following else None
        return render(request, "queue.html", caller=caller, csrf=session.csrf, items=items, filters=filters,
                      options=options, statuses=STATUSES, next_url=next_url, stats=store.rule_stats(caller))  # fmt: skip

    @app.get("/violations/{violation_id}", response_class=HTMLResponse)
    def violation_page(request: Request, violation_id: str, page: PAGE):
        caller, session = page
        doc = store.get(caller, violation_id)
        if doc is None:
            return render(request, "missing.html", status=404, caller=caller, csrf=session.csrf)
        reviews = list(store.db["reviews"].find({"violation_id": doc["_id"]}).sort("at", 1))
        return render(request, "violation.html", caller=caller, csrf=session.csrf, v=doc, reviews=reviews,
                      session_findings=store.session(doc), anomalies=store.anomalies_near(doc),
                      verdicts=VERDICTS, can_review=auth.allowed(caller, "reviewer"),
                      fp_line=must_not_match_line(doc))  # fmt: skip

    @app.post("/violations/{violation_id}/review")
    def review_form(
        violation_id: str,
        page: PAGE,
        verdict: Annotated[str, Form()],
        csrf: Annotated[str, Form()],
        note: Annotated[str, Form()] = "",
    ):
        caller, session = page
        check_csrf(session, csrf)
        doc = store.get(caller, violation_id)
        if doc is None:
            raise HTTPException(404, "no such violation")
        needs(caller, "reviewer")
        reviewed(caller, doc, verdict, note)
        return RedirectResponse(f"/violations/{violation_id}", status_code=303)

    @app.get("/healthz")
    def healthz() -> Response:
        client.admin.command("ping")
        return Response("ok", media_type="text/plain")

    return app
