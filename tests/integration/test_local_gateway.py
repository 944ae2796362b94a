"""A local run's connector classes resolve on every PyFlink gateway thread, not only on the first."""

import subprocess
import sys

from tests.integration.conftest import child_env

# py4j opens a second connection, served by a fresh JVM thread, whenever the pooled one is busy: a
# finalizer on another Python thread (a Kafka or MongoDB client's) can hold it while the job is built.
# Holding it here makes that deterministic. Seen in CI as `run audit --restore latest --bounded`
# failing on KafkaSink.builder() while its Kafka clients were running.
SCRIPT = """
from pyflink.datastream.connectors.kafka import KafkaSink
from pyflink.java_gateway import get_gateway

from flink_jobs.streaming.job import create_env
from flink_jobs.local import local_job_settings

create_env(local_job_settings())
client = get_gateway()._gateway_client
held = client._get_connection()
try:
    KafkaSink.builder()
finally:
    client._give_back_connection(held)
print("resolved")
"""


def test_the_kafka_connector_resolves_on_a_second_gateway_connection():
    env = {name: value for name, value in child_env().items() if name not in ("FLINK_HOME", "FLINK_LIB_DIR")}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and "resolved" in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]
