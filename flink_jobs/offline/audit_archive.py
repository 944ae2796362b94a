"""`llm-audit audit-archive`: the audit job's own pipeline over the archive, in Flink batch mode.

The archive's rows for a date range become audit events again (the raw text where the archive holds
it encrypted and the key is given, else the redacted text) and go through build_pipeline with the
given rules; the violations go into a collection of their own. Rules that read the text cannot be
re-evaluated on redacted text: `text_rules` names them, and the comparison says so instead of
reporting what a masked text happens to match.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyflink.common import Row, Types
from pyflink.datastream import RuntimeExecutionMode, StreamExecutionEnvironment
from pyflink.datastream.functions import MapFunction, RuntimeContext

from flink_jobs.credentials import Secret, reveal, secret
from flink_jobs.offline.reader import read_archive
from flink_jobs.offline.reaudit import Comparison, reaudit_settings, rule_counts, run_job
from flink_jobs.offline.report.queries import day_range_ms
from flink_jobs.pyflink_internals import table_env_of, with_event_time
from flink_jobs.settings import AuditJobSettings
from flink_jobs.streaming.sinks.archive import archive_table
from udfs.archive import ARCHIVE_COLUMNS, EVENT_COLUMNS, ArchiveKeyError, TextCipher
from udfs.events import TEXT_FIELDS
from udfs.rules import TEXT_MATCHES, RuleSet

log = logging.getLogger("llm_audit.archive_audit")


def text_rules(ruleset: RuleSet) -> set[str]:
    """Ids of the rules whose outcome depends on the text: text matches, and sequences counting them."""
    reads_text = {rule.id for rule in ruleset.rules if rule.match.type in TEXT_MATCHES}
    sequences = {
        rule.id for rule in ruleset.rules if rule.match.type == "sequence" and set(rule.sequence.rules) & reads_text
    }
    return reads_text | sequences


def archived_event(row: dict, cipher: TextCipher | None) -> tuple[str, list[str]]:
    """An archive row -> (its audit event JSON, the text fields whose ciphertext did not open with the key:
    a tampered file, or another key under the same id; their redacted text stands in)."""
    event = {name: row[name] for name in EVENT_COLUMNS if row[name] is not None}
    event.update(timestamp=row["timestamp_ms"], tenant=row["tenant_full"] or row["tenant"])  # schema 1: none
    if row["metadata"] is not None:
        event["metadata"] = json.loads(row["metadata"])
    raw = cipher is not None and row["key_id"] == cipher.key_id
    unopened = []
    for field in TEXT_FIELDS:
        sealed = row[f"{field}_encrypted"]
        if raw and sealed is not None and cipher is not None:
            try:
                event[field] = cipher.decrypt(bytes(sealed), row["event_id"], field)
                continue
            except ArchiveKeyError:
                unopened.append(field)
        if row[field] is not None:
            event[field] = row[field]
    if "prompt" not in event and "response" not in event:
        event["response"] = ""  # archived with text mode `none`: the field rules still run
    return json.dumps(event, ensure_ascii=False), unopened


class ArchivedEvents(MapFunction):
    """Archive rows -> (event JSON, event time ms) for with_event_time. A row whose raw text does not open
    is audited on its redacted text, and logged (`archive_text_unopened`, with the count so far)."""

    def __init__(self, key: Secret | None):
        self._key = key  # where the archive key is (flink_jobs.credentials), not the key

    def open(self, runtime_context: RuntimeContext):
        self._cipher = TextCipher.from_base64(reveal(self._key)) if self._key else None
        self._unopened = 0

    def map(self, value: Row):
        row = dict(zip(ARCHIVE_COLUMNS, value))
        event, unopened = archived_event(row, self._cipher)
        if unopened:
            self._unopened += 1
            log.warning(
                json.dumps(
                    {
                        "event": "archive_text_unopened",
                        "event_id": row["event_id"],
                        "fields": unopened,
                        "key_id": row["key_id"],
                        "audited_on": "redacted text",
                        "events_so_far": self._unopened,
                    }
                )
            )
        return event, row["timestamp_ms"]


@dataclass(frozen=True)
class Coverage:
    """What the archive holds for the range: events, and how many of them with raw text we can read."""

    events: int
    raw_text: int  # encrypted with the given key

    @property
    def redacted_only(self) -> int:
        return self.events - self.raw_text


def coverage(archive: str, start: date, end: date, key: str | None) -> Coverage:
    key_id = TextCipher.from_base64(key).key_id if key else None
    rel = read_archive(archive).filter(f"date BETWEEN '{start}' AND '{end}'")
    events, raw = rel.aggregate(
        f"count(*), count(*) FILTER (WHERE key_id = '{key_id}' AND "
        f"(prompt_encrypted IS NOT NULL OR response_encrypted IS NOT NULL))"
        if key_id
        else "count(*), 0"
    ).fetchall()[0]
    return Coverage(events, raw)


def archived_rule_counts(archive: str, start: date, end: date) -> dict[str, int]:
    """Findings per rule that the job recorded when it audited the range (the archive's findings)."""
    rel = read_archive(archive).filter(f"date BETWEEN '{start}' AND '{end}' AND findings <> '[]'")
    counts: Counter[str] = Counter()
    for (findings,) in rel.select("findings").fetchall():
        counts.update(f["rule_id"] for f in json.loads(findings))
    return dict(counts)


def build_archive_audit(
    settings: AuditJobSettings, archive: str, start: date, end: date, ruleset: RuleSet
) -> StreamExecutionEnvironment:
    """The batch job: archive rows of [start, end] -> events -> build_pipeline -> MongoDB violations."""
    from flink_jobs.streaming.environment import bounded_watermarks, create_env
    from flink_jobs.streaming.job import build_pipeline
    from flink_jobs.streaming.sinks.buffered import write
    from flink_jobs.streaming.sinks.mongo import VIOLATION_INDEXES, MongoWriter
    from flink_jobs.streaming.sources import events_table

    env = create_env(settings)
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    t_env = table_env_of(env)
    name = archive_table(t_env, archive)
    rows = t_env.to_data_stream(t_env.sql_query(f"SELECT * FROM {name} WHERE `date` BETWEEN '{start}' AND '{end}'"))
    key = secret("LLM_AUDIT_ARCHIVE_KEY", settings.archive_key) if settings.archive_key else None
    timed = rows.map(
        ArchivedEvents(key),
        Types.TUPLE([Types.STRING(), Types.LONG()]),
    ).name("archived events")
    raw = with_event_time(timed, bounded_watermarks(settings), Types.STRING())
    pushes = env.from_collection([], type_info=Types.STRING())
    out = build_pipeline(events_table(raw, settings), pushes, settings, ruleset)
    writer = MongoWriter(
        secret("LLM_AUDIT_MONGO_URI", settings.mongo_uri),
        settings.mongo_database,
        settings.violations_collection,
        VIOLATION_INDEXES,
    ).prepare()
    write(out.violations, writer, settings, "mongo-violations")
    return env


def archive_audit_settings(
    settings: AuditJobSettings, rules: Path, collection: str, ruleset: RuleSet
) -> AuditJobSettings:
    """The live job's settings turned into an archive audit's: own collection, violations only, the scorers the
    ruleset uses, and no archive of its own."""
    return reaudit_settings(
        settings,
        rules,
        collection,
        f"archive-audit-{collection}",
        scorers=sorted(ruleset.scorers_used()),
        archive_dir=None,
    )


def run_archive_audit(settings: AuditJobSettings, archive: str, start: date, end: date, ruleset: RuleSet) -> None:
    """Build and run the batch job (build_archive_audit) to its end; its failure is raised here."""
    run_job(
        lambda: build_archive_audit(settings, archive, start, end, ruleset).execute(
            f"llm-audit-archive-{settings.violations_collection}"
        ),
        "archive-audit",
    )


def compare_with_archive(
    settings: AuditJobSettings, archive: str, start: date, end: date, ruleset: RuleSet, covered: Coverage
) -> Comparison:
    """The re-audit's violations by rule beside the findings the archive holds for the range; over redacted
    text, the rules that read the text are not evaluated (text_rules)."""
    from_ms, to_ms = day_range_ms(start, end)
    return Comparison(
        rule_counts(settings, settings.violations_collection, from_ms, to_ms),
        archived_rule_counts(archive, start, end),
        frozenset(text_rules(ruleset)) if covered.redacted_only else frozenset(),
    )
