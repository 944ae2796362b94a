"""A local run's connector classes resolve on every PyFlink gateway thread, not only on the first."""

import json
import subprocess
import sys

from tests.integration.conftest import child_env

# py4j opens a second connection, served by a fresh JVM thread, whenever the pooled one is busy: a
# finalizer on another Python thread (a Kafka or MongoDB client's) can hold it while the job is built.
# Holding it here makes that deterministic. Seen in CI as `run audit --restore latest --bounded`
# failing on KafkaSink.builder() while its Kafka clients were running. The script resolves the
# connector on the first connection, holds it, resolves it on the fresh one py4j opens, holds that
# too, and once more: three connections, three JVM threads, and what each thread saw.
SCRIPT = """
import json

from pyflink.datastream.connectors.kafka import KafkaSink, KafkaSource
from pyflink.java_gateway import get_gateway

from flink_jobs.local import local_job_settings
from flink_jobs.streaming.environment import create_env

create_env(local_job_settings())
gateway = get_gateway()
client = gateway._gateway_client


def resolve() -> dict:
    # Every call here runs on the one pooled connection: the others are held.
    thread = gateway.jvm.java.lang.Thread.currentThread()
    seen = {"thread": thread.getId(), "name": thread.getName(), "loader": thread.getContextClassLoader().toString()}
    try:
        KafkaSink.builder()
        KafkaSource.builder()
    except Exception as exc:
        seen["error"] = f"{type(exc).__name__}: {exc}"[:500]
    return seen


seen, held = [], []
try:
    for _ in range(3):
        seen.append(resolve())
        held.append(client._get_connection())  # busy: the next call opens a new connection
finally:
    for connection in held:
        client._give_back_connection(connection)
print("SEEN " + json.dumps(seen))
"""


def test_the_kafka_connector_resolves_on_a_second_gateway_connection():
    env = {name: value for name, value in child_env().items() if name not in ("FLINK_HOME", "FLINK_LIB_DIR")}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and "SEEN " in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]
    first, *fresh = seen = json.loads(done.stdout.rpartition("SEEN ")[2])
    # Each connection was served by a thread of its own: the later ones opened while the first was held.
    assert len({s["thread"] for s in seen}) == 3, seen
    # PyFlink gave pipeline.jars to the first thread's context class loader only: the fresh threads do
    # not have it, so what they resolve they resolve without it.
    assert all(s["loader"] != first["loader"] for s in fresh), seen
    assert [s.get("error") for s in seen] == [None, None, None], seen
