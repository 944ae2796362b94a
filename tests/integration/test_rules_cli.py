"""Rule authors' workflow against the real broker: validate, test, push, list, diff."""

import json
import shutil
from pathlib import Path

from devstack import stack
from flink_jobs import rules_topic
from tests.integration.test_cli import run

ROOT = Path(__file__).resolve().parents[2]


def test_push_list_diff_round_trip(stack_settings, run_id, tmp_path):
    topic = f"rules-{run_id}"
    stack.create_topics(stack_settings.kafka_bootstrap, {topic: {"cleanup.policy": "compact"}})
    common = ["--topic", topic, "--bootstrap", stack_settings.kafka_bootstrap]
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    path = tmp_path / "rules" / "default.yaml"

    assert run("rules", "list", *common).returncode == 1  # nothing live yet
    pushed = run("rules", "push", str(path), "-m", "first", "--author", "alice", *common)
    assert pushed.returncode == 0 and "pushed default v1" in pushed.stderr, pushed.stderr
    live = rules_topic.latest({"bootstrap_servers": stack_settings.kafka_bootstrap}, topic, "default")
    assert (live["version"], live["author"], live["message"]) == (1, "alice", "first")
    # Keyword files are inlined: the pushed record is self-contained for the job.
    prohibited = next(r for r in live["rules"]["rules"] if r["id"] == "prohibited.dangerous_requests")
    assert "synthesize sarin" in prohibited["match"]["words"] and prohibited["match"]["file"] is None

    path.write_text(path.read_text().replace("severity: low\n    owner: platform-team\n    entity: slow_response",
                                             "severity: high\n    owner: platform-team\n    entity: slow_response"))
    diff = run("rules", "diff", str(path), *common)
    assert diff.returncode == 0 and "changed" in diff.stderr and "policy.slow_response" in diff.stderr
    assert "severity" in diff.stderr and diff.stderr.count("changed") == 1

    again = run("rules", "push", str(path), "-m", "slow is high", *common)
    assert "pushed default v2" in again.stderr
    listed = run("rules", "list", *common)
    assert "default v2" in listed.stderr and "slow is high" in listed.stderr
    same = run("rules", "push", str(path), "-m", "noop", *common)
    assert "nothing pushed" in same.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text(path.read_text().replace("severity: high", "severity: urgent", 1))
    rejected = run("rules", "push", str(broken), "-m", "bad", *common)
    assert rejected.returncode == 1 and "severity: 'urgent' is not one of info, low, medium, high, critical" in rejected.stderr
    assert rules_topic.latest({"bootstrap_servers": stack_settings.kafka_bootstrap}, topic, "default")["version"] == 2


def test_junk_and_forged_records_on_the_topic_neither_break_nor_skip_a_push(stack_settings, run_id, tmp_path):
    from kafka import KafkaProducer

    from udfs.rules import load_rules

    topic = f"rules-junk-{run_id}"
    stack.create_topics(stack_settings.kafka_bootstrap, {topic: {"cleanup.policy": "compact"}})
    common = ["--topic", topic, "--bootstrap", stack_settings.kafka_bootstrap]
    path = ROOT / "rules" / "default.yaml"
    # The file's hash and sha256 over other rules: trusted, it would make the push print "unchanged".
    forged = {**rules_topic.push_record(load_rules(path), "default", 7, "mallory", "x"), "rules": {"rules": []}}
    producer = KafkaProducer(bootstrap_servers=stack_settings.kafka_bootstrap)
    for value in ("{not json", "[1]", json.dumps({"name": "default"}), json.dumps(forged)):
        producer.send(topic, key=b"default", value=value.encode())
    producer.flush()
    producer.close()

    pushed = run("rules", "push", str(path), "-m", "first", "--author", "alice", *common)
    assert pushed.returncode == 0 and "pushed default v1" in pushed.stderr, pushed.stderr
    assert pushed.stderr.count("skipped junk") == 4 and "sha256 does not match the rules" in pushed.stderr
    assert rules_topic.latest({"bootstrap_servers": stack_settings.kafka_bootstrap}, topic, "default")["author"] == "alice"
    listed = run("rules", "list", *common)
    assert listed.returncode == 0 and "default v1" in listed.stderr and "unsigned" in listed.stderr, listed.stderr


def test_rules_test_reports_a_failing_example(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps({"rules": [{
        "id": "kw", "version": 1, "description": "d", "category": "policy", "severity": "low", "owner": "t",
        "match": {"type": "keywords", "words": ["forbidden"]},
        "examples": {"must_match": ["this is forbidden", "this is allowed"], "must_not_match": ["fine"]}}]}))
    result = run("rules", "test", str(path))
    assert result.returncode == 1
    assert "2 passed, 1 failed" in result.stderr and "FAIL" in result.stderr
