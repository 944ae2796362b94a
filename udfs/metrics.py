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

`audit_events.violations` counts the violations found in the events; those of fired sequence
rules (which are not events) are in `violations` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from udfs.scorers.suite import SCORER_NAMES

# A point: {"measurement", "tags": {...}, "fields": {...}, "time_ms"}; the sink writes it as is.
Point = dict[str, Any]
RuleKey = tuple[str, str, str]  # (rule_id, category, severity)


def point(measurement: str, tags: dict[str, str], fields: dict[str, Any], time_ms: int) -> Point:
    return {"measurement": measurement, "tags": tags, "fields": fields, "time_ms": time_ms}


@dataclass
class WindowCounts:
    """What one metrics window of one (tenant, model) saw; mergeable, for Flink's AggregateFunction."""

    events: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    violations: dict[RuleKey, int] = field(default_factory=dict)
    scores: dict[str, tuple[int, float, float]] = field(default_factory=dict)  # scorer -> (n, sum, max)

    def add(self, events: int, violations: list[RuleKey], measures: dict[str, float]) -> WindowCounts:
        """One audited event (events=1), or the violations of a fired sequence rule (events=0)."""
        self.events += events
        self.tokens += int(measures.get("tokens", 0))
        self.cost_usd += measures.get("cost_usd", 0.0)
        for key in violations:
            self.violations[key] = self.violations.get(key, 0) + 1
        for scorer in SCORER_NAMES:
            if scorer in measures:
                n, total, top = self.scores.get(scorer, (0, 0.0, 0.0))
                self.scores[scorer] = (n + 1, total + measures[scorer], max(top, measures[scorer]))
        return self

    def merge(self, other: WindowCounts) -> WindowCounts:
        merged = WindowCounts(self.events + other.events, self.tokens + other.tokens, self.cost_usd + other.cost_usd,
                              dict(self.violations), dict(self.scores))
        for key, n in other.violations.items():
            merged.violations[key] = merged.violations.get(key, 0) + n
        for scorer, (n2, s2, m2) in other.scores.items():
            n1, s1, m1 = merged.scores.get(scorer, (0, 0.0, 0.0))
            merged.scores[scorer] = (n1 + n2, s1 + s2, max(m1, m2))
        return merged

    def points(self, tenant: str, model: str, time_ms: int, events_point: bool = True) -> list[Point]:
        """events_point=False: the violations and scores only, for counts that are not of events (the
        fired sequence rules'), which would otherwise overwrite the events' own audit_events point."""
        key = {"tenant": tenant, "model": model}
        out = []
        if events_point:
            out.append(point("audit_events", key, {"events": self.events, "violations": sum(self.violations.values()),
                                                   "tokens": self.tokens, "cost_usd": round(self.cost_usd, 6)},
                             time_ms))
        for (rule_id, category, severity), n in sorted(self.violations.items()):
            out.append(point("violations", {**key, "rule_id": rule_id, "category": category, "severity": severity},
                             {"count": n}, time_ms))
        for scorer, (n, total, top) in sorted(self.scores.items()):
            out.append(point("scores", {**key, "scorer": scorer},
                             {"scored": n, "mean": round(total / n, 4), "max": round(top, 4)}, time_ms))
        return out


def anomaly_point(doc: dict) -> Point:
    """An anomaly document (udfs.anomaly.Anomaly.to_dict()) as its point."""
    return point("anomalies", {"tenant": doc["tenant"], "model": doc["model"], "metric": doc["metric"]},
                 {k: float(doc[k]) for k in ("observed", "baseline", "deviation", "score")}, doc["window_end_ms"])


def dead_letter_point(reason: str, count: int, time_ms: int) -> Point:
    return point("dead_letters", {"reason": reason}, {"count": count}, time_ms)
