"""The job graph Flink submits, and keeps with savepoints and in the JobManager's HA store.

- No credential travels in it (issue 30, hole 13): it holds where the operators find the MongoDB URI, the
  InfluxDB token and the archive key (flink_jobs.credentials), never their values.
- Its operators keep their ids across versions: a restore maps each operator's state by its id, so a
  savepoint of an earlier version restores into this one (the sequence state's pickles: test_streaming_records.py).
"""

import base64
import json
import os
import uuid
from pathlib import Path

import pytest

from flink_jobs.streaming import job
from udfs.signing import generate_key


def _job_graph_bytes(env) -> bytes:
    """The job graph as Java serialises it to submit it: every operator, its pickled Python function included."""
    from pyflink.java_gateway import get_gateway

    job_graph = env._generate_stream_graph(clear_transformations=False).getJobGraph()
    return bytes(get_gateway().jvm.org.apache.flink.util.InstantiationUtil.serializeObject(job_graph))


@pytest.mark.parametrize("source", ["environment", "code"])
def test_the_job_graph_holds_no_credential(isolated_job, unscored_rules, monkeypatch, source):
    mongo_marker, token = f"secretapp{uuid.uuid4().hex}", f"secret-token-{uuid.uuid4().hex}"
    key = base64.b64encode(os.urandom(32)).decode()
    _, public = generate_key()
    settings = isolated_job("graph", scorers=[], rules_path=unscored_rules, rules_allow_unsigned=False, rules_trusted_keys=[public],
                            archive_text="encrypted", archive_key=key, influx_token=token)
    uri = settings.mongo_uri.get_secret_value()
    settings = settings.model_copy(update={"mongo_uri": type(settings.mongo_uri)(f"{uri.rstrip('/')}/?appName={mongo_marker}")})
    if source == "environment":  # as on Kubernetes: every pod gets them from the same Secret
        monkeypatch.setenv("LLM_AUDIT_MONGO_URI", settings.mongo_uri.get_secret_value())
        monkeypatch.setenv("LLM_AUDIT_INFLUX_TOKEN", token)
        monkeypatch.setenv("LLM_AUDIT_ARCHIVE_KEY", key)

    graph = _job_graph_bytes(job.build_job(settings))

    assert public.encode() in graph  # the search finds what the operators do carry
    for credential in (mongo_marker, token, key):
        assert credential.encode() not in graph


# Operator ids of the job as version 0.1 built it, before flink_jobs/ was split into streaming/ and offline/.
OPERATOR_IDS_0_1 = Path(__file__).resolve().parents[1] / "fixtures" / "state" / "operator-ids-0.1.json"


def _operator_ids(env) -> list[str]:
    graph = env._generate_stream_graph(clear_transformations=False).getJobGraph()
    return [pair.getGeneratedOperatorID().toHexString()
            for vertex in graph.getVerticesSortedTopologicallyFromSources() for pair in vertex.getOperatorIDs()]


@pytest.mark.parametrize("config", ["rules-only", "scorers"])
def test_a_savepoint_of_version_0_1_finds_every_operator_it_holds_state_for(isolated_job, unscored_rules, config):
    # Flink hashes operators without a uid (the SQL windows, the sources' conversions) from the graph's
    # shape: a refactoring that built the same pipeline in another order would orphan their state, and a
    # restore would fail (or, with --allowNonRestoredState, drop the open windows).
    scored = config == "scorers"
    settings = isolated_job("graph-ids", **({} if scored else {"scorers": [], "rules_path": unscored_rules}))
    expected = json.loads(OPERATOR_IDS_0_1.read_text())[config]
    assert _operator_ids(job.build_job(settings)) == expected
