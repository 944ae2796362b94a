#!/bin/bash
# Runs once, at InfluxDB's first start (docker-entrypoint-initdb.d, after the initial setup made the
# org, the llm_audit bucket and the admin token). Flink's InfluxDB reporter speaks the 1.x write
# API: map database llm_audit (retention policy autogen) to the bucket, where the Grafana
# dashboards read Flink's metrics beside the job's, and give the reporter a 1.x user that may
# write to that bucket only.
set -euo pipefail
org="$DOCKER_INFLUXDB_INIT_ORG"
bucket="$DOCKER_INFLUXDB_INIT_BUCKET"
bucket_id=$(influx bucket list --org "$org" --name "$bucket" --hide-headers | cut -f1)
influx v1 dbrp create --org "$org" --db "$bucket" --rp autogen --bucket-id "$bucket_id" --default
influx v1 auth create --org "$org" --username "${FLINK_METRICS_USER:-flink}" \
  --password "$FLINK_METRICS_PASSWORD" --write-bucket "$bucket_id"
