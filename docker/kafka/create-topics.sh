#!/bin/bash
# One-shot topic set-up for the compose stack (service kafka-init); safe to run again.
# The audit job's topics: events in, dead letters out, and the compacted topic of pushed rulesets
# (the newest push per ruleset name must survive, hence compaction and no time-based deletion).
set -euo pipefail
bootstrap="${KAFKA_BOOTSTRAP:-kafka:9092}"
topics=/opt/kafka/bin/kafka-topics.sh

"$topics" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "${SOURCE_TOPIC:-model-audit-logs}" \
  --partitions "${SOURCE_PARTITIONS:-6}" --replication-factor 1
"$topics" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "${DLQ_TOPIC:-model-audit-dlq}" \
  --partitions 1 --replication-factor 1 --config retention.ms=1209600000
"$topics" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "${RULES_TOPIC:-audit-rules}" \
  --partitions 1 --replication-factor 1 --config cleanup.policy=compact
"$topics" --bootstrap-server "$bootstrap" --list
