"""Retention and erasure of the archive and the stores: partitions by age, a data subject's records.

An erasure is recorded in its own collection before anything is removed, with its plan (what it will
remove, counted); each step is idempotent, so running it again after a crash finishes the same plan:
- MongoDB: delete_many on every collection that holds the user's records;
- the archive: each affected part file is rewritten without the user's rows to a hidden name, the
  original deleted, and the rewrite renamed into place (a reader sees the old file or the new one, and
  between the delete and the rename neither: the user's rows are never visible again once gone).
"""

from __future__ import annotations

import getpass
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pymongo import MongoClient

from flink_jobs.archive import archive_dataset, archive_fs

ERASURES = "erasures"
# Collections that record who did what; an erasure never edits them (their user_id is the actor's).
KEPT = {ERASURES, "audit_log"}


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


def _rewritten(path: str) -> tuple[str, str]:
    """(hidden name the rewrite is written to, the name it takes once the original is gone)."""
    directory, _, name = path.rpartition("/")
    final = f"{name}-e{hashlib.sha256(name.encode()).hexdigest()[:6]}"  # still part-*: a committed file
    return f"{directory}/.{final}.tmp", f"{directory}/{final}"


def _plan_archive(archive: str, user_id: str) -> list[dict]:
    """[{path: a part file, rows: the user's rows in it}] (a list: MongoDB keys cannot hold a path's dots)."""
    theirs = pc.field("user_id") == user_id
    counts = (
        (fragment.path, fragment.count_rows(filter=theirs)) for fragment in archive_dataset(archive).get_fragments()
    )
    return [{"path": path, "rows": rows} for path, rows in sorted(counts) if rows]


def _erase_file(fs: pafs.FileSystem, path: str, user_id: str, on_step: Callable[[str], None]) -> None:
    """Idempotent: an original that is gone was rewritten, or is being renamed into place."""
    hidden, final = _rewritten(path)
    if fs.get_file_info(path).type == pafs.FileType.File:
        table = pq.read_table(path, filesystem=fs)
        kept = table.filter(pc.invert(pc.fill_null(pc.equal(table["user_id"], user_id), False)))
        if kept.num_rows:
            pq.write_table(kept, hidden, filesystem=fs)
        fs.delete_file(path)
        on_step(f"deleted:{path}")
    if fs.get_file_info(hidden).type == pafs.FileType.File:
        fs.move(hidden, final)


def erase_user(
    mongo_uri: str,
    database: str,
    archive: str | None,
    user_id: str,
    reason: str,
    requested_by: str | None = None,
    on_step: Callable[[str], None] = lambda step: None,
) -> dict:
    """Removes every record of `user_id` from the database's collections and the archive -> the erasure's
    record. Run again after a crash, it resumes the unfinished erasure of that user; once done, another
    run is a new erasure (of whatever arrived since, often nothing).

    on_step: called after each step (the tests crash here).
    """
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    with client:
        db = client[database]
        erasures = db[ERASURES]
        record = erasures.find_one({"user_id": user_id, "status": "running"})
        if record is None:
            collections = sorted(set(db.list_collection_names()) - KEPT)
            record = {
                "_id": f"{user_id}@{datetime.now(UTC).isoformat()}",
                "user_id": user_id,
                "requested_by": requested_by or getpass.getuser(),
                "reason": reason,
                "started_at": datetime.now(UTC),
                "status": "running",
                # The plan: what there is to remove, counted before anything is.
                "mongodb": {name: db[name].count_documents({"user_id": user_id}) for name in collections},
                "archive_files": _plan_archive(archive, user_id) if archive else [],
            }
            erasures.insert_one(record)
        on_step("planned")
        for name in record["mongodb"]:
            db[name].delete_many({"user_id": user_id})
            on_step(f"mongodb:{name}")
        if archive:
            fs, _ = archive_fs(archive)
            for planned in record["archive_files"]:
                _erase_file(fs, planned["path"], user_id, on_step)
                on_step(f"archive:{planned['path']}")
        done = {"status": "done", "finished_at": datetime.now(UTC)}
        erasures.update_one({"_id": record["_id"]}, {"$set": done})
        return {**record, **done}
