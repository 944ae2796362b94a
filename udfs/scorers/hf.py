"""The `transformers` backend: any Hugging Face sequence-classification checkpoint, offline.

A directory (what `llm-audit models build` writes, or a production model baked into the image)
or a hub id already in the local Hugging Face cache; nothing is downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from udfs.scorers.base import BackendParams, LabelScores, Scorer, ScorerError, by_length, chunk_spans, max_pool, \
    models_dir, register


class TransformersParams(BackendParams):
    model: str = Field(description="checkpoint directory, a name under the models cache "
                                   "(built by `llm-audit models build`), or a hub id in the local HF cache")
    labels: dict[str, str] = Field(default={}, description="model label -> our label; unmapped labels keep their name")
    keep: list[str] | None = Field(default=None, description="only these (our) labels; default all")
    problem: Literal["auto", "multi_label", "single_label"] = Field(
        default="auto", description="sigmoid per label (multi) or softmax (single); auto reads the model config")
    max_length: int = Field(default=256, ge=8, le=4096, description="tokens per chunk; longer texts are chunked")
    batch_size: int = Field(default=32, ge=1)


def resolve_model(model: str) -> str:
    """A path that exists, else a name under models_dir(), else the id as given (local HF cache)."""
    for candidate in (Path(model).expanduser(), models_dir() / model):
        if candidate.is_dir():
            return str(candidate)
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ScorerError(f"model directory {model!r} does not exist; build it with `llm-audit models build` "
                          "or point `model` at a Hugging Face checkpoint directory")
    return model


@register
class TransformersScorer(Scorer):
    """AutoTokenizer + AutoModelForSequenceClassification; fp16 under inference mode on CUDA."""

    backend = "transformers"
    Params = TransformersParams

    def open(self, device: str = "cpu") -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model(self.params.model)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, use_fast=True)
            model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        except OSError as exc:
            raise ScorerError(f"cannot load transformers model {self.params.model!r} offline: {exc}") from None
        self._device = device
        if device.startswith("cuda"):
            model = model.half()
        self._model = model.to(device).eval()
        config = model.config
        self._multi = (self.params.problem == "multi_label" or
                       (self.params.problem == "auto" and config.problem_type == "multi_label_classification"))
        names = [config.id2label[i] for i in range(config.num_labels)]
        self._names = [self.params.labels.get(name, name) for name in names]
        keep = self.params.keep
        self.labels = tuple(n for n in self._names if keep is None or n in keep)
        self._torch = torch

    def score(self, texts: Sequence[str]) -> list[LabelScores]:
        return by_length(texts, self._score_batch, self.params.batch_size)

    def _score_batch(self, texts: list[str]) -> list[LabelScores]:
        torch = self._torch
        # Chunk each text to the model's limit (special tokens included); scores max-pool back.
        budget = min(self.params.max_length, self._tokenizer.model_max_length) - 2
        ids = self._tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
        chunks, owners = [], []
        for owner, tokens in enumerate(ids):
            for start, end in chunk_spans(len(tokens), budget):
                chunks.append(self._tokenizer.build_inputs_with_special_tokens(tokens[start:end]))
                owners.append(owner)
        batch = self._tokenizer.pad({"input_ids": chunks}, padding=True, return_tensors="pt").to(self._device)
        with torch.inference_mode():
            logits = self._model(**batch).logits.float()
        probs = torch.sigmoid(logits) if self._multi else torch.softmax(logits, dim=-1)
        keep = set(self.labels)
        per_chunk = [{n: float(v) for n, v in zip(self._names, row) if n in keep} for row in probs.cpu().tolist()]
        return max_pool(per_chunk, owners, len(texts))
