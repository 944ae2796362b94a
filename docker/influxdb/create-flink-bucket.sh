#!/bin/bash
# Runs once, at InfluxDB's first start (docker-entrypoint-initdb.d, after the initial setup made the
# org, the llm_audit bucket and the admin token). Flink's own metrics get a bucket of their own,
# with a shorter retention, reachable through the 1.x write API that Flink's InfluxDB reporter
# speaks (a DBRP mapping), and a 1.x user that may write to that bucket only.
set -euo pipefail
org="$DOCKER_INFLUXDB_INIT_ORG"
bucket_id=$(influx bucket create --org "$org" --name flink_metrics --retention "${FLINK_METRICS_RETENTION:-7d}" \
  --hide-headers | cut -f1)
influx v1 dbrp create --org "$org" --db flink_metrics --rp autogen --bucket-id "$bucket_id" --default
influx v1 auth create --org "$org" --username "${FLINK_METRICS_USER:-flink}" \
  --password "$FLINK_METRICS_PASSWORD" --write-bucket "$bucket_id"
