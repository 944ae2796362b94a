"""Idempotent, retrying batch writers to MongoDB and InfluxDB (plain Python; flink_jobs.streaming.operators.batching runs them).

A batch is written synchronously while Flink processes the element or timer that completes it,
and the elements of a batch not yet written live in checkpointed keyed state (BufferedWrite), so
nothing acknowledged by a checkpoint can be lost. Writes are idempotent: documents are inserted
if absent by their deterministic _id (never changed once stored), points overwrite their series +
timestamp, so the replay that follows a restart from a checkpoint never duplicates.

`write(batch)` returns the elements the store refused for good, each with its error (`[]` when all
were stored): the caller decides what becomes of them. Three kinds of failure, told apart by error
type and code, never by how many elements fail:

- An outage of MongoDB or InfluxDB (no connection, timeouts, 429, 5xx, a retryable write error)
  makes a write retry with capped exponential backoff, forever: the operator blocks, Flink
  backpressures up to the Kafka source, and nothing is dropped nor does the job fail. Each failed
  attempt is logged as one structured warning.
- A store's refusal of what it was sent (MongoDB: a failed command or a per-document write error,
  a document BSON cannot encode, a NaN, which FerretDB answers by dropping the connection; InfluxDB:
  400, 413, 422, a point with no finite field) is the fault of an element, not of the job: the batch
  is written again by halves until only the elements that fail on their own are left, and those are
  returned. MongoDB names its bad documents itself (an unordered insert stores the others), so there
  it mostly takes one round trip.
- Anything else fails the job loudly, which then restarts from its checkpoint: a configuration
  error that would fail every write (MongoDB: authentication or authorisation failed, an invalid
  namespace, a write concern it cannot meet; InfluxDB: 401, 403, 404 for a database or bucket that
  does not exist, the 500 of InfluxDB 1.8 for a retention policy that does not) and any error that
  is not the store's answer (a bug). Counting instead ("every element failed alike") would let one
  event whose violations fill a batch stop the job.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flink_jobs.credentials import Secret, reveal
from flink_jobs.tombstones import Tombstones

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
                        "error": _describe(exc),
                    }
                )
            )
            sleep(delay)
            delay = min(delay * 2, max_delay_s)
            continue
        if failures:
            log.warning(json.dumps({"event": "sink_recovered", "sink": what, "failures": failures}))
        return result


Rejected = list[tuple[T, Exception]]  # the elements a store refused, each with its error


def isolating(
    what: str,
    write: Callable[[list[T]], Rejected[T]],
    items: list[T],
    transient: Callable[[Exception], bool],
    refused: Callable[[Exception], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> Rejected[T]:
    """write(items) -> the items it refused, retried through outages (transient errors). An error
    the store raises for the whole batch that refused() names its answer to an element is narrowed
    down by halves: the good elements are written, and each element that fails alone is returned
    with its error. Any other error is raised."""
    try:
        return retrying(what, lambda: write(items), transient, sleep=sleep)
    except Exception as exc:
        if not refused(exc):
            raise
        if len(items) == 1:
            return [(items[0], exc)]
        half = len(items) // 2
        return isolating(what, write, items[:half], transient, refused, sleep) + isolating(
            what, write, items[half:], transient, refused, sleep
        )


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _logged(what: str, rejected: Rejected[T]) -> Rejected[T]:
    for _, exc in rejected:
        log.warning(json.dumps({"event": "sink_refused", "sink": what, "error": _describe(exc)}))
    return rejected


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
        # InfluxDB 1.8 answers a bucket "db/rp" whose retention policy does not exist with a 500.
        if exc.status == 500 and "retention policy not found" in str(exc.body):
            return False
        return exc.status is None or exc.status == 429 or exc.status >= 500
    return isinstance(exc, (HTTPError, OSError))


# MongoDB's answers that say the client or its configuration is wrong, not a document: they fail every write.
MONGO_CONFIG_CODES = frozenset(
    {
        11,  # UserNotFound
        13,  # Unauthorized
        18,  # AuthenticationFailed
        73,  # InvalidNamespace: the database or collection name
        8000,  # AtlasError: an Atlas authentication failure
    }
)


def mongo_refused(exc: Exception) -> bool:
    """MongoDB refused a document (a failed command or write error, one BSON cannot encode), not the
    client: an authentication, authorisation or namespace error, or a write concern it cannot meet, is not."""
    from bson.errors import InvalidDocument
    from pymongo.errors import BulkWriteError, OperationFailure

    if isinstance(exc, BulkWriteError):
        return not exc.details.get("writeConcernErrors") and all(
            error["code"] not in MONGO_CONFIG_CODES for error in exc.details.get("writeErrors", ())
        )
    if isinstance(exc, OperationFailure):
        return exc.code not in MONGO_CONFIG_CODES
    # What BSON cannot encode: a str with a lone surrogate, an int over 64 bits, a NUL in a key, > 48 MB
    return isinstance(exc, (InvalidDocument, UnicodeEncodeError, OverflowError))


def influx_refused(exc: Exception) -> bool:
    """InfluxDB refused points (400: unparsable, a field type conflict, a series limit; 413: too large;
    422: outside the retention policy). 401, 403 and 404 (no such database or bucket) refuse every write."""
    from influxdb_client.rest import ApiException

    return isinstance(exc, ApiException) and exc.status in (400, 413, 422)


DUPLICATE_KEY = 11000
# Indexes of the violations collection: the dashboards' and analysts' filters.
VIOLATION_INDEXES = (("event_time",), ("tenant", "model"), ("rule_id",), ("severity",))
ANOMALY_INDEXES = (("window_end_ms",), ("tenant", "model"), ("metric",))


class MongoWriter:
    """Inserts documents absent by _id in unordered bulk writes; creates the collection's indexes at open."""

    def __init__(
        self,
        uri: str | Secret,  # a Secret in the job: the URI's password stays out of the job graph
        database: str,
        collection: str,
        indexes: tuple[tuple[str, ...], ...] = (),
        ttl_days: int | None = None,
        ttl_field: str = "event_time",
        tombstones: Tombstones | None = None,  # violations: those of erased data are never stored again
    ):
        self._uri, self._database, self._collection = uri, database, collection
        self._indexes, self._ttl_days, self._ttl_field = indexes, ttl_days, ttl_field
        self._tombstones = tombstones
        self._client: Any = None  # a MongoClient and its collection, once open
        self._coll: Any = None

    @property
    def name(self) -> str:
        return f"mongodb {self._database}.{self._collection}"

    def open(self) -> None:
        from pymongo import ASCENDING, MongoClient

        # A request without an answer in 60 s is an outage (retried), not a wait without end.
        self._client = MongoClient(reveal(self._uri), serverSelectionTimeoutMS=10_000, socketTimeoutMS=60_000)
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
        if self._tombstones is not None:
            retrying(self.name + " (tombstones)", self._tombstones.open, mongo_transient)

    def prepare(self) -> MongoWriter:
        """Create the indexes now, at job submission, one collection after another: each subtask's
        open() then finds them. Subtasks creating them all at once, in a new database, is DDL that
        FerretDB v1 (SQLite) can deadlock on."""
        self.open()
        self.close()
        self._client = self._coll = None  # the writer is shipped to the workers next
        return self

    def write(self, docs: list[dict]) -> Rejected[dict]:
        """Insert docs not stored yet; -> the documents MongoDB refused, with its error (see the module docstring)."""
        if self._tombstones is not None:  # dropped, not dead-lettered: the DLQ would carry the erased data
            docs = [doc for doc in docs if not self._tombstones.erased(doc)]
        # stored_at: when the audit first stored it; the rest is deterministic.
        now = datetime.now(UTC)
        # One document per _id (the last): a source that delivered an event twice gives a batch the
        # same violation twice, and FerretDB v1 deadlocks replacing one document twice in a command.
        unique = {d["_id"]: d for d in docs}.values()
        rejected: Rejected[dict] = []
        sendable = []
        for doc in unique:
            # FerretDB v1 cannot even read a NaN: it drops the connection, which looks like an outage.
            if path := _nan_at(doc):
                rejected.append((doc, ValueError(f"NaN at {path}: FerretDB cannot store it")))
            else:
                sendable.append((doc, {**doc, "stored_at": now}))
        if sendable:
            refused = isolating(self.name, self._insert, sendable, mongo_transient, mongo_refused)
            rejected += [(doc, exc) for (doc, _), exc in refused]
        return _logged(self.name, rejected)

    def _insert(self, docs: list[tuple[dict, dict]]) -> Rejected[tuple[dict, dict]]:
        """Insert the documents not stored yet: one already stored (a replay, or another event naming
        the same _id) is left as it is, reviewer's verdict and all, so no event can rewrite a stored
        violation. Its deterministic _id means a replay would only write the identical document.

        Unordered: MongoDB writes every document it can and names the others by index, which are
        returned (as (doc, stamped) pairs with their WriteError). A duplicate is the unique _id index's
        answer, ~0.1 ms even on FerretDB v1, where a $set upsert scans the collection."""
        errors = _write_errors(lambda: self._coll.insert_many([s for _, s in docs], ordered=False))
        return [(docs[e["index"]], _write_error(e)) for e in errors if e["code"] != DUPLICATE_KEY]

    def close(self) -> None:
        if self._tombstones is not None:
            self._tombstones.close()
        if self._client is not None:
            self._client.close()


def _nan_at(value: Any, path: str = "") -> str:
    """The path of the first NaN in a document ("" if none)."""
    if isinstance(value, float) and math.isnan(value):
        return path or "."
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return next((found for key, item in items if (found := _nan_at(item, f"{path}.{key}" if path else str(key)))), "")


def _write_errors(bulk: Callable[[], Any]) -> list[dict]:
    """The per-document write errors of an unordered bulk write; a write concern error is raised."""
    from pymongo.errors import BulkWriteError

    try:
        bulk()
    except BulkWriteError as exc:
        if exc.details.get("writeConcernErrors") or any(
            e["code"] in MONGO_CONFIG_CODES for e in exc.details["writeErrors"]
        ):
            raise
        return exc.details["writeErrors"]
    return []


def _write_error(error: dict) -> Exception:
    from pymongo.errors import WriteError

    return WriteError(error.get("errmsg", ""), error["code"], error)


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
        return _logged(self.name, rejected)

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
