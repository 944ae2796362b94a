"""The InfluxDB points of the audit job: per (tenant, model) and event-time window, plain Python.

Every point is stamped with its window's end (or the anomaly window's end), a deterministic time:
a replay or a restart from a checkpoint rewrites the same series and timestamps, so it overwrites
the point instead of adding one. Measurements (what the Grafana dashboards and alerts query):

| measurement  | tags                                         | fields                                 |
| ------------ | -------------------------------------------- | -------------------------------------- |
| audit_events | tenant, model                                | events, violations, tokens, cost_usd   |
| violations   | tenant, model, rule_id, category, severity   | count                                  |
| scores       | tenant, model, scorer                        | scored, mean, max                      |
| anomalies    | tenant, model, metric                        | observed, baseline, deviation, score   |
| dead_letters | reason                                       | count                                  |
| rule_reviews | tenant, rule_id                              | confirmed, false_positive, escalated   |
| rules        | ruleset                                      | unsigned                               |

`audit_events.violations` counts the violations found in the events; those of fired sequence
rules (which are not events) are in `violations` only. `rule_reviews` comes from the review console:
at each review, a rule's verdict totals in that tenant so far (the latest point is the current count).
`rules` is written at each push the job sees, at the push's time: `unsigned` is 1 while the rules that
run came from a push no trusted key signed (the latest point is the current state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A point: {"measurement", "tags": {...}, "fields": {...}, "time_ms"}; the sink writes it as is.
Point = dict[str, Any]
RuleKey = tuple[str, str, str]  # (rule_id, category, severity)


# Tag values InfluxDB 1.8 would not store as sent (tried): the client's line protocol turns a trailing
# backslash into an escaped space, so tenant "a\" is stored as "a " (another tenant's series), and a
# newline, CR or tab into the two characters "\n" (as a tenant named so). Visible stand-ins instead.
_TAG_STAND_INS = str.maketrans({"\n": "\u240a", "\r": "\u240d", "\t": "\u2409"})


def tag_value(value: str) -> str:
    """A tag value InfluxDB stores as is (an event's tenant or model is any string): a trailing
    backslash becomes ＼, a newline, CR or tab ␊ ␍ ␉; anything else is kept."""
    kept = value.rstrip("\\")
    return (kept + "\uff3c" * (len(value) - len(kept))).translate(_TAG_STAND_INS)


def point(measurement: str, tags: dict[str, str], fields: dict[str, Any], time_ms: int) -> Point:
    return {
        "measurement": measurement,
        "tags": {key: tag_value(value) for key, value in tags.items()},
        "fields": fields,
        "time_ms": time_ms,
    }


def rules_point(ruleset: str, signed: bool, time_ms: int) -> Point:
    """Whether the rules a job runs after a push are its own or a trusted signer's (alert llm-audit-rules-unsigned)."""
    return point("rules", {"ruleset": ruleset}, {"unsigned": int(not signed)}, time_ms)


@dataclass
class WindowCounts:
    """What one metrics window of one (tenant, model) saw; the job sums it in Flink SQL."""

    events: int = 0  # audited events
    event_violations: int = 0  # violations found in those events
    tokens: int = 0
    cost_usd: float = 0.0
    violations: dict[RuleKey, int] = field(default_factory=dict)  # fired sequence rules' included
    scores: dict[str, tuple[int, float, float]] = field(default_factory=dict)  # scorer -> (n, sum, max)

    def points(self, tenant: str, model: str, time_ms: int) -> list[Point]:
        """A window without events (fired sequence rules only) has no audit_events point: it would
        overwrite nothing, and say there were no events where the events' windows say otherwise."""
        key = {"tenant": tenant, "model": model}
        out = []
        if self.events:
            out.append(
                point(
                    "audit_events",
                    key,
                    {
                        "events": self.events,
                        "violations": self.event_violations,
                        "tokens": self.tokens,
                        "cost_usd": round(self.cost_usd, 6),
                    },
                    time_ms,
                )
            )
        for (rule_id, category, severity), n in sorted(self.violations.items()):
            out.append(
                point(
                    "violations",
                    {**key, "rule_id": rule_id, "category": category, "severity": severity},
                    {"count": n},
                    time_ms,
                )
            )
        for scorer, (n, total, top) in sorted(self.scores.items()):
            out.append(
                point(
                    "scores",
                    {**key, "scorer": scorer},
                    {"scored": n, "mean": round(total / n, 4), "max": round(top, 4)},
                    time_ms,
                )
            )
        return out


def anomaly_point(doc: dict) -> Point:
    """An anomaly document (udfs.anomaly.Anomaly.to_dict()) as its point."""
    return point(
        "anomalies",
        {"tenant": doc["tenant"], "model": doc["model"], "metric": doc["metric"]},
        {k: float(doc[k]) for k in ("observed", "baseline", "deviation", "score")},
        doc["window_end_ms"],
    )


def dead_letter_point(reason: str, count: int, time_ms: int) -> Point:
    return point("dead_letters", {"reason": reason}, {"count": count}, time_ms)


def review_point(tenant: str, rule_id: str, verdicts: dict[str, int], time_ms: int) -> Point:
    """A rule's verdict totals in a tenant after a review (the console writes it)."""
    fields = {name: int(verdicts.get(name, 0)) for name in ("confirmed", "false_positive", "escalated")}
    return point("rule_reviews", {"tenant": tenant, "rule_id": rule_id}, fields, time_ms)
