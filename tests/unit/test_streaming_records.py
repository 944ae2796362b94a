"""Where the records between the streaming job's operators lived before 0.2 (flink_jobs/records.py): what keyed
state holds must load after a move."""

from pathlib import Path

import cloudpickle

from flink_jobs.streaming.records import SequenceHit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "state"


def test_sequence_state_of_a_savepoint_taken_before_the_move_still_loads():
    # The sequence rules' keyed state as version 0.1 pickled it (flink_jobs/records.py, before
    # flink_jobs/streaming/): pending hits and per (rule, key) the hit times (SequenceRules._stored).
    pending, times, swept = cloudpickle.loads((FIXTURES / "sequences-state-0.pickle").read_bytes())
    (hit,) = pending
    assert isinstance(hit, SequenceHit)
    assert (hit.rule_id, hit.key, hit.event_id, hit.rule.id) == ("injection.repeated", "user-7", "evt-1", hit.rule_id)
    assert hit.rule.sequence.count == 3
    assert times == {("injection.repeated", "user-7"): (hit.rule.sequence.within_ms, [1_699_999_999_000])}
    assert swept == 0
