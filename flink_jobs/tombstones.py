"""Tombstones: the erasures recorded in MongoDB (`erasures`), which writers consult so that nothing
stores an erased user's data again: a job restored from an old checkpoint, a replay, a re-ingest.

An erasure of (tenant, user) at time T covers that user's events with an event time at or before T
(the data that was erased); the same user's later events are new data and are kept. An erasure
without a tenant covers the user in every tenant. T is the erasure's `started_at`: the tombstone
exists from the moment the erasure is recorded, before anything is removed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flink_jobs.credentials import Secret, reveal

log = logging.getLogger("llm_audit.tombstones")
ERASURES = "erasures"
REFRESH_S = 30.0  # how stale a writer's set may be (an erasure settles for longer: flink_jobs.offline.erasure)
_RETRY_S = 1.0  # after a failed refresh: the stale set is kept meanwhile


def epoch_ms(value: datetime | int) -> int:
    """A time as epoch ms; a naive datetime is UTC (pymongo returns naive UTC by default)."""
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000)
    return int(value)


class Tombstones:
    """The erased (tenant, user) pairs, cached and refreshed at most every `refresh_s`.

    open() loads them at once, so a writer opened after an erasure is recorded (a replay started
    right after it) always sees it; a writer already open sees it within refresh_s, which is why an
    erasure settles for longer than that before its final sweep (flink_jobs.offline.erasure).

    Plain Python and picklable until open(): a Flink writer builds it at submission and opens it on
    the worker.
    """

    def __init__(
        self,
        uri: str | Secret,
        database: str,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._uri, self._database, self._refresh_s, self._clock = uri, database, refresh_s, clock
        self._client: Any = None
        self._erased: dict[tuple[str | None, str], int] = {}  # (tenant or None, user) -> latest erasure, ms
        self._next = 0.0

    def open(self) -> None:
        from pymongo import MongoClient

        self._client = MongoClient(reveal(self._uri), serverSelectionTimeoutMS=10_000)
        self._load()  # raises: a writer that cannot read the tombstones must not start writing

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def users(self) -> set[str]:
        """The erased users' ids (as of the last refresh)."""
        return {user for _, user in self._erased}

    def erased(self, doc: dict) -> bool:
        """Whether a violation document (`tenant`, `user_id`, `event_time`) is of erased data."""
        user = doc.get("user_id")
        if not user or doc.get("event_time") is None:
            return False
        return self.covers(doc.get("tenant"), user, doc["event_time"])

    def covers(self, tenant: str | None, user_id: str | None, event_time: datetime | int) -> bool:
        """Whether an erasure of the user (in this tenant, or in all) is at or after the event time
        (a datetime, or epoch ms: an archive row's timestamp_ms)."""
        if not user_id:
            return False
        if self._clock() >= self._next:
            self._refresh()
        latest = max(self._erased.get((tenant, user_id), -1), self._erased.get((None, user_id), -1))
        return latest >= 0 and epoch_ms(event_time) <= latest

    def _refresh(self) -> None:
        from pymongo.errors import PyMongoError

        try:
            self._load()
        except PyMongoError as exc:
            # The caller's writes go to the same MongoDB and block retrying meanwhile; the erasure's
            # final sweep removes anything stored with a stale set.
            self._next = self._clock() + _RETRY_S
            log.warning(json.dumps({"event": "tombstones_stale", "error": f"{type(exc).__name__}: {exc}"[:500]}))

    def _load(self) -> None:
        if self._client is None:
            raise RuntimeError("Tombstones: call open() first (on the worker, not at submission)")
        erased: dict[tuple[str | None, str], int] = {}
        fields = {"tenant": 1, "user_id": 1, "started_at": 1}
        for record in self._client[self._database][ERASURES].find({}, fields):
            key = (record.get("tenant"), record["user_id"])
            erased[key] = max(erased.get(key, -1), epoch_ms(record["started_at"]))
        self._erased = erased
        self._next = self._clock() + self._refresh_s
