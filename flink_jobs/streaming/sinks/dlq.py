"""The dead-letter topic's sink: Kafka transactions, committed at checkpoints (exactly once)."""

from __future__ import annotations

from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink

from flink_jobs.kafka import kafka_properties
from flink_jobs.settings import AuditJobSettings


def dlq_sink(settings: AuditJobSettings) -> KafkaSink:
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(settings.dlq_topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
        .set_transactional_id_prefix(f"{settings.group_id}-dlq")
    )
    for key, value in kafka_properties(settings).items():
        builder = builder.set_property(key, value)
    return builder.build()
