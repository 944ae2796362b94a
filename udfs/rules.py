"""Rules as data: YAML files validated by pydantic models (extra="forbid").

A rule author never writes Python: `pattern` (RE2 regex, validator, context words), `keywords`
(Aho-Corasick deny-list), `detector` (a built-in by name), `score` (threshold on a model score),
`entities` (names the NER model found), `field` (conditions on event fields) and `sequence` (N
findings per key within a time window).
Errors name the file, the line, the rule id, the field and the valid options.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from udfs.detectors import get_detector
from udfs.detectors.base import compile_re2
from udfs.detectors.validators import VALIDATORS
from udfs.events import CONTEXT_FIELDS, MEASURE_FIELDS
from udfs.findings import RuleCategory, Severity
from udfs.scorers.entities import Entity
from udfs.scorers.suite import SCORED

# The event fields that `field` rules compare (udfs.events marks them).
NUMERIC_FIELDS = MEASURE_FIELDS
STRING_FIELDS = CONTEXT_FIELDS
# The scorers with a score that score rules read (entities come as spans, for `entities` rules).
SCORERS = SCORED
SEQUENCE_KEYS = ("user_id", "session_id", "tenant")  # context fields a sequence may count by


class RuleError(ValueError):
    """A rules file or push that cannot be used; the message names file:line, rule and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Context(_Strict):
    """Words near a match that change its score (Presidio-style context)."""

    words: list[str] = Field(min_length=1)
    window: int = Field(default=40, ge=1, le=500, description="characters before and after the match")
    boost: float = Field(default=0.2, ge=-1, le=1, description="added to the score when a word is near")


class PatternMatch(_Strict):
    """An RE2 regex (linear time), optionally confirmed by a validator and scored by context."""

    type: Literal["pattern"]
    regex: str
    ignore_case: bool = False
    validator: str | None = None
    score: float = Field(default=0.8, ge=0, le=1)
    context: list[Context] = []
    min_score: float = Field(default=0.5, ge=0, le=1)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str) -> str:
        compile_re2(regex)
        return regex

    @field_validator("validator")
    @classmethod
    def _known_validator(cls, name: str | None) -> str | None:
        if name is not None and name not in VALIDATORS:
            raise ValueError(f"unknown validator {name!r}; valid validators: {', '.join(sorted(VALIDATORS))}")
        return name


class KeywordsMatch(_Strict):
    """A deny-list matched with Aho-Corasick, whole words and case-folded by default."""

    type: Literal["keywords"]
    words: list[str] = []
    file: str | None = Field(default=None, description="one word or phrase per line, relative to the rules file")
    whole_word: bool = True
    case_sensitive: bool = False

    @model_validator(mode="after")
    def _load_file(self, info: ValidationInfo) -> KeywordsMatch:
        words = list(self.words)
        if self.file is not None:
            context = info.context or {}
            if context.get("pushed"):  # the CLI inlines the lists: a push never makes a TaskManager read a file
                raise ValueError(
                    f"file {self.file!r} in a pushed ruleset: pushes carry their keyword lists as 'words' "
                    "(`llm-audit rules push` inlines the files)"
                )
            if Path(self.file).is_absolute() or ".." in Path(os.path.normpath(self.file)).parts:
                raise ValueError(
                    f"keywords file {self.file!r} is outside the rules folder; give a path relative to the rules "
                    "file, inside its folder"
                )
            path = Path(context.get("base_dir", ".")) / self.file
            if not path.is_file():
                raise ValueError(f"keywords file {str(path)!r} not found (paths are relative to the rules file)")
            words += [
                w.strip()
                for w in path.read_text(encoding="utf-8").splitlines()
                if w.strip() and not w.lstrip().startswith("#")
            ]
        if not words:
            raise ValueError("a keywords match needs 'words' or a non-empty 'file'")
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "file", None)  # inlined: the ruleset is self-contained once loaded
        return self


class DetectorMatch(_Strict):
    """A built-in detector by name, with its parameters."""

    type: Literal["detector"]
    name: str
    params: dict[str, Any] = {}
    min_score: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _known_detector(self) -> DetectorMatch:
        cls = get_detector(self.name)
        try:
            cls(cls.Params.model_validate(self.params))
        except ValidationError as exc:
            raise ValueError(f"detector {self.name!r} params: {_messages(exc)}") from None
        return self


class ScoreMatch(_Strict):
    """A threshold on a model score of the audited text."""

    type: Literal["score"]
    scorer: str
    label: str | None = Field(default=None, description="one label of a multi-label scorer; default: its main score")
    threshold: float = Field(ge=0, le=1)

    @field_validator("scorer")
    @classmethod
    def _known_scorer(cls, name: str) -> str:
        if name not in SCORERS:
            raise ValueError(f"unknown scorer {name!r}; valid scorers: {', '.join(SCORERS)}")
        return name


class EntitiesMatch(_Strict):
    """Names of people, places or organisations that the `entities` model found in the text."""

    type: Literal["entities"]
    entities: list[Entity] = Field(min_length=1)


class Condition(_Strict):
    field: Literal[NUMERIC_FIELDS + STRING_FIELDS]  # type: ignore[valid-type]
    op: Literal["gt", "gte", "lt", "lte", "eq", "ne", "in", "not_in"]
    value: float | str | list[str] | list[float]

    @model_validator(mode="after")
    def _value_fits(self) -> Condition:
        listy = self.op in ("in", "not_in")
        if listy != isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs {'a list' if listy else 'a single value'} as 'value'")
        if self.field in NUMERIC_FIELDS and self.op in ("gt", "gte", "lt", "lte") and isinstance(self.value, str):
            raise ValueError(f"'{self.field}' is numeric: compare it with a number")
        return self


class FieldMatch(_Strict):
    """Conditions on event fields (all must hold), e.g. latency_ms gt 30000."""

    type: Literal["field"]
    conditions: list[Condition] = Field(min_length=1)


class SequenceMatch(_Strict):
    """Stateful: `count` findings of `rules` by one key within `within`, e.g. 3 injections per user in 10m."""

    type: Literal["sequence"]
    rules: list[str] = Field(min_length=1)
    count: int = Field(ge=2)
    within: str = Field(pattern=r"^\d+(ms|s|m|h)$", description="e.g. 90s, 10m, 1h")
    per: Literal[SEQUENCE_KEYS]  # type: ignore[valid-type]

    @property
    def within_ms(self) -> int:
        number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)", self.within).groups()  # type: ignore[union-attr]  # validated
        return int(number) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[unit]


Match = Annotated[
    PatternMatch | KeywordsMatch | DetectorMatch | ScoreMatch | EntitiesMatch | FieldMatch | SequenceMatch,
    Field(discriminator="type"),
]


def _match_type(model: type[BaseModel]) -> str:
    """A match model's tag: the one value of its `type` field."""
    (tag,) = get_args(model.model_fields["type"].annotation)
    return tag


# The match types, read off the union above: pattern, keywords, detector, score, entities, field, sequence.
MATCH_TYPES: tuple[str, ...] = tuple(_match_type(model) for model in get_args(get_args(Match)[0]))
# The match types that read the prompt or response text: `field` rules read the event's other fields, and
# sequences count other rules' findings.
TEXT_MATCHES: tuple[str, ...] = tuple(
    tag for tag in MATCH_TYPES if tag not in (_match_type(FieldMatch), _match_type(SequenceMatch))
)


class Examples(_Strict):
    must_match: list[str] = []
    must_not_match: list[str] = []


class Rule(_Strict):
    """One audit policy: what to look for, where, how bad a match is, and who owns it."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)
    version: int = Field(ge=1)
    description: str = Field(min_length=1)
    category: RuleCategory
    severity: Severity
    owner: str = Field(min_length=1, description="team or person to ask about this rule")
    enabled: bool = True
    applies_to: Literal["prompt", "response", "both"] = "both"
    entity: str | None = Field(
        default=None, description="what a finding is; default: the detector's entity or the rule id"
    )
    tenants: list[str] | None = None
    models: list[str] | None = None
    match: Match
    examples: Examples = Examples()

    @model_validator(mode="after")
    def _examples_need_text(self) -> Rule:
        has_examples = self.examples.must_match or self.examples.must_not_match
        if has_examples and not isinstance(self.match, (PatternMatch, KeywordsMatch, DetectorMatch)):
            raise ValueError(
                f"examples are texts: only pattern, keywords and detector rules take them, not {self.match.type}"
            )
        return self

    def in_scope(self, tenant: str, model: str) -> bool:
        return (self.tenants is None or tenant in self.tenants) and (self.models is None or model in self.models)

    @property
    def sequence(self) -> SequenceMatch:
        """The match of a sequence rule; a TypeError for a rule of another kind."""
        if not isinstance(self.match, SequenceMatch):
            raise TypeError(f"rule {self.id!r} is a {self.match.type} rule, not a sequence")
        return self.match


class Limits(_Strict):
    """Bounds on the work and output of one event, so that no input can stall the job.

    Text past `max_text_chars` is not inspected, and findings past a cap are not stored one by one:
    both are reported as findings of their own (see docs/rules.md), never dropped silently.
    """

    max_text_chars: int = Field(default=1 << 20, ge=1_000, description="characters of each text field inspected")
    max_findings_per_rule: int = Field(default=100, ge=1, description="findings of one rule stored per event")
    max_findings_per_event: int = Field(default=1_000, ge=1, description="findings stored per event, all rules")
    max_event_ms: int = Field(
        default=10_000,
        ge=10,
        description="wall-clock time the rules may take on one event; the rules not run by then are skipped "
        "and reported (an audit.error finding and a dead letter). The worst input in bench/adversarial.py takes ~2 s",
    )


class RuleSet(_Strict):
    """The contents of one rules file."""

    rules: list[Rule]
    limits: Limits = Limits()

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> RuleSet:
        if (info.context or {}).get("one_file_of_many"):  # ids and sequences are checked across the files
            return self
        ids = [rule.id for rule in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate rule ids {duplicates}: rule ids must be unique")
        stateless = {r.id for r in self.rules if not isinstance(r.match, SequenceMatch)}
        for rule in self.rules:
            if isinstance(rule.match, SequenceMatch):
                unknown = sorted(set(rule.match.rules) - stateless)
                if unknown:
                    raise ValueError(
                        f"rule {rule.id!r}: sequence over unknown or stateful rules {unknown}; "
                        f"valid: {', '.join(sorted(stateless))}"
                    )
        return self

    def all_enabled(self) -> RuleSet:
        """The same rules, every one enabled: disabled rules' examples must pass too."""
        return RuleSet(rules=[rule.model_copy(update={"enabled": True}) for rule in self.rules], limits=self.limits)

    def scorers_used(self) -> set[str]:
        """Scorers the enabled score and entities rules read: the job must run them."""
        used = {rule.match.scorer for rule in self.rules if rule.enabled and isinstance(rule.match, ScoreMatch)}
        if any(rule.enabled and isinstance(rule.match, EntitiesMatch) for rule in self.rules):
            used.add("entities")
        return used

    def content_hash(self) -> str:
        """Stable short hash of the validated content (a display id: equal rulesets hash equal whatever the
        YAML layout); what a signature covers is the full rules_digest."""
        return short_hash(self.model_dump(mode="json"))


def rules_digest(rules: Any) -> str:
    """Full SHA-256 (hex) of rules as pushed (a RuleSet's model_dump(mode="json"), or a push record's raw
    `rules`) in canonical JSON: keys sorted, no spaces. Computed on the raw record, before any parsing."""
    return hashlib.sha256(json.dumps(rules, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def short_hash(rules: Any) -> str:
    """The 16-character display id of rules as pushed (RuleSet.content_hash), computed on the raw form."""
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:16]


def parse_rules(
    text: str, source: str = "<rules>", base_dir: Path | None = None, one_file_of_many: bool = False
) -> RuleSet:
    """Validate YAML rules text; any problem raises RuleError naming source:line, rule and field."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise RuleError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    _check_duplicate_ids(root, source)
    try:
        return RuleSet.model_validate(
            data, context={"base_dir": base_dir or Path("."), "one_file_of_many": one_file_of_many}
        )
    except ValidationError as exc:
        raise RuleError("\n".join(_describe(err, data, root, source) for err in exc.errors())) from None


def _check_duplicate_ids(root: yaml.Node | None, source: str) -> None:
    """Name the line of each repeated rule id and of its first use (the model check cannot know lines)."""
    first: dict[str, int] = {}
    for rule_id, line in _id_lines(root):
        if rule_id in first:
            raise RuleError(
                f"{source}:{line}: rule {rule_id!r}: duplicate id, first used at line "
                f"{first[rule_id]}; rule ids must be unique"
            )
        first[rule_id] = line


def _id_lines(root: yaml.Node | None) -> list[tuple[str, int]]:
    """Each rule's id and the line it is on."""
    rules = _child(root, "rules")
    if not isinstance(rules, yaml.SequenceNode):
        return []
    nodes = [_child(item, "id") for item in rules.value]
    return [(node.value, node.start_mark.line + 1) for node in nodes if isinstance(node, yaml.ScalarNode)]


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if k.value == key), None)
    return None


def load_rules(path: str | Path) -> RuleSet:
    """Load and validate a rules file, or every `*.yaml` file under a directory as one ruleset (keyword
    files resolve relative to the file that names them)."""
    path = Path(path)
    if path.is_dir():
        return _load_directory(path)
    if not path.is_file():
        raise RuleError(f"{path}: no rules file or directory there; give a .yaml file or a directory of them")
    return parse_rules(path.read_text(encoding="utf-8"), str(path), path.parent)


def _load_directory(directory: Path) -> RuleSet:
    """One ruleset from many files: each file's errors with its name and lines, then ids unique across
    files, at most one file setting `limits`, and sequences over rules of any file."""
    files = sorted(directory.rglob("*.yaml"))
    if not files:
        raise RuleError(f"{directory}: no *.yaml rules files under this directory")
    parts, errors = [], []
    for file in files:
        text = file.read_text(encoding="utf-8")
        try:
            parts.append((file, text, parse_rules(text, str(file), file.parent, one_file_of_many=True)))
        except RuleError as exc:
            errors.append(str(exc))
    first: dict[str, str] = {}
    for file, text, _ in parts:
        for rule_id, line in _id_lines(yaml.compose(text)):
            if rule_id in first:
                errors.append(
                    f"{file}:{line}: rule {rule_id!r}: duplicate id, first used at {first[rule_id]}; "
                    "rule ids must be unique across the directory"
                )
            first.setdefault(rule_id, f"{file}:{line}")
    with_limits = [str(file) for file, _, ruleset in parts if "limits" in ruleset.model_fields_set]
    if len(with_limits) > 1:
        errors.append(f"{directory}: limits set in {', '.join(with_limits)}; set them in one file only")
    if errors:
        raise RuleError("\n".join(errors))
    rules = [rule for _, _, ruleset in parts for rule in ruleset.rules]
    limits = next((ruleset.limits for _, _, ruleset in parts if "limits" in ruleset.model_fields_set), Limits())
    try:
        return RuleSet(rules=rules, limits=limits)
    except ValidationError as exc:
        raise RuleError(
            "\n".join(f"{directory}: {err['msg'].removeprefix('Value error, ')}" for err in exc.errors())
        ) from None


def ruleset_from_push(payload: dict) -> RuleSet:
    """Re-validate a ruleset received from the audit-rules topic (anyone may write there)."""
    name = f"push v{payload.get('version', '?')} by {payload.get('author', '?')}"
    if not isinstance(payload.get("rules"), dict):
        raise RuleError(f"{name}: no 'rules' object in the pushed record")
    try:
        return RuleSet.model_validate(payload["rules"], context={"pushed": True})
    except ValidationError as exc:
        raise RuleError("\n".join(_describe(err, payload["rules"], None, name) for err in exc.errors())) from None


def rules_json_schema() -> dict:
    """JSON Schema of a rules file, for editors (yaml-language-server)."""
    return RuleSet.model_json_schema()


def _messages(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors())


def _describe(err: Any, data: Any, root: yaml.Node | None, source: str) -> str:  # err: a pydantic ErrorDetails
    # Discriminated unions add the match type to the path (match.pattern.regex): drop it.
    loc = [
        part for i, part in enumerate(err["loc"]) if not (i and err["loc"][i - 1] == "match" and part in MATCH_TYPES)
    ]
    line = _line_of(root, loc)
    where = f"{source}:{line}" if line else source
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field (check the spelling; see the rules JSON schema for valid fields)"
    elif err["type"] in ("literal_error", "enum"):  # echo the value given, and list the valid ones plainly
        valid = ", ".join(re.findall(r"'([^']*)'", err["ctx"]["expected"]))
        message = f"{err['input']!r} is not one of {valid}"
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rule = data["rules"][loc[1]] if isinstance(data, dict) and isinstance(data.get("rules"), list) else None
        rule_id = rule.get("id") if isinstance(rule, dict) else None
        field = ".".join(map(str, loc[2:])) or "(rule)"
        return f"{where}: rule {rule_id!r} field {field}: {message}"
    return f"{where}: {'.'.join(map(str, loc)) or 'file'}: {message}"


def _line_of(node: yaml.Node | None, loc: list) -> int | None:
    """1-based line of the deepest YAML node on the error's path."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = _child(node, part)
            if node is None:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line
