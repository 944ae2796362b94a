"""Rules as data: YAML files validated by pydantic, evaluated against audit events."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from udfs.events import AuditEvent
from udfs.findings import Category, Finding, Severity, redact


class RuleError(ValueError):
    """A rules file that cannot be used; the message names the file, rule and field."""


class PatternMatch(BaseModel):
    """A regular expression searched in the audited text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["pattern"]
    regex: str
    ignore_case: bool = False

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str) -> str:
        try:
            re.compile(regex)
        except re.error as exc:
            raise ValueError(f"regex does not compile: {exc}") from None
        return regex


Match = Annotated[PatternMatch, Field(discriminator="type")]


class Rule(BaseModel):
    """One audit policy: what to look for, where, and how bad a match is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    version: int = Field(ge=1)
    description: str
    category: Category
    entity: str
    severity: Severity
    enabled: bool = True
    applies_to: Literal["prompt", "response", "both"] = "both"
    match: Match


class RuleSet(BaseModel):
    """The contents of one rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule]

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}: rule ids must be unique")
            seen.add(rule.id)
        return self


def load_rules(path: str | Path) -> RuleSet:
    """Load and validate a rules file; any problem raises RuleError naming file, rule and field."""
    path = Path(path)
    if not path.is_file():
        raise RuleError(f"{path}: rules file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}: not valid YAML: {exc}") from None
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RuleError(f"{path}: " + "; ".join(_describe(err, data) for err in exc.errors())) from None


def _describe(err: dict, data: object) -> str:
    loc = list(err["loc"])
    where = ".".join(str(part) for part in loc) or "file"
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and isinstance(data, dict):
        rule = data["rules"][loc[1]]
        if isinstance(rule, dict) and "id" in rule:
            where = f"rule {rule['id']!r} field {'.'.join(str(p) for p in loc[2:]) or '(rule)'}"
    return f"{where}: {err['msg'].removeprefix('Value error, ')}"


class RuleEngine:
    """Evaluates a ruleset against events; compiled once, reused for every event."""

    def __init__(self, ruleset: RuleSet):
        self._compiled = [
            (rule, re.compile(rule.match.regex, re.IGNORECASE if rule.match.ignore_case else 0))
            for rule in ruleset.rules
            if rule.enabled
        ]

    def evaluate(self, event: AuditEvent) -> list[Finding]:
        findings: list[Finding] = []
        for field, text in event.texts():
            for rule, regex in self._compiled:
                if rule.applies_to not in (field, "both"):
                    continue
                for m in regex.finditer(text):
                    findings.append(
                        Finding(
                            event_id=event.event_id,
                            rule_id=rule.id,
                            rule_version=rule.version,
                            category=rule.category,
                            entity=rule.entity,
                            severity=rule.severity,
                            field=field,
                            start=m.start(),
                            end=m.end(),
                            score=1.0,
                            snippet=redact(m.group()),
                        )
                    )
        return findings
