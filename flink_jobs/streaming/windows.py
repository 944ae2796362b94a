"""The audit job's metrics and anomaly windows, aggregated in Flink SQL.

The audit emits one typed AUDITED row per event (and per fired sequence rule); Flink SQL's window
aggregations sum them per (tenant, model) and tumbling event-time window in the JVM, and only one row
per closed window crosses back to Python, to become InfluxDB points and be judged for anomalies.
Keeping the windows in a Python operator cost a keyed-state call per event; here they cost none.

SQL windows close when the watermark passes their end and leave out late rows; their state and timers
are Flink's own, so a restore needs no new event to close what it restored.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyflink.common import Types
from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream import DataStream
from pyflink.table import Schema

from flink_jobs.pyflink_internals import declare_output_type, table_env_of
from udfs.findings import CATEGORIES
from udfs.scorers.suite import MEASURED

RATE_CATEGORIES = tuple(c for c in CATEGORIES if c != "anomaly")


def _end_ms(column: str) -> str:
    return f"UNIX_TIMESTAMP(CAST({column} AS STRING), 'yyyy-MM-dd HH:mm:ss.SSS') * 1000"


@dataclass(frozen=True)
class Column:
    """A column of a window's row: its name, Flink SQL expression over AUDITED rows, type and meaning."""

    name: str
    sql: str
    type: TypeInformation
    meaning: str


KEYS = (
    Column("tenant", "tenant", Types.STRING(), "the window's tenant"),
    Column("model", "model", Types.STRING(), "the window's model"),
    Column("end_ms", _end_ms("window_end"), Types.LONG(), "the window's end, epoch ms (exclusive)"),
)

# One row per (tenant, model) and metrics window: udfs.metrics.WindowCounts, via operators.points.
METRICS_COLUMNS = (
    *KEYS,
    Column("events", "SUM(events)", Types.INT(), "events audited"),
    Column("violations", "SUM(violations)", Types.INT(), "violations found, sequence rules' included"),
    Column("tokens", "SUM(tokens)", Types.LONG(), "prompt and completion tokens"),
    Column("cost_usd", "SUM(cost_usd)", Types.DOUBLE(), "cost in USD"),
    Column("rule_keys", "LISTAGG(rule_keys, '\n')", Types.STRING(), "rule<TAB>category<TAB>severity per violation"),
    *(
        column
        for s in MEASURED
        for column in (
            Column(f"{s}_n", f"COUNT({s})", Types.LONG(), f"events with a {s} score"),
            Column(f"{s}_sum", f"SUM({s})", Types.DOUBLE(), f"sum of the events' highest {s} score"),
            Column(f"{s}_max", f"MAX({s})", Types.DOUBLE(), f"highest {s} score"),
        )
    ),
)

# One row per (tenant, model) and anomaly window, events only: what udfs.anomaly judges, via
# operators.anomalies.anomaly_metrics (which turns the counts into rates).
ANOMALY_COLUMNS = (
    *KEYS,
    Column("events", "COUNT(*)", Types.LONG(), "events audited"),
    Column("tokens", "SUM(tokens)", Types.LONG(), "prompt and completion tokens"),
    Column("cost_usd", "SUM(cost_usd)", Types.DOUBLE(), "cost in USD"),
    *(
        Column(
            f"violating_{c}",
            f"SUM(CASE WHEN POSITION(',{c},' IN categories) > 0 THEN 1 ELSE 0 END)",
            Types.INT(),
            f"events with a violation of category {c}",
        )
        for c in RATE_CATEGORIES
    ),
    *(
        column
        for s in MEASURED
        for column in (
            Column(f"{s}_mean", f"AVG({s})", Types.DOUBLE(), f"mean of the events' highest {s} score"),
            Column(f"{s}_p95", f"PERCENTILE({s}, 0.95)", Types.DOUBLE(), f"95th percentile of {s}"),
        )
    ),
    Column("latency_p95_ms", "PERCENTILE(latency_ms, 0.95)", Types.DOUBLE(), "95th percentile of the model's latency"),
)
METRICS_FIELDS = {column.name: column.type for column in METRICS_COLUMNS}
ANOMALY_FIELDS = {column.name: column.type for column in ANOMALY_COLUMNS}


def _tumbling(table, size_s: int, columns: tuple[Column, ...], where: str = "") -> str:
    """One row of `columns` per key and tumbling event-time window: the columns before end_ms are the keys,
    the ones after it aggregates."""
    names = [column.name for column in columns]
    keys = ", ".join(column.sql for column in columns[: names.index("end_ms")])
    select = ", ".join(f"{column.sql} AS `{column.name}`" for column in columns)
    return (
        f"SELECT {select} "
        f"FROM TABLE(TUMBLE(TABLE {table}, DESCRIPTOR(event_time), INTERVAL '{size_s}' SECOND(9))) {where} "
        f"GROUP BY {keys}, window_start, window_end"
    )


def _typed(fields: dict) -> TypeInformation:
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
    metrics = t_env.to_data_stream(t_env.sql_query(_tumbling(table, metrics_s, METRICS_COLUMNS)))
    declare_output_type(metrics, _typed(METRICS_FIELDS))
    # Anomaly windows are of the events alone; keyed in Java by the JSON [tenant, model].
    anomaly = _tumbling(table, anomaly_s, ANOMALY_COLUMNS, "WHERE events = 1")
    columns = ", ".join(f"`{name}`" for name in ANOMALY_FIELDS)
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
    columns = (
        Column("reason", "reason", Types.STRING(), "the dead letters' reason"),
        KEYS[2],
        Column("count", "COUNT(*)", Types.LONG(), "dead letters"),
    )
    rows = t_env.to_data_stream(t_env.sql_query(_tumbling(reasons, metrics_s, columns)))
    declare_output_type(rows, Types.ROW([Types.STRING(), Types.LONG(), Types.LONG()]))
    return rows
