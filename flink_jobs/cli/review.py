"""`llm-audit console serve`, `console user add|revoke` and `console token rotate`: the review console, its users and
their API tokens. Every change to a user goes to the console's audit log."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from flink_jobs.cli.console import console, fail

if TYPE_CHECKING:
    from console.store import Store

app = typer.Typer(no_args_is_help=True, help="The review console: auditors triage violations in a browser.")
users = typer.Typer(no_args_is_help=True, help="The console's users (roles: viewer, reviewer, admin).")
app.add_typer(users, name="user")
tokens = typer.Typer(no_args_is_help=True, help="The console users' API tokens.")
app.add_typer(tokens, name="token")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Address to listen on (default LLM_AUDIT_CONSOLE_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default LLM_AUDIT_CONSOLE_PORT, 8099)."),
) -> None:
    """Serve the console (pages and the JSON API under /api) on the job's MongoDB."""
    import uvicorn

    from console.app import create_app
    from console.settings import ConsoleSettings

    settings = ConsoleSettings()
    host, port = host or settings.console_host, port or settings.console_port
    console.print(
        f"review console on http://{host}:{port}/ (API: /api, docs: /api/docs), MongoDB {settings.mongo_database}"
    )
    # Behind an ingress that terminates TLS: trust its X-Forwarded-* headers (the cookies are Secure).
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", proxy_headers=True)


@contextmanager
def _store() -> Iterator[Store]:
    """The console's store on the job's MongoDB, its client closed afterwards."""
    from pymongo import MongoClient

    from console.settings import ConsoleSettings
    from console.store import Store

    settings = ConsoleSettings()
    client: MongoClient[dict] = MongoClient(settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=10_000)
    with client:
        yield Store(client, settings.mongo_database, settings.violations_collection, settings.anomalies_collection)


@users.command("add")
def add(
    name: str,
    role: str = typer.Option(..., help="viewer (reads), reviewer (reviews), admin (manages users)."),
    tenant: list[str] = typer.Option(..., help="A tenant the user may see; repeat it; '*' for all."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin instead of a prompt."
    ),
    no_password: bool = typer.Option(False, "--no-password", help="An API-only user (a token, no browser sign-in)."),
) -> None:
    """Add a user; prints their API token once (only its hash is kept)."""
    import getpass

    from console.auth import AuthError, add_user

    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif not no_password:
        password = typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    if password is not None and len(password) < 12:
        fail("a password of at least 12 characters, please")
    by = getpass.getuser()
    with _store() as store:
        try:
            token = add_user(store.db, name, role, tenant, password, by)
        except AuthError as exc:
            fail(str(exc))
        store.log(by, "user add", name, f"role {role}, tenants {', '.join(sorted(tenant))}")
    console.print(f"added {name} ({role}; tenants {', '.join(sorted(tenant))}). API token, shown once:")
    print(token)


@users.command("revoke")
def revoke(name: str) -> None:
    """End every browser session of a user and void their API token, at once. They may sign in again (password
    or single sign-on); `console token rotate NAME` gives them a new token."""
    import getpass

    from console.auth import AuthError, revoke_user

    by = getpass.getuser()
    with _store() as store:
        try:
            ended = revoke_user(store.db, name)
        except AuthError as exc:
            fail(str(exc))
        store.log(by, "user revoke", name, f"{ended} session(s) ended, API token voided")
    console.print(f"revoked {name}: {ended} session(s) ended, API token voided")


@tokens.command("rotate")
def rotate(name: str) -> None:
    """Give a user a new API token, printed once; the old one stops working at once."""
    import getpass

    from console.auth import AuthError, rotate_token

    by = getpass.getuser()
    with _store() as store:
        try:
            token = rotate_token(store.db, name)
        except AuthError as exc:
            fail(str(exc))
        store.log(by, "token rotate", name, "new API token; the old one no longer works")
    console.print(f"new API token of {name}, shown once (the old one no longer works):")
    print(token)
