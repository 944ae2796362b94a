"""Closed windows' rows (Flink SQL, streaming.windows) -> their InfluxDB points (udfs.metrics)."""

from __future__ import annotations

from collections import Counter

from pyflink.common import Row

from flink_jobs.streaming.records import bucketed
from flink_jobs.streaming.windows import METRICS_FIELDS
from udfs.metrics import Point, WindowCounts, dead_letter_point
from udfs.scorers.suite import MEASURED


def series(point: Point) -> str:
    return point["measurement"] + repr(sorted(point["tags"].items()))


class WindowPoints:
    """A window's row -> its InfluxDB points, each BUCKETED by its series for the writers."""

    def __init__(self, points, buckets: int):
        self._points, self._buckets = points, buckets

    def __call__(self, row: Row):
        return [bucketed(series(p), p, self._buckets) for p in self._points(row)]


def metrics_points(row: Row) -> list[Point]:
    """A metrics window's row -> its InfluxDB points (udfs.metrics)."""
    w = dict(zip(METRICS_FIELDS, row))  # by name: thread mode's rows come without field names
    counts = WindowCounts(
        w["events"],
        w["violations"],
        w["tokens"],
        w["cost_usd"],
        dict(Counter(tuple(k.split("\t")) for k in (w["rule_keys"] or "").split("\n") if k)),
        {s: (w[f"{s}_n"], w[f"{s}_sum"], w[f"{s}_max"]) for s in MEASURED if w[f"{s}_n"]},
    )
    return counts.points(w["tenant"], w["model"], w["end_ms"])


def dead_letter_points(row: Row) -> list[Point]:
    reason, end_ms, count = row
    return [dead_letter_point(reason, count, end_ms)]
