"""The streaming audit job: Kafka events -> parse and score -> rules -> sequences, windows, anomalies ->
MongoDB, InfluxDB, the dead-letter topic and the Parquet archive.

Run locally with `llm-audit run audit`, or on a cluster with `flink run -py flink_jobs/streaming/job.py`
(settings from LLM_AUDIT_* env vars, see flink_jobs/settings.py). docs/architecture.md draws it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import Table

from flink_jobs.credentials import secret
from flink_jobs.kafka import clear_committed_offsets, client_config, committed_offsets, offsets_span
from flink_jobs.preflight import check_reachable, check_topics
from flink_jobs.pyflink_internals import keyed, python_execution_mode, side_output, stop_with_savepoint, with_event_time
from flink_jobs.settings import AuditJobSettings, load_settings
from flink_jobs.streaming.environment import bounded_watermarks, create_env
from flink_jobs.streaming.operators.anomalies import DetectAnomalies
from flink_jobs.streaming.operators.audit import ACTIVE_RULES, ArchiveRows, AuditEvents
from flink_jobs.streaming.operators.points import WindowPoints, dead_letter_points, metrics_points
from flink_jobs.streaming.operators.scoring import ScoreEvents
from flink_jobs.streaming.operators.sequences import SequenceRules
from flink_jobs.streaming.records import (
    ANOMALY_POINTS,
    ARCHIVE,
    AUDITED,
    BUCKETED,
    DEAD_LETTERS,
    RULE_CHANGES,
    RULES_POINTS,
    SEQUENCE_HITS,
    VIOLATIONS,
)
from flink_jobs.streaming.sinks.archive import write_archive
from flink_jobs.streaming.sinks.buffered import write
from flink_jobs.streaming.sinks.dlq import dlq_sink
from flink_jobs.streaming.sinks.influx import InfluxWriter
from flink_jobs.streaming.sinks.mongo import ANOMALY_INDEXES, VIOLATION_INDEXES, MongoWriter
from flink_jobs.streaming.sources import kafka_events_table, kafka_source, timed_events
from flink_jobs.streaming.windows import dead_letter_rows, window_rows
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


def batching_keys(settings: AuditJobSettings) -> int:
    """Several keys per subtask, so every subtask gets some; each key batches on its own."""
    return 4 * settings.parallelism


def build_pipeline(events: Table, pushes: DataStream, settings: AuditJobSettings, ruleset: RuleSet) -> AuditOutputs:
    """The transformation, without sources or sinks, so tests can feed any stream.

    events: the EVENTS table (sources.kafka_events_table, or sources.events_table over any stream);
    pushes: rule push records (JSON) from the rules topic.

    Every event passes one Python operator (two with scorers), AuditEvents: each is a round trip
    between the JVM and the Python worker, the largest cost of the job. It emits a typed row per
    event, which Flink SQL aggregates in the metrics and anomaly windows; only a row per closed
    window, and the violations and sequence-rule hits, cross to Python again.
    """
    buckets = batching_keys(settings)
    scored = _scored(events, settings, buckets) if settings.scorers else None
    archive = _archive_rows(settings)
    audit = (
        (timed_events(events) if scored is None else scored)
        .connect(pushes.broadcast(ACTIVE_RULES))
        .process(_audit_events(ruleset, settings, buckets, archive), AUDITED)
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
    detector = AnomalySettings(
        threshold=settings.anomaly_threshold, warmup=settings.anomaly_warmup, min_events=settings.anomaly_min_events
    )
    anomalies = (
        keyed(anomaly_windows, Types.STRING())
        .process(DetectAnomalies(detector, settings.anomaly_window_s * 1000, buckets), BUCKETED)
        .uid("anomalies")
        .name("anomalies per tenant and model")
    )

    # The messages that do not parse, and the events whose audit failed (udfs.faults).
    def dead_letter_records() -> DataStream:
        found = side_output(audit, DEAD_LETTERS).union(side_output(sequences, DEAD_LETTERS))
        return found if scored is None else side_output(scored, DEAD_LETTERS).union(found)

    # Dead letters are stamped with their time (their arrival, see parse.dead_letter_time), not an event
    # time: the time of their record on the dead-letter topic, whose broker may refuse a far-off one.
    dead_letters = (
        with_event_time(dead_letter_records(), bounded_watermarks(settings), Types.STRING())
        .uid("dead-letter-time")
        .name("dead-letter arrival time")
    )
    # Counted with the event-time watermark of the operators that found them (see parse.dead_letter_time).
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


def _scored(events: Table, settings: AuditJobSettings, buckets: int) -> DataStream:
    """The events parsed and scored in batches per bucket (records.ScoredEvent), their dead letters aside."""
    scorers = ScoreEvents(
        load_config(settings.scorers_path),
        enabled=tuple(settings.scorers),
        device=settings.scorer_device,
        max_batch=settings.score_batch_size,
        max_wait_ms=settings.score_max_wait_ms,
        bounds=settings.field_bounds(),
    )
    keyed_events = keyed(timed_events(events, buckets), Types.STRING())
    # In a worker process whatever the job's mode: the models get a GIL of their own, and torch hung in
    # the embedded interpreter's open() while it shared its task thread with a second interpreter
    # (see pyflink_internals.side_output).
    with python_execution_mode(keyed_events, "process"):
        return keyed_events.process(scorers, Types.PICKLED_BYTE_ARRAY()).uid("score").name("score toxicity and bias")


def _archive_rows(settings: AuditJobSettings) -> ArchiveRows | None:
    if not (settings.archive_dir and "archive" in settings.outputs):
        return None
    key = settings.archive_key if settings.archive_text == "encrypted" else None
    return ArchiveRows(
        settings.archive_text,
        secret("LLM_AUDIT_ARCHIVE_KEY", key) if key else None,
        Tombstones(secret("LLM_AUDIT_MONGO_URI", settings.mongo_uri), settings.mongo_database),
    )


def _audit_events(
    ruleset: RuleSet, settings: AuditJobSettings, buckets: int, archive: ArchiveRows | None
) -> AuditEvents:
    return AuditEvents(
        ruleset,
        ruleset_name=settings.ruleset_name,
        store_raw_text=settings.store_raw_text,
        scorers=tuple(settings.scorers),
        buckets=buckets,
        archive=archive,
        trusted_keys=tuple(settings.rules_trusted_keys),
        allow_unsigned=settings.rules_allow_unsigned,
        bounds=settings.field_bounds(),
    )


def check_scorers(ruleset: RuleSet, settings: AuditJobSettings) -> None:
    """Score rules need their scorers running; the scorers config must be valid."""
    if settings.scorers:
        load_config(settings.scorers_path)
    missing = ruleset.scorers_used() - set(settings.scorers)
    if missing:
        raise ScorerError(
            f"{settings.rules_path}: score and entities rules need scorers {sorted(missing)}; "
            f"add them to LLM_AUDIT_SCORERS (now {list(settings.scorers)}) or disable those rules"
        )


def check_before_submission(settings: AuditJobSettings) -> RuleSet:
    """What would otherwise fail on a worker, over and over, fails here, named: the rules, the scorers,
    the stores' credentials and the topics -> the rules the job starts with."""
    ruleset = load_rules(settings.rules_path)
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
    RuleEngine(ruleset).open()  # a rule that fails on every event (its self-check)
    check_scorers(ruleset, settings)
    check_reachable(
        settings.mongo_uri.get_secret_value(),
        settings.influx_url,
        settings.influx_token.get_secret_value(),
        settings.influx_org,
    )
    check_topics(settings)  # a missing topic fails at submission, not in the enumerator
    return ruleset


def build_job(settings: AuditJobSettings, between_ms: tuple[int, int] | None = None) -> StreamExecutionEnvironment:
    """Sources, pipeline and sinks on a new environment, ready to execute.

    between_ms: audit only the source records of this Kafka time range [from, to) (a replay).
    """
    ruleset = check_before_submission(settings)
    env = create_env(settings)
    # Pushes carry Kafka timestamps; an idle rules topic must not hold the event-time watermark back.
    pushes = env.from_source(
        kafka_source(settings, settings.rules_topic, "earliest"),
        WatermarkStrategy.for_monotonous_timestamps().with_idleness(Duration.of_seconds(1)),
        "rule pushes",
    ).uid("rules-source")
    store(build_pipeline(kafka_events_table(env, settings, between_ms), pushes, settings, ruleset), settings)
    return env


def store(out: AuditOutputs, settings: AuditJobSettings) -> None:
    """The sinks of settings.outputs: what a store refuses goes to the dead-letter topic with the rest."""
    # The writers carry where the credentials are, not the credentials (flink_jobs.credentials).
    uri = secret("LLM_AUDIT_MONGO_URI", settings.mongo_uri)

    def mongo(collection: str, indexes=(), ttl_days: int | None = None, tombstones=None) -> MongoWriter:
        writer = MongoWriter(
            uri, settings.mongo_database, collection, indexes=indexes, ttl_days=ttl_days, tombstones=tombstones
        )
        return writer.prepare()

    refused = []  # dead letters of what a store refused
    if "violations" in settings.outputs:
        tombstones = Tombstones(uri, settings.mongo_database)
        violations = mongo(settings.violations_collection, VIOLATION_INDEXES, settings.violations_ttl_days, tombstones)
        refused.append(write(out.violations, violations, settings, "mongo-violations"))
    if "rule_changes" in settings.outputs:
        refused.append(write(out.rule_changes, mongo(settings.rule_changes_collection), settings, "mongo-rule-changes"))
    if "anomalies" in settings.outputs:
        anomalies = mongo(settings.anomalies_collection, ANOMALY_INDEXES)
        refused.append(write(out.anomalies, anomalies, settings, "mongo-anomalies"))
    if "metrics" in settings.outputs:
        token = secret("LLM_AUDIT_INFLUX_TOKEN", settings.influx_token)
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


def run_until_caught_up(settings: AuditJobSettings, poll_s: float = 1.0) -> None:
    """A bounded run that survives a restore: run unbounded, and once this run has committed (at a
    checkpoint) every offset that was the end of the topic at start, stop with a draining savepoint,
    which closes every window and fires every timer, as the end of a bounded input does.

    Needed because a bounded KafkaSource restored from a checkpoint never finishes (FLINK-31006: the
    restored enumerator does not signal "no more splits"). The group's committed offsets are cleared
    first: they are where the last run got to, which can be past the restored checkpoint (an older one,
    or a savepoint), and would end this run before it has read the gap.
    """
    from kafka import KafkaAdminClient, KafkaConsumer

    consumer, admin = KafkaConsumer(**client_config(settings)), KafkaAdminClient(**client_config(settings))
    try:
        span = offsets_span(consumer, settings.source_topic)
        clear_committed_offsets(admin, settings.group_id, settings.source_topic)
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
