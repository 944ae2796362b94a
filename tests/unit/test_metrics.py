"""InfluxDB points per window and per anomaly (udfs/metrics.py), without services."""

from udfs.metrics import WindowCounts, anomaly_point


def test_window_counts_emit_one_point_per_series_and_count_only_the_events_own_violations_as_theirs():
    counts = WindowCounts(events=3, event_violations=3, tokens=45, cost_usd=0.0120004,
                          violations={("pii.email", "pii", "high"): 2, ("secret.credential", "secret", "critical"): 1,
                                      ("injection.repeated", "prompt_injection", "critical"): 1},
                          scores={"toxicity": (2, 1.1, 0.9), "bias": (1, 0.4, 0.4)})
    points = {(p["measurement"], tuple(sorted(p["tags"].items()))): p for p in counts.points("acme", "gpt-4o", 60_000)}
    assert all(p["time_ms"] == 60_000 for p in points.values())
    events = points[("audit_events", (("model", "gpt-4o"), ("tenant", "acme")))]["fields"]
    assert events == {"events": 3, "violations": 3, "tokens": 45, "cost_usd": 0.012}
    email = points[("violations", (("category", "pii"), ("model", "gpt-4o"), ("rule_id", "pii.email"),
                                   ("severity", "high"), ("tenant", "acme")))]
    assert email["fields"] == {"count": 2}
    toxicity = points[("scores", (("model", "gpt-4o"), ("scorer", "toxicity"), ("tenant", "acme")))]["fields"]
    assert toxicity == {"scored": 2, "mean": 0.55, "max": 0.9}
    assert len(points) == 1 + 3 + 2  # events, three rules, two scorers


def test_a_window_of_fired_sequence_rules_only_has_no_events_point():
    counts = WindowCounts(violations={("injection.repeated", "prompt_injection", "critical"): 2})
    assert [(p["measurement"], p["fields"]) for p in counts.points("acme", "m", 60_000)] == [("violations", {"count": 2})]


def test_anomaly_point_is_stamped_with_its_window_end():
    doc = {"_id": "x", "tenant": "acme", "model": "m", "metric": "violation_rate.pii", "window_start_ms": 0,
           "window_end_ms": 60_000, "observed": 0.5, "baseline": 0.05, "deviation": 0.01, "score": 45.0}
    p = anomaly_point(doc)
    assert (p["measurement"], p["time_ms"], p["tags"]["metric"], p["fields"]["score"]) == \
        ("anomalies", 60_000, "violation_rate.pii", 45.0)
