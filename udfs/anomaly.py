"""Windowed anomaly detection per (tenant, model): window statistics and a robust baseline.

Plain Python, no Flink: WindowAccumulator defines each tumbling window's metrics (the job computes
the same in Flink SQL, and a pipeline test holds the two equal), and the job keeps one
AnomalyDetector state per key in keyed state; both are unit-tested without a cluster.

The baseline of each metric is an EWMA of its level and an EWMA of its absolute deviation from
that level (a streaming stand-in for median/MAD). A window is anomalous for a metric when it is
further than `threshold` deviations from the level, after `warmup` windows and with at least
`min_events` events (a rate over three events is noise). An anomalous value updates the baseline
only up to the threshold, so one spike does not become the new normal, while a lasting shift is
still learnt.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AnomalySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=0.1, gt=0, le=1, description="EWMA weight of the newest window")
    threshold: float = Field(default=6.0, gt=0, description="deviations from the level that make an anomaly")
    warmup: int = Field(default=10, ge=1, description="windows observed before any anomaly is raised")
    min_events: int = Field(default=20, ge=1, description="windows with fewer events are not judged")
    min_deviation: dict[str, float] = Field(
        default={"rate": 0.01, "score": 0.02, "latency_ms": 50.0, "count": 3.0, "tokens": 100.0, "cost_usd": 0.01},
        description="floor of the deviation per metric kind, so a flat baseline does not flag tiny moves",
    )


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class WindowAccumulator:
    """What one window of one (tenant, model) saw; mergeable."""

    events: int = 0
    violations: dict[str, int] = field(default_factory=dict)  # category -> events with one
    scores: dict[str, list[float]] = field(default_factory=dict)  # scorer -> the main score of each event scored
    latency_ms: list[float] = field(default_factory=list)
    tokens: int = 0
    cost_usd: float = 0.0

    def add(
        self, categories: set[str], scores: dict[str, float], latency_ms: float | None, tokens: int, cost_usd: float
    ) -> None:
        self.events += 1
        for category in categories:
            self.violations[category] = self.violations.get(category, 0) + 1
        for name, value in scores.items():
            self.scores.setdefault(name, []).append(value)
        if latency_ms is not None:
            self.latency_ms.append(latency_ms)
        self.tokens += tokens
        self.cost_usd += cost_usd

    def merge(self, other: WindowAccumulator) -> WindowAccumulator:
        merged = WindowAccumulator(
            self.events + other.events,
            dict(self.violations),
            {
                name: self.scores.get(name, []) + other.scores.get(name, [])
                for name in self.scores.keys() | other.scores
            },
            self.latency_ms + other.latency_ms,
            self.tokens + other.tokens,
            self.cost_usd + other.cost_usd,
        )
        for category, n in other.violations.items():
            merged.violations[category] = merged.violations.get(category, 0) + n
        return merged

    def metrics(self, categories: tuple[str, ...]) -> dict[str, float]:
        """Metric name -> value; a metric without data in the window (no scored text) is absent."""
        out: dict[str, float] = {
            "events": float(self.events),
            "tokens": float(self.tokens),
            "cost_usd": round(self.cost_usd, 6),
        }
        if self.events:
            for category in categories:
                out[f"violation_rate.{category}"] = self.violations.get(category, 0) / self.events
        for name, values in self.scores.items():
            if values:
                out[f"{name}_mean"] = sum(values) / len(values)
                out[f"{name}_p95"] = percentile(values, 0.95) or 0.0  # values is not empty
        if self.latency_ms:
            out["latency_p95_ms"] = percentile(self.latency_ms, 0.95) or 0.0
        return out


def metric_kind(metric: str) -> str:
    """Which deviation floor applies to a metric."""
    if metric.startswith("violation_rate."):
        return "rate"
    if metric.endswith(("_mean", "_p95")):  # a scorer's mean or p95 (latency's is latency_p95_ms)
        return "score"
    return {"latency_p95_ms": "latency_ms", "events": "count", "tokens": "tokens", "cost_usd": "cost_usd"}[metric]


@dataclass(frozen=True)
class Anomaly:
    tenant: str
    model: str
    metric: str
    window_start_ms: int
    window_end_ms: int
    observed: float
    baseline: float
    deviation: float
    score: float  # signed: deviations above (+) or below (-) the baseline

    @property
    def anomaly_id(self) -> str:
        """Deterministic: a replay of the same window names the same document."""
        return f"{self.tenant}:{self.model}:{self.metric}:{self.window_end_ms}"

    def to_dict(self) -> dict[str, Any]:
        return {"_id": self.anomaly_id, **asdict(self)}


@dataclass
class Baseline:
    level: float
    deviation: float
    windows: int = 1


class AnomalyDetector:
    """One (tenant, model)'s baselines; `state` is plain data for Flink's keyed state."""

    def __init__(self, settings: AnomalySettings, state: dict[str, Baseline] | None = None):
        self.settings = settings
        self.state: dict[str, Baseline] = state if state is not None else {}

    def observe(
        self, tenant: str, model: str, window_start_ms: int, window_end_ms: int, metrics: dict[str, float]
    ) -> list[Anomaly]:
        """Judge one window against the baselines, then fold it into them."""
        s = self.settings
        # Rates and percentiles of a handful of events are noise: such a window is neither judged
        # nor learnt from, except for its volume (a drop in traffic is news too).
        enough = metrics.get("events", 0) >= s.min_events
        anomalies = []
        for metric, value in sorted(metrics.items()):
            if not enough and metric != "events":
                continue
            base = self.state.get(metric)
            if base is None:
                self.state[metric] = Baseline(level=value, deviation=0.0)
                continue
            floor = s.min_deviation[metric_kind(metric)]
            spread = max(base.deviation, floor)
            score = (value - base.level) / spread
            if base.windows >= s.warmup and abs(score) >= s.threshold:
                anomalies.append(
                    Anomaly(
                        tenant,
                        model,
                        metric,
                        window_start_ms,
                        window_end_ms,
                        round(value, 6),
                        round(base.level, 6),
                        round(spread, 6),
                        round(score, 2),
                    )
                )
                # Damped: the baseline moves only as far as the threshold, not to the spike.
                value = base.level + math.copysign(s.threshold * spread, score)
            base.deviation = (1 - s.alpha) * base.deviation + s.alpha * abs(value - base.level)
            base.level = (1 - s.alpha) * base.level + s.alpha * value
            base.windows += 1
        return anomalies
