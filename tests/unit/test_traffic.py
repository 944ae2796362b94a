"""The sample traffic (devstack/traffic.py): seeded, labelled where it plants text, and mostly clean."""

import json
from collections import Counter

from devstack.traffic import NAME_RATES, RATES, generate, summarize


def test_same_seed_same_events_other_seed_other_events():
    a = [s.value for s in generate(300, seed=5, start_ms=1_800_000_000_000)]
    b = [s.value for s in generate(300, seed=5, start_ms=1_800_000_000_000)]
    c = [s.value for s in generate(300, seed=6, start_ms=1_800_000_000_000)]
    assert a == b and a != c


def test_labels_point_at_the_planted_text():
    kinds = Counter()
    for sample in generate(3000, seed=1):
        if sample.malformed:
            continue
        event = json.loads(sample.value)
        for label in sample.labels:
            kinds[label.kind] += 1
            if label.field is not None:
                assert event[label.field][label.start:label.end] == label.value
        if any(label.kind == "slow" for label in sample.labels):
            assert event["latency_ms"] >= 30_000
    assert set(kinds) == set(RATES) | set(NAME_RATES)


def test_summary_counts_events_per_kind_and_mostly_clean_traffic():
    truths = [s.truth() for s in generate(5000, seed=2)]
    counts = summarize(truths)
    assert counts["events"] == 5000
    assert 20 <= counts["malformed"] <= 90  # ~1%
    for kind, share in {**RATES, **NAME_RATES}.items():
        assert abs(counts[kind] / 5000 - share) < 0.02, kind
    clean = sum(1 for t in truths if not t["labels"] and not t["malformed"])
    assert clean / 5000 > 0.7
