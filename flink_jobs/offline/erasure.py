"""Retention and erasure of the archive and the stores: partitions by age, a data subject's records.

An erasure is recorded in `erasures` before anything is removed, with its plan (what it will remove,
counted); the record is also the tombstone that writers consult from then on (flink_jobs.tombstones),
so a replay or a restore does not store the user's erased data again. Each step is idempotent, so
running it again after a crash finishes the same plan:
- reviews: the `reviews` of the user's violations are deleted, and the `audit_log` entries of those
  reviews pseudonymised in place (target and note replaced by `erased:<sha256 prefix>`, the verdict,
  reviewer and time kept, `pseudonymised_at` added): the log keeps who did what, not about whom;
- MongoDB: delete_many on every other collection that holds the user's records;
- the archive: each affected part file is rewritten without the user's rows to a hidden name, the
  original deleted, and the rewrite renamed into place (a reader sees the old file or the new one, and
  between the delete and the rename neither: the user's rows are never visible again once gone).

Then the erasure *settles* (status `settling`) before a final sweep (`finish_erasures`, status `done`).
Rows the job wrote before the erasure are not all in committed files yet: Flink's file sink writes
them to in-progress files (`.part-*.inprogress.*` locally; on S3 an unfinished multipart upload, which
no listing shows) and renames them into place at the next completed checkpoint. Those files are the
sink's own until then: rewriting one under it would be overwritten or break the commit, and on S3
there is nothing to rewrite. And the job's writers see a new tombstone only at their next refresh:
the job consulting the tombstones at the archive's input stops the rows it processes after that, not
those already in a file in progress. So the sweep waits `settle_s` (longer than the tombstone refresh plus a checkpoint, see
`default_settle_s`) and then removes, from the committed files and from MongoDB, the user's records
of events at or before the erasure; the user's later events are new data and stay.
"""

from __future__ import annotations

import getpass
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pymongo import MongoClient
from pymongo.database import Database

from console.store import AUDIT_LOG, REVIEWS, VERDICTS
from flink_jobs.offline.reader import archive_dataset, archive_fs
from flink_jobs.tombstones import ERASURES, REFRESH_S, Tombstones, epoch_ms
from udfs.archive import tenant_partition

# Collections that record who did what; no delete_many there (their user_id is the actor's). Reviews
# have no user_id: they go by the ids of the user's violations.
KEPT = {ERASURES, AUDIT_LOG, REVIEWS}
DEFAULT_SETTLE_S = 600


@dataclass(frozen=True)
class Dropped:
    partition: str  # date=YYYY-MM-DD
    files: int


def drop_partitions_before(archive: str, cutoff: date, dry_run: bool = False) -> list[Dropped]:
    """Deletes the archive's date partitions older than `cutoff` (their events' UTC date) -> what went."""
    fs, root = archive_fs(archive)
    dropped = []
    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        name = info.base_name
        if info.type != pafs.FileType.Directory or not name.startswith("date="):
            continue
        try:
            day = date.fromisoformat(name.removeprefix("date="))
        except ValueError:
            continue  # not the archive's: left alone
        if day < cutoff:
            files = fs.get_file_info(pafs.FileSelector(info.path, recursive=True))
            dropped.append(Dropped(name, sum(f.type == pafs.FileType.File for f in files)))
            if not dry_run:
                fs.delete_dir(info.path)
    return dropped


def retention_cutoff(days: int, today: date | None = None) -> date:
    """The oldest date kept when partitions are kept `days` days (today's included)."""
    return (today or datetime.now(UTC).date()) - timedelta(days=days - 1)


def default_settle_s(checkpoint_interval_ms: int) -> int:
    """How long an erasure settles: the job sees its tombstone within the refresh, and any file in
    progress then is committed by the next completed checkpoint; three intervals allow for a slow or
    failed one, and ten minutes is the floor."""
    return max(DEFAULT_SETTLE_S, int(REFRESH_S) + 3 * checkpoint_interval_ms // 1000)


def pseudonym(value: str) -> str:
    """What replaces erased data in a kept record: the same value, the same pseudonym (entries about
    one violation still go together), and no way back to a free text."""
    return "erased:" + hashlib.sha256(value.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Subject:
    """Whose records an erasure removes: a user, in one tenant or in all (None), of events up to
    `until` (None: every record held, the first pass; the erasure's time, the final sweep)."""

    user_id: str
    tenant: str | None = None
    until: datetime | None = None

    def query(self) -> dict[str, Any]:
        query: dict[str, Any] = {"user_id": self.user_id}
        if self.tenant is not None:
            query["tenant"] = self.tenant
        if self.until is not None:
            query["event_time"] = {"$lte": self.until}
        return query

    def rows(self, table: pa.Table, path: str) -> pa.Array:
        """The mask of the subject's rows in an archive file (at `path`)."""
        mask = pc.equal(table["user_id"], self.user_id)
        if self.tenant is not None:
            # Rows of schema 1 have no tenant_full: their tenant is their directory's.
            directory = next((unquote(p[7:]) for p in path.split("/") if p.startswith("tenant=")), None)
            fallback = pa.scalar(self.tenant if directory == tenant_partition(self.tenant) else None, pa.string())
            full = table["tenant_full"] if "tenant_full" in table.column_names else pa.nulls(len(table), pa.string())
            mask = pc.and_(mask, pc.equal(pc.coalesce(full, fallback), self.tenant))
        if self.until is not None:
            mask = pc.and_(mask, pc.less_equal(table["timestamp_ms"], epoch_ms(self.until)))
        return pc.fill_null(mask, False)


def _rewritten(path: str) -> tuple[str, str]:
    """(hidden name the rewrite is written to, the name it takes once the original is gone)."""
    directory, _, name = path.rpartition("/")
    final = f"{name}-e{hashlib.sha256(name.encode()).hexdigest()[:6]}"  # still part-*: a committed file
    return f"{directory}/.{final}.tmp", f"{directory}/{final}"


def _plan_archive(archive: str, subject: Subject) -> list[dict]:
    """[{path: a part file, rows: the subject's rows in it}] (a list: MongoDB keys cannot hold a path's dots)."""
    fs, _ = archive_fs(archive)
    plan = []
    for path in sorted(archive_dataset(archive).files):
        present = pq.read_schema(path, filesystem=fs).names
        columns = [c for c in ("user_id", "tenant_full", "timestamp_ms") if c in present]
        rows = pc.sum(subject.rows(pq.read_table(path, columns=columns, filesystem=fs), path)).as_py() or 0
        if rows:
            plan.append({"path": path, "rows": rows})
    return plan


def _erase_file(fs: pafs.FileSystem, path: str, subject: Subject, on_step: Callable[[str], None]) -> None:
    """Idempotent: an original that is gone was rewritten, or is being renamed into place."""
    hidden, final = _rewritten(path)
    if fs.get_file_info(path).type == pafs.FileType.File:
        table = pq.read_table(path, filesystem=fs)
        kept = table.filter(pc.invert(subject.rows(table, path)))
        if kept.num_rows:
            pq.write_table(kept, hidden, filesystem=fs)
        fs.delete_file(path)
        on_step(f"deleted:{path}")
    if fs.get_file_info(hidden).type == pafs.FileType.File:
        fs.move(hidden, final)


def _chunks(ids: list[str], size: int = 1000) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _violation_ids(db: Database, collections, subject: Subject) -> list[str]:
    """The _ids of the subject's documents still held (the reviews' violation_id)."""
    return sorted({doc["_id"] for name in collections for doc in db[name].find(subject.query(), {"_id": 1})})


def _review_log(ids: list[str]) -> dict[str, Any]:
    return {"action": "review", "target": {"$in": ids}}  # console.store.Store.review's entries


def _plan(db: Database, archive: str | None, subject: Subject) -> dict[str, Any]:
    """What there is to remove, counted before anything is."""
    collections = sorted(set(db.list_collection_names()) - KEPT)
    ids = _violation_ids(db, collections, subject)
    return {
        "mongodb": {name: db[name].count_documents(subject.query()) for name in collections},
        "reviews": sum(db[REVIEWS].count_documents({"violation_id": {"$in": c}}) for c in _chunks(ids)),
        "audit_log": sum(db[AUDIT_LOG].count_documents(_review_log(c)) for c in _chunks(ids)),
        "archive_files": _plan_archive(archive, subject) if archive else [],
    }


def _pseudonymise_reviews(db: Database, ids: list[str]) -> None:
    now = datetime.now(UTC)
    for chunk in _chunks(ids):
        for entry in db[AUDIT_LOG].find(_review_log(chunk)):
            verdict, _, note = entry.get("why", "").partition(": ")
            why = f"{verdict}: {pseudonym(note)}" if verdict in VERDICTS else pseudonym(entry.get("why", ""))
            kept = {"target": pseudonym(entry["target"]), "why": why, "pseudonymised_at": now}
            db[AUDIT_LOG].update_one({"_id": entry["_id"]}, {"$set": kept})
        db[REVIEWS].delete_many({"violation_id": {"$in": chunk}})


def _execute(db: Database, archive: str | None, plan: dict, subject: Subject, on_step: Callable[[str], None]) -> None:
    # Reviews first: they are found by the ids of the violations, which go next.
    _pseudonymise_reviews(db, _violation_ids(db, plan["mongodb"], subject))
    on_step("reviews")
    for name in plan["mongodb"]:
        db[name].delete_many(subject.query())
        on_step(f"mongodb:{name}")
    if archive:
        fs, _ = archive_fs(archive)
        for planned in plan["archive_files"]:
            _erase_file(fs, planned["path"], subject, on_step)
            on_step(f"archive:{planned['path']}")


def erase_user(
    mongo_uri: str,
    database: str,
    archive: str | None,
    user_id: str,
    reason: str,
    requested_by: str | None = None,
    on_step: Callable[[str], None] = lambda step: None,
    tenant: str | None = None,
    settle_s: float = DEFAULT_SETTLE_S,
) -> dict:
    """Removes every record of `user_id` (in `tenant`, or in every tenant) from the database's
    collections and the archive -> the erasure's record, `settling` until `finish_erasures` sweeps
    what was committed since (after settle_s, see default_settle_s). Run again after a crash, it
    resumes the unfinished erasure of that user; once past that, another run is a new erasure (of
    whatever arrived since, often nothing).

    on_step: called after each step (the tests crash here).
    """
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    with client:
        db = client[database]
        erasures = db[ERASURES]
        subject = Subject(user_id, tenant)
        record = erasures.find_one({"user_id": user_id, "tenant": tenant, "status": "running"})
        if record is None:
            started = datetime.now(UTC)
            record = {
                "_id": f"{user_id}@{started.isoformat()}" + (f"@{tenant}" if tenant is not None else ""),
                "user_id": user_id,
                "tenant": tenant,
                "requested_by": requested_by or getpass.getuser(),
                "reason": reason,
                "started_at": started,  # the tombstone's time: events up to it are erased data
                "status": "running",
                **_plan(db, archive, subject),
            }
            # From when the writers can see the tombstone: the plan may have taken a while.
            record["settle_until"] = datetime.now(UTC) + timedelta(seconds=settle_s)
            erasures.insert_one(record)
        on_step("planned")
        _execute(db, archive, record, subject, on_step)
        settling = {"status": "settling", "first_pass_at": datetime.now(UTC)}
        erasures.update_one({"_id": record["_id"]}, {"$set": settling})
        return {**record, **settling}


def finish_erasures(
    mongo_uri: str,
    database: str,
    archive: str | None,
    on_step: Callable[[str], None] = lambda step: None,
    now: datetime | None = None,
) -> list[dict]:
    """The final sweep of each settling erasure whose settle time has passed: the user's records of
    events up to the erasure that were committed or stored since (its plan is recorded first, under
    `late`, so a crash resumes it) -> those erasures' records, now `done`. Idempotent."""
    now = now or datetime.now(UTC)
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    finished = []
    with client:
        db = client[database]
        erasures = db[ERASURES]
        for record in list(erasures.find({"status": "settling", "settle_until": {"$lte": now}})):
            subject = Subject(record["user_id"], record.get("tenant"), record["started_at"])
            late = record.get("late")
            if late is None:
                late = _plan(db, archive, subject)
                erasures.update_one({"_id": record["_id"]}, {"$set": {"late": late}})
            on_step(f"planned:{record['_id']}")
            _execute(db, archive, late, subject, on_step)
            done = {"status": "done", "finished_at": datetime.now(UTC)}
            erasures.update_one({"_id": record["_id"]}, {"$set": done})
            finished.append({**record, "late": late, **done})
    return finished


def purge(uri: str, database: str, collection: str) -> int:
    """Deletes a collection's violations of erased data -> how many. Replay runs it after its job:
    whatever its writer stored before it saw an erasure recorded during the run goes here."""
    tombstones = Tombstones(uri, database)
    tombstones.open()
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        users = sorted(tombstones.users())
        coll = client[database][collection]
        fields = {"tenant": 1, "user_id": 1, "event_time": 1}
        found: Any = coll.find({"user_id": {"$in": users}}, fields) if users else []
        ids = [doc["_id"] for doc in found if tombstones.erased(doc)]
        for chunk in _chunks(ids):
            coll.delete_many({"_id": {"$in": chunk}})
        return len(ids)
    finally:
        client.close()
        tombstones.close()
