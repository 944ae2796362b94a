"""The `llm-audit` app (flink_jobs/cli/): its options as a user sees them in --help: a flag is one name, never a `--no-no-...` pair."""

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from flink_jobs.cli import app

WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}  # the help box abbreviates long names on a narrow terminal


def _commands(command, path=()):
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield " ".join(path), command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


FLAGS = [
    (path, option)
    for path, command in _commands(get_command(app))
    for option in command.params
    if getattr(option, "is_flag", False) and option.name != "help"
]


def test_console_user_add_help_offers_no_password_as_a_plain_flag():
    shown = CliRunner().invoke(app, ["console", "user", "add", "--help"], env=WIDE)
    assert shown.exit_code == 0, shown.output
    assert "--no-password " in shown.output and "--no-no-password" not in shown.output
    assert "--password-stdin " in shown.output and "--no-password-stdin" not in shown.output


@pytest.mark.parametrize(("path", "option"), FLAGS, ids=[f"{p} {o.opts[0]}" for p, o in FLAGS])
def test_a_flag_that_is_off_by_default_has_one_name(path, option):
    assert not any(name.startswith("--no-no-") for name in [*option.opts, *option.secondary_opts])
    if option.default is False:
        assert option.secondary_opts == [], f"`llm-audit {path}` {option.opts}: declare it typer.Option(False, '--x')"


def test_the_sweep_sees_every_flag():
    assert {(p, o.opts[0]) for p, o in FLAGS} >= {("console user add", "--no-password"), ("erase", "--finish"),
                                                  ("archive retention", "--dry-run"), ("run audit", "--bounded")}


def test_eval_leads_with_leave_one_source_out_for_injection_and_secrets():
    shown = CliRunner().invoke(app, ["eval", "--n", "10", "--no-retrain"], env=WIDE)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    first_table = next(i for i, line in enumerate(lines) if "leave one source out" in line)
    assert first_table < next(i for i, line in enumerate(lines) if "third-party data (test split)" in line)
    for title in ("prompt injection, event level, leave one source out: rules/default.yaml",
                  "with the injection scorer, the default (its index: ours and the other sources)",
                  "rules/default.yaml, no scorers (patterns only)",
                  "secrets, per labelled secret, each scanner's tests a held-out source",
                  "PII values, one per text, each generator or test suite a held-out source",
                  "toxicity score, leave one source out", "bias score, leave one source out",
                  "toxicity.high: threshold"):
        assert title in shown.output
    rows = {line.split("│")[1].strip() for line in lines if line.startswith("│")}
    assert {"bastioncorpus", "agent-injection-bench", "blastcontain-drill", "trufflehog", "ripsecrets", "trivy",
            "libphonenumber: phone_number", "python-stdnum: iban", "toxigen", "crows-pairs", "min", "mean",
            "pooled"} <= rows
