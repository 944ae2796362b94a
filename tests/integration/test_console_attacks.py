"""Attacks on the review console (issue 30), each performed against the real console on the real local
MongoDB (FerretDB): a login flood against `llm-audit console serve` with its memory measured, replayed
session cookies and API tokens after sign-out, revocation and rotation, a timeline across tenants, bad
cursors, ids with '/' and '%', and API docs that load nothing from another origin."""

import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from pymongo import MongoClient
from typer.testing import CliRunner

from console.app import create_app
from console.auth import add_user
from console.settings import ConsoleSettings
from console.store import AUDIT_LOG
from devstack.stack import StackSettings
from flink_jobs.cli import app as cli
from tests.integration.conftest import child_env
from tests.support.console_data import violations

LLM_AUDIT = str(Path(sys.executable).parent / "llm-audit")
PASSWORD = "correct horse battery"
POD_LIMIT_MIB = 512  # the console Deployment's memory limit (k8s/base/console.yaml)
MONGO_URI = StackSettings().mongo_uri


@pytest.fixture(scope="module")
def console_db(stack_settings):
    """A database of its own with the job's violations of 300 events."""
    client = MongoClient(stack_settings.mongo_uri)
    db = client[f"console_attacks_{uuid.uuid4().hex[:8]}"]
    db["violations"].insert_many(violations(300, seed=5))
    yield db
    client.drop_database(db.name)
    client.close()


@pytest.fixture
def settings(console_db, stack_settings):
    return ConsoleSettings(
        mongo_uri=stack_settings.mongo_uri, mongo_database=console_db.name, influx_url=stack_settings.influx_url
    )


@pytest.fixture
def browser(settings, console_db):
    """A fresh console (its own throttles) and a client that keeps its cookies, as a browser does."""
    return TestClient(create_app(settings, console_db.client), base_url="https://testserver")


def _user(db, role: str, tenants: list[str]) -> tuple[str, str]:
    """A new user of this test only -> (name, API token)."""
    name = f"u{uuid.uuid4().hex[:8]}"
    return name, add_user(db, name, role, tenants, PASSWORD, "test")


def _cli(db, *args: str):
    """`llm-audit console ARGS` on the test's database."""
    env = {"LLM_AUDIT_MONGO_URI": MONGO_URI, "LLM_AUDIT_MONGO_DATABASE": db.name}
    return CliRunner().invoke(cli, ["console", *args], env=env)


def _sign_in(client: TestClient, name: str) -> str:
    """Signs in on the page -> the session cookie's value."""
    response = client.post("/login", data={"username": name, "password": PASSWORD, "next": "/"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client.cookies.get("llm_audit_session")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _signed_in(client: TestClient) -> bool:
    return client.get("/", follow_redirects=False).status_code == 200


# --- hole 8: the login flood -------------------------------------------------------------------------------


def _rss_mib(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of a process, MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


@pytest.fixture
def served(console_db, stack_settings):
    """`llm-audit console serve` as a process of its own, as the pod runs it -> (its URL, the process)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in child_env().items() if not k.startswith("LLM_AUDIT_") or k.startswith("LLM_AUDIT_STACK")}
    env.update(
        LLM_AUDIT_MONGO_URI=stack_settings.mongo_uri,
        LLM_AUDIT_MONGO_DATABASE=console_db.name,
        LLM_AUDIT_INFLUX_URL=stack_settings.influx_url,
        LLM_AUDIT_CONSOLE_PORT=str(port),
    )
    proc = subprocess.Popen(
        [LLM_AUDIT, "console", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "no answer"
        time.sleep(0.2)
    yield url, proc
    proc.terminate()
    proc.wait(10)


def test_a_login_flood_is_throttled_and_stays_within_the_pods_memory(served, console_db):
    url, proc = served
    victim, _ = _user(console_db, "reviewer", ["acme"])
    bystander, _ = _user(console_db, "viewer", ["acme"])
    base_rss, _ = _rss_mib(proc.pid)

    def attempt(i: int, name: str, address: str | None = None) -> httpx.Response:
        headers = {"X-Forwarded-For": address} if address else {}
        with httpx.Client(base_url=url, timeout=60) as http:
            return http.post("/login", data={"username": name, "password": f"guess {i}", "next": "/"}, headers=headers)

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        # One attacker, one account: 64 wrong passwords, 16 at a time.
        aimed = list(pool.map(lambda i: attempt(i, victim), range(64)))
        # Many addresses, many names (what per-key throttles cannot stop): the hashing must stay bounded.
        spread = list(pool.map(lambda i: attempt(i, f"nobody{i}", f"198.51.100.{i}"), range(64)))
        # One address, a new name each time.
        sprayed = list(pool.map(lambda i: attempt(i, f"spray{i}", "192.0.2.1"), range(64)))
    took = time.monotonic() - started
    _, peak_rss = _rss_mib(proc.pid)
    aimed_codes, spread_codes, sprayed_codes = ([r.status_code for r in wave] for wave in (aimed, spread, sprayed))
    print(
        f"\nlogin flood: RSS {base_rss:.0f} MiB before, peak {peak_rss:.0f} MiB; {took:.1f} s; "
        + "; ".join(
            f"{name} {sorted(Counter(codes).items())}"
            for name, codes in (("aimed", aimed_codes), ("spread", spread_codes), ("sprayed", sprayed_codes))
        )
    )

    assert peak_rss < 300, f"peak resident {peak_rss:.0f} MiB (started at {base_rss:.0f}); the pod has {POD_LIMIT_MIB}"
    assert set(aimed_codes) | set(sprayed_codes) <= {401, 429, 503} and set(spread_codes) <= {401, 503}
    throttled = [r for r in aimed if r.status_code == 429]
    assert len(throttled) >= 40, aimed_codes  # at most a window's allowance (10) was ever checked
    assert sprayed_codes.count(429) >= 20, sprayed_codes  # ... of an address: 30
    assert all(int(r.headers["retry-after"]) > 0 for r in aimed + spread + sprayed if r.status_code in (429, 503))

    # The right password does not help within the window; another user from another address signs in.
    with httpx.Client(base_url=url) as http:
        locked = http.post("/login", data={"username": victim, "password": PASSWORD})
        assert locked.status_code == 429 and "retry-after" in locked.headers
        fine = http.post(
            "/login", data={"username": bystander, "password": PASSWORD}, headers={"X-Forwarded-For": "203.0.113.7"}
        )
        assert fine.status_code == 303 and "llm_audit_session=" in fine.headers["set-cookie"]
        # A long user name is refused before any hashing, and never stored; a 1 MiB body is not even read.
        long = http.post(
            "/login", data={"username": "x" * 100_000, "password": "p"}, headers={"X-Forwarded-For": "203.0.113.8"}
        )
        assert long.status_code == 400 and "at most 128" in long.text
        huge = http.post("/login", data={"username": "x" * 1024 * 1024, "password": "p"})
        assert huge.status_code == 413

    log = console_db[AUDIT_LOG]
    # The throttle is logged once per window and key, not per attempt; each checked failure once.
    assert log.count_documents({"action": "sign-in throttled", "target": victim}) == 1
    assert log.count_documents({"action": "sign-in throttled", "target": "192.0.2.1"}) == 1
    assert log.count_documents({"action": "sign-in failed", "target": victim}) <= 64 - len(throttled)
    longest = max(len(str(v)) for doc in log.find() for v in doc.values())
    assert longest <= 200, longest


# --- hole 9: revocation --------------------------------------------------------------------------------------


def test_a_signed_out_or_revoked_session_cookie_is_refused(settings, console_db, browser):
    name, _ = _user(console_db, "reviewer", ["acme"])
    kept = _sign_in(browser, name)
    page = browser.get("/")
    assert page.status_code == 200
    assert browser.post("/logout", data={"csrf": _csrf(page.text)}, follow_redirects=False).status_code == 303
    browser.cookies.set("llm_audit_session", kept)  # a copy of the cookie, taken before the sign-out
    assert not _signed_in(browser)

    # Two browsers signed in; `user revoke` ends both.
    laptop, phone = (TestClient(create_app(settings, console_db.client), base_url="https://testserver") for _ in "ab")
    _sign_in(laptop, name)
    _sign_in(phone, name)
    assert _signed_in(laptop) and _signed_in(phone)
    revoked = _cli(console_db, "user", "revoke", name)
    assert revoked.exit_code == 0, revoked.output
    assert "2 session" in revoked.output
    assert not _signed_in(laptop) and not _signed_in(phone)
    assert console_db[AUDIT_LOG].find_one({"action": "user revoke", "target": name})
    assert console_db[AUDIT_LOG].find_one({"action": "sign-out", "who": name})
    # The user may sign in again (a new session); an unknown user cannot be revoked.
    _sign_in(laptop, name)
    assert _signed_in(laptop)
    unknown = _cli(console_db, "user", "revoke", "nobody-such")
    assert unknown.exit_code == 1 and "no user" in unknown.output


def test_a_rotated_or_revoked_api_token_is_refused(console_db, browser):
    name, old = _user(console_db, "viewer", ["acme"])

    def status(token: str) -> int:
        return browser.get("/api/violations", headers={"Authorization": f"Bearer {token}"}).status_code

    assert status(old) == 200
    rotated = _cli(console_db, "token", "rotate", name)
    assert rotated.exit_code == 0, rotated.output
    new = rotated.output.strip().splitlines()[-1]
    assert new.startswith("lac_") and new != old
    assert (status(old), status(new)) == (401, 200)
    assert console_db[AUDIT_LOG].find_one({"action": "token rotate", "target": name})
    assert new not in str(list(console_db[AUDIT_LOG].find({"target": name})))  # shown once, never stored
    assert _cli(console_db, "user", "revoke", name).exit_code == 0
    assert status(new) == 401


# --- hole 7: tenants -----------------------------------------------------------------------------------------


def test_the_session_timeline_stays_within_the_violations_tenant(console_db, browser):
    """Tenant B's event reuses tenant A's event_id (no session): neither sees the other's in the timeline."""
    base = console_db["violations"].find_one({"tenant": "acme"})
    shared = f"evt-shared-{uuid.uuid4().hex[:6]}"
    ours = {**base, "_id": f"acme/{shared}:pii.email@1:prompt:0-5", "event_id": shared, "snippet": "acme-own-text"}
    theirs = {**ours, "_id": f"globex/{shared}:pii.email@1:prompt:0-5", "tenant": "globex", "snippet": "globex-secret"}
    ours.pop("session_id", None)
    theirs["session_id"] = None
    console_db["violations"].insert_many([ours, theirs])
    console_db["reviews"].insert_one(
        {
            "violation_id": ours["_id"],
            "tenant": "globex",
            "verdict": "confirmed",
            "note": "globex-review",
            "reviewer": "x",
            "at": base["event_time"],
        }
    )
    _, admin = _user(console_db, "admin", ["*"])
    acme_name, acme = _user(console_db, "reviewer", ["acme"])

    def timeline(token: str, doc: dict) -> list[str] | int:
        r = browser.get(
            f"/api/violations/{quote(doc['_id'], safe='')}/context", headers={"Authorization": f"Bearer {token}"}
        )
        return [v["_id"] for v in r.json()["session"]] if r.status_code == 200 else r.status_code

    assert timeline(admin, ours) == [ours["_id"]]
    assert timeline(admin, theirs) == [theirs["_id"]]
    assert timeline(acme, ours) == [ours["_id"]]
    assert timeline(acme, theirs) == 404
    _sign_in(browser, acme_name)
    page = browser.get(f"/violations/{quote(ours['_id'], safe='')}")
    assert page.status_code == 200 and "acme-own-text" in page.text
    assert "globex-secret" not in page.text and "globex-review" not in page.text


# --- hole 14: cursors, ids, docs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ['[1e400,"x"]', '[1e300,"x"]', '[-1e20,"x"]', '[null,"x"]', '{"a":1,"b":2}', '"x"', '[1,"x",3]', "not json", ""],
)
def test_a_bad_cursor_is_a_400(console_db, browser, raw):
    import base64

    _, token = _user(console_db, "viewer", ["acme"])
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=") or "%%%"
    api = browser.get("/api/violations", params={"cursor": cursor}, headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 400 and "cursor" in api.json()["detail"], (raw, api.status_code, api.text[:200])


@pytest.fixture
def live(settings, console_db):
    """The console on a real server: the test client decodes a path twice ('%252F' would reach the app as '/')."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, console_db.client), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        yield http
    server.should_exit = True
    thread.join(10)


def test_an_id_with_a_slash_and_percent_signs_opens(console_db, live):
    base = console_db["violations"].find_one({"tenant": "acme"})
    odd = {
        **base,
        "_id": "acme/evt%2F1%3Fa%23b c:pii.email@1:prompt:0-5",
        "event_id": "evt/1?a#b c",
        "snippet": "odd-id-snippet",
        "event_time": base["event_time"].replace(year=2031),
    }  # the newest: page one
    odd.pop("review", None)
    console_db["violations"].insert_one(odd)
    name, token = _user(console_db, "reviewer", ["acme"])
    auth = {"Authorization": f"Bearer {token}"}
    for path in (quote(odd["_id"], safe=""), quote(odd["_id"], safe="/")):
        got = live.get(f"/api/violations/{path}", headers=auth)
        assert got.status_code == 200 and got.json()["_id"] == odd["_id"], (path, got.status_code)
        context = live.get(f"/api/violations/{path}/context", headers=auth)
        assert context.status_code == 200 and odd["_id"] in [v["_id"] for v in context.json()["session"]]
    made = live.post(
        f"/api/violations/{quote(odd['_id'], safe='')}/reviews",
        headers=auth,
        json={"verdict": "escalated", "note": "odd id"},
    )
    assert made.status_code == 201, made.text
    assert live.get("/api/violations/acme/no-such:x@1:prompt:0-1", headers=auth).status_code == 404

    # In a browser: the queue's link opens it, and the review form comes back to it. (Secure cookies over
    # plain HTTP: sent by hand.)
    signed = live.post("/login", data={"username": name, "password": PASSWORD})
    assert signed.status_code == 303
    cookie = {"Cookie": f"llm_audit_session={signed.cookies['llm_audit_session']}"}
    queue = live.get("/", params={"tenant": "acme"}, headers=cookie)
    (href,) = [h for h in re.findall(r'href="(/violations/[^"]+)"', queue.text) if "evt%252F1" in h]
    page = live.get(href, headers=cookie)
    assert page.status_code == 200 and "odd-id-snippet" in page.text
    action = re.search(r'action="(/violations/[^"]+/review)"', page.text).group(1)
    back = live.post(action, data={"verdict": "confirmed", "csrf": _csrf(page.text)}, headers=cookie)
    assert back.status_code == 303 and back.headers["location"] == href
    assert f"confirmed</span> by {name}" in live.get(back.headers["location"], headers=cookie).text


def test_api_docs_load_nothing_from_another_origin(browser):
    docs = browser.get("/api/docs")
    assert docs.status_code == 200 and "/api/violations" in docs.text
    assert not re.search(r'(src|href)="(https?:)?//', docs.text), "a script or style from another origin"
    assert "default-src 'self'" in docs.headers["content-security-policy"]
    assert browser.get("/api/openapi.json").json()["paths"]
