"""Plain-Python audit logic (events, detectors, rules, findings); knows nothing of Flink."""
