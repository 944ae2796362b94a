"""Rules pushed to the running job take effect within seconds; a bad push leaves the last good set running."""

import json
import time
from contextlib import contextmanager
from pathlib import Path

from kafka import KafkaProducer
from pymongo import MongoClient

from flink_jobs import rules_topic
from flink_jobs.streaming import job
from flink_jobs.kafka import client_config
from udfs.rules import load_rules, parse_rules, rules_digest

ROOT = Path(__file__).resolve().parents[2]
ZEBRA_RULE = """
  - id: custom.zebra
    version: 1
    description: Mentions of the internal project codename.
    category: policy
    severity: medium
    owner: test
    match: {type: keywords, words: [project zebra]}
"""


def _event(i: int, text: str) -> bytes:
    return json.dumps({"event_id": f"hot-{i}", "timestamp": int(time.time() * 1000), "tenant": "acme",
                       "model": "m", "prompt": text}).encode()


def _wait_for(predicate, timeout_s: float, produce_next) -> float:
    """Keep producing until predicate() holds; return the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        produce_next()
        if predicate():
            return time.monotonic() - began
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s}s")


@contextmanager
def _running_job(settings, name: str):
    """Start the job, wait for RUNNING; yield (db, producer, send) where send() produces one codename event."""
    client = job.build_job(settings).execute_async(name)
    mongo = MongoClient(settings.mongo_uri.get_secret_value())
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    counter = iter(range(10**6))

    def send() -> None:
        i = next(counter)
        producer.send(settings.source_topic, _event(i, f"status of project zebra, ticket {i}"))
        producer.flush()

    try:
        _wait_for(lambda: client.get_job_status().result().name == "RUNNING", 60, lambda: None)
        yield mongo[settings.mongo_database], producer, send
    finally:
        client.cancel().result()
        producer.close()
        mongo.close()


def test_push_changes_what_the_running_job_flags_and_a_bad_push_is_rejected(isolated_job):
    settings = isolated_job("hot", bounded=False, starting_offsets="earliest", checkpoint_interval_ms=500)

    def zebra_findings() -> int:
        return db[settings.violations_collection].count_documents({"rule_id": "custom.zebra"})

    with _running_job(settings, "llm-audit-hot-reload") as (db, producer, send):
        # The job runs the file's rules: the codename is not flagged, though the events are audited. An
        # e-mail address after them is, once every operator is up (the scorer's models load for seconds
        # after the job reports RUNNING): the push below is timed against a warm job.
        for _ in range(5):
            send()
        producer.send(settings.source_topic, _event(-1, "write to bob@example.com"))
        _wait_for(lambda: db[settings.violations_collection].count_documents({}) > 0, 120, producer.flush)
        assert zebra_findings() == 0

        base = (ROOT / "rules" / "default.yaml").read_text()
        good = parse_rules(base + ZEBRA_RULE, base_dir=ROOT / "rules")
        rules_topic.publish(client_config(settings), settings.rules_topic,
                            rules_topic.push_record(good, "default", 1, "tester", "add zebra"))
        took = _wait_for(lambda: zebra_findings() > 0, 5, send)
        print(f"push -> first finding of the new rule: {took:.2f}s")

        # A push that fails validation is recorded as rejected; the last good set keeps running.
        bad = rules_topic.push_record(load_rules(ROOT / "rules" / "default.yaml"), "default", 2, "tester", "bad")
        bad["rules"]["rules"][0]["severity"] = "urgent"
        bad["sha256"] = rules_digest(bad["rules"])  # hand-edited with its digest: the rules are checked too
        rules_topic.publish(client_config(settings), settings.rules_topic, bad)
        _wait_for(lambda: db[settings.rule_changes_collection].count_documents({"accepted": False}) > 0, 10, lambda: None)
        before = zebra_findings()
        _wait_for(lambda: zebra_findings() > before, 10, send)

        changes = {(c["version"], c["accepted"]): c for c in db[settings.rule_changes_collection].find()}
        assert set(changes) == {(1, True), (2, False)}
        assert changes[(1, True)]["author"] == "tester" and changes[(1, True)]["hash"] == good.content_hash()
        assert "severity" in changes[(2, False)]["reason"]


def test_a_job_that_trusts_keys_runs_only_pushes_signed_by_them(isolated_job, unscored_rules, tmp_path):
    from typer.testing import CliRunner

    from flink_jobs.cli import app
    from tests.integration.conftest import job_env
    from udfs.signing import generate_key, load_private_key, sign

    keys = tmp_path / "keys"
    made = CliRunner().invoke(app, ["rules", "keygen", "--out", str(keys / "alice.pem")])
    assert made.exit_code == 0 and "key id" in made.output, made.output
    public = (keys / "alice.pem.pub").read_text().strip()
    settings = isolated_job("signed", bounded=False, starting_offsets="earliest", checkpoint_interval_ms=500,
                            scorers=[], rules_path=unscored_rules, rules_trusted_keys=[public], rules_allow_unsigned=False)

    def changes() -> dict:
        return {c["version"]: c for c in db[settings.rule_changes_collection].find()}

    with _running_job(settings, "llm-audit-signed-pushes") as (db, _, send):
        zebra = unscored_rules.read_text() + ZEBRA_RULE
        (tmp_path / "zebra.yaml").write_text(zebra)
        ruleset = parse_rules(zebra, base_dir=unscored_rules.parent)
        kafka = client_config(settings)
        # Unsigned, and signed by a key the job does not trust: both recorded as rejected, and the same rules
        # signed with the trusted key then still go out (the CLI pushes again what another key signed).
        rules_topic.publish(kafka, settings.rules_topic, rules_topic.push_record(ruleset, "default", 1, "eve", "x"))
        other = load_private_key(generate_key()[0], "other")
        rules_topic.publish(kafka, settings.rules_topic,
                            sign(rules_topic.push_record(ruleset, "default", 2, "eve", "y"), other))
        _wait_for(lambda: len(changes()) == 2, 30, send)
        assert "unsigned push" in changes()[1]["reason"] and "does not trust" in changes()[2]["reason"]
        assert db[settings.violations_collection].count_documents({"rule_id": "custom.zebra"}) == 0

        # Signed with the trusted key through the CLI: it runs, and its record names the key.
        pushed = CliRunner().invoke(app, ["rules", "push", str(tmp_path / "zebra.yaml"), "-m", "add zebra",
                                          "--author", "alice", "--sign-key", str(keys / "alice.pem"),
                                          "--bootstrap", settings.kafka_bootstrap, "--topic", settings.rules_topic],
                                    env=job_env(settings))
        assert pushed.exit_code == 0 and "signed with key" in pushed.output, pushed.output
        _wait_for(lambda: db[settings.violations_collection].count_documents({"rule_id": "custom.zebra"}) > 0, 30, send)
        accepted = [c for c in changes().values() if c["accepted"]]
        assert len(accepted) == 1 and accepted[0]["author"] == "alice"
        assert accepted[0]["key_id"] and accepted[0]["key_id"] in made.output
