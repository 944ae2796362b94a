"""`llm-audit replay`: a past Kafka time range re-audited with another ruleset, into its own collection."""

import subprocess
import sys
import time
from pathlib import Path

from influxdb_client import InfluxDBClient
from pymongo import MongoClient

from devstack import traffic
from tests.support.check import planted_spans
from flink_jobs.kafka import client_config
from flink_jobs.rules_topic import read_topic
from tests.integration.conftest import job_env

ROOT = Path(__file__).resolve().parents[2]
RULES = """
rules:
  - id: pii.email
    version: 2
    description: Email addresses, as the new version would flag them.
    category: pii
    severity: medium
    owner: test
    match: {type: detector, name: pii, params: {entities: [email]}}
"""


def test_replay_audits_exactly_the_time_range_with_the_given_rules_and_touches_nothing_live(isolated_job, tmp_path):
    settings = isolated_job("replay", scorers=[], state_backend="rocksdb")  # the RocksDB option, on a real run
    phases = {}
    for seed, name in ((41, "before"), (42, "range"), (43, "after")):
        began = int(time.time() * 1000)
        phases[name] = traffic.produce(settings.kafka_bootstrap, settings.source_topic, 300, seed=seed)
        phases[name + "_ms"] = (began, int(time.time() * 1000) + 1)
        time.sleep(1.1)  # Kafka record times of the phases do not overlap
    (tmp_path / "rules.yaml").write_text(RULES)
    start, end = phases["range_ms"][0], phases["after_ms"][0]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "llm-audit"), "replay", "--from", str(start), "--to", str(end),
         "--rules", str(tmp_path / "rules.yaml"), "--collection", "replay_email_v2"],
        env=job_env(settings), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "re-audited 300 records" in result.stderr and "pii.email" in result.stderr

    with MongoClient(settings.mongo_uri.get_secret_value()) as client:
        db = client[settings.mongo_database]
        replayed = list(db["replay_email_v2"].find())
        assert db[settings.violations_collection].count_documents({}) == 0  # the live collection is untouched
    expected = planted_spans(phases["range"], "email")
    assert expected and {(d["event_id"], d["field"], d["start"], d["end"]) for d in replayed} == expected
    assert {(d["rule_id"], d["rule_version"], d["severity"]) for d in replayed} == {("pii.email", 2, "medium")}
    # No audit metrics, no dead letters: the live job's outputs are its own (Flink's job metrics are the replay's).
    assert read_topic(client_config(settings), settings.dlq_topic) == []
    ours = " or ".join(f'r._measurement == "{m}"' for m in ("audit_events", "violations", "scores", "anomalies",
                                                            "dead_letters"))
    with InfluxDBClient(url=settings.influx_url, token="", org="-") as influx:
        assert influx.query_api().query(
            f'from(bucket: "{settings.influx_bucket}") |> range(start: 0) |> filter(fn: (r) => {ours})') == []
