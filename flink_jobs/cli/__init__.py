"""`llm-audit`: the local stack, sample traffic, the audit job, rules, scans, measurements and models.

One module per command group; `console` holds the one console and the one error style.
"""

from __future__ import annotations

import typer

from flink_jobs.cli import archive, detection, job, models, review, rules, stack

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.split("\n")[0])
app.add_typer(stack.app, name="stack")
app.command()(stack.produce)
app.add_typer(job.run_app, name="run")
app.command()(job.replay)
app.command()(job.schema)
app.command("migrate-ids")(job.migrate_ids)
app.add_typer(rules.app, name="rules")
app.command()(detection.scan)
app.command("eval")(detection.evaluate)
app.add_typer(models.app, name="models")
app.add_typer(archive.app, name="archive")
app.add_typer(review.app, name="console")
app.command()(archive.erase)
app.command()(archive.report)
app.command("audit-archive")(archive.audit_archive)
