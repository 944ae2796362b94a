"""What every detector shares (udfs/detectors/base.py): overlapping matches reduced to the best."""

def test_drop_overlaps_keeps_the_best_of_each_overlap_like_comparing_every_pair():
    import random

    from udfs.detectors.base import DetectorMatch, drop_overlaps

    def every_pair(matches):  # the quadratic reference
        kept = []
        for m in sorted(matches, key=lambda m: (-m.score, -(m.end - m.start), m.start)):
            if all(m.end <= k.start or m.start >= k.end for k in kept):
                kept.append(m)
        return sorted(kept, key=lambda m: (m.start, m.end))

    rng = random.Random(5)
    for _ in range(2000):
        matches = [DetectorMatch("x", s, s + rng.randint(1, 20), rng.choice([0.5, 0.7, 0.9]))
                   for s in (rng.randint(0, 100) for _ in range(rng.randint(0, 30)))]
        assert drop_overlaps(matches) == every_pair(matches)
