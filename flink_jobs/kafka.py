"""Kafka offsets seen from outside the job (kafka-python): what a replay reads, how far a job has got.

The job commits its source offsets to its consumer group when a checkpoint completes, so the
group's committed offsets are a lower bound of what the job has durably processed.
"""

from __future__ import annotations

from dataclasses import dataclass


def client_config(settings) -> dict:
    """kafka-python keyword arguments for the job's brokers, TLS and SASL included."""
    config = {"bootstrap_servers": settings.kafka_bootstrap, "security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL"):
        config.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    if settings.kafka_ssl_truststore_path and settings.kafka_ssl_truststore_path.endswith((".pem", ".crt")):
        config["ssl_cafile"] = settings.kafka_ssl_truststore_path
    return config


@dataclass(frozen=True)
class Span:
    """Per partition: the first offset to read and the first not to."""

    start: dict[int, int]
    end: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.end[p] - self.start[p] for p in self.end)

    def covered(self, committed: dict[int, int]) -> bool:
        """Whether the committed offsets reach the end of every partition that has records to read (a
        consumer commits nothing for a partition it has read nothing from)."""
        return all(committed.get(p, -1) >= end for p, end in self.end.items() if end > self.start[p])

    def done(self, committed: dict[int, int]) -> int:
        return sum(
            min(max(committed.get(p, self.start[p]), self.start[p]), self.end[p]) - self.start[p] for p in self.end
        )


def offsets_span(consumer, topic: str, from_ms: int | None = None, to_ms: int | None = None) -> Span:
    """The offsets of [from_ms, to_ms) of Kafka record time, from the broker's time index (None: the ends)."""
    from kafka import TopicPartition

    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not partitions:
        raise ValueError(f"topic {topic!r} does not exist or has no partitions")
    ends, begins = consumer.end_offsets(partitions), consumer.beginning_offsets(partitions)

    def at(ms: int | None, default: dict) -> dict[int, int]:
        if ms is None:
            return {tp.partition: default[tp] for tp in partitions}
        found = consumer.offsets_for_times({tp: ms for tp in partitions})
        return {tp.partition: found[tp].offset if found[tp] is not None else ends[tp] for tp in partitions}

    return Span(at(from_ms, begins), at(to_ms, ends))


def committed_offsets(admin, group_id: str, topic: str) -> dict[int, int]:
    offsets = admin.list_group_offsets(group_id).get(group_id, {})
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}
