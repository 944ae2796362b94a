"""The review console's queue on 100,000 violations in the local MongoDB (FerretDB): the first page and
filtered pages, over real HTTP, with the console's indexes and, side by side, without them.

The violations are the job's own documents for generated traffic (tests/support/console_data.py),
repeated with shifted times and new ids up to --violations. Each page is asked --requests times; the
figures are p50 and p95 in milliseconds. The database is dropped at the end.

Usage: python bench/console_queue.py [--violations 100000] [--requests 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from console.app import create_app  # noqa: E402
from console.auth import add_user  # noqa: E402
from console.settings import ConsoleSettings  # noqa: E402
from devstack import stack  # noqa: E402
from tests.support.console_data import violations  # noqa: E402

PAGES = {
    "first page (all tenants)": {},
    "one tenant": {"tenant": "acme"},
    "tenant and rule": {"tenant": "globex", "rule_id": "pii.email"},
    "severity critical": {"severity": "critical"},
    "unreviewed, one tenant": {"tenant": "acme", "status": "unreviewed"},
    "second page, one tenant": {"tenant": "acme", "cursor": None},  # the cursor of the first
}


def seed(db, n: int) -> int:
    base = violations(max(2000, n // 6), seed=13)
    docs, copy = [], 0
    while len(docs) < n:
        shift = timedelta(hours=copy)
        docs += [{**d, "_id": f"{d['_id']}#{copy}", "event_time": d["event_time"] - shift} for d in base]
        copy += 1
    docs = docs[:n]
    for i in range(0, n, 5000):
        db["violations"].insert_many(docs[i : i + 5000], ordered=False)
    # A few reviews, so that the review filter has both kinds.
    db["violations"].update_many({"_id": {"$in": [d["_id"] for d in docs[:200]]}},
                                 {"$set": {"review": {"verdict": "confirmed", "reviewer": "bench"}}})  # fmt: skip
    return n


def timings(url: str, token: str, params: dict, n: int) -> list[float]:
    out = []
    for _ in range(n):
        request = urllib.request.Request(f"{url}/api/violations?" + urllib.parse.urlencode(params),
                                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        began = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            body = json.loads(response.read())
        out.append((time.perf_counter() - began) * 1000)
        if not body["items"]:
            raise RuntimeError(f"page {params} is empty")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--violations", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    stack.up()
    name = f"console_bench_{uuid.uuid4().hex[:8]}"
    settings = ConsoleSettings(mongo_database=name, influx_bucket=f"{name}/autogen")
    client = MongoClient(settings.mongo_uri.get_secret_value())
    db = client[name]
    try:
        began = time.monotonic()
        print(f"seeding {args.violations:,} violations into {name} ...", file=sys.stderr, flush=True)
        seed(db, args.violations)
        print(f"seeded in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        token = add_user(db, "bench", "admin", ["*"], None, "bench")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(settings, client), port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        results: dict[str, dict[str, list[float]]] = {}
        for indexed in (True, False):
            if not indexed:
                db["violations"].drop_indexes()
            for title, params in PAGES.items():
                if "cursor" in params:
                    first = urllib.request.urlopen(urllib.request.Request(
                        f"{url}/api/violations?tenant=acme", headers={"Authorization": f"Bearer {token}"}))
                    params = {**params, "cursor": json.loads(first.read())["next"]}
                timings(url, token, params, 3)  # warm
                results.setdefault(title, {})["indexed" if indexed else "no index"] = timings(url, token, params, args.requests)
        server.should_exit = True
    finally:
        client.drop_database(name)
        client.close()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{args.violations:,} violations, {args.requests} requests a page, FerretDB (SQLite)")
    print(f"{'page':<28} {'p50 ms':>8} {'p95 ms':>8} {'p95 without indexes':>20}")
    worst = 0.0
    for title, runs in results.items():
        p50 = statistics.median(runs["indexed"])
        p95 = statistics.quantiles(runs["indexed"], n=20)[-1]
        bare = statistics.quantiles(runs["no index"], n=20)[-1]
        worst = max(worst, p95)
        print(f"{title:<28} {p50:>8.1f} {p95:>8.1f} {bare:>20.1f}")
    print(f"SUMMARY worst_p95_ms={worst:.1f}")


if __name__ == "__main__":
    main()
