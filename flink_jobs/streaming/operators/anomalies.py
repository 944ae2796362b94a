"""Anomalies per tenant and model: each closed anomaly window judged against the key's baselines."""

from __future__ import annotations

from pyflink.common import Row, Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from flink_jobs.streaming.operators.points import series
from flink_jobs.streaming.records import ANOMALY_POINTS, bucketed
from flink_jobs.streaming.windows import ANOMALY_FIELDS, RATE_CATEGORIES
from udfs.anomaly import AnomalyDetector, AnomalySettings
from udfs.metrics import anomaly_point
from udfs.scorers.suite import MEASURED


def anomaly_metrics(row: Row) -> dict[str, float]:
    """An anomaly window's row -> the metrics udfs.anomaly judges: what WindowAccumulator.metrics()
    computes in plain Python, here summed by Flink SQL."""
    w = dict(zip(ANOMALY_FIELDS, row))
    metrics = {"events": float(w["events"]), "tokens": float(w["tokens"]), "cost_usd": round(w["cost_usd"], 6)}
    metrics.update({f"violation_rate.{c}": w[f"violating_{c}"] / w["events"] for c in RATE_CATEGORIES})
    for name in (*(f"{s}_{m}" for s in MEASURED for m in ("mean", "p95")), "latency_p95_ms"):
        if w[name] is not None:  # no scored text, or no latency, in the window
            metrics[name] = w[name]
    return metrics


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
            yield ANOMALY_POINTS, bucketed(series(point), point, self._buckets)
        self._baselines.update(detector.state)
