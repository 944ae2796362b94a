"""The sinks isolate an element the store refuses instead of failing the job, without services."""

import pytest
from bson.errors import InvalidDocument
from influxdb_client.rest import ApiException
from pymongo.errors import AutoReconnect, BulkWriteError, OperationFailure, WriteError

from flink_jobs.streaming.sinks.influx import InfluxWriter, influx_refused

from flink_jobs.streaming.sinks.retry import isolating

from flink_jobs.streaming.sinks.mongo import mongo_refused, mongo_transient


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


def bulk_error(*codes, write_concern=False):
    details = {"writeErrors": [{"index": i, "code": c, "errmsg": "x"} for i, c in enumerate(codes)]}
    details["writeConcernErrors"] = (
        [{"code": 64, "errmsg": "waiting for replication timed out"}] if write_concern else []
    )
    return BulkWriteError(details)


@pytest.mark.parametrize(
    "exc, refused",
    [
        (OperationFailure("invalid key", code=2), True),
        (WriteError("document too large", code=10334), True),
        (bulk_error(2, 11000), True),
        (InvalidDocument("Key names must not contain the NULL byte"), True),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
        (OperationFailure("Authentication failed.", code=18), False),
        (OperationFailure("not authorized on llm_audit", code=13), False),
        (OperationFailure("Invalid namespace", code=73), False),
        (bulk_error(13), False),
        (bulk_error(2, write_concern=True), False),
        (TypeError("a bug"), False),
    ],
)
def test_mongo_refusals_of_a_document_are_told_from_errors_of_the_client(exc, refused):
    assert mongo_refused(exc) is refused


@pytest.mark.parametrize("status, refused", [(400, True), (413, True), (422, True), (401, False), (403, False),
                                             (404, False), (429, False), (503, False)])  # fmt: skip
def test_influx_refusals_are_the_statuses_that_blame_the_points(status, refused):
    assert influx_refused(ApiException(status=status)) is refused


class FakeWriteApi:
    def __init__(self, answer):
        self.answer, self.lines = answer, []

    def write(self, bucket, org, record, write_precision):
        error = self.answer(record)
        if error:
            raise error
        self.lines += record


def influx(answer) -> tuple[InfluxWriter, FakeWriteApi]:
    writer = InfluxWriter("http://influx", "", "-", "db/autogen")
    writer._write = FakeWriteApi(answer)
    return writer, writer._write


def point(tenant, **fields):
    return {"measurement": "audit_events", "tags": {"tenant": tenant, "model": "m"}, "fields": fields or {"events": 1},
            "time_ms": 60_000}  # fmt: skip


def test_influx_writer_returns_the_refused_point_and_those_without_a_finite_field():
    writer, api = influx(lambda lines: ApiException(status=400) if any("evil" in line for line in lines) else None)
    good = [point(f"t{i}") for i in range(5)]
    nan, evil = point("t9", mean=float("nan")), point("evil")
    rejected = writer.write(good[:2] + [evil, nan] + good[2:])
    assert [p for p, _ in rejected] == [nan, evil]
    assert isinstance(rejected[0][1], ValueError) and rejected[1][1].status == 400
    assert sorted(api.lines) == sorted(f"audit_events,model=m,tenant=t{i} events=1i 60000" for i in range(5))


def test_influx_writer_raises_a_missing_database_instead_of_blaming_each_point():
    writer, api = influx(lambda lines: ApiException(status=404, reason="database not found"))
    with pytest.raises(ApiException):
        writer.write([point("a"), point("b")])


def test_a_refused_violation_becomes_its_events_audit_error_document_and_a_dead_letter():
    """BufferedWrite's policy, with a writer that refuses one document: the others are stored, the refused
    one is replaced by an audit.error document of its event (same context), and both are in its dead letter."""
    import json

    from flink_jobs.streaming.sinks.buffered import BufferedWrite

    class Refusing:
        name = "mongodb llm_audit.violations"

        def __init__(self):
            self.stored: list[dict] = []

        def write(self, docs):
            refused = [(d, ValueError("NaN at scores.toxicity")) for d in docs if d.get("rule_id") == "toxicity.high"]
            self.stored += [d for d in docs if all(d is not r for r, _ in refused)]
            return refused

    writer = Refusing()
    good = {"_id": "e1:pii.email@1:prompt:0-5", "event_id": "e1", "rule_id": "pii.email", "field": "prompt",
            "tenant": "acme", "model": "m", "event_time": "2026-12-06T10:00:00Z"}
    bad = {**good, "_id": "e2:toxicity.high@1:response:0-9", "event_id": "e2", "rule_id": "toxicity.high",
           "field": "response", "scores": {"toxicity": float("nan")}}
    dead = list(BufferedWrite(writer, 10, 1000)._flush_batch([good, bad]))
    [substitute] = [d for d in writer.stored if d["rule_id"] == "audit.error"]
    assert writer.stored[0] == good
    assert (substitute["event_id"], substitute["entity"], substitute["snippet"], substitute["field"]) == (
        "e2", "write", "mongodb llm_audit.violations", "response")
    assert (substitute["tenant"], substitute["model"], substitute["category"]) == ("acme", "m", "audit_error")
    [(record, time_ms)] = dead
    letter = json.loads(record)
    assert letter["reason"] == "audit_error" and time_ms > 1_700_000_000_000
    assert letter["failures"][0]["stage"] == "write" and "NaN at scores.toxicity" in letter["failures"][0]["message"]
    assert json.loads(letter["raw"])["_id"] == bad["_id"]
