"""The sinks' retry loop and the isolation of the elements a store refuses (flink_jobs/streaming/sinks/retry.py),
without services."""

import json
import logging

import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from flink_jobs.streaming.sinks.mongo import mongo_refused, mongo_transient
from flink_jobs.streaming.sinks.retry import isolating, retrying


def test_retrying_backs_off_until_the_store_answers_and_logs_each_failure(caplog):
    calls, waits = [], []

    def attempt():
        calls.append(1)
        if len(calls) < 5:
            raise ConnectionError("connection refused")
        return "stored"

    with caplog.at_level(logging.WARNING, logger="llm_audit.sinks"):
        assert retrying("mongodb db.violations", attempt, lambda exc: True, first_delay_s=1, max_delay_s=4,
                        sleep=waits.append) == "stored"
    assert waits == [1, 2, 4, 4]
    logged = [json.loads(r.getMessage()) for r in caplog.records]
    assert [e["event"] for e in logged] == ["sink_retry"] * 4 + ["sink_recovered"]
    assert logged[0]["sink"] == "mongodb db.violations" and "connection refused" in logged[0]["error"]


def test_a_rejected_write_is_raised_at_once_not_retried():
    from pymongo.errors import AutoReconnect, OperationFailure

    calls = []

    def attempt():
        calls.append(1)
        raise OperationFailure('Index option "expireAfterSeconds" is not implemented yet', code=238)

    with pytest.raises(OperationFailure, match="expireAfterSeconds"):
        retrying("mongodb", attempt, mongo_transient, sleep=lambda s: None)
    assert calls == [1]
    assert mongo_transient(AutoReconnect("connection refused"))


class Refuses(Exception):
    """What the fake store answers a batch holding a poisoned element."""


def fake_store(poisoned: set[int]):
    stored, calls = set(), []

    def write(batch: list[int]):
        calls.append(list(batch))
        if poisoned & set(batch):
            raise Refuses(f"refused {sorted(poisoned & set(batch))}")
        stored.update(batch)
        return []

    return write, stored, calls


@pytest.mark.parametrize("poisoned", [set(), {0}, {63}, {17}, {3, 40}, set(range(64))])
def test_the_good_elements_are_stored_and_each_refused_one_comes_back_with_its_error(poisoned):
    write, stored, calls = fake_store(poisoned)
    rejected = isolating("fake", write, list(range(64)), lambda exc: False, lambda exc: isinstance(exc, Refuses))
    assert stored == set(range(64)) - poisoned
    assert [item for item, _ in rejected] == sorted(poisoned)
    assert all(isinstance(exc, Refuses) for _, exc in rejected)
    if len(poisoned) == 1:  # by halves: two writes a level, not one per element
        assert len(calls) <= 1 + 2 * 6


def test_an_error_that_is_not_a_refusal_is_raised_at_once_not_bisected():
    calls = []

    def write(batch):
        calls.append(batch)
        raise OperationFailure("Authentication failed.", code=18)

    with pytest.raises(OperationFailure, match="Authentication"):
        isolating("mongodb", write, [1, 2, 3, 4], mongo_transient, mongo_refused)
    assert calls == [[1, 2, 3, 4]]


def test_an_outage_is_retried_before_anything_is_isolated():
    attempts = []

    def write(batch):
        attempts.append(batch)
        if len(attempts) < 3:
            raise AutoReconnect("connection refused")
        return []

    assert isolating("mongodb", write, [1, 2], mongo_transient, mongo_refused, sleep=lambda s: None) == []
    assert attempts == [[1, 2]] * 3
