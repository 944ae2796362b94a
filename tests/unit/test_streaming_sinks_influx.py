"""The InfluxDB writer (flink_jobs/streaming/sinks/influx.py): which failures are transient, which refuse the
points, and what a write returns; without services."""

import pytest
from influxdb_client.rest import ApiException

from flink_jobs.streaming.sinks.influx import InfluxWriter, influx_refused, influx_transient


def test_influx_failures_are_transient_only_when_the_server_may_recover():
    from influxdb_client.rest import ApiException
    from urllib3.exceptions import NewConnectionError

    def status(code):
        exc = ApiException(status=code)
        return influx_transient(exc)

    assert status(503) and status(429) and not status(400) and not status(401)
    assert influx_transient(NewConnectionError(None, "refused")) and influx_transient(ConnectionRefusedError())
    assert not influx_transient(ValueError("bad point"))


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
