"""What the routes share: the app's services (kept in app.state), who is asking, and how a page is rendered."""

import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pymongo import MongoClient

from console import auth, oidc
from console.metrics import ReviewMetrics
from console.settings import ConsoleSettings
from console.store import FILTERS, Caller, Store
from console.throttle import Gate, Throttle

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
# A violation id as one path segment: jinja's urlencode leaves '/' as is, which a browser may normalise away.
TEMPLATES.env.filters["segment"] = lambda value: quote(str(value), safe="")
QUERY_FIELDS = (*FILTERS, "status", "since", "until")
# Password checks that may wait for a free one (LLM_AUDIT_CONSOLE_LOGIN_CHECKS), per check, and how long.
_QUEUED_PER_CHECK, _QUEUE_SECONDS = 4, 2.0


@dataclass
class Services:
    """One app's connections and sign-in state; create_app keeps them in app.state for the routes."""

    settings: ConsoleSettings
    client: MongoClient
    store: Store
    metrics: ReviewMetrics
    sessions: auth.Sessions
    throttle: Throttle
    gate: Gate
    provider: oidc.Provider | None  # None: no single sign-on
    busy_logged: float = -math.inf  # when "sign-in busy" was last logged (monotonic): once per window

    @classmethod
    def start(cls, settings: ConsoleSettings, client: MongoClient | None = None) -> "Services":
        client = client or MongoClient(settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=10_000)
        store = Store(client, settings.mongo_database, settings.violations_collection, settings.anomalies_collection)
        store.create_indexes()
        metrics = ReviewMetrics(
            settings.influx_url, settings.influx_token.get_secret_value(), settings.influx_org, settings.influx_bucket
        )
        secret = settings.console_session_secret
        sessions = auth.Sessions(
            secret.get_secret_value().encode() if secret else secrets.token_bytes(32), settings.console_session_hours
        )
        throttle = Throttle(settings.console_login_window_seconds)
        gate = Gate(settings.console_login_checks, _QUEUED_PER_CHECK * settings.console_login_checks, _QUEUE_SECONDS)
        return cls(settings, client, store, metrics, sessions, throttle, gate, _provider(settings))

    def review(self, caller: Caller, doc: dict, verdict: str, note: str) -> dict:
        """Records a verdict, and the rule's verdict totals after it as a metric."""
        record = self.store.review(caller, doc, verdict, note)
        self.metrics.write(doc["tenant"], doc["rule_id"], self.store.verdicts(doc["tenant"], doc["rule_id"]))
        return record


def _provider(settings: ConsoleSettings) -> oidc.Provider | None:
    if not settings.console_oidc_issuer:
        return None
    if not (settings.console_oidc_client_id and settings.console_oidc_client_secret and settings.console_public_url):
        raise ValueError(
            "LLM_AUDIT_CONSOLE_OIDC_ISSUER needs LLM_AUDIT_CONSOLE_OIDC_CLIENT_ID, "
            "LLM_AUDIT_CONSOLE_OIDC_CLIENT_SECRET and LLM_AUDIT_CONSOLE_PUBLIC_URL"
        )
    return oidc.Provider(
        settings.console_oidc_issuer,
        settings.console_oidc_client_id,
        settings.console_oidc_client_secret.get_secret_value(),
        settings.console_public_url.rstrip("/") + "/login/oidc/callback",
        settings.console_oidc_user_claim,
    )


async def get_services(request: Request) -> Services:
    # async: a plain attribute read, which needs no trip through the thread pool.
    return request.app.state.services


AppServices = Annotated[Services, Depends(get_services)]

# --- who is asking ----------------------------------------------------------------------------------------


def api_caller(request: Request, services: AppServices) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    caller = auth.by_token(services.store.db, token.strip()) if scheme.lower() == "bearer" else None
    if caller is None:
        raise HTTPException(401, "a valid API token is needed: Authorization: Bearer TOKEN",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    return caller


def page_session(request: Request, services: AppServices) -> tuple[Caller, auth.Session]:
    session_id = services.sessions.read(request.cookies.get(services.sessions.COOKIE))
    found = auth.by_session(services.store.db, session_id) if session_id else None
    if found is None:
        # The path as sent (an encoded id stays encoded), and its query (the queue's filters).
        here = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        query = request.scope.get("query_string", b"").decode("latin-1")
        raise HTTPException(303, headers={"Location": "/login?" + urlencode({"next": here + (query and "?" + query)})})
    return found


ApiCaller = Annotated[Caller, Depends(api_caller)]
PageCaller = Annotated[tuple[Caller, auth.Session], Depends(page_session)]


def needs(caller: Caller, role: str) -> None:
    if not auth.allowed(caller, role):
        raise HTTPException(403, f"{caller.name} is a {caller.role}; this needs {role}")


def check_csrf(session: auth.Session, token: str) -> None:
    if not secrets.compare_digest(session.csrf, token):
        raise HTTPException(403, "the form's CSRF token does not match this session: reload the page")


# --- requests and responses -------------------------------------------------------------------------------


def query_filters(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k in QUERY_FIELDS and v}


def local_path(path: str) -> str:
    """A redirect target within the console only (no open redirect to another site)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


def violation_path(violation_id: str) -> str:
    return "/violations/" + quote(violation_id, safe="")


def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status)
    response.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response
