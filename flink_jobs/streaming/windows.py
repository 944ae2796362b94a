"""The audit job's metrics and anomaly windows, aggregated in Flink SQL.

The audit emits one typed AUDITED row per event (and per fired sequence rule); Flink SQL's window
aggregations sum them per (tenant, model) and tumbling event-time window in the JVM, and only one row
per closed window crosses back to Python, to become InfluxDB points and be judged for anomalies.
Keeping the windows in a Python operator cost a keyed-state call per event; here they cost none.

SQL windows close when the watermark passes their end and leave out late rows; their state and timers
are Flink's own, so a restore needs no new event to close what it restored.
"""

from __future__ import annotations

from collections import Counter

from pyflink.common import Row, Types
from pyflink.datastream import DataStream, OutputTag
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.table import Schema

from flink_jobs.pyflink_internals import declare_output_type, table_env_of
from flink_jobs.streaming.records import BUCKETED, bucketed
from udfs.anomaly import AnomalyDetector, AnomalySettings
from udfs.findings import CATEGORIES
from udfs.metrics import Point, WindowCounts, anomaly_point, dead_letter_point
from udfs.rules import SCORERS

_RATE_CATEGORIES = tuple(c for c in CATEGORIES if c != "anomaly")


def _end_ms(column: str) -> str:
    return f"UNIX_TIMESTAMP(CAST({column} AS STRING), 'yyyy-MM-dd HH:mm:ss.SSS') * 1000"


def _tumbling(table, size_s: int, keys: str, aggregates: list[str], where: str = "") -> str:
    """keys, end_ms, then the aggregates (named a0, a1, ...) per tumbling event-time window."""
    select = ", ".join(f"{agg} AS a{i}" for i, agg in enumerate(aggregates))
    return (
        f"SELECT {keys}, {_end_ms('window_end')} AS end_ms, {select} "
        f"FROM TABLE(TUMBLE(TABLE {table}, DESCRIPTOR(event_time), INTERVAL '{size_s}' SECOND(9))) {where} "
        f"GROUP BY {keys}, window_start, window_end"
    )


METRICS_FIELDS = {
    "tenant": Types.STRING(),
    "model": Types.STRING(),
    "end_ms": Types.LONG(),
    "events": Types.INT(),
    "violations": Types.INT(),
    "tokens": Types.LONG(),
    "cost_usd": Types.DOUBLE(),
    "rule_keys": Types.STRING(),
    **{
        f"{scorer}_{agg}": t
        for scorer in SCORERS
        for agg, t in (("n", Types.LONG()), ("sum", Types.DOUBLE()), ("max", Types.DOUBLE()))
    },
}
_METRICS_AGGREGATES = [
    "SUM(events)",
    "SUM(violations)",
    "SUM(tokens)",
    "SUM(cost_usd)",
    "LISTAGG(rule_keys, '\n')",
    *(f"{agg}({s})" for s in SCORERS for agg in ("COUNT", "SUM", "MAX")),
]

ANOMALY_FIELDS = {
    "tenant": Types.STRING(),
    "model": Types.STRING(),
    "end_ms": Types.LONG(),
    "events": Types.LONG(),
    "tokens": Types.LONG(),
    "cost_usd": Types.DOUBLE(),
    **{f"violation_rate.{c}": Types.INT() for c in _RATE_CATEGORIES},
    **{f"{s}_{m}": Types.DOUBLE() for s in SCORERS for m in ("mean", "p95")},
    "latency_p95_ms": Types.DOUBLE(),
}
_ANOMALY_AGGREGATES = [
    "COUNT(*)",
    "SUM(tokens)",
    "SUM(cost_usd)",
    *(f"SUM(CASE WHEN POSITION(',{c},' IN categories) > 0 THEN 1 ELSE 0 END)" for c in _RATE_CATEGORIES),
    *(f"{agg}({s}{arg})" for s in SCORERS for agg, arg in (("AVG", ""), ("PERCENTILE", ", 0.95"))),
    "PERCENTILE(latency_ms, 0.95)",
]


def _typed(fields: dict) -> Types:
    return Types.ROW_NAMED(list(fields), list(fields.values()))


def window_rows(audited: DataStream, metrics_s: int, anomaly_s: int) -> tuple[DataStream, DataStream]:
    """AUDITED rows (their watermarks passed on) -> (METRICS_FIELDS rows per metrics window,
    Row(JSON [tenant, model], ANOMALY_FIELDS row) per anomaly window, for keyed())."""
    t_env = table_env_of(audited)
    schema = (
        Schema.new_builder()
        .column_by_expression("event_time", "TO_TIMESTAMP_LTZ(time_ms, 3)")
        .watermark("event_time", "SOURCE_WATERMARK()")
        .build()
    )
    table = t_env.from_data_stream(audited, schema)
    metrics = t_env.to_data_stream(t_env.sql_query(_tumbling(table, metrics_s, "tenant, model", _METRICS_AGGREGATES)))
    declare_output_type(metrics, _typed(METRICS_FIELDS))
    # Anomaly windows are of the events alone; keyed in Java by the JSON [tenant, model].
    anomaly = _tumbling(table, anomaly_s, "tenant, model", _ANOMALY_AGGREGATES, "WHERE events = 1")
    columns = ", ".join(["tenant", "model", "end_ms", *(f"a{i}" for i in range(len(_ANOMALY_AGGREGATES)))])
    keyed_rows = t_env.to_data_stream(
        t_env.sql_query(f"SELECT JSON_ARRAY(tenant, model), ROW({columns}) FROM ({anomaly})")
    )
    declare_output_type(keyed_rows, Types.ROW([Types.STRING(), _typed(ANOMALY_FIELDS)]))
    return metrics, keyed_rows


def dead_letter_rows(dead_letters: DataStream, metrics_s: int) -> DataStream:
    """DEAD_LETTERS records (JSON, time ms), with the event-time watermark of the operator that found
    them -> Row(reason, end_ms, count) per window."""
    t_env = table_env_of(dead_letters)
    table = t_env.from_data_stream(
        dead_letters,
        Schema.new_builder()
        .column_by_expression("event_time", "TO_TIMESTAMP_LTZ(f1, 3)")
        .watermark("event_time", "SOURCE_WATERMARK()")
        .build(),
    )
    reasons = t_env.sql_query(f"SELECT JSON_VALUE(f0, '$.reason') AS reason, event_time FROM {table}")
    rows = t_env.to_data_stream(t_env.sql_query(_tumbling(reasons, metrics_s, "reason", ["COUNT(*)"])))
    declare_output_type(rows, Types.ROW([Types.STRING(), Types.LONG(), Types.LONG()]))
    return rows


def _series(point: Point) -> str:
    return point["measurement"] + repr(sorted(point["tags"].items()))


class WindowPoints:
    """A window's row -> its InfluxDB points, each BUCKETED by its series for the writers."""

    def __init__(self, points, buckets: int):
        self._points, self._buckets = points, buckets

    def __call__(self, row: Row):
        return [bucketed(_series(p), p, self._buckets) for p in self._points(row)]


def metrics_points(row: Row) -> list[Point]:
    """A metrics window's row -> its InfluxDB points (udfs.metrics)."""
    w = dict(zip(METRICS_FIELDS, row))  # by name: thread mode's rows come without field names
    counts = WindowCounts(
        w["events"],
        w["violations"],
        w["tokens"],
        w["cost_usd"],
        dict(Counter(tuple(k.split("\t")) for k in (w["rule_keys"] or "").split("\n") if k)),
        {s: (w[f"{s}_n"], w[f"{s}_sum"], w[f"{s}_max"]) for s in SCORERS if w[f"{s}_n"]},
    )
    return counts.points(w["tenant"], w["model"], w["end_ms"])


def anomaly_metrics(row: Row) -> dict[str, float]:
    """An anomaly window's row -> the metrics udfs.anomaly judges: what WindowAccumulator.metrics()
    computes in plain Python, here summed by Flink SQL."""
    w = dict(zip(ANOMALY_FIELDS, row))
    metrics = {"events": float(w["events"]), "tokens": float(w["tokens"]), "cost_usd": round(w["cost_usd"], 6)}
    metrics.update({f"violation_rate.{c}": w[f"violation_rate.{c}"] / w["events"] for c in _RATE_CATEGORIES})
    for name in (*(f"{s}_{m}" for s in SCORERS for m in ("mean", "p95")), "latency_p95_ms"):
        if w[name] is not None:  # no scored text, or no latency, in the window
            metrics[name] = w[name]
    return metrics


def dead_letter_points(row: Row) -> list[Point]:
    reason, end_ms, count = row
    return [dead_letter_point(reason, count, end_ms)]


# The point of each anomaly. A side output, not a Python operator after DetectAnomalies: PyFlink
# would chain the two, and its chaining trips over the job's diamonds with a uid hash collision.
ANOMALY_POINTS = OutputTag("anomaly-points", BUCKETED)


class DetectAnomalies(KeyedProcessFunction):
    """Keyed by (tenant, model), fed its anomaly windows' rows in window order: judges each against
    the key's baselines (keyed state) -> BUCKETED anomaly documents, and their points -> ANOMALY_POINTS."""

    def __init__(self, settings: AnomalySettings, window_ms: int, buckets: int):
        self._settings, self._window_ms, self._buckets = settings, window_ms, buckets

    def open(self, runtime_context: RuntimeContext):
        self._baselines = runtime_context.get_state(ValueStateDescriptor("baselines", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, row: Row, ctx: KeyedProcessFunction.Context):
        tenant, model, end = row[:3]
        detector = AnomalyDetector(self._settings, self._baselines.value())
        for anomaly in detector.observe(tenant, model, end - self._window_ms, end, anomaly_metrics(row)):
            doc = anomaly.to_dict()
            yield bucketed(doc["_id"], doc, self._buckets)
            point = anomaly_point(doc)
            yield ANOMALY_POINTS, bucketed(_series(point), point, self._buckets)
        self._baselines.update(detector.state)
