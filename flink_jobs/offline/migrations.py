"""Rewrites of stored data whose format an upgrade changed, run once with `llm-audit migrate-ids`."""

from __future__ import annotations

from typing import Any

from udfs.findings import Finding, violation_id


def migrate_violation_ids(violations: Any, reviews: Any) -> int:
    """Moves each violation stored under an older form of its _id (before ids named the tenant) to the id
    the job gives it now, with its reviews -> how many moved. A replay or re-audit of a period stored
    before the upgrade would otherwise store its violations a second time, under the new ids.

    Idempotent and safe to run again after a crash: the document is inserted under its new id first (a
    duplicate means an earlier run got that far), then its reviews follow it, then the old one goes."""
    from pymongo.errors import DuplicateKeyError

    moved = 0
    for doc in violations.find({"event_id": {"$exists": True}, "rule_id": {"$exists": True}}):
        try:
            finding = Finding(**{name: doc[name] for name in Finding.__slots__ if name in doc})
            new = violation_id(doc["tenant"], finding)
        except (KeyError, TypeError):
            continue  # not a violation document of the job's
        if doc["_id"] == new:
            continue
        try:
            violations.insert_one({**doc, "_id": new})
        except DuplicateKeyError:
            pass
        reviews.update_many({"violation_id": doc["_id"], "tenant": doc["tenant"]}, {"$set": {"violation_id": new}})
        violations.delete_one({"_id": doc["_id"]})
        moved += 1
    return moved
