"""What the console reads and writes in MongoDB: the job's violations and anomalies, reviews, the audit log.

A review is written to the violation itself (`review`: the latest verdict) and to `reviews` (every
one); the job's writer updates the fields it owns ($set), so a replay keeps the reviews. Every query
is scoped to the caller's tenants; pages are cursors (the last item's time and id), not offsets,
so a page costs the same however deep, and new violations do not shift the pages being read.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.database import Database

REVIEWS = "reviews"
AUDIT_LOG = "audit_log"
USERS = "console_users"
SESSIONS = "console_sessions"
VERDICTS = ("confirmed", "false_positive", "escalated")
STATUSES = ("unreviewed", *VERDICTS)
FILTERS = ("tenant", "model", "application", "rule_id", "category", "severity")
ALL_TENANTS = "*"

# The queue's sort, and an index per filter a reviewer narrows it by, each ending in that sort.
_NEWEST = [("event_time", DESCENDING), ("_id", DESCENDING)]
INDEXES = [
    _NEWEST,
    [("tenant", ASCENDING), *_NEWEST],
    *([(name, ASCENDING), *_NEWEST] for name in ("rule_id", "severity", "category", "model", "application")),
    [("review.verdict", ASCENDING), *_NEWEST],
    [("session_id", ASCENDING), ("event_time", ASCENDING)],
]


class BadRequest(ValueError):
    """A filter, cursor or review that is not valid; the message names it and what is."""


@dataclass(frozen=True)
class Caller:
    """Who asks: their name, role and the tenants they may see (ALL_TENANTS: every one)."""

    name: str
    role: str
    tenants: tuple[str, ...]

    def sees(self, tenant: str | None) -> bool:
        return ALL_TENANTS in self.tenants or tenant in self.tenants

    def scope(self) -> dict[str, Any]:
        return {} if ALL_TENANTS in self.tenants else {"tenant": {"$in": list(self.tenants)}}

    def within(self, query: dict[str, Any]) -> dict[str, Any]:
        """`query` narrowed to the caller's tenants, whatever tenant it names itself."""
        return {"$and": [query, self.scope()]} if self.scope() else query


def encode_cursor(doc: dict) -> str:
    key = [int(doc["event_time"].replace(tzinfo=UTC).timestamp() * 1000), doc["_id"]]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        time_ms, doc_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if type(time_ms) is not int or not isinstance(doc_id, str):
            raise TypeError
        return datetime.fromtimestamp(time_ms / 1000, tz=UTC), doc_id
    except (ValueError, TypeError, OverflowError, OSError):  # a time out of range is an OverflowError or OSError
        raise BadRequest(f"cursor {cursor[:40]!r} is not one this console gave: start from the first page") from None


def parse_time(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}={value!r} is not a time: use ISO 8601, e.g. 2026-12-01T10:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Store:
    def __init__(self, client: MongoClient, database: str, violations: str, anomalies: str):
        self.db: Database = client[database]
        self.violations = self.db[violations]
        self.anomalies = self.db[anomalies]

    def create_indexes(self) -> None:
        for keys in INDEXES:
            self.violations.create_index(keys)
        self.db[REVIEWS].create_index([("violation_id", ASCENDING), ("at", ASCENDING)])
        self.db[AUDIT_LOG].create_index([("at", DESCENDING)])
        self.db[SESSIONS].create_index([("user", ASCENDING)])

    # --- violations ---------------------------------------------------------------------------------

    def query(self, caller: Caller, filters: dict[str, str]) -> dict[str, Any]:
        """The MongoDB filter of a queue request within the caller's tenants."""
        unknown = set(filters) - {*FILTERS, "status", "since", "until"}
        if unknown:
            raise BadRequest(
                f"unknown filters {sorted(unknown)}; valid: {', '.join((*FILTERS, 'status', 'since', 'until'))}"
            )
        query: dict[str, Any] = {name: filters[name] for name in FILTERS if filters.get(name)}
        if "tenant" in query and not caller.sees(query["tenant"]):
            query["tenant"] = {"$in": []}  # nothing: not a 403, which would tell that the tenant exists
        elif "tenant" not in query:
            query.update(caller.scope())
        status = filters.get("status")
        if status:
            if status not in STATUSES:
                raise BadRequest(f"status={status!r}: valid: {', '.join(STATUSES)}")
            query["review.verdict"] = None if status == "unreviewed" else status
        span = {}
        if filters.get("since"):
            span["$gte"] = parse_time(filters["since"], "since")
        if filters.get("until"):
            span["$lt"] = parse_time(filters["until"], "until")
        if span:
            query["event_time"] = span
        return query

    def page(
        self, caller: Caller, filters: dict[str, str], cursor: str | None, limit: int
    ) -> tuple[list[dict], str | None]:
        """Newest first: (up to `limit` violations, the cursor of the next page or None)."""
        query = self.query(caller, filters)
        if cursor:
            time, doc_id = decode_cursor(cursor)
            after = {"$or": [{"event_time": {"$lt": time}}, {"event_time": time, "_id": {"$lt": doc_id}}]}
            query = {"$and": [query, after]}
        items = list(self.violations.find(query).sort(_NEWEST).limit(limit + 1))
        more = len(items) > limit
        items = items[:limit]
        return items, encode_cursor(items[-1]) if more and items else None

    def get(self, caller: Caller, violation_id: str) -> dict | None:
        return self.violations.find_one(caller.within({"_id": violation_id}))

    def session(self, caller: Caller, doc: dict, limit: int = 50) -> list[dict]:
        """The findings of the same session (or, without one, of the same event) in the violation's tenant, in
        time order. Event and session ids are the tenants' own: another tenant may use the same ones."""
        key = {"session_id": doc["session_id"]} if doc.get("session_id") else {"event_id": doc["event_id"]}
        query = caller.within({**key, "tenant": doc["tenant"]})
        return list(self.violations.find(query).sort([("event_time", ASCENDING), ("_id", ASCENDING)]).limit(limit))

    def anomalies_near(self, caller: Caller, doc: dict, window: timedelta = timedelta(hours=1)) -> list[dict]:
        at = int(doc["event_time"].replace(tzinfo=UTC).timestamp() * 1000)
        span = int(window.total_seconds() * 1000)
        query = {
            "tenant": doc["tenant"],
            "model": doc["model"],
            "window_end_ms": {"$gte": at - span, "$lte": at + span},
        }
        return list(self.anomalies.find(caller.within(query)).sort("window_end_ms", ASCENDING).limit(20))

    def reviews(self, caller: Caller, doc: dict) -> list[dict]:
        """Every review of the violation, oldest first."""
        query = caller.within({"violation_id": doc["_id"], "tenant": doc["tenant"]})
        return list(self.db[REVIEWS].find(query).sort("at", ASCENDING))

    # --- reviews ------------------------------------------------------------------------------------

    def review(self, caller: Caller, doc: dict, verdict: str, note: str) -> dict:
        if verdict not in VERDICTS:
            raise BadRequest(f"verdict={verdict!r}: valid: {', '.join(VERDICTS)}")
        if len(note) > 4000:
            raise BadRequest(f"note: {len(note)} characters; at most 4000")
        now = datetime.now(UTC)
        review = {"verdict": verdict, "note": note, "reviewer": caller.name, "at": now}
        record = {**review, "violation_id": doc["_id"], "rule_id": doc["rule_id"], "tenant": doc["tenant"]}
        self.db[REVIEWS].insert_one(record)
        self.violations.update_one({"_id": doc["_id"]}, {"$set": {"review": review}})
        self.log(caller.name, "review", doc["_id"], f"{verdict}: {note}", tenant=doc["tenant"])
        return record

    def verdicts(self, tenant: str, rule_id: str) -> dict[str, int]:
        """A rule's latest-verdict counts in one tenant."""
        counts = dict.fromkeys(VERDICTS, 0)
        query = {"tenant": tenant, "rule_id": rule_id, "review.verdict": {"$in": list(VERDICTS)}}
        for doc in self.violations.find(query, {"review.verdict": 1}):
            counts[doc["review"]["verdict"]] += 1
        return counts

    def rule_stats(self, caller: Caller) -> list[dict]:
        """Per rule: latest verdict counts over the caller's tenants, and precision = confirmed / (confirmed + fp)."""
        match = {"review.verdict": {"$in": list(VERDICTS)}, **caller.scope()}
        counts: dict[str, dict[str, int]] = {}
        for doc in self.violations.find(match, {"rule_id": 1, "review.verdict": 1}):
            counts.setdefault(doc["rule_id"], dict.fromkeys(VERDICTS, 0))[doc["review"]["verdict"]] += 1
        stats = []
        for rule, verdicts in sorted(counts.items()):
            judged = verdicts["confirmed"] + verdicts["false_positive"]
            stats.append({"rule_id": rule, **verdicts, "precision": verdicts["confirmed"] / judged if judged else None})
        return stats

    # --- the audit log (append-only: the console only ever inserts) ---------------------------------

    def log(self, who: str, action: str, target: str, why: str, **details: Any) -> None:
        self.db[AUDIT_LOG].insert_one(
            {"at": datetime.now(UTC), "who": who, "action": action, "target": target, "why": why, **details}
        )

    def distinct(self, caller: Caller, field: str) -> list[str]:
        """Values of a filter field the caller can see (for the filter form)."""
        return sorted(v for v in self.violations.distinct(field, caller.scope()) if isinstance(v, str))


def must_not_match_line(doc: dict) -> str:
    """The line a rule author adds under the rule's `examples:` to keep this false positive fixed: the
    flagged text where the job stored it (LLM_AUDIT_STORE_RAW_TEXT), else the redacted snippet to fill in."""
    text = doc.get("text")
    if text:
        example = text[max(0, doc["start"] - 40) : doc["end"] + 40]
        return f"must_not_match: [{json.dumps(example, ensure_ascii=False)}]"
    return f"must_not_match: [{json.dumps(doc.get('snippet', ''), ensure_ascii=False)}]  # redacted: put the flagged text here"
