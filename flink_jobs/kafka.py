"""The one Kafka client configuration, and Kafka offsets seen from outside the job.

`connection(settings)` reads the LLM_AUDIT_KAFKA_* settings once; the job's Java clients (sources, the DLQ
sink, Flink SQL's table) take it as `kafka_properties`, and this package's Python clients (kafka-python:
the start-up checks, replay, `llm-audit rules`) as `client_config`. A store kafka-python cannot read
(JKS, PKCS12) is an error that says so, never a client that silently connects without it.

The job commits its source offsets to its consumer group when a checkpoint completes, so the
group's committed offsets are a lower bound of what the job has durably processed.
"""

from __future__ import annotations

from dataclasses import dataclass

# The connector jar shades the Kafka client: its login modules live under this prefix.
_SHADED = "org.apache.flink.kafka.shaded."
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


class ClientConfigError(ValueError):
    """A setting the Python Kafka client cannot follow."""


@dataclass(frozen=True)
class Store:
    """A TLS trust or key store: a file and its password."""

    path: str
    password: str | None

    @property
    def kind(self) -> str:
        if self.path.endswith((".pem", ".crt")):
            return "PEM"
        return "PKCS12" if self.path.endswith((".p12", ".pfx")) else "JKS"


@dataclass(frozen=True)
class Connection:
    """How this package's clients reach the brokers (LLM_AUDIT_KAFKA_*): TLS and SASL included."""

    bootstrap: str
    protocol: str
    sasl: tuple[str, str, str] | None = None  # (mechanism, username, password)
    truststore: Store | None = None
    keystore: Store | None = None


def connection(settings) -> Connection:
    """The Kafka settings of a flink_jobs.settings.AuditJobSettings (which requires SASL's credentials)."""
    protocol = settings.kafka_security_protocol
    sasl = None
    if protocol.startswith("SASL") and settings.kafka_sasl_username and settings.kafka_sasl_password:
        sasl = (
            settings.kafka_sasl_mechanism,
            settings.kafka_sasl_username,
            settings.kafka_sasl_password.get_secret_value(),
        )
    stores = {}
    if protocol in ("SSL", "SASL_SSL"):
        for name in ("truststore", "keystore"):
            path, password = (
                getattr(settings, f"kafka_ssl_{name}_path"),
                getattr(settings, f"kafka_ssl_{name}_password"),
            )
            if path:
                stores[name] = Store(path, password.get_secret_value() if password is not None else None)
    return Connection(settings.kafka_bootstrap, protocol, sasl, **stores)


def _jaas_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kafka_properties(settings) -> dict[str, str]:
    """Java Kafka client properties for TLS and SASL (the bootstrap servers are set apart): the job's
    sources, its DLQ sink and Flink SQL's Kafka table (as `properties.*`)."""
    conn = connection(settings)
    props: dict[str, str] = {"security.protocol": conn.protocol}
    if conn.sasl:
        mechanism, username, password = conn.sasl
        props["sasl.mechanism"] = mechanism
        props["sasl.jaas.config"] = (
            f"{_SHADED}{_LOGIN_MODULES[mechanism]} required "
            f"username={_jaas_quoted(username)} password={_jaas_quoted(password)};"
        )
    for name, store in (("truststore", conn.truststore), ("keystore", conn.keystore)):
        if store is not None:
            props[f"ssl.{name}.location"] = store.path
            props[f"ssl.{name}.type"] = store.kind
            if store.password is not None:
                props[f"ssl.{name}.password"] = store.password
    return props


def client_config(settings) -> dict:
    """kafka-python keyword arguments for the same connection as kafka_properties.

    Raises ClientConfigError for a JKS or PKCS12 store, which kafka-python cannot read: the error names
    the setting and how to give the same store as PEM."""
    conn = connection(settings)
    config: dict = {"bootstrap_servers": conn.bootstrap, "security_protocol": conn.protocol}
    if conn.sasl:
        config.update(sasl_mechanism=conn.sasl[0], sasl_plain_username=conn.sasl[1], sasl_plain_password=conn.sasl[2])
    for name, store in (("truststore", conn.truststore), ("keystore", conn.keystore)):
        if store is not None and store.kind != "PEM":
            var = f"LLM_AUDIT_KAFKA_SSL_{name.upper()}_PATH"
            raise ClientConfigError(
                f"{var}={store.path!r} is a {store.kind} store, which the job's Java clients read but this "
                f"Python client (kafka-python) cannot: for the CLI, give the same {name} as a PEM file "
                f"(.pem or .crt; e.g. keytool -exportcert -rfc, or openssl pkcs12 -nodes)"
            )
    if conn.truststore is not None:
        config["ssl_cafile"] = conn.truststore.path
    if conn.keystore is not None:  # one PEM file with the certificate chain and its private key
        config.update(ssl_certfile=conn.keystore.path, ssl_keyfile=conn.keystore.path)
        if conn.keystore.password is not None:
            config["ssl_password"] = conn.keystore.password
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


def clear_committed_offsets(admin, group_id: str, topic: str) -> None:
    """Delete the group's committed offsets of the topic, so that the next ones it has are a new run's."""
    from kafka import TopicPartition
    from kafka.errors import KafkaError, NoError

    committed = committed_offsets(admin, group_id, topic)
    if not committed:
        return
    try:
        errors = admin.delete_group_offsets(group_id, [TopicPartition(topic, p) for p in committed])
    except KafkaError as exc:
        errors = {None: type(exc)}
    failed = {tp.partition if tp else "all": error.__name__ for tp, error in errors.items() if error is not NoError}
    if failed:
        raise RuntimeError(
            f"could not clear consumer group {group_id!r}'s committed offsets on {topic!r}: {failed}. A bounded "
            "restore needs the group to itself: stop the consumers that use it, or set LLM_AUDIT_GROUP_ID"
        )
