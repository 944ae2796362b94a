"""No credential travels in the job graph (issue 30, hole 13): the graph Flink submits, and keeps with
savepoints and in the JobManager's HA store, holds where the operators find the MongoDB URI, the InfluxDB
token and the archive key (flink_jobs.credentials), never their values."""

import base64
import os
import uuid

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
