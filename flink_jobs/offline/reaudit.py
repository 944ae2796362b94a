"""What `llm-audit replay` and `llm-audit audit-archive` share: the live job's settings turned into a
re-audit's, the bounded job run in a thread of its own, and the comparison of violations by rule with
what was found before."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flink_jobs.settings import AuditJobSettings


def reaudit_settings(
    settings: AuditJobSettings, rules: Path, collection: str, ruleset_name: str, **update: Any
) -> AuditJobSettings:
    """The live job's settings turned into a re-audit's: the given rules, violations only, into a collection of
    its own, never restored from the live job's checkpoint; `update` adds what the kind of re-audit needs.

    ruleset_name: no push on the rules topic has it, so the file's rules are the ones that run."""
    return settings.model_copy(
        update={
            "rules_path": rules,
            "violations_collection": collection,
            "outputs": ["violations"],
            "ruleset_name": ruleset_name,
            "restore_from": None,
            **update,
        }
    )


def run_job(
    execute: Callable[[], object],
    name: str,
    *,
    watch: Callable[[], object] | None = None,
    every_s: float = 1.0,
    ended: Callable[[], object] | None = None,
) -> None:
    """Runs execute() (a bounded job's env.execute) in a thread of its own, and waits for it: a bounded local
    job takes its MiniCluster down when it ends. Meanwhile watch() every `every_s` seconds; once it has ended,
    whatever the outcome, ended(); then its failure, if any, is raised here."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            execute()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)

    job = threading.Thread(target=target, name=name)
    job.start()
    while job.is_alive():
        if watch is not None:
            watch()
        job.join(every_s)
    if ended is not None:
        ended()
    if failure:
        raise failure[0]


def rule_counts(settings: AuditJobSettings, collection: str, from_ms: int, to_ms: int) -> dict[str, int]:
    """Violations per rule in a collection, for events whose event time is in [from_ms, to_ms)."""
    from pymongo import MongoClient

    start, stop = (datetime.fromtimestamp(ms / 1000, tz=UTC) for ms in (from_ms, to_ms))
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_uri.get_secret_value())
    with client:
        coll = client[settings.mongo_database][collection]
        return dict(
            Counter(doc["rule_id"] for doc in coll.find({"event_time": {"$gte": start, "$lt": stop}}, {"rule_id": 1}))
        )


@dataclass(frozen=True)
class Comparison:
    """Violations by rule of a re-audit (`again`) beside those found before it (`before`). not_evaluated: the
    rules the re-audit could not evaluate (those that read the text, over redacted text only)."""

    again: dict[str, int]
    before: dict[str, int]
    not_evaluated: frozenset[str] = frozenset()

    def rows(self) -> list[tuple[str, str, str, str]]:
        """Every rule of either, by id: rule, re-audit, before, difference (blank when none)."""
        rows = []
        for rule in sorted(set(self.again) | set(self.before)):
            again, before = self.again.get(rule, 0), self.before.get(rule, 0)
            if rule in self.not_evaluated:
                rows.append((rule, "not re-evaluated (redacted text)", str(before), ""))
            else:
                rows.append((rule, str(again), str(before), f"{again - before:+d}" if again != before else ""))
        return rows
