"""The InfluxDB writer: points overwrite their series and timestamp, so a replay never duplicates (see sinks.retry)."""

from __future__ import annotations

from typing import Any

from flink_jobs.credentials import Secret, reveal
from flink_jobs.streaming.sinks.retry import Rejected, isolating, logged


def influx_transient(exc: Exception) -> bool:
    """No connection, a timeout, overload (429) or a server error (5xx): retry. A 4xx is not."""
    from influxdb_client.rest import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        # InfluxDB 1.8 answers a bucket "db/rp" whose retention policy does not exist with a 500.
        if exc.status == 500 and "retention policy not found" in str(exc.body):
            return False
        return exc.status is None or exc.status == 429 or exc.status >= 500
    return isinstance(exc, (HTTPError, OSError))


def influx_refused(exc: Exception) -> bool:
    """InfluxDB refused points (400: unparsable, a field type conflict, a series limit; 413: too large;
    422: outside the retention policy). 401, 403 and 404 (no such database or bucket) refuse every write."""
    from influxdb_client.rest import ApiException

    return isinstance(exc, ApiException) and exc.status in (400, 413, 422)


class InfluxWriter:
    """Writes udfs.metrics points (measurement, tags, fields, time_ms) in one request per batch."""

    def __init__(self, url: str, token: str | Secret, org: str, bucket: str):
        self._url, self._token, self._org, self._bucket = url, token, org, bucket
        self._client: Any = None  # an InfluxDBClient and its write API, once open
        self._write: Any = None

    @property
    def name(self) -> str:
        return f"influxdb {self._bucket}"

    def open(self) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self._client = InfluxDBClient(url=self._url, token=reveal(self._token), org=self._org, timeout=30_000)
        self._write = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, points: list[dict]) -> Rejected[dict]:
        """Write points; -> those InfluxDB refused or that have no line, with the error (see the module docstring)."""
        from influxdb_client import WritePrecision

        lines: list[tuple[dict, str]] = []
        rejected: Rejected[dict] = []
        for p in points:
            try:
                lines.append((p, _line(p)))
            except ValueError as exc:  # a field of a type the line protocol has not, or none that is finite
                rejected.append((p, exc))

        def write(batch: list[tuple[dict, str]]) -> Rejected[tuple[dict, str]]:
            record = [line for _, line in batch]
            self._write.write(bucket=self._bucket, org=self._org, record=record, write_precision=WritePrecision.MS)
            return []

        if lines:
            rejected += [
                (p, exc) for (p, _), exc in isolating(self.name, write, lines, influx_transient, influx_refused)
            ]
        return logged(self.name, rejected)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _line(p: dict) -> str:
    """A udfs.metrics point as one line of line protocol, in ms; ValueError if it has none."""
    from influxdb_client import Point, WritePrecision

    record = Point(p["measurement"]).time(p["time_ms"], WritePrecision.MS)
    for tag, value in p["tags"].items():
        record = record.tag(tag, value)
    for name, value in p["fields"].items():
        record = record.field(name, value)
    # The client drops NaN and infinite fields, and a point left with none, without a word.
    line = record.to_line_protocol()
    if not line:
        raise ValueError(f"no field with a finite value: {p['fields']}")
    return line
