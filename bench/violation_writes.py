"""What writing violations costs once a collection is large: insert-if-absent against the $set upserts it replaced.

Fills a fresh collection of the local MongoDB (FerretDB v1 under `llm-audit stack up`) with `--stored`
violation-shaped documents, then times, through `MongoWriter.write` (today's insert-if-absent):
- a batch of `--batch` new documents,
- the same batch again (a replay: every document already stored),
and, for comparison, the $set upsert the writer used before (one `update_one(upsert=True)` per document,
as its replay path did), on `--upserts` already stored documents, one at a time.
Usage: python bench/violation_writes.py [--stored 100000] [--batch 200] [--upserts 5]
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime

from pymongo import MongoClient

from flink_jobs.streaming.sinks.mongo import VIOLATION_INDEXES, MongoWriter


def doc(i: int) -> dict:
    event = f"evt-{i:09d}"
    return {
        "_id": f"acme/{event}:pii.email@1:prompt:5-21",
        "event_id": event,
        "rule_id": "pii.email",
        "rule_version": 1,
        "category": "pii",
        "entity": "email",
        "severity": "medium",
        "field": "prompt",
        "start": 5,
        "end": 21,
        "score": 1.0,
        "snippet": "ja**************",
        "why": "pattern",
        "tenant": "acme",
        "model": "gpt-4o",
        "user_id": f"u{i % 500}",
        "event_time": datetime.fromtimestamp(1.79e9 + i, tz=UTC),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default="mongodb://127.0.0.1:27017")
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--upserts", type=int, default=5)
    args = parser.parse_args()
    database = f"bench_{uuid.uuid4().hex[:8]}"
    client: MongoClient = MongoClient(args.uri)
    coll = client[database]["violations"]
    try:
        writer = MongoWriter(args.uri, database, "violations", VIOLATION_INDEXES)
        writer.open()
        for start in range(0, args.stored, 5_000):
            coll.insert_many([doc(i) for i in range(start, min(start + 5_000, args.stored))], ordered=False)
            print(f"stored {min(start + 5_000, args.stored):,}", end="\r", flush=True)
        print()
        fresh = [doc(args.stored + i) for i in range(args.batch)]
        for label, batch in (("new", fresh), ("replayed", fresh)):
            began = time.perf_counter()
            assert writer.write(batch) == []
            elapsed = time.perf_counter() - began
            print(
                f"insert-if-absent, {args.batch} {label} at {args.stored:,} stored: {elapsed * 1000:.0f} ms "
                f"({elapsed / args.batch * 1000:.2f} ms per document)"
            )
        began = time.perf_counter()
        for d in fresh[: args.upserts]:
            coll.update_one({"_id": d["_id"]}, {"$set": {k: v for k, v in d.items() if k != "_id"}}, upsert=True)
        elapsed = time.perf_counter() - began
        print(
            f"$set upsert (before), {args.upserts} stored, one at a time: "
            f"{elapsed / args.upserts * 1000:.1f} ms per document"
        )
        assert coll.count_documents({}) == args.stored + args.batch
        writer.close()
    finally:
        client.drop_database(database)
        client.close()


if __name__ == "__main__":
    main()
