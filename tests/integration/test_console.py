"""The review console on the real local MongoDB (FerretDB): the API's allow and deny matrix, cursor
pages, reviews into precision, the pages' sign-in, sessions and CSRF."""

import itertools

import pytest
from fastapi.testclient import TestClient
from pymongo import MongoClient

from console.app import create_app
from console.auth import add_user
from console.settings import ConsoleSettings
from console.store import AUDIT_LOG
from devstack import stack
from tests.support.console_data import violations

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def console(stack_settings):
    """A console on a database of its own, seeded with the job's violations of 800 events, and its users."""
    import uuid

    name = f"console_{uuid.uuid4().hex[:8]}"
    settings = ConsoleSettings(mongo_uri=stack_settings.mongo_uri, mongo_database=name,
                               influx_url=stack_settings.influx_url, influx_bucket=f"{name}/autogen")
    stack.create_influx_database(settings.influx_url, name)
    client = MongoClient(settings.mongo_uri.get_secret_value())
    db = client[settings.mongo_database]
    docs = violations(800)
    db[settings.violations_collection].insert_many(docs)
    users = {
        "ann": ("viewer", ["acme"]),
        "rob": ("reviewer", ["acme"]),
        "gil": ("reviewer", ["globex"]),
        "ada": ("admin", ["*"]),
    }
    tokens = {name: add_user(db, name, role, tenants, PASSWORD, "test") for name, (role, tenants) in users.items()}
    app = create_app(settings, client)
    yield TestClient(app, base_url="https://testserver"), tokens, docs, db
    client.drop_database(settings.mongo_database)
    client.close()
    stack.drop_influx_database(settings.influx_url, name)


def _get(client, path, token=None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(path, headers=headers, params=params)


def _all_pages(client, token, **filters) -> list[dict]:
    items, cursor = [], None
    for _ in range(100):
        body = _get(client, "/api/violations", token, limit=17, **filters, **({"cursor": cursor} if cursor else {})).json()
        items += body["items"]
        cursor = body["next"]
        if cursor is None:
            return items
    raise AssertionError("pages never ended")


def test_pages_by_cursor_cover_each_visible_violation_once_newest_first(console):
    client, tokens, docs, _ = console
    mine = _all_pages(client, tokens["ann"])
    assert sorted(v["_id"] for v in mine) == sorted(d["_id"] for d in docs if d["tenant"] == "acme")
    keys = [(v["event_time"], v["_id"]) for v in mine]
    assert keys == sorted(keys, reverse=True) and len(mine) > 17 * 2
    everything = _all_pages(client, tokens["ada"])
    assert len(everything) == len(docs) and len({v["_id"] for v in everything}) == len(docs)
    # Filters combine, within the caller's tenants.
    emails = _all_pages(client, tokens["ada"], rule_id="pii.email", tenant="globex")
    assert emails and {(v["rule_id"], v["tenant"]) for v in emails} == {("pii.email", "globex")}
    assert _all_pages(client, tokens["ann"], tenant="globex") == []  # another tenant: nothing, not an error


def test_the_api_allows_and_denies_by_role_tenant_and_credential(console):
    client, tokens, docs, _ = console
    acme = next(d for d in docs if d["tenant"] == "acme")
    globex = next(d for d in docs if d["tenant"] == "globex")
    review = {"verdict": "confirmed", "note": "real"}
    routes = [("GET", "/api/violations", None), ("GET", f"/api/violations/{acme['_id']}", None),
              ("POST", f"/api/violations/{acme['_id']}/reviews", review), ("GET", "/api/rules/stats", None)]
    for (method, path, body), credential in itertools.product(routes, [None, "lac_forged", tokens["ann"][:-2] + "xx",
                                                                         "Basic YWRhOnB3"]):
        headers = {"Authorization": f"Bearer {credential}"} if credential and not credential.startswith("Basic") \
            else ({"Authorization": credential} if credential else {})
        response = client.request(method, path, headers=headers, json=body)
        assert response.status_code == 401, (method, path, credential, response.status_code)
    expected = {  # (user, violation's tenant) -> status of GET one, POST a review
        ("ann", "acme"): (200, 403), ("ann", "globex"): (404, 404),
        ("rob", "acme"): (200, 201), ("rob", "globex"): (404, 404),
        ("gil", "acme"): (404, 404), ("gil", "globex"): (200, 201),
        ("ada", "acme"): (200, 201), ("ada", "globex"): (200, 201),
    }
    for (user, tenant), (read, write) in expected.items():
        doc = acme if tenant == "acme" else globex
        auth = {"Authorization": f"Bearer {tokens[user]}"}
        assert client.get(f"/api/violations/{doc['_id']}", headers=auth).status_code == read, (user, tenant)
        assert client.post(f"/api/violations/{doc['_id']}/reviews", headers=auth, json=review).status_code == write, \
            (user, tenant)
    assert client.get("/api/violations/no-such-id", headers={"Authorization": f"Bearer {tokens['ada']}"}).status_code == 404
    bad = client.post(f"/api/violations/{acme['_id']}/reviews", headers={"Authorization": f"Bearer {tokens['rob']}"},
                      json={"verdict": "maybe"})
    assert bad.status_code == 400 and "confirmed, false_positive, escalated" in bad.json()["detail"]
    odd = _get(client, "/api/violations", tokens["ada"], colour="red")
    assert odd.status_code == 400 and "unknown query parameters ['colour']" in odd.json()["detail"]


def test_reviews_make_per_rule_precision_and_an_audit_trail(console):
    client, tokens, docs, db = console
    emails = [d for d in docs if d["tenant"] == "globex" and d["rule_id"] == "pii.email"][:4]
    auth = {"Authorization": f"Bearer {tokens['gil']}"}
    for doc, verdict in zip(emails, ["confirmed", "confirmed", "confirmed", "false_positive"]):
        assert client.post(f"/api/violations/{doc['_id']}/reviews", headers=auth,
                           json={"verdict": verdict, "note": f"checked {doc['_id']}"}).status_code == 201
    stats = {s["rule_id"]: s for s in _get(client, "/api/rules/stats", tokens["gil"]).json()["rules"]}
    assert stats["pii.email"]["confirmed"] >= 3 and stats["pii.email"]["false_positive"] >= 1
    assert 0 < stats["pii.email"]["precision"] < 1
    # Scoped: acme's viewer counts acme's verdicts only.
    seen = sum(s["confirmed"] + s["false_positive"] + s["escalated"]
               for s in _get(client, "/api/rules/stats", tokens["ann"]).json()["rules"])
    assert seen == db["violations"].count_documents({"tenant": "acme", "review": {"$exists": True}})
    # ...and each review wrote the rule's totals in its tenant to InfluxDB, for the Grafana panel.
    from influxdb_client import InfluxDBClient

    with InfluxDBClient(url="http://127.0.0.1:8086", token="", org="-") as influx:
        tables = influx.query_api().query(
            f'from(bucket: "{db.name}/autogen") |> range(start: -1h) |> filter(fn: (r) => r._measurement == '
            f'"rule_reviews" and r.tenant == "globex" and r.rule_id == "pii.email") |> last()')
    latest = {r.get_field(): r.get_value() for t in tables for r in t.records}
    assert latest == {k: stats["pii.email"][k] for k in ("confirmed", "false_positive", "escalated")}
    one = _get(client, f"/api/violations/{emails[3]['_id']}", tokens["gil"]).json()
    assert one["review"]["verdict"] == "false_positive" and one["review"]["reviewer"] == "gil"
    assert _all_pages(client, tokens["gil"], status="false_positive") and all(
        v["review"]["verdict"] == "false_positive" for v in _all_pages(client, tokens["gil"], status="false_positive"))
    unreviewed = _all_pages(client, tokens["gil"], status="unreviewed")
    assert unreviewed and not {v["_id"] for v in unreviewed} & {d["_id"] for d in emails}
    assert all("review" not in v for v in unreviewed)
    trail = list(db[AUDIT_LOG].find({"who": "gil", "action": "review"}))
    assert len(trail) >= 4 and all(t["target"] and t["why"] for t in trail)


def test_pages_need_a_session_and_forms_a_matching_csrf_token(console):
    client, tokens, docs, _ = console
    client.cookies.clear()
    first = client.get("/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/login")
    wrong = client.post("/login", data={"username": "rob", "password": "nope", "next": "/"})
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    signed = client.post("/login", data={"username": "rob", "password": PASSWORD, "next": "/"}, follow_redirects=False)
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "samesite=lax" in cookie.lower()
    page = client.get("/")
    assert page.status_code == 200 and "rob (reviewer; acme)" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    acme = next(d for d in docs if d["tenant"] == "acme" and not d.get("review"))
    forged = client.post(f"/violations/{acme['_id']}/review", data={"verdict": "confirmed", "csrf": "forged"})
    assert forged.status_code == 403 and "CSRF" in forged.text
    # A tampered session cookie is no session.
    value = client.cookies.get("llm_audit_session")
    client.cookies.clear()
    client.cookies.set("llm_audit_session", value[:-1] + ("0" if value[-1] != "0" else "1"))
    assert client.get("/", follow_redirects=False).status_code == 303


@pytest.fixture
def issuer(stack_settings):
    """The test issuer on a local port; its `user` claims are whoever signs in next."""
    import socket
    import threading
    import time

    import uvicorn

    from tests.support.oidc_provider import issuer_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    user = {"sub": "42", "email": "rita@example.com", "email_verified": True}
    server = uvicorn.Server(uvicorn.Config(issuer_app(url, "console", "s3cret", user), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield url, user
    server.should_exit = True
    thread.join(10)


def _follow_issuer(location: str) -> str:
    """The issuer's answer to the browser: where it sends it back (the console's callback)."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        urllib.request.build_opener(NoRedirect).open(location)
    except urllib.error.HTTPError as answer:
        return answer.headers["Location"]
    raise AssertionError("the issuer did not redirect")


def test_single_sign_on_with_pkce_signs_in_a_console_user_and_no_one_else(console, issuer, stack_settings):
    from urllib.parse import parse_qs, urlsplit

    _, _, _, db = console
    url, user = issuer
    settings = ConsoleSettings(mongo_uri=stack_settings.mongo_uri, mongo_database=db.name, console_public_url="https://testserver",
                               console_oidc_issuer=url, console_oidc_client_id="console",
                               console_oidc_client_secret="s3cret")
    client = TestClient(create_app(settings, db.client), base_url="https://testserver")
    add_user(db, "rita@example.com", "viewer", ["acme"], None, "test")

    def sign_in(tamper=None):
        start = client.get("/login/oidc", params={"next": "/?tenant=acme"}, follow_redirects=False)
        assert start.status_code == 303 and start.headers["location"].startswith(f"{url}/authorize?")
        sent = parse_qs(urlsplit(start.headers["location"]).query)
        assert sent["code_challenge_method"] == ["S256"] and len(sent["code_challenge"][0]) == 43
        back = urlsplit(_follow_issuer(start.headers["location"]))
        assert back.path == "/login/oidc/callback"
        query = parse_qs(back.query)
        if tamper:
            query = tamper(query)
        return client.get(back.path, params={k: v[0] for k, v in query.items()}, follow_redirects=False)

    done = sign_in()
    assert done.status_code == 303 and done.headers["location"] == "/?tenant=acme"
    assert "rita@example.com (viewer; acme)" in client.get("/").text
    assert db[AUDIT_LOG].find_one({"who": "rita@example.com", "action": "sign-in", "why": "oidc"})

    client.cookies.clear()
    forged = sign_in(lambda q: {**q, "state": ["forged"]})
    assert forged.status_code == 400 and "state does not match" in forged.text
    client.cookies.clear()
    replayed = sign_in(lambda q: {**q, "code": ["not-issued"]})
    assert replayed.status_code == 400 and "invalid_grant" in replayed.text
    client.cookies.clear()
    user["email"] = "mallory@example.com"  # signed in at the issuer, but not a console user
    stranger = sign_in()
    assert stranger.status_code == 403 and "not a console user" in stranger.text
    assert client.get("/", follow_redirects=False).status_code == 303

    # An address the issuer has not verified names no one (anyone may type rita's into their profile).
    user["email"] = "rita@example.com"
    for unverified in ({"email_verified": False}, {"email_verified": "false"}, {}):
        client.cookies.clear()
        user.pop("email_verified", None)
        user.update(unverified)
        refused = sign_in()
        assert refused.status_code == 400 and "email_verified" in refused.text, unverified
        assert client.get("/", follow_redirects=False).status_code == 303
    assert db[AUDIT_LOG].find_one({"action": "sign-in failed", "why": {"$regex": "email_verified"}})
    # By `sub`, the issuer's own identifier, the e-mail address does not matter.
    by_sub = settings.model_copy(update={"console_oidc_user_claim": "sub"})
    client = TestClient(create_app(by_sub, db.client), base_url="https://testserver")
    add_user(db, "42", "viewer", ["acme"], None, "test")
    assert sign_in().status_code == 303 and "42 (viewer; acme)" in client.get("/").text


def test_the_cli_adds_users_and_prints_rule_precision(console, stack_settings):
    from typer.testing import CliRunner

    from console.auth import by_password, by_token
    from flink_jobs.cli import app

    client, tokens, docs, db = console
    env = {"LLM_AUDIT_MONGO_URI": stack_settings.mongo_uri, "LLM_AUDIT_MONGO_DATABASE": db.name}
    runner = CliRunner()
    added = runner.invoke(app, ["console", "user", "add", "vera", "--role", "viewer", "--tenant", "initech",
                                "--password-stdin"], input="twelve chars ok\n", env=env)
    assert added.exit_code == 0, added.output
    token = added.output.strip().splitlines()[-1]
    assert by_token(db, token).tenants == ("initech",) and by_password(db, "vera", "twelve chars ok").role == "viewer"
    assert db[AUDIT_LOG].find_one({"action": "user add", "target": "vera"})["why"] == "role viewer, tenants initech"
    again = runner.invoke(app, ["console", "user", "add", "vera", "--role", "admin", "--tenant", "*", "--no-password"],
                          env=env)
    assert again.exit_code == 1 and "user 'vera' exists" in again.output
    short = runner.invoke(app, ["console", "user", "add", "walt", "--role", "viewer", "--tenant", "acme",
                                "--password-stdin"], input="short\n", env=env)
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    bad_role = runner.invoke(app, ["console", "user", "add", "xena", "--role", "owner", "--tenant", "acme",
                                   "--no-password"], env=env)
    assert bad_role.exit_code == 1 and "viewer, reviewer, admin" in bad_role.output

    # rules stats: the reviews so far (other tests of this module made some), precision per rule.
    stats = runner.invoke(app, ["rules", "stats"], env=env)
    assert stats.exit_code == 0, stats.output
    reviewed = db["violations"].distinct("rule_id", {"review": {"$exists": True}})
    assert reviewed and all(rule in stats.output for rule in reviewed)
