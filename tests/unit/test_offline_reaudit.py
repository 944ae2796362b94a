"""What replay and audit-archive share (flink_jobs/offline/reaudit.py): the settings rewrite, the job's thread,
and the comparison by rule."""

import threading
import time
from pathlib import Path

import pytest

from flink_jobs.offline.audit_archive import archive_audit_settings
from flink_jobs.offline.reaudit import Comparison, run_job
from flink_jobs.offline.replay import replay_settings
from flink_jobs.settings import load_settings
from udfs.rules import load_rules

RULES = Path(__file__).resolve().parents[2] / "rules" / "default.yaml"


def test_the_comparison_lists_every_rule_of_either_side_with_its_difference():
    compared = Comparison({"a": 3, "b": 1, "audit.error": 2}, {"a": 3, "b": 4, "c": 5}, frozenset({"c"}))
    assert compared.rows() == [("a", "3", "3", ""), ("audit.error", "2", "0", "+2"), ("b", "1", "4", "-3"),
                               ("c", "not re-evaluated (redacted text)", "5", "")]
    assert Comparison({}, {}).rows() == []


def test_a_job_that_fails_fails_the_caller_after_it_has_ended_and_ended_has_run():
    order = []

    def execute():
        time.sleep(0.05)
        order.append("job")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_job(execute, "test-job", watch=lambda: order.append("watch"), every_s=0.01,
                ended=lambda: order.append("ended"))
    assert order[0] == "watch" and order[-2:] == ["job", "ended"]


def test_a_job_runs_in_a_thread_of_its_own_named_as_given():
    seen = []
    run_job(lambda: seen.append(threading.current_thread().name), "archive-audit")
    assert seen == ["archive-audit"]


def test_a_replay_and_an_archive_audit_write_violations_only_into_their_own_collection():
    live = load_settings(checkpoint_interval_ms=60_000, restore_from="file:///tmp/savepoint")
    replay = replay_settings(live, RULES, "r1", "file:///tmp/checkpoints/r1")
    again = archive_audit_settings(live, RULES, "a1", load_rules(RULES))
    for settings, collection in ((replay, "r1"), (again, "a1")):
        assert (settings.rules_path, settings.violations_collection, settings.outputs, settings.restore_from) == (
            RULES, collection, ["violations"], None)
    assert replay.ruleset_name == "replay-r1" and again.ruleset_name == "archive-audit-a1"
    assert (replay.group_id, replay.bounded, replay.checkpoint_dir, replay.checkpoint_interval_ms) == (
        f"{live.group_id}-r1", True, "file:///tmp/checkpoints/r1", 2000)
    assert again.archive_dir is None and again.scorers == sorted(load_rules(RULES).scorers_used())
    assert (live.violations_collection, live.outputs) != (again.violations_collection, again.outputs)  # a copy
