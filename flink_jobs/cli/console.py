"""The CLI's one console (stderr: stdout stays for data, e.g. `scan`'s JSON lines) and its one error style."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# PyFlink's thread mode can import this inside the JVM, where stderr is a catcher without isatty().
_TTY = getattr(sys.stderr, "isatty", lambda: False)()
console = Console(stderr=True, highlight=False, soft_wrap=True, width=None if _TTY else 120)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` and exit with `code` (1: the input is wrong, 2: the usage is)."""
    console.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


def progress_bar(description: str) -> Progress:
    """A transient bar on the console: `description` may name task fields, e.g. "[bold]{task.fields[topic]}"."""
    return Progress(
        TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    )


def warn_not_fully_audited(rule_counts: dict[str, int], collection: str) -> None:
    """A re-audit that failed on some events (udfs.faults) says so: they have audit.error findings."""
    failed = rule_counts.get("audit.error", 0)
    if failed:
        console.print(
            f"[yellow]warning[/]: {failed} audit.error finding(s): events not fully audited (a rule or scorer "
            f"failed on them). See {collection} (rule_id audit.error) and docs/runbooks/not-fully-audited.md"
        )
