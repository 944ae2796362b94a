"""The audit job: Kafka audit events -> parse -> rules -> MongoDB violations, InfluxDB counts, DLQ.

Run locally with `llm-audit run audit`, or on a cluster with `flink run -py flink_jobs/audit_job.py`
(settings from LLM_AUDIT_* env vars, see flink_jobs/settings.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyflink.common import Configuration, Duration, Time, Types, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream import CheckpointingMode, DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee, Sink
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.datastream.window import TumblingEventTimeWindows
from pyflink.java_gateway import get_gateway

from flink_jobs.functions import (
    ACTIVE_RULES,
    DEAD_LETTERS,
    RULE_CHANGES,
    SEQUENCE_HITS,
    ApplyRules,
    CountEvents,
    DetectAnomalies,
    EmitWindowCounts,
    EmitWindowStats,
    EventTime,
    ParseEvent,
    ScoreEvents,
    SequenceRules,
    WindowStats,
    score_bucket,
)
from flink_jobs.settings import AuditJobSettings, load_settings
from flink_jobs.sinks import InfluxPointWriter, MongoUpsertWriter
from udfs.anomaly import AnomalySettings
from udfs.rules import RuleSet, load_rules
from udfs.scorers import ScorerError, load_config


@dataclass(frozen=True)
class AuditOutputs:
    results: DataStream  # (tenant, model, [violation documents], {scorer: event's max score}) per valid event
    window_counts: DataStream  # {"tenant", "model", "time_ms", "events", "violations", score stats} per window
    dead_letters: DataStream  # DLQ JSON strings
    rule_changes: DataStream  # rule_changes documents: every push seen, accepted or rejected
    sequence_violations: DataStream  # [violation document] per fired sequence rule
    anomalies: DataStream  # anomaly documents: metric, observed, baseline, deviation, score, window


def build_pipeline(raw: DataStream, pushes: DataStream, settings: AuditJobSettings, ruleset: RuleSet) -> AuditOutputs:
    """The transformation, without sources or sinks, so tests can feed any stream.

    raw: audit event JSON strings; pushes: rule push records (JSON) from the rules topic.
    """
    parsed = raw.process(ParseEvent()).uid("parse").name("parse and validate")
    if settings.scorers:
        # Several keys per subtask, so every subtask gets some; each key batches on its own.
        buckets = 4 * settings.parallelism
        scorers = ScoreEvents(load_config(settings.scorers_path), tuple(settings.scorers), settings.scorer_device,
                              settings.score_batch_size, settings.score_max_wait_ms)
        scored = parsed.key_by(lambda e: score_bucket(e, buckets), Types.INT()).process(scorers) \
            .uid("score").name("score toxicity and bias")
    else:
        scored = parsed.map(lambda e: (e, {}, {})).uid("no-scores").name("no scorers")
    # Event time is assigned after scoring: a batch leaves the scorer at processing time.
    events = scored.assign_timestamps_and_watermarks(
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(settings.max_out_of_orderness_s))
        .with_idleness(Duration.of_seconds(settings.idleness_s))
        # Last: PyFlink's with_idleness() returns a strategy without the Python timestamp assigner.
        .with_timestamp_assigner(EventTime())
    ).uid("event-time").name("event time")
    results = (
        events.connect(pushes.broadcast(ACTIVE_RULES))
        .process(ApplyRules(ruleset, settings.ruleset_name, settings.store_raw_text, tuple(settings.scorers)))
        .uid("rules").name("apply rules")
    )
    sequence_violations = (
        results.get_side_output(SEQUENCE_HITS).key_by(lambda hit: (hit[0], hit[1]))
        .process(SequenceRules()).uid("sequence-rules").name("sequence rules")
    )
    # Per window: events and their scores, and every violation, sequence rules' included.
    counted = results.map(lambda r: (r[0], r[1], 1, len(r[2]), r[3])).uid("count-events").union(
        sequence_violations.map(lambda docs: (docs[0]["tenant"], docs[0]["model"], 0, len(docs), {}))
        .uid("count-sequence-violations"))
    window_counts = (
        counted.key_by(lambda r: (r[0], r[1]))
        .window(TumblingEventTimeWindows.of(Time.seconds(settings.metrics_window_s)))
        .aggregate(CountEvents(), window_function=EmitWindowCounts())
        .uid("window-counts").name("counts per tenant and model")
    )
    anomalies = (
        results.map(lambda r: (r[0], r[1], {d["category"] for d in r[2]}, r[3])).uid("anomaly-input")
        .key_by(lambda r: (r[0], r[1]))
        .window(TumblingEventTimeWindows.of(Time.seconds(settings.anomaly_window_s)))
        .aggregate(WindowStats(), window_function=EmitWindowStats())
        .uid("window-stats").name("window statistics per tenant and model")
        .key_by(lambda w: (w[0], w[1]))
        .process(DetectAnomalies(AnomalySettings(threshold=settings.anomaly_threshold, warmup=settings.anomaly_warmup,
                                                 min_events=settings.anomaly_min_events)))
        .uid("anomalies").name("detect anomalies")
    )
    return AuditOutputs(results, window_counts, parsed.get_side_output(DEAD_LETTERS),
                        results.get_side_output(RULE_CHANGES), sequence_violations, anomalies)


def check_scorers(ruleset: RuleSet, settings: AuditJobSettings) -> None:
    """Score rules need their scorers running; the scorers config must be valid."""
    if settings.scorers:
        load_config(settings.scorers_path)
    missing = ruleset.scorers_used() - set(settings.scorers)
    if missing:
        raise ScorerError(f"{settings.rules_path}: score rules need scorers {sorted(missing)}; "
                          f"add them to LLM_AUDIT_SCORERS (now {list(settings.scorers)}) or disable those rules")


def create_env(settings: AuditJobSettings) -> StreamExecutionEnvironment:
    config = Configuration()
    if settings.python_executable:
        config.set_string("python.executable", settings.python_executable)
    if settings.pipeline_jars:
        config.set_string("pipeline.jars", ";".join(settings.pipeline_jars))
    if settings.checkpoint_dir:
        config.set_string("execution.checkpointing.dir", settings.checkpoint_dir)
        config.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    config.set_string("restart-strategy.type", "fixed-delay")
    config.set_string("restart-strategy.fixed-delay.attempts", str(settings.restart_attempts))
    config.set_string("restart-strategy.fixed-delay.delay", f"{settings.restart_delay_s} s")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(settings.parallelism)
    env.enable_checkpointing(settings.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    return env


def kafka_source(settings: AuditJobSettings, topic: str, starting: str | None = None) -> KafkaSource:
    starting = {
        "earliest": KafkaOffsetsInitializer.earliest(),
        "latest": KafkaOffsetsInitializer.latest(),
        "committed": KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST),
    }[starting or settings.starting_offsets]
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap)
        .set_topics(topic)
        .set_group_id(settings.group_id)
        .set_starting_offsets(starting)
        .set_value_only_deserializer(SimpleStringSchema())
        .set_property("isolation.level", "read_committed")
    )
    if settings.bounded:
        builder = builder.set_bounded(KafkaOffsetsInitializer.latest())
    return builder.build()


def dlq_sink(settings: AuditJobSettings) -> KafkaSink:
    return (
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
        .build()
    )


def discard() -> Sink:
    """A terminal for operators whose effect is their own idempotent write."""
    return Sink(get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink())


def build_job(settings: AuditJobSettings) -> StreamExecutionEnvironment:
    """Sources, pipeline and sinks on a new environment, ready to execute."""
    ruleset = load_rules(settings.rules_path)  # fail at submission, not on a worker
    check_scorers(ruleset, settings)
    env = create_env(settings)
    raw = env.from_source(kafka_source(settings, settings.source_topic), WatermarkStrategy.no_watermarks(),
                          "audit events").uid("source")
    # Pushes carry Kafka timestamps; an idle rules topic must not hold the event-time watermark back.
    pushes = env.from_source(
        kafka_source(settings, settings.rules_topic, "earliest"),
        WatermarkStrategy.for_monotonous_timestamps().with_idleness(Duration.of_seconds(1)), "rule pushes",
    ).uid("rules-source")
    out = build_pipeline(raw, pushes, settings, ruleset)

    uri = settings.mongo_uri.get_secret_value()
    violations = out.results.filter(lambda r: bool(r[2])).uid("has-violations").map(lambda r: r[2]) \
        .uid("violation-docs").union(out.sequence_violations)
    violations.map(MongoUpsertWriter(uri, settings.mongo_database, settings.violations_collection), Types.INT()) \
        .uid("mongo-violations").name("upsert violations").sink_to(discard()).uid("mongo-done")
    out.rule_changes.map(lambda doc: [doc]).uid("rule-change-docs") \
        .map(MongoUpsertWriter(uri, settings.mongo_database, settings.rule_changes_collection), Types.INT()) \
        .uid("mongo-rule-changes").name("record rule changes").sink_to(discard()).uid("rule-changes-done")
    out.anomalies.map(lambda doc: [doc]).uid("anomaly-docs") \
        .map(MongoUpsertWriter(uri, settings.mongo_database, settings.anomalies_collection), Types.INT()) \
        .uid("mongo-anomalies").name("upsert anomalies").sink_to(discard()).uid("anomalies-done")
    influx = (settings.influx_url, settings.influx_token.get_secret_value(), settings.influx_org, settings.influx_bucket)
    out.window_counts.map(InfluxPointWriter(*influx, "audit_events", ("tenant", "model"), "time_ms"), Types.INT()) \
        .uid("influx-counts").name("write counts").sink_to(discard()).uid("influx-done")
    out.anomalies.map(InfluxPointWriter(*influx, "anomalies", ("tenant", "model", "metric"), "window_end_ms",
                                        ("observed", "baseline", "deviation", "score")), Types.INT()) \
        .uid("influx-anomalies").name("write anomalies").sink_to(discard()).uid("influx-anomalies-done")
    out.dead_letters.sink_to(dlq_sink(settings)).uid("dlq").name("dead-letter queue")
    return env


def main(settings: AuditJobSettings | None = None) -> None:
    build_job(settings or load_settings()).execute("llm-audit")


if __name__ == "__main__":
    main()
