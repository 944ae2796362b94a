"""Sign-in (a password, or single sign-on with OpenID Connect) and sign-out: a session cookie for the pages.

Password sign-ins are throttled per user name and client address, and their checks (argon2, 64 MiB each) wait in
a short queue for a free slot, so that a flood costs cheap 429s and 503s, not the pod's memory.
"""

import time
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console import auth, oidc
from console.routes.deps import AppServices, PageCaller, Services, check_csrf, local_path, render
from console.throttle import Busy, address_key

router = APIRouter()
OIDC_COOKIE = "llm_audit_oidc"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, services: AppServices, next: str = "/"):
    return render(request, "login.html", next=local_path(next), error=None, sso=services.provider is not None)


@router.post("/login")
def login(
    request: Request,
    services: AppServices,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
):
    settings, store = services.settings, services.store

    def refused(status: int, error: str, retry_after: int | None = None) -> Response:
        response = render(request, "login.html", status=status, next=local_path(next), error=error,
                          sso=services.provider is not None)  # fmt: skip
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        return response

    # Before anything is hashed or stored: no user has a longer name (auth.add_user).
    if len(username) > auth.MAX_NAME or len(password) > auth.MAX_PASSWORD:
        return refused(400, f"A user name has at most {auth.MAX_NAME} characters, a password {auth.MAX_PASSWORD}.")
    address = address_key(request.client.host if request.client else None)
    limits = {f"user {username}": settings.console_login_user_attempts,
              f"address {address}": settings.console_login_address_attempts}  # fmt: skip
    refusal = services.throttle.admit(limits)
    if refusal:
        window = settings.console_login_window_seconds
        for key in refusal.first:  # once per key and window, not per attempt
            kind, _, target = key.partition(" ")
            store.log("(sign-in)", "sign-in throttled", target, f"over {limits[key]} attempts from this {kind} "
                      f"in {window} s", address=address)  # fmt: skip
        minutes = -(-refusal.retry_after // 60)
        return refused(429, f"Too many sign-in attempts: try again in {minutes} min.", refusal.retry_after)
    try:
        with services.gate.slot():
            caller = auth.by_password(store.db, username, password)
    except Busy:  # counted all the same: a flood turns into cheap 429s, which never reach the gate
        if time.monotonic() - services.busy_logged > settings.console_login_window_seconds:
            services.busy_logged = time.monotonic()
            store.log("(sign-in)", "sign-in busy", "", "every password check taken: sign-ins refused (503)",
                      address=address)  # fmt: skip
        return refused(503, "Too many sign-ins at once: try again in a moment.", 2)
    if caller is None:
        store.log(username, "sign-in failed", username, "wrong name or password", address=address)
        return refused(401, "Wrong name or password.")
    services.throttle.give_back(list(limits))
    store.log(caller.name, "sign-in", caller.name, "password", address=address)
    return _signed_in(services, caller.name, next, "password")


def _signed_in(services: Services, user: str, next_path: str, how: str) -> Response:
    session = auth.open_session(services.store.db, user, how, services.settings.console_session_hours)
    sessions = services.sessions
    response = RedirectResponse(local_path(next_path), status_code=303)
    # Lax, not Strict: the redirect back from an OpenID Connect issuer must carry it; forms carry a CSRF token.
    response.set_cookie(sessions.COOKIE, sessions.cookie(session), max_age=sessions.max_age, httponly=True,
                        secure=True, samesite="lax")  # fmt: skip
    return response


@router.get("/login/oidc")
def oidc_start(services: AppServices, next: str = "/"):
    if services.provider is None:
        raise HTTPException(404, "single sign-on is not configured (LLM_AUDIT_CONSOLE_OIDC_ISSUER)")
    url, flow = services.provider.start(local_path(next))
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(OIDC_COOKIE, services.sessions.seal(flow.__dict__, 600), max_age=600, httponly=True,
                        secure=True, samesite="lax", path="/login/oidc")  # fmt: skip
    return response


@router.get("/login/oidc/callback")
def oidc_callback(request: Request, services: AppServices, state: str = "", code: str = ""):
    provider, store = services.provider, services.store
    data = services.sessions.unseal(request.cookies.get(OIDC_COOKIE))
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
    response = _signed_in(services, user, data["next"], "oidc")
    response.delete_cookie(OIDC_COOKIE, path="/login/oidc")
    return response


@router.post("/logout")
def logout(page: PageCaller, services: AppServices, csrf: Annotated[str, Form()]):
    caller, session = page
    check_csrf(session, csrf)
    auth.end_session(services.store.db, session.id)  # a copy of the cookie signs in no more
    services.store.log(caller.name, "sign-out", caller.name, "signed out")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(services.sessions.COOKIE)
    return response
