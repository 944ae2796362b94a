"""Rule pushes: which records of the rules topic a job runs. Plain Python; AuditEvents keeps the running push
in broadcast state and reports each decision (a rule_changes document)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator

from udfs.rules import RuleError, RuleSet, ruleset_from_push
from udfs.signing import SignatureError, check_content, trusted_keys, verify


class RulePushes:
    """A push runs if it names this ruleset, is signed by a trusted key (or, where unsigned pushes are
    allowed, carries the sha256 of its raw rules), its version is above the running push's, its rules
    parse and pass their self-check, and the job runs the scorers its rules need."""

    def __init__(self, name: str, scorers: tuple[str, ...], trusted: tuple[str, ...], allow_unsigned: bool):
        self._name, self._scorers = name, scorers
        self._trusted_keys = trusted  # public keys of the signers whose pushes run
        self._allow_unsigned = allow_unsigned  # unsigned pushes run too (local use; loud: see AuditEvents)
        self._trusted: dict = {}

    def open(self) -> None:
        self._trusted = trusted_keys(list(self._trusted_keys))

    def signed(self, record: dict) -> bool:
        try:
            verify(record, self._trusted)
        except SignatureError:
            return False
        return True

    def review(self, value: str, running: str | None, use: Callable[[RuleSet], object]) -> Iterator[dict]:
        """A record of the rules topic -> its rule_changes document, if it is this ruleset's; `running` is the
        accepted push that runs now (None: the job's own rules), and `use` starts the push's rules (a
        RuleError rejects it). An accepted push is the caller's to keep as the running one. Its signature (or,
        unsigned where LLM_AUDIT_RULES_ALLOW_UNSIGNED asks for it, the sha256 of its raw rules) is checked,
        and its version held above the running push's, before its rules are parsed."""
        try:
            record = json.loads(value)
        except json.JSONDecodeError as exc:
            yield rule_change({}, value, False, f"not JSON: {exc}")
            return
        if not isinstance(record, dict) or record.get("name") != self._name:
            return  # another ruleset's push
        try:
            if self._allow_unsigned and not (
                isinstance(record.get("key_id"), str) and record["key_id"] in self._trusted
            ):
                check_content(record)
            else:
                verify(record, self._trusted)
        except SignatureError as exc:
            yield rule_change(record, value, False, str(exc))
            return
        version = record.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            yield rule_change(record, value, False, f"version {version!r} is not a whole number >= 1")
            return
        running_version = json.loads(running).get("version") if running else 0
        if not isinstance(running_version, int):  # accepted before versions were checked
            running_version = 0
        if version <= running_version:
            yield rule_change(
                record,
                value,
                False,
                f"rollback: version {version} is not above the running version {running_version}; "
                "to go back to old rules, push them again with a higher version",
            )
            return
        try:
            ruleset = ruleset_from_push(record)
        except RuleError as exc:
            yield rule_change(record, value, False, str(exc))
            return
        if ruleset.content_hash() != record.get("hash"):
            yield rule_change(record, value, False, "hash does not match the rules: corrupted or hand-edited push")
            return
        missing = ruleset.scorers_used() - set(self._scorers)
        if missing:
            yield rule_change(
                record,
                value,
                False,
                f"score and entities rules need scorers {sorted(missing)}, which this "
                f"job does not run (LLM_AUDIT_SCORERS={list(self._scorers)})",
            )
            return
        try:
            use(ruleset)
        except RuleError as exc:  # a rule that fails on an ordinary event (RuleEngine.open): the last good set runs on
            yield rule_change(record, value, False, str(exc))
            return
        yield rule_change(record, value, True, None)


def rule_change(record: dict, raw: str, accepted: bool, reason: str | None) -> dict:
    """The rule_changes document of a push (`raw`, as read from the topic). Its _id is deterministic, so
    every subtask and replay writes the same one; an accepted push's names its version, which is never accepted
    twice, and a rejected push's the digest of its raw record too, so that a replayed old record is a new
    document, never one written over the earlier accepted one."""
    keys = ("name", "version", "sha256", "hash", "author", "message", "pushed_at", "key_id")
    doc = {key: record.get(key) for key in keys}
    doc.update(accepted=accepted, reason=reason)
    outcome = "accepted" if accepted else f"rejected:{hashlib.sha256(raw.encode()).hexdigest()[:16]}"
    doc["_id"] = f"{doc['name']}:v{doc['version']}:{doc['hash']}:{outcome}"
    return doc
