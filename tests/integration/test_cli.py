"""The `llm-audit` console script as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

from devstack import stack
from tests.integration.conftest import child_env
from tests.support.check import read_topic

LLM_AUDIT = str(Path(sys.executable).parent / "llm-audit")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([LLM_AUDIT, *args], capture_output=True, text=True, timeout=300,
                          env={**child_env(), **(env or {})})


def test_produce_writes_the_stream_and_its_ground_truth(stack_settings, run_id, tmp_path):
    topic = f"cli-{run_id}"
    stack.create_topics(stack_settings.kafka_bootstrap, {topic: {}})
    labels = tmp_path / "labels.jsonl"
    result = run("produce", "--events", "250", "--seed", "3", "--rate", "500", "--topic", topic,
                 "--bootstrap", stack_settings.kafka_bootstrap, "--labels", str(labels))
    assert result.returncode == 0, result.stderr
    messages = read_topic({"bootstrap_servers": stack_settings.kafka_bootstrap}, topic)
    truths = [json.loads(line) for line in labels.read_text().splitlines()]
    assert len(messages) == len(truths) == 250
    valid_ids = [json.loads(m)["event_id"] for m, t in zip(messages, truths) if not t["malformed"]]
    assert valid_ids == [t["event_id"] for t in truths if not t["malformed"]]  # same order, same events
    assert "generated traffic" in result.stderr and "email" in result.stderr


def test_stack_status_reports_every_service(stack_settings):
    result = run("stack", "status")
    assert result.returncode == 0
    assert all(f"{name}" in result.stderr for name in ("kafka", "ferretdb", "influxdb"))
    assert result.stderr.count("healthy") == 3


def test_run_audit_fails_fast_on_a_missing_rules_file_or_a_bad_setting(tmp_path):
    missing = run("run", "audit", "--bounded", env={"LLM_AUDIT_RULES_PATH": str(tmp_path / "nope.yaml")})
    assert missing.returncode == 1
    assert f"{tmp_path / 'nope.yaml'}: no rules file or directory there" in missing.stderr.replace("\n", "")
    bad = run("run", "audit", env={"LLM_AUDIT_STARTING_OFFSETS": "oldest"})
    assert bad.returncode == 1 and "LLM_AUDIT_STARTING_OFFSETS='oldest'" in bad.stderr
    # The default rules read the scorers (score and entities rules): without them it is an error, not silence.
    rules_only = run("run", "audit", "--bounded", env={"LLM_AUDIT_SCORERS": "[]"})
    assert rules_only.returncode == 1
    needed = "score and entities rules need scorers ['bias', 'entities', 'injection', 'toxicity']"
    assert needed in rules_only.stderr.replace("\n", "")
