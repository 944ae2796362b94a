"""The MongoDB writer: idempotent inserts of documents absent by _id, in unordered bulk writes (see sinks.retry)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flink_jobs.credentials import Secret, reveal
from flink_jobs.streaming.sinks.retry import Rejected, isolating, logged, retrying
from flink_jobs.tombstones import Tombstones


def mongo_transient(exc: Exception) -> bool:
    """The server is unreachable, stepping down or timing out: retry. A rejected command is not."""
    from pymongo.errors import ConnectionFailure, PyMongoError

    return isinstance(exc, ConnectionFailure) or (
        isinstance(exc, PyMongoError) and exc.has_error_label("RetryableWriteError")
    )


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
        return logged(self.name, rejected)

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
