"""Anomaly detection (udfs/anomaly.py) without Flink: window statistics and the robust per-metric baseline."""

import random

import pytest

from udfs.anomaly import AnomalyDetector, AnomalySettings, WindowAccumulator, percentile

CATEGORIES = ("pii", "toxicity")
MINUTE = 60_000


def window(rng: random.Random, events: int, pii_rate: float, toxicity: float = 0.05) -> WindowAccumulator:
    acc = WindowAccumulator()
    for _ in range(events):
        categories = {"pii"} if rng.random() < pii_rate else set()
        acc.add(categories, {"toxicity": min(1.0, max(0.0, rng.gauss(toxicity, 0.03)))},
                rng.lognormvariate(6.5, 0.5), rng.randint(50, 400), 0.002)
    return acc


def run(windows: list[WindowAccumulator], settings: AnomalySettings = AnomalySettings()) -> list:
    detector = AnomalyDetector(settings)
    found = []
    for i, acc in enumerate(windows):
        found += detector.observe("acme", "gpt-4o", i * MINUTE, (i + 1) * MINUTE, acc.metrics(CATEGORIES))
    return found


def test_steady_noisy_traffic_raises_no_anomaly():
    rng = random.Random(1)
    windows = [window(rng, rng.randint(150, 250), 0.05) for _ in range(300)]  # 5 hours of minutes
    assert run(windows) == []


def test_a_violation_spike_is_flagged_in_the_window_where_it_starts():
    rng = random.Random(2)
    windows = [window(rng, rng.randint(150, 250), 0.05) for _ in range(60)]
    windows += [window(rng, 200, 0.40) for _ in range(3)]  # a burst of leaked PII
    found = run(windows)
    first = min(found, key=lambda a: a.window_end_ms)
    assert (first.metric, first.window_end_ms) == ("violation_rate.pii", 61 * MINUTE)
    assert first.observed > first.baseline + 5 * first.deviation and first.score >= 6
    assert first.anomaly_id == f"acme:gpt-4o:violation_rate.pii:{61 * MINUTE}"


def test_a_lasting_shift_is_learnt_instead_of_alarming_forever():
    rng = random.Random(3)
    windows = [window(rng, 200, 0.05) for _ in range(40)] + [window(rng, 200, 0.30) for _ in range(60)]
    pii = [a for a in run(windows) if a.metric == "violation_rate.pii"]
    assert pii and pii[0].window_end_ms == 41 * MINUTE
    assert max(a.window_end_ms for a in pii) < 70 * MINUTE  # quiet again once the new level is learnt


def test_warmup_and_minimum_volume_guard_against_early_and_thin_windows():
    rng = random.Random(4)
    early_spike = [window(rng, 200, 0.05) for _ in range(3)] + [window(rng, 200, 0.5)]
    assert run(early_spike) == []  # still warming up
    thin = [window(rng, 200, 0.05) for _ in range(30)] + [window(rng, 5, 1.0)]
    assert not [a for a in run(thin) if a.metric == "violation_rate.pii"]  # 5 events: not judged
    drop = [window(rng, 200, 0.05) for _ in range(30)] + [window(rng, 5, 0.05)]
    assert [a.metric for a in run(drop)] == ["events"]  # but a collapse in volume is news


def test_window_metrics_and_merge():
    a, b = WindowAccumulator(), WindowAccumulator()
    a.add({"pii"}, {"toxicity": 0.2}, 100.0, 10, 0.01)
    b.add(set(), {"toxicity": 0.4, "bias": 0.9}, 300.0, 20, 0.02)
    metrics = a.merge(b).metrics(CATEGORIES)
    assert metrics["events"] == 2 and metrics["violation_rate.pii"] == 0.5 and metrics["violation_rate.toxicity"] == 0
    assert metrics["toxicity_mean"] == pytest.approx(0.3) and metrics["bias_p95"] == 0.9
    assert metrics["latency_p95_ms"] == pytest.approx(290.0) and metrics["tokens"] == 30
    assert percentile([], 0.5) is None and percentile([1, 2, 3, 4], 0.5) == 2.5
