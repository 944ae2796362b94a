"""`llm-audit console serve` and `llm-audit console user add`: the review console and its users."""

from __future__ import annotations

import sys

import typer

from flink_jobs.cli.console import console, fail

app = typer.Typer(no_args_is_help=True, help="The review console: auditors triage violations in a browser.")
users = typer.Typer(no_args_is_help=True, help="The console's users (roles: viewer, reviewer, admin).")
app.add_typer(users, name="user")


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


@users.command("add")
def add(
    name: str,
    role: str = typer.Option(..., help="viewer (reads), reviewer (reviews), admin (manages users)."),
    tenant: list[str] = typer.Option(..., help="A tenant the user may see; repeat it; '*' for all."),
    password_stdin: bool = typer.Option(False, help="Read the password from stdin instead of a prompt."),
    no_password: bool = typer.Option(False, help="An API-only user (a token, no browser sign-in)."),
) -> None:
    """Add a user; prints their API token once (only its hash is kept)."""
    import getpass

    from pymongo import MongoClient

    from console.auth import AuthError, add_user
    from console.settings import ConsoleSettings
    from console.store import Store

    settings = ConsoleSettings()
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif not no_password:
        password = typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    if password is not None and len(password) < 12:
        fail("a password of at least 12 characters, please")
    by = getpass.getuser()
    client: MongoClient[dict] = MongoClient(settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=10_000)
    with client:
        store = Store(client, settings.mongo_database, settings.violations_collection, settings.anomalies_collection)
        try:
            token = add_user(store.db, name, role, tenant, password, by)
        except AuthError as exc:
            fail(str(exc))
        store.log(by, "user add", name, f"role {role}, tenants {', '.join(sorted(tenant))}")
    console.print(f"added {name} ({role}; tenants {', '.join(sorted(tenant))}). API token, shown once:")
    print(token)
