"""Detector contract, the registry, and the pattern-table detector most built-ins are."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import re2
from pydantic import BaseModel, ConfigDict

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors are raised with the pattern named; no stderr noise


def compile_re2(pattern: str, ignore_case: bool = False):
    """Compile with RE2 (linear time, no backtracking); raise ValueError saying what is unsupported."""
    try:
        return re2.compile(("(?i)" if ignore_case else "") + pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"regex {pattern!r} is not valid RE2 ({detail}); RE2 runs in linear time and has no "
            "backreferences or lookaround: use a validator or context words instead"
        ) from None


_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def readable(text: str) -> str:
    """The text as RE2 can read it: each lone surrogate (a str may hold one, UTF-8 cannot) replaced by U+FFFD.

    One code point for one, so offsets into the result are offsets into the text. Every detector reads
    its text through this before RE2 sees it, and so must a decoder's output (`\\ud800` decodes to one).
    """
    return text if text.isascii() or not _LONE_SURROGATE.search(text) else _LONE_SURROGATE.sub("\ufffd", text)


def set_pattern(pattern: str, ignore_case: bool = False) -> str:
    """A pattern as a PatternSet entry (what compile_re2 compiles)."""
    return ("(?i)" if ignore_case else "") + pattern


# Large counted repetitions ({20,200}) make big automata: a set of many of them needs more memory
# than RE2's default 8 MiB, and a Set whose DFA runs out of memory matches nothing.
_SET_OPTIONS = re2.Options()
_SET_OPTIONS.log_errors = False
_SET_OPTIONS.max_mem = 256 << 20


class PatternSet:
    """Which of many RE2 patterns occur in a text, in one linear pass (RE2::Set)."""

    def __init__(self, patterns: list[str]):
        self.patterns = list(patterns)
        self._set = None
        if self.patterns:  # RE2 cannot compile an empty set
            self._set = re2.Set.SearchSet(_SET_OPTIONS)
            for pattern in self.patterns:
                self._set.Add(pattern)
            self._set.Compile()

    def match(self, text: str) -> list[int]:
        """Indices of the patterns that occur in text."""
        return (self._set.Match(readable(text)) or []) if self._set is not None else []


@dataclass(frozen=True, slots=True)
class DetectorMatch:
    """One entity a detector found: what, where, and how sure."""

    entity: str
    start: int
    end: int
    score: float
    why: str = ""  # what fired: the pattern and its check, the model and its score, the nearest known attack


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Detector:
    """Finds entities in a text. Heavy resources (models) load in open(), never in __init__."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    entities: ClassVar[tuple[str, ...]] = ()
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, params: BaseModel | None = None):
        # Any: an instance of the subclass's own Params, validated before it gets here
        self.params: Any = params if params is not None else self.Params()

    def open(self) -> None:
        """Load what the detector needs; called once per worker before the first detect()."""

    def detect(self, text: str) -> list[DetectorMatch]:
        raise NotImplementedError

    def triggers(self) -> list[str] | None:
        """RE2 patterns of which one occurs in every text detect() finds anything in, or None.

        The rule engine runs them all in one pass per text and skips the detectors none of whose
        triggers occur: most traffic is clean, so most detectors need not run at all.
        """
        return None


DETECTORS: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    DETECTORS[cls.name] = cls
    return cls


# Detectors that became something else, and what a rule now says instead.
MOVED = {
    "injection_similarity": "the injection scorer, batched with the other models: "
    "match: {type: score, scorer: injection, threshold: 0.45}",
}


def get_detector(name: str) -> type[Detector]:
    try:
        return DETECTORS[name]
    except KeyError:
        moved = f"; {name!r} is now {MOVED[name]}" if name in MOVED else ""
        raise ValueError(f"unknown detector {name!r}; valid detectors: {', '.join(sorted(DETECTORS))}{moved}") from None


@dataclass(frozen=True)
class Pattern:
    """A row of a pattern table: entity, RE2 regex, base score, optional validator of the match.

    `group` picks the capture group that is the entity (0: the whole match), e.g. the value of
    a `password = ...` assignment.
    """

    entity: str
    regex: str
    score: float
    validator: Callable[[str], bool] | None = None
    ignore_case: bool = False
    group: int = 0


class EntityParams(BaseModel):
    """Which of the detector's entities to report (default: all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entities: list[str] | None = None


class PatternDetector(Detector):
    """A detector that is a pattern table plus per-pattern validators (Presidio's recognizer shape)."""

    patterns: ClassVar[tuple[Pattern, ...]] = ()
    Params = EntityParams

    def __init__(self, params: EntityParams | None = None):
        super().__init__(params)
        wanted = self.params.entities
        if wanted is not None:
            unknown = sorted(set(wanted) - set(self.entities))
            if unknown:
                raise ValueError(f"detector {self.name!r} has no entities {unknown}; valid: {', '.join(self.entities)}")
        self._compiled = [
            (p, compile_re2(p.regex, p.ignore_case)) for p in self.patterns if wanted is None or p.entity in wanted
        ]
        # One RE2 multi-pattern pass tells which patterns occur at all; only those run finditer.
        self._set = PatternSet([set_pattern(pattern.regex, pattern.ignore_case) for pattern, _ in self._compiled])
        self._why = [
            f"{self.name} v{self.version} {pattern.entity}: /{shorten(pattern.regex)}/"
            + (f" + {pattern.validator.__name__.strip('_')} check" if pattern.validator else "")
            for pattern, _ in self._compiled
        ]

    def triggers(self) -> list[str]:
        return self._set.patterns

    def detect(self, text: str) -> list[DetectorMatch]:
        return drop_overlaps(self._pattern_hits(readable(text)))

    def _pattern_hits(self, text: str) -> list[DetectorMatch]:
        """Every validated match of the table, overlaps included (text: readable() already)."""
        found: list[DetectorMatch] = []
        for index in self._set.match(text):
            pattern, regex = self._compiled[index]
            for m in regex.finditer(text):
                if pattern.validator is None or pattern.validator(m.group(pattern.group)):
                    start, end = m.span(pattern.group)
                    found.append(DetectorMatch(pattern.entity, start, end, pattern.score, self._why[index]))
        return found


def shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def drop_overlaps(matches: list[DetectorMatch]) -> list[DetectorMatch]:
    """Keep the best of overlapping matches (higher score, then longer), in text order.

    Linear in the number of overlapping pairs, not quadratic in the matches: a sweep in text
    order lists who overlaps whom, then matches are taken best first unless a neighbour was taken.
    Each pattern's matches are disjoint, so the pairs grow with the matches, not their square (a
    text with 100,000 card numbers once cost 10^10 comparisons here).
    """
    by_start = sorted(range(len(matches)), key=lambda i: (matches[i].start, matches[i].end))
    neighbours: list[list[int]] = [[] for _ in matches]
    active: list[int] = []  # matches that end after the current one starts
    for i in by_start:
        start = matches[i].start
        active = [j for j in active if matches[j].end > start]
        for j in active:
            neighbours[i].append(j)
            neighbours[j].append(i)
        active.append(i)
    kept = [False] * len(matches)
    best_first = sorted(
        range(len(matches)), key=lambda i: (-matches[i].score, matches[i].start - matches[i].end, matches[i].start)
    )
    for i in best_first:
        kept[i] = not any(kept[j] for j in neighbours[i])
    return [matches[i] for i in by_start if kept[i]]
