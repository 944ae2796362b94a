"""The streaming job's sources: the events topic as a Flink SQL table on the events' time, and the rules topic.

Event time is computed in Java (Flink SQL) from the message's `timestamp`, so that parsing in Python
comes after the watermark is set: one round trip to Python per event.
"""

from __future__ import annotations

import uuid

from pyflink.common import Types
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.kafka import KafkaOffsetResetStrategy, KafkaOffsetsInitializer, KafkaSource
from pyflink.table import DataTypes, Schema, StreamTableEnvironment, Table
from pyflink.table.expressions import col

from flink_jobs.kafka import kafka_properties
from flink_jobs.pyflink_internals import declare_output_type, table_env_of
from flink_jobs.settings import AuditJobSettings
from flink_jobs.streaming.records import TIMED_EVENT

# The event's own time where SQL can read one (epoch ms, or RFC 3339 with Z or an offset), else the
# epoch: events without a time must not move the watermark (their Python-side validation rejects them).
# `ts` is the message's timestamp field as a string (see events_table and kafka_events_table).
_TS = "ts"


def _local(suffix: int) -> str:
    """The date and time before a suffix (Z: 1, +HH:MM: 6 characters) as a TIMESTAMP(3)."""
    return f"TRY_CAST(REPLACE(SUBSTR({_TS}, 1, CHAR_LENGTH({_TS}) - {suffix}), 'T', ' ') AS TIMESTAMP(3))"


_OFFSET_MIN = (
    f"(CASE SUBSTR({_TS}, CHAR_LENGTH({_TS}) - 5, 1) WHEN '+' THEN 1 WHEN '-' THEN -1 END) * "
    f"(TRY_CAST(SUBSTR({_TS}, CHAR_LENGTH({_TS}) - 4, 2) AS INT) * 60 "
    f"+ TRY_CAST(SUBSTR({_TS}, CHAR_LENGTH({_TS}) - 1, 2) AS INT))"
)
# Never later than the message's arrival (its Kafka record time, the producer's clock): the watermark
# follows event time but cannot run ahead of the clock, so one event stamped in the future (by a
# client, or by a bad clock) cannot make every later event late for the windows. The windows still
# count each event in its own time's window (AUDITED rows carry the event's timestamp).
_EVENT_TIME = (
    f"LEAST(COALESCE(TO_TIMESTAMP_LTZ(CASE WHEN TRY_CAST({_TS} AS BIGINT) >= 100000000000 "
    f"THEN TRY_CAST({_TS} AS BIGINT) END, 3), "
    f"CAST(CASE WHEN {_TS} LIKE '%Z' OR {_TS} LIKE '%z' THEN {_local(1)} "
    f"ELSE TIMESTAMPADD(MINUTE, -{_OFFSET_MIN}, {_local(6)}) END AS TIMESTAMP_LTZ(3)), "
    f"TO_TIMESTAMP_LTZ(0, 3)), arrival)"
)


def _table_env(env_of: DataStream | StreamExecutionEnvironment, settings: AuditJobSettings) -> StreamTableEnvironment:
    t_env = table_env_of(env_of)
    t_env.get_config().set("table.local-time-zone", "UTC")
    t_env.get_config().set("table.exec.source.idle-timeout", f"{settings.idleness_s} s")
    return t_env


def _watermark(settings: AuditJobSettings) -> str:
    return f"event_time - INTERVAL '{settings.max_out_of_orderness_s}' SECOND"


def events_table(raw: DataStream, settings: AuditJobSettings) -> Table:
    """Raw event JSON (a DataStream timestamped with its arrival) -> the EVENTS table, watermarked on
    the events' time per subtask: for tests and other streams. The job reads Kafka with
    kafka_events_table, which watermarks each partition."""
    t_env = _table_env(raw, settings)
    raw_table = t_env.from_data_stream(
        raw,
        Schema.new_builder()
        .column("f0", DataTypes.STRING())
        .column_by_metadata("arrival", DataTypes.TIMESTAMP_LTZ(3), "rowtime")
        .build(),
    )
    # Two steps: Flink's generated code parses the whole message for every JSON_VALUE call, and the
    # event-time expression reads the timestamp fourteen times (a column computed from another
    # column of the same query is inlined). Read once, then computed over the string.
    fields = t_env.to_data_stream(
        t_env.sql_query(f"SELECT f0, arrival, JSON_VALUE(f0, '$.timestamp') AS ts FROM {raw_table}")
    )
    return t_env.from_data_stream(
        fields,
        Schema.new_builder()
        .column("f0", DataTypes.STRING())
        .column("arrival", DataTypes.TIMESTAMP_LTZ(3))
        .column("ts", DataTypes.STRING())
        .column_by_expression("event_time", _EVENT_TIME)
        .watermark("event_time", _watermark(settings))
        .build(),
    )


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def kafka_table_options(settings: AuditJobSettings, between_ms: tuple[int, int] | None = None) -> dict[str, str]:
    """The options of the source topic's table for Flink SQL's Kafka connector (its `properties.*`
    are the Kafka client's, TLS and SASL included).

    between_ms: read only the records of this Kafka time range [from, to) (a replay); bounded.
    """
    options = {
        "connector": "kafka",
        "topic": settings.source_topic,
        "format": "raw",
        "properties.bootstrap.servers": settings.kafka_bootstrap,
        "properties.group.id": settings.group_id,
        "properties.isolation.level": "read_committed",
        "scan.startup.mode": {"earliest": "earliest-offset", "latest": "latest-offset", "committed": "group-offsets"}[
            settings.starting_offsets
        ],
        "properties.auto.offset.reset": "earliest",  # a group without offsets yet starts at the beginning
        **{f"properties.{key}": value for key, value in kafka_properties(settings).items()},
    }
    if settings.bounded:
        options["scan.bounded.mode"] = "latest-offset"
    if between_ms is not None:
        options.update(
            {
                "scan.startup.mode": "timestamp",
                "scan.startup.timestamp-millis": str(between_ms[0]),
                "scan.bounded.mode": "timestamp",
                "scan.bounded.timestamp-millis": str(between_ms[1]),
            }
        )
    return options


def kafka_events_table(
    env: StreamExecutionEnvironment, settings: AuditJobSettings, between_ms: tuple[int, int] | None = None
) -> Table:
    """The source topic as the EVENTS table, from Flink SQL's Kafka source: the watermark is
    generated per partition inside the source (watermark push-down), so a partition read ahead of
    another makes no event late, and an idle one does not hold the windows back.
    """
    t_env = _table_env(env, settings)
    name = f"audit_events_{uuid.uuid4().hex[:8]}"
    # A computed column cannot read another, so the event time here parses the message at each use
    # of `ts` (the cost is in docs/benchmarks.md); the source's watermark generator computes it.
    event_time = _EVENT_TIME.replace(_TS, "JSON_VALUE(f0, '$.timestamp')")
    options = ", ".join(f"{_quoted(k)} = {_quoted(v)}" for k, v in kafka_table_options(settings, between_ms).items())
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE {name} (f0 STRING, arrival TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL, "
        f"event_time AS {event_time}, WATERMARK FOR event_time AS {_watermark(settings)}) WITH ({options})"
    )
    # A tombstone (no value) is a message like any other: a dead letter, not a failure.
    return t_env.sql_query(f"SELECT COALESCE(f0, '') AS f0, arrival, event_time FROM {name}")


def timed_events(events: Table, buckets: int | None = None) -> DataStream:
    """The EVENTS table (f0: raw JSON, arrival, event_time with its watermark) -> TIMED_EVENT rows,
    watermarked on the events' time: the time of every event comes from Java (Flink SQL), as parsing
    in a Python operator first would cost a second round trip to Python per event.

    buckets: Row(one of this many buckets of the message's hash, TIMED_EVENT, event time) instead,
    for keyed() (the scorer's batches: few keys, so that each batch spans little event time).
    """
    t_env = table_env_of(events)
    if buckets is None:
        rows, row_type = t_env.to_data_stream(events.select(col("f0"), col("arrival"))), TIMED_EVENT
    else:
        key = f"CAST(MOD(ASCII(SUBSTR(MD5(f0), 1, 1)) * 16 + ASCII(SUBSTR(MD5(f0), 2, 1)), {buckets}) AS STRING)"
        # With event_time in the row, the records carry it as their time too (nothing reads it here).
        rows = t_env.to_data_stream(t_env.sql_query(f"SELECT {key}, ROW(f0, arrival), event_time FROM {events}"))
        row_type = Types.ROW([Types.STRING(), TIMED_EVENT, Types.INSTANT()])
    # The rows are Row objects already; declaring their type lets Python read them and keyed() pick
    # the key in Java (to_data_stream reports an external Row type).
    declare_output_type(rows, row_type)
    return rows


def kafka_source(settings: AuditJobSettings, topic: str, starting: str | None = None) -> KafkaSource:
    """A DataStream source of a topic's values (the rule pushes; kafka_events_table reads the events)."""
    starting = {
        "earliest": KafkaOffsetsInitializer.earliest,
        "latest": KafkaOffsetsInitializer.latest,
        "committed": lambda: KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST),
    }[starting or settings.starting_offsets]()
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap)
        .set_topics(topic)
        .set_group_id(settings.group_id)
        .set_starting_offsets(starting)
        .set_value_only_deserializer(SimpleStringSchema())
        .set_property("isolation.level", "read_committed")
    )
    for key, value in kafka_properties(settings).items():
        builder = builder.set_property(key, value)
    if settings.bounded:
        builder = builder.set_bounded(KafkaOffsetsInitializer.latest())
    return builder.build()
