"""Idempotent, retrying batch writers to MongoDB and InfluxDB (plain Python; flink_jobs.batching runs them).

A batch is written synchronously while Flink processes the element or timer that completes it,
and the elements of a batch not yet written live in checkpointed keyed state (BufferedWrite), so
nothing acknowledged by a checkpoint can be lost. Writes are idempotent: documents are upserted
by their deterministic _id, points overwrite their series + timestamp, so the replay that follows
a restart from a checkpoint never duplicates.

An outage of MongoDB or InfluxDB (no connection, timeouts, 5xx) makes a write retry with capped
exponential backoff, forever: the operator blocks, Flink backpressures up to the Kafka source, and
nothing is dropped nor does the job fail. Each failed attempt is logged as one structured warning.
A write the store rejects (a 4xx, a failed command) fails the job, which restarts from its checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

log = logging.getLogger("llm_audit.sinks")
T = TypeVar("T")


def retrying(
    what: str,
    attempt: Callable[[], T],
    transient: Callable[[Exception], bool],
    first_delay_s: float = 0.5,
    max_delay_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """attempt() until it succeeds; between transient failures wait first_delay_s, doubling up to
    max_delay_s. Any other failure (a rejected write, bad credentials) is raised: it fails the job
    loudly rather than hiding a configuration error behind endless retries."""
    delay, failures = first_delay_s, 0
    while True:
        try:
            result = attempt()
        except Exception as exc:
            if not transient(exc):
                raise
            failures += 1
            log.warning(
                json.dumps(
                    {
                        "event": "sink_retry",
                        "sink": what,
                        "failures": failures,
                        "retry_in_s": delay,
                        "error": f"{type(exc).__name__}: {exc}"[:500],
                    }
                )
            )
            sleep(delay)
            delay = min(delay * 2, max_delay_s)
            continue
        if failures:
            log.warning(json.dumps({"event": "sink_recovered", "sink": what, "failures": failures}))
        return result


def mongo_transient(exc: Exception) -> bool:
    """The server is unreachable, stepping down or timing out: retry. A rejected command is not."""
    from pymongo.errors import ConnectionFailure, PyMongoError

    return isinstance(exc, ConnectionFailure) or (
        isinstance(exc, PyMongoError) and exc.has_error_label("RetryableWriteError")
    )


def influx_transient(exc: Exception) -> bool:
    """No connection, a timeout, overload (429) or a server error (5xx): retry. A 4xx is not."""
    from influxdb_client.rest import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        return exc.status is None or exc.status == 429 or exc.status >= 500
    return isinstance(exc, (HTTPError, OSError))


DUPLICATE_KEY = 11000
# Indexes of the violations collection: the dashboards' and analysts' filters.
VIOLATION_INDEXES = (("event_time",), ("tenant", "model"), ("rule_id",), ("severity",))
ANOMALY_INDEXES = (("window_end_ms",), ("tenant", "model"), ("metric",))


class MongoWriter:
    """Upserts documents by _id in unordered bulk writes; creates the collection's indexes at open."""

    def __init__(
        self,
        uri: str,
        database: str,
        collection: str,
        indexes: tuple[tuple[str, ...], ...] = (),
        ttl_days: int | None = None,
        ttl_field: str = "event_time",
    ):
        self._uri, self._database, self._collection = uri, database, collection
        self._indexes, self._ttl_days, self._ttl_field = indexes, ttl_days, ttl_field
        self._client: Any = None  # a MongoClient and its collection, once open
        self._coll: Any = None

    @property
    def name(self) -> str:
        return f"mongodb {self._database}.{self._collection}"

    def open(self) -> None:
        from pymongo import ASCENDING, MongoClient

        # A request without an answer in 60 s is an outage (retried), not a wait without end.
        self._client = MongoClient(self._uri, serverSelectionTimeoutMS=10_000, socketTimeoutMS=60_000)
        self._coll = self._client[self._database][self._collection]

        def create_indexes():
            # Only the missing ones: a restart creates none, and DDL next to other writers' inserts
            # is what FerretDB v1 (SQLite) handles worst.
            existing = {tuple(index["key"]): index.get("expireAfterSeconds") for index in self._coll.list_indexes()}
            for keys in self._indexes:
                # The TTL index doubles as the time index: one index on the field, not two.
                ttl = (
                    {"expireAfterSeconds": self._ttl_days * 86_400}
                    if self._ttl_days and keys == (self._ttl_field,)
                    else {}
                )
                if keys not in existing or existing[keys] != ttl.get("expireAfterSeconds"):
                    self._coll.create_index([(k, ASCENDING) for k in keys], **ttl)

        try:
            retrying(self.name + " (indexes)", create_indexes, mongo_transient)
        except Exception as exc:
            setting = " (LLM_AUDIT_VIOLATIONS_TTL_DAYS asks for a TTL index)" if self._ttl_days else ""
            raise RuntimeError(f"{self.name}: cannot create its indexes{setting}: {exc}") from exc

    def prepare(self) -> MongoWriter:
        """Create the indexes now, at job submission, one collection after another: each subtask's
        open() then finds them. Subtasks creating them all at once, in a new database, is DDL that
        FerretDB v1 (SQLite) can deadlock on."""
        self.open()
        self.close()
        self._client = self._coll = None  # the writer is shipped to the workers next
        return self

    def write(self, docs: list[dict]) -> None:
        # stored_at: when the audit stored it (a replay restamps it); the rest is deterministic.
        now = datetime.now(UTC)
        # One document per _id (the last): a source that delivered an event twice gives a batch the
        # same violation twice, and FerretDB v1 deadlocks replacing one document twice in a command.
        unique = {d["_id"]: d for d in docs}.values()
        retrying(self.name, lambda: self._upsert([{**d, "stored_at": now} for d in unique]), mongo_transient)

    def _upsert(self, docs: list[dict]) -> None:
        """Insert, then update the documents that exist already (a replay): the same result as
        upserting each, but inserts are the common case, and ~300x faster on FerretDB's SQLite. An
        update sets the job's fields and keeps the others (a reviewer's verdict on a violation)."""
        from pymongo import UpdateOne
        from pymongo.errors import BulkWriteError

        try:
            self._coll.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details["writeErrors"]
            if any(e["code"] != DUPLICATE_KEY for e in errors):
                raise
            self._coll.bulk_write(
                [UpdateOne({"_id": docs[e["index"]]["_id"]}, {"$set": _fields(docs[e["index"]])}) for e in errors],
                ordered=False,
            )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _fields(doc: dict) -> dict:
    return {key: value for key, value in doc.items() if key != "_id"}


class InfluxWriter:
    """Writes udfs.metrics points (measurement, tags, fields, time_ms) in one request per batch."""

    def __init__(self, url: str, token: str, org: str, bucket: str):
        self._url, self._token, self._org, self._bucket = url, token, org, bucket
        self._client: Any = None  # an InfluxDBClient and its write API, once open
        self._write: Any = None

    @property
    def name(self) -> str:
        return f"influxdb {self._bucket}"

    def open(self) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self._client = InfluxDBClient(url=self._url, token=self._token, org=self._org, timeout=30_000)
        self._write = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, points: list[dict]) -> None:
        from influxdb_client import Point, WritePrecision

        records = []
        for p in points:
            record = Point(p["measurement"]).time(p["time_ms"], WritePrecision.MS)
            for tag, value in p["tags"].items():
                record = record.tag(tag, value)
            for name, value in p["fields"].items():
                record = record.field(name, value)
            records.append(record)
        retrying(
            self.name,
            lambda: self._write.write(
                bucket=self._bucket, org=self._org, record=records, write_precision=WritePrecision.MS
            ),
            influx_transient,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def check_reachable(mongo_uri: str, influx_url: str, influx_token: str, influx_org: str, timeout_s: float = 10) -> None:
    """At submission, not on a worker: a wrong endpoint or credential is a config error, named at once.

    At run time the same failure is an outage and retried; here it stops the submission.
    """
    from influxdb_client import InfluxDBClient
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    try:
        mongo: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=int(timeout_s * 1000))
        with mongo:
            mongo.admin.command("ping")
    except PyMongoError as exc:
        raise ConnectionError(f"MongoDB is not reachable with LLM_AUDIT_MONGO_URI: {exc}") from None
    with InfluxDBClient(url=influx_url, token=influx_token, org=influx_org, timeout=int(timeout_s * 1000)) as client:
        if not client.ping():
            raise ConnectionError(f"InfluxDB at LLM_AUDIT_INFLUX_URL={influx_url} does not answer /ping")
