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


class InfluxCountsWriter(MapFunction):
    """Writes a window's counts and score statistics as one point stamped with the window end."""

    def __init__(self, url: str, token: str, org: str, bucket: str):
        self._url, self._token, self._org, self._bucket = url, token, org, bucket
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

        point = (
            Point("audit_events")
            .tag("tenant", value["tenant"])
            .tag("model", value["model"])
            .time(value["time_ms"], WritePrecision.MS)
        )
        for name, field_value in value.items():
            if name not in ("tenant", "model", "time_ms"):
                point = point.field(name, field_value)
        self._write.write(bucket=self._bucket, org=self._org, record=point)
        return 1

    def close(self):
        if self._client is not None:
            self._client.close()
