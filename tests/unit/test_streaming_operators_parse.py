"""Parsing in the streaming job (flink_jobs/streaming/operators/parse.py): an event, or its dead letter and time."""

def test_a_dead_letter_is_never_stamped_beyond_what_the_dlq_broker_accepts():
    from pyflink.common import Instant

    from flink_jobs.streaming.operators.parse import parse_or_dead_letter

    arrival = Instant.of_epoch_milli(1_796_000_000_000)
    # Normally its arrival, or just past the watermark so that it counts in a window still open...
    assert parse_or_dead_letter("{", arrival, 1_795_000_000_000)[1][1] == 1_796_000_000_000
    assert parse_or_dead_letter("{", arrival, 1_796_000_060_000)[1][1] == 1_796_000_060_001
    # ...but events a week ahead of the clock do not drag it past the broker's limit (1 h ahead).
    event, (record, time_ms) = parse_or_dead_letter("{", arrival, 1_796_600_000_000)
    assert event is None and '"reason": "invalid_json"' in record and time_ms == 1_796_000_000_000 + 3_000_000
