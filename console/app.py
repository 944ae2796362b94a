"""The console's web app: server-rendered pages for people, a JSON API for automation, one set of rules.

Pages sign in with a password and a session cookie; the API takes `Authorization: Bearer TOKEN`.
Both see only their tenants: a violation of another tenant is a 404, as one that does not exist.
Violation ids hold '/' and '%' (`<tenant>/<event id>:<rule>...`, each part percent-encoded): routes take
them as paths, and links encode every character of them.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' Annotated dependencies, defined in create_app, at runtime.

import secrets
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from bson import ObjectId
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from pymongo import MongoClient

from console import auth, oidc
from console.metrics import ReviewMetrics
from console.settings import ConsoleSettings
from console.store import FILTERS, STATUSES, VERDICTS, BadRequest, Caller, Store, must_not_match_line
from console.throttle import Busy, Gate, Throttle, address_key

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
# A violation id as one path segment: jinja's urlencode leaves '/' as is, which a browser may normalise away.
TEMPLATES.env.filters["segment"] = lambda value: quote(str(value), safe="")
_QUERY_FIELDS = (*FILTERS, "status", "since", "until")
# The largest request body: a review's note is at most 4,000 characters. Starlette's form parser would
# otherwise keep up to 1,000 fields of 1 MiB each in memory.
MAX_BODY = 256 * 1024
# Password checks that may wait for a free one (LLM_AUDIT_CONSOLE_LOGIN_CHECKS), per check, and how long.
_QUEUED_PER_CHECK, _QUEUE_SECONDS = 4, 2.0


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: str = Field(description=f"one of {', '.join(VERDICTS)}")
    note: str = ""


OIDC_COOKIE = "llm_audit_oidc"


def _local(path: str) -> str:
    """A redirect target within the console only (no open redirect to another site)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


def _violation_path(violation_id: str) -> str:
    return "/violations/" + quote(violation_id, safe="")


class BodyLimit:
    """Answers 413 to a request whose body is over `limit` bytes, before anything reads it into memory."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        too_large = PlainTextResponse(f"the request body is over {self.limit} bytes", status_code=413)
        if not length.isdigit() or int(length) > self.limit:
            return await too_large(scope, receive, send)
        seen = 0

        async def counted():  # a chunked body has no content-length
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"the request body is over {self.limit} bytes")
            return message

        return await self.app(scope, counted, send)


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
    throttle = Throttle(settings.console_login_window_seconds)
    gate = Gate(settings.console_login_checks, _QUEUED_PER_CHECK * settings.console_login_checks, _QUEUE_SECONDS)
    busy_logged = [-float("inf")]  # when "sign-in busy" was last logged: once per window
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

    # The API reference is a page of our own (/api/docs): FastAPI's would load Swagger UI from a CDN.
    app = FastAPI(title="llm-audit review console", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.add_middleware(BodyLimit, limit=MAX_BODY)

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
        session_id = sessions.read(request.cookies.get(sessions.COOKIE))
        found = auth.by_session(store.db, session_id) if session_id else None
        if found is None:
            # The path as sent (an encoded id stays encoded), and its query (the queue's filters).
            here = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
            query = request.scope.get("query_string", b"").decode("latin-1")
            raise HTTPException(
                303, headers={"Location": "/login?" + urlencode({"next": here + (query and "?" + query)})}
            )
        return found

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
        """The queue, newest first: `items` and the `next` page's cursor (null on the last page). Filters:
        tenant, model, application, rule_id, category, severity, status (unreviewed or a verdict), since and until
        (ISO 8601)."""
        unknown = set(request.query_params) - {*_QUERY_FIELDS, "cursor", "limit"}
        if unknown:
            raise BadRequest(
                f"unknown query parameters {sorted(unknown)}; valid: {', '.join((*_QUERY_FIELDS, 'cursor', 'limit'))}"
            )
        items, following = store.page(caller, filters_of(request), cursor, max(1, min(limit, 500)))
        return {"items": [_json(d) for d in items], "next": following}

    @app.get("/api/violations/{violation_id:path}/context")
    def api_context(violation_id: str, caller: API):
        """The findings of the violation's session (or event) in its tenant, and its tenant's anomalies within an
        hour."""
        doc = store.get(caller, violation_id)
        if doc is None:
            raise HTTPException(404, "no such violation")
        return {
            "session": [_json(d) for d in store.session(caller, doc)],
            "anomalies": [_json(d) for d in store.anomalies_near(caller, doc)],
        }

    @app.post("/api/violations/{violation_id:path}/reviews", status_code=201)
    def api_review(violation_id: str, body: ReviewIn, caller: API):
        """Records a verdict (needs the reviewer role)."""
        doc = store.get(caller, violation_id)
        if doc is None:
            raise HTTPException(404, "no such violation")
        needs(caller, "reviewer")
        return _json(reviewed(caller, doc, body.verdict, body.note))

    @app.get("/api/violations/{violation_id:path}")
    def api_violation(violation_id: str, caller: API):
        """One violation (its id percent-encoded, '/' included)."""
        doc = store.get(caller, violation_id)
        if doc is None:
            raise HTTPException(404, "no such violation")
        return _json(doc)

    @app.get("/api/rules/stats")
    def api_rule_stats(caller: API):
        """Per rule, over the caller's tenants: the latest verdicts' counts and precision."""
        return {"rules": store.rule_stats(caller)}

    # --- pages --------------------------------------------------------------------------------------------

    def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        response = TEMPLATES.TemplateResponse(request, template, context, status_code=status)
        response.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    @app.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs(request: Request):
        schema = app.openapi()
        paths = {path: ops for path, ops in schema["paths"].items() if path.startswith("/api/")}
        bodies = {
            media["schema"]["$ref"].rsplit("/", 1)[1]
            for ops in paths.values()
            for op in ops.values()
            for media in op.get("requestBody", {}).get("content", {}).values()
            if "$ref" in media["schema"]
        }
        schemas = {name: spec for name, spec in schema["components"]["schemas"].items() if name in bodies}
        return render(request, "api_docs.html", caller=None, paths=paths, schemas=schemas)

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
        def refused(status: int, error: str, retry_after: int | None = None) -> Response:
            response = render(request, "login.html", status=status, next=_local(next), error=error,
                              sso=provider is not None)  # fmt: skip
            if retry_after:
                response.headers["Retry-After"] = str(retry_after)
            return response

        # Before anything is hashed or stored: no user has a longer name (auth.add_user).
        if len(username) > auth.MAX_NAME or len(password) > auth.MAX_PASSWORD:
            return refused(400, f"A user name has at most {auth.MAX_NAME} characters, a password {auth.MAX_PASSWORD}.")
        address = address_key(request.client.host if request.client else None)
        limits = {f"user {username}": settings.console_login_user_attempts,
                  f"address {address}": settings.console_login_address_attempts}  # fmt: skip
        refusal = throttle.admit(limits)
        if refusal:
            window = settings.console_login_window_seconds
            for key in refusal.first:  # once per key and window, not per attempt
                kind, _, target = key.partition(" ")
                store.log("(sign-in)", "sign-in throttled", target, f"over {limits[key]} attempts from this {kind} "
                          f"in {window} s", address=address)  # fmt: skip
            minutes = -(-refusal.retry_after // 60)
            return refused(429, f"Too many sign-in attempts: try again in {minutes} min.", refusal.retry_after)
        try:
            with gate.slot():
                caller = auth.by_password(store.db, username, password)
        except Busy:  # counted all the same: a flood turns into cheap 429s, which never reach the gate
            if time.monotonic() - busy_logged[0] > settings.console_login_window_seconds:
                busy_logged[0] = time.monotonic()
                store.log("(sign-in)", "sign-in busy", "", "every password check taken: sign-ins refused (503)",
                          address=address)  # fmt: skip
            return refused(503, "Too many sign-ins at once: try again in a moment.", 2)
        if caller is None:
            store.log(username, "sign-in failed", username, "wrong name or password", address=address)
            return refused(401, "Wrong name or password.")
        throttle.give_back(list(limits))
        store.log(caller.name, "sign-in", caller.name, "password", address=address)
        return signed_in(caller.name, next, "password")

    def signed_in(user: str, next_path: str, how: str) -> Response:
        session = auth.open_session(store.db, user, how, settings.console_session_hours)
        response = RedirectResponse(_local(next_path), status_code=303)
        # Lax, not Strict: the redirect back from an OpenID Connect issuer must carry it; forms carry a CSRF token.
        response.set_cookie(sessions.COOKIE, sessions.cookie(session), max_age=sessions.max_age, httponly=True,
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
        response = signed_in(user, data["next"], "oidc")
        response.delete_cookie(OIDC_COOKIE, path="/login/oidc")
        return response

    @app.post("/logout")
    def logout(page: PAGE, csrf: Annotated[str, Form()]):
        caller, session = page
        check_csrf(session, csrf)
        auth.end_session(store.db, session.id)  # a copy of the cookie signs in no more
        store.log(caller.name, "sign-out", caller.name, "signed out")
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

    @app.get("/violations/{violation_id:path}", response_class=HTMLResponse)
    def violation_page(request: Request, violation_id: str, page: PAGE):
        caller, session = page
        doc = store.get(caller, violation_id)
        if doc is None:
            return render(request, "missing.html", status=404, caller=caller, csrf=session.csrf)
        return render(request, "violation.html", caller=caller, csrf=session.csrf, v=doc,
                      reviews=store.reviews(caller, doc), session_findings=store.session(caller, doc),
                      anomalies=store.anomalies_near(caller, doc),
                      verdicts=VERDICTS, can_review=auth.allowed(caller, "reviewer"),
                      fp_line=must_not_match_line(doc))  # fmt: skip

    @app.post("/violations/{violation_id:path}/review")
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
        return RedirectResponse(_violation_path(violation_id), status_code=303)

    @app.get("/healthz")
    def healthz() -> Response:
        client.admin.command("ping")
        return Response("ok", media_type="text/plain")

    return app
