"""Idempotent writers to MongoDB and InfluxDB, run as PyFlink functions.

Each write completes synchronously inside the element's processing, so everything
before a checkpoint barrier is stored before the checkpoint completes; a replay from
the checkpoint rewrites the same _id / series+timestamp and so never duplicates.
"""

from __future__ import annotations

from pyflink.datastream.functions import MapFunction, RuntimeContext


class MongoUpsertWriter(MapFunction):
    """Upserts a list of documents (by their deterministic _id) in one unordered bulk write."""

    def __init__(self, uri: str, database: str, collection: str):
        self._uri, self._database, self._collection = uri, database, collection
        self._client = None

    def open(self, runtime_context: RuntimeContext):
        from pymongo import MongoClient

        self._client = MongoClient(self._uri)
        self._client.admin.command("ping")  # fail at start, not at the first violation
        self._coll = self._client[self._database][self._collection]

    def map(self, docs: list[dict]) -> int:
        from pymongo import ReplaceOne

        self._coll.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False)
        return len(docs)

    def close(self):
        if self._client is not None:
            self._client.close()


class InfluxPointWriter(MapFunction):
    """Writes one dict as one point: `tags` as tags, `fields` (default: every other key) as fields,
    stamped with its `time_key` (ms), a deterministic time, so a replay overwrites the point."""

    def __init__(self, url: str, token: str, org: str, bucket: str, measurement: str, tags: tuple[str, ...],
                 time_key: str, fields: tuple[str, ...] | None = None):
        self._url, self._token, self._org, self._bucket = url, token, org, bucket
        self._measurement, self._tags, self._time_key, self._fields = measurement, tags, time_key, fields
        self._client = None

    def open(self, runtime_context: RuntimeContext):
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self._client = InfluxDBClient(url=self._url, token=self._token, org=self._org)
        if not self._client.ping():
            raise ConnectionError(f"InfluxDB at {self._url} does not answer /ping")
        self._write = self._client.write_api(write_options=SYNCHRONOUS)

    def map(self, value: dict) -> int:
        from influxdb_client import Point, WritePrecision

        point = Point(self._measurement).time(value[self._time_key], WritePrecision.MS)
        for tag in self._tags:
            point = point.tag(tag, value[tag])
        skip = {*self._tags, self._time_key}
        for name in self._fields or [k for k in value if k not in skip]:
            point = point.field(name, value[name])
        self._write.write(bucket=self._bucket, org=self._org, record=point)
        return 1

    def close(self):
        if self._client is not None:
            self._client.close()
