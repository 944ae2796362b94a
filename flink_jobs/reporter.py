"""Flink's InfluxDB metrics reporter: the one source of its settings.

The local runs use `flink_influx_reporter_config()`; the copies in k8s/base/flinkdeployment.yaml and
docker/docker-compose.yml are held equal to it by tests/unit/test_deploy_*.py.
"""

from __future__ import annotations

from urllib.parse import urlsplit

REPORTER_NAME = "influxdb"
# What the pipeline health dashboard and alerts read; everything else Flink registers stays out.
REPORTER_FILTER = ";".join(
    [
        "jobmanager.job:*Checkpoint*,numRestarts,uptime",
        "taskmanager.job.task.operator:numRecordsInPerSecond,numRecordsOutPerSecond,pendingRecords",
        "taskmanager.job.task.operator.KafkaSourceReader.KafkaConsumer:records-lag-max",
        "taskmanager.job.task:backPressuredTimeMsPerSecond,busyTimeMsPerSecond",
    ]
)


def flink_influx_reporter_config(
    influx_url: str,
    database: str,
    *,
    interval_s: int = 10,
    retention_policy: str = "",
    username: str = "",
    password: str = "",
    name: str = REPORTER_NAME,
    filtered: bool = True,
) -> dict[str, str]:
    """Flink configuration for the InfluxDB metrics reporter (flink-metrics-influxdb, which PyFlink
    ships in pyflink/plugins/metrics-influx and loads as a plugin): the checkpoint, throughput,
    Kafka lag and backpressure metrics the pipeline health dashboard and alerts read.

    InfluxDB 2.x takes these writes on its 1.x-compatible /write API: `database` and
    `retention_policy` are a DBRP mapping of the audit bucket, `password` an API token."""
    url = urlsplit(influx_url)
    prefix = f"metrics.reporter.{name}."
    config = {
        prefix + "factory.class": "org.apache.flink.metrics.influxdb.InfluxdbReporterFactory",
        prefix + "scheme": url.scheme or "http",
        prefix + "host": url.hostname or "127.0.0.1",
        prefix + "port": str(url.port or (443 if url.scheme == "https" else 8086)),
        prefix + "db": database,
        prefix + "interval": f"{interval_s} s",
        # No connectTimeout / writeTimeout: flink-metrics-influxdb 2.3.0 casts their (string) value
        # to a Duration and the reporter fails to start; the defaults (10 s) apply.
    }
    if retention_policy:
        config[prefix + "retentionPolicy"] = retention_policy
    if username or password:
        config[prefix + "username"] = username or "llm-audit"
        config[prefix + "password"] = password
    if filtered:
        config[prefix + "filter.includes"] = REPORTER_FILTER
    return config
