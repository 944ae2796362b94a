"""The audit job: Kafka audit events -> parse -> rules -> MongoDB violations, InfluxDB counts, DLQ.

Run locally with `llm-audit run audit`, or on a cluster with `flink run -py flink_jobs/streaming/job.py`
(settings from LLM_AUDIT_* env vars, see flink_jobs/settings.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pyflink.common import Configuration, Duration, Types, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream import CheckpointingMode, DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.table import DataTypes, Schema, StreamTableEnvironment, Table
from pyflink.table.expressions import col

from flink_jobs.credentials import secret
from flink_jobs.kafka import client_config, committed_offsets, offsets_span
from flink_jobs.preflight import check_topics
from flink_jobs.pyflink_internals import (
    declare_output_type,
    discard,
    keyed,
    python_execution_mode,
    side_output,
    stop_with_savepoint,
    table_env_of,
    with_event_time,
)
from flink_jobs.settings import AuditJobSettings, load_settings
from flink_jobs.streaming.operators.audit import (
    ACTIVE_RULES,
    ARCHIVE,
    DEAD_LETTER,
    DEAD_LETTERS,
    RULE_CHANGES,
    RULES_POINTS,
    SEQUENCE_HITS,
    VIOLATIONS,
    ArchiveRows,
    AuditEvents,
)
from flink_jobs.streaming.operators.batching import BufferedWrite, ScoreEvents
from flink_jobs.streaming.operators.sequences import SequenceRules
from flink_jobs.streaming.records import AUDITED, BUCKETED
from flink_jobs.streaming.sinks.archive import write_archive
from flink_jobs.streaming.sinks.stores import (
    ANOMALY_INDEXES,
    VIOLATION_INDEXES,
    InfluxWriter,
    MongoWriter,
    check_reachable,
)
from flink_jobs.streaming.windows import (
    ANOMALY_POINTS,
    DetectAnomalies,
    WindowPoints,
    dead_letter_points,
    dead_letter_rows,
    metrics_points,
    window_rows,
)
from flink_jobs.tombstones import Tombstones
from udfs.anomaly import AnomalySettings
from udfs.engine import RuleEngine
from udfs.rules import RuleSet, load_rules
from udfs.scorers import ScorerError, load_config

log = logging.getLogger("llm_audit.job")


@dataclass(frozen=True)
class AuditOutputs:
    """What the job stores; all but the dead letters BUCKETED for their writers (records.BUCKETED)."""

    violations: DataStream  # violation documents: the events' and the fired sequence rules'
    points: DataStream  # InfluxDB points of the closed windows: udfs.metrics measurements
    dead_letters: DataStream  # DLQ JSON strings
    rule_changes: DataStream  # rule_changes documents: every push seen, accepted or rejected
    anomalies: DataStream  # anomaly documents: metric, observed, baseline, deviation, score, window
    archive: DataStream | None  # ARCHIVED rows, one per valid event (with settings.archive_dir)


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
# Row(raw JSON, arrival), on the event's time.
TIMED_EVENT = Types.ROW([Types.STRING(), Types.INSTANT()])


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


def bounded_watermarks(settings: AuditJobSettings) -> WatermarkStrategy:
    return WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_seconds(settings.max_out_of_orderness_s)
    ).with_idleness(Duration.of_seconds(settings.idleness_s))


def batching_keys(settings: AuditJobSettings) -> int:
    """Several keys per subtask, so every subtask gets some; each key batches on its own."""
    return 4 * settings.parallelism


def build_pipeline(events: Table, pushes: DataStream, settings: AuditJobSettings, ruleset: RuleSet) -> AuditOutputs:
    """The transformation, without sources or sinks, so tests can feed any stream.

    events: the EVENTS table (kafka_events_table, or events_table over any stream); pushes: rule
    push records (JSON) from the rules topic.

    Every event passes one Python operator (two with scorers), AuditEvents: each is a round trip
    between the JVM and the Python worker, the largest cost of the job. It emits a typed row per
    event, which Flink SQL aggregates in the metrics and anomaly windows; only a row per closed
    window, and the violations and sequence-rule hits, cross to Python again.
    """
    buckets = batching_keys(settings)
    parser = None  # the operator that parses the events: the scorer when there is one, else the audit
    if settings.scorers:
        scorers = ScoreEvents(
            load_config(settings.scorers_path),
            tuple(settings.scorers),
            settings.scorer_device,
            settings.score_batch_size,
            settings.score_max_wait_ms,
            settings.field_bounds(),
        )
        keyed_events = keyed(timed_events(events, buckets), Types.STRING())
        # In a worker process whatever the job's mode: the models get a GIL of their own, and torch hung in
        # the embedded interpreter's open() while it shared its task thread with a second interpreter
        # (see pyflink_internals.side_output).
        with python_execution_mode(keyed_events, "process"):
            parser = audit_input = (
                keyed_events.process(scorers, Types.PICKLED_BYTE_ARRAY()).uid("score").name("score toxicity and bias")
            )
    else:
        audit_input = timed_events(events)
    archive = None
    if settings.archive_dir and "archive" in settings.outputs:
        key = settings.archive_key if settings.archive_text == "encrypted" else None
        archive = ArchiveRows(
            settings.archive_text,
            secret("LLM_AUDIT_ARCHIVE_KEY", key) if key else None,
            Tombstones(secret("LLM_AUDIT_MONGO_URI", settings.mongo_uri), settings.mongo_database),
        )
    audit = (
        audit_input.connect(pushes.broadcast(ACTIVE_RULES))
        .process(
            AuditEvents(
                ruleset,
                settings.ruleset_name,
                settings.store_raw_text,
                tuple(settings.scorers),
                buckets,
                archive,
                tuple(settings.rules_trusted_keys),
                settings.rules_allow_unsigned,
                settings.field_bounds(),
            ),
            AUDITED,
        )
        .uid("audit")
        .name("audit: parse, rules")
    )
    sequences = (
        keyed(side_output(audit, SEQUENCE_HITS), Types.INT())
        .process(SequenceRules(buckets), AUDITED)
        .uid("sequence-rules")
        .name("sequence rules")
    )
    metrics, anomaly_windows = window_rows(audit.union(sequences), settings.metrics_window_s, settings.anomaly_window_s)
    anomalies = (
        keyed(anomaly_windows, Types.STRING())
        .process(
            DetectAnomalies(
                AnomalySettings(
                    threshold=settings.anomaly_threshold,
                    warmup=settings.anomaly_warmup,
                    min_events=settings.anomaly_min_events,
                ),
                settings.anomaly_window_s * 1000,
                buckets,
            ),
            BUCKETED,
        )
        .uid("anomalies")
        .name("anomalies per tenant and model")
    )

    # The messages that do not parse, and the events whose audit failed (udfs.faults).
    def dead_letter_records() -> DataStream:
        found = side_output(audit, DEAD_LETTERS).union(side_output(sequences, DEAD_LETTERS))
        return found if parser is None else side_output(parser, DEAD_LETTERS).union(found)

    # Dead letters are stamped with their time (their arrival, see audit.dead_letter_time), not an
    # event time: the time of their record on the dead-letter topic, whose broker may refuse a far-off one.
    dead_letters = (
        with_event_time(dead_letter_records(), bounded_watermarks(settings), Types.STRING())
        .uid("dead-letter-time")
        .name("dead-letter arrival time")
    )
    # Counted with the event-time watermark of the operators that found them (see audit.dead_letter_time).
    dead_letter_counts = (
        dead_letter_rows(dead_letter_records(), settings.metrics_window_s)
        .flat_map(WindowPoints(dead_letter_points, buckets), BUCKETED)
        .uid("dead-letter-points")
        .name("dead-letter points")
    )
    window_points = (
        metrics.flat_map(WindowPoints(metrics_points, buckets), BUCKETED).uid("window-points").name("window points")
    )
    return AuditOutputs(
        violations=side_output(audit, VIOLATIONS).union(side_output(sequences, VIOLATIONS)),
        points=window_points.union(
            side_output(anomalies, ANOMALY_POINTS), dead_letter_counts, side_output(audit, RULES_POINTS)
        ),
        dead_letters=dead_letters,
        rule_changes=side_output(audit, RULE_CHANGES),
        anomalies=anomalies,
        archive=side_output(audit, ARCHIVE) if archive else None,
    )


def check_scorers(ruleset: RuleSet, settings: AuditJobSettings) -> None:
    """Score rules need their scorers running; the scorers config must be valid."""
    if settings.scorers:
        load_config(settings.scorers_path)
    missing = ruleset.scorers_used() - set(settings.scorers)
    if missing:
        raise ScorerError(
            f"{settings.rules_path}: score rules need scorers {sorted(missing)}; "
            f"add them to LLM_AUDIT_SCORERS (now {list(settings.scorers)}) or disable those rules"
        )


def flink_configuration(settings: AuditJobSettings) -> dict[str, str]:
    """The Flink options the settings imply; LLM_AUDIT_FLINK_CONFIG is applied last and wins."""
    conf = {
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(settings.restart_attempts),
        "restart-strategy.fixed-delay.delay": f"{settings.restart_delay_s} s",
        "state.backend.type": settings.state_backend,
        "python.execution-mode": settings.python_execution_mode,
        "python.fn-execution.bundle.size": str(settings.python_bundle_size),
        "python.fn-execution.bundle.time": str(settings.python_bundle_time_ms),
    }
    if settings.state_backend == "rocksdb":
        conf["execution.checkpointing.incremental"] = "true"
    if settings.python_executable:
        conf["python.executable"] = settings.python_executable
        # Thread mode's interpreter lives in the JVM and sees neither the virtualenv of that executable
        # nor an editable checkout (an import hook, which PYTHONPATH does not carry): give it the
        # module path of this process (the same virtualenv, locally and in the image) and the folder
        # holding flink_jobs/ and udfs/.
        paths = [str(Path(__file__).resolve().parents[2]), *(path for path in sys.path if path)]
        conf["python.pythonpath"] = os.pathsep.join(dict.fromkeys(paths))
    if settings.pipeline_jars:
        conf["pipeline.jars"] = ";".join(settings.pipeline_jars)
    if settings.checkpoint_dir:
        conf["execution.checkpointing.dir"] = settings.checkpoint_dir
        conf["execution.checkpointing.externalized-checkpoint-retention"] = "RETAIN_ON_CANCELLATION"
    if settings.restore_from:
        conf["execution.state-recovery.path"] = settings.restore_from
    return {**conf, **settings.flink_config}


def create_env(settings: AuditJobSettings) -> StreamExecutionEnvironment:
    config = Configuration()
    for key, value in flink_configuration(settings).items():
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(settings.parallelism)
    env.enable_checkpointing(settings.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    return env


# The connector jar shades the Kafka client: its login modules live under this prefix.
_SHADED = "org.apache.flink.kafka.shaded."
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def _jaas_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kafka_properties(settings: AuditJobSettings) -> dict[str, str]:
    """Kafka client properties for TLS and SASL, shared by the sources and the DLQ sink."""
    props: dict[str, str] = {"security.protocol": settings.kafka_security_protocol}
    username, password = settings.kafka_sasl_username, settings.kafka_sasl_password
    if settings.kafka_security_protocol.startswith("SASL") and username and password:  # settings require both
        props["sasl.mechanism"] = settings.kafka_sasl_mechanism
        props["sasl.jaas.config"] = (
            f"{_SHADED}{_LOGIN_MODULES[settings.kafka_sasl_mechanism]} required "
            f"username={_jaas_quoted(username)} "
            f"password={_jaas_quoted(password.get_secret_value())};"
        )
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        for store in ("truststore", "keystore"):
            path = getattr(settings, f"kafka_ssl_{store}_path")
            if path:
                props[f"ssl.{store}.location"] = path
                props[f"ssl.{store}.type"] = (
                    "PEM" if path.endswith((".pem", ".crt")) else "PKCS12" if path.endswith((".p12", ".pfx")) else "JKS"
                )
                secret = getattr(settings, f"kafka_ssl_{store}_password")
                if secret is not None:
                    props[f"ssl.{store}.password"] = secret.get_secret_value()
    return props


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


def write(items: DataStream, writer, settings: AuditJobSettings, name: str) -> DataStream:
    """Batch the BUCKETED elements (documents or points) into `writer`, buffered in keyed state ->
    the dead letters (JSON, time ms) of the elements the store refused (see BufferedWrite)."""
    batches = BufferedWrite(writer, settings.sink_batch_size, settings.sink_max_wait_ms)
    refused = keyed(items, Types.INT()).process(batches, DEAD_LETTER).uid(name).name(name)
    refused.sink_to(discard()).uid(f"{name}-done")
    return refused


def build_job(settings: AuditJobSettings, between_ms: tuple[int, int] | None = None) -> StreamExecutionEnvironment:
    """Sources, pipeline and sinks on a new environment, ready to execute.

    between_ms: audit only the source records of this Kafka time range [from, to) (a replay).
    """
    ruleset = load_rules(settings.rules_path)  # fail at submission, not on a worker
    if settings.rules_allow_unsigned:
        log.warning(
            json.dumps(
                {
                    "event": "unsigned_pushes_allowed",
                    "why": "LLM_AUDIT_RULES_ALLOW_UNSIGNED=true: anyone who can write the rules topic "
                    f"{settings.rules_topic!r} sets the rules this job runs; trust keys instead (docs/rules.md)",
                }
            )
        )
    RuleEngine(ruleset).open()  # and a rule that fails on every event (its self-check) likewise
    check_scorers(ruleset, settings)
    check_reachable(
        settings.mongo_uri.get_secret_value(),
        settings.influx_url,
        settings.influx_token.get_secret_value(),
        settings.influx_org,
    )
    # The writers carry where the credentials are, not the credentials (flink_jobs.credentials).
    uri, token = (
        secret("LLM_AUDIT_MONGO_URI", settings.mongo_uri),
        secret("LLM_AUDIT_INFLUX_TOKEN", settings.influx_token),
    )
    check_topics(settings)  # the topics exist: a missing one fails at submission, not in the enumerator
    env = create_env(settings)
    # Pushes carry Kafka timestamps; an idle rules topic must not hold the event-time watermark back.
    pushes = env.from_source(
        kafka_source(settings, settings.rules_topic, "earliest"),
        WatermarkStrategy.for_monotonous_timestamps().with_idleness(Duration.of_seconds(1)),
        "rule pushes",
    ).uid("rules-source")
    out = build_pipeline(kafka_events_table(env, settings, between_ms), pushes, settings, ruleset)

    def mongo(*args, **kwargs) -> MongoWriter:
        return MongoWriter(uri, settings.mongo_database, *args, **kwargs).prepare()

    refused = []  # dead letters of what a store refused
    if "violations" in settings.outputs:
        mongo_violations = mongo(
            settings.violations_collection,
            VIOLATION_INDEXES,
            settings.violations_ttl_days,
            tombstones=Tombstones(uri, settings.mongo_database),
        )
        refused.append(write(out.violations, mongo_violations, settings, "mongo-violations"))
    if "rule_changes" in settings.outputs:
        refused.append(write(out.rule_changes, mongo(settings.rule_changes_collection), settings, "mongo-rule-changes"))
    if "anomalies" in settings.outputs:
        mongo_anomalies = mongo(settings.anomalies_collection, ANOMALY_INDEXES)
        refused.append(write(out.anomalies, mongo_anomalies, settings, "mongo-anomalies"))
    if "metrics" in settings.outputs:
        influx = InfluxWriter(settings.influx_url, token, settings.influx_org, settings.influx_bucket)
        refused.append(write(out.points, influx, settings, "influx-points"))
    if "dead_letters" in settings.outputs:
        dead_letters = out.dead_letters
        if refused:
            dead_letters = dead_letters.union(
                with_event_time(refused[0].union(*refused[1:]), bounded_watermarks(settings), Types.STRING())
                .uid("refused-writes-time")
                .name("refused writes: dead-letter time")
            )
        dead_letters.sink_to(dlq_sink(settings)).uid("dlq").name("dead-letter queue")
    if out.archive is not None and settings.archive_dir:
        write_archive(out.archive, settings.archive_dir)
    return env


def run_until_caught_up(settings: AuditJobSettings, poll_s: float = 1.0) -> None:
    """A bounded run that survives a restore: run unbounded, and once the consumer group has committed
    (at a checkpoint) every offset that was the end of the topic at start, stop with a draining
    savepoint, which closes every window and fires every timer, as the end of a bounded input does.

    Needed because a bounded KafkaSource restored from a checkpoint never finishes (FLINK-31006: the
    restored enumerator does not signal "no more splits").
    """
    from kafka import KafkaAdminClient, KafkaConsumer

    consumer, admin = KafkaConsumer(**client_config(settings)), KafkaAdminClient(**client_config(settings))
    try:
        span = offsets_span(consumer, settings.source_topic)
        client = build_job(settings.model_copy(update={"bounded": False})).execute_async("llm-audit")
        while True:
            if span.covered(committed_offsets(admin, settings.group_id, settings.source_topic)):
                break
            if client.get_job_status().result().name in ("FAILED", "CANCELED", "FINISHED"):
                client.get_job_execution_result().result()  # raises the failure
                return
            time.sleep(poll_s)
        savepoints = f"{settings.checkpoint_dir.rstrip('/')}/savepoints" if settings.checkpoint_dir else None
        for attempt in range(60):
            try:
                stop_with_savepoint(client, savepoints)
                break
            except Exception as exc:  # noqa: BLE001 - Py4J wraps the Java failure
                # Caught up at once (the restored checkpoint was at the end): tasks may still be deploying.
                if "Not all required tasks are currently running" not in str(exc) or attempt == 59:
                    raise
                time.sleep(1)
        client.get_job_execution_result().result()
    finally:
        consumer.close()
        admin.close()


def main(settings: AuditJobSettings | None = None) -> None:
    settings = settings or load_settings()
    if settings.bounded and settings.restore_from:
        run_until_caught_up(settings)
    else:
        build_job(settings).execute("llm-audit")


if __name__ == "__main__":
    main()
