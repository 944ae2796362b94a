"""The `transformers` backend: any Hugging Face sequence-classification checkpoint, offline.

A directory (what `llm-audit models build` writes, or a production model baked into the image)
or a hub id already in the local Hugging Face cache; nothing is downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from udfs.scorers.base import BackendParams, LabelScores, Scorer, ScorerError, by_length, max_pool, models_dir, register
from udfs.scorers.runtime import RUNTIME_HELP, Runtime, load_forward


class TransformersParams(BackendParams):
    model: str = Field(
        description="checkpoint directory, a name under the models cache "
        "(built by `llm-audit models build`), or a hub id in the local HF cache"
    )
    labels: dict[str, str] = Field(default={}, description="model label -> our label; unmapped labels keep their name")
    keep: list[str] | None = Field(default=None, description="only these (our) labels; default all")
    problem: Literal["auto", "multi_label", "single_label"] = Field(
        default="auto", description="sigmoid per label (multi) or softmax (single); auto reads the model config"
    )
    max_length: int = Field(default=256, ge=8, le=4096, description="tokens per chunk; longer texts are chunked")
    batch_size: int = Field(default=32, ge=1)
    runtime: Runtime = Field(default="auto", description=RUNTIME_HELP)
    int8: bool = Field(
        default=True,
        description="in ONNX Runtime, int8 weights, a text at a time (1.1-1.3x here); false: fp32, batched",
    )


def resolve_model(model: str) -> str:
    """A path that exists, else a name under models_dir(), else the id as given (local HF cache)."""
    for candidate in (Path(model).expanduser(), models_dir() / model):
        if candidate.is_dir():
            return str(candidate)
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ScorerError(
            f"model directory {model!r} does not exist; build it with `llm-audit models build` "
            "or point `model` at a Hugging Face checkpoint directory"
        )
    return model


@register
class TransformersScorer(Scorer):
    """AutoTokenizer + AutoModelForSequenceClassification, run as its `runtime` param says (udfs.scorers.runtime)."""

    backend = "transformers"
    Params = TransformersParams

    def open(self, device: str = "cpu") -> None:
        import numpy as np
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # structured, quiet worker logs

        path = resolve_model(self.params.model)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, use_fast=True)
            model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        except OSError as exc:
            raise ScorerError(f"cannot load transformers model {self.params.model!r} offline: {exc}") from None
        config = model.config
        inputs = self._tokenizer.model_input_names
        self._forward = load_forward(
            model.eval(), path, device, self.params.runtime, "logits", self.params.int8, inputs
        )
        self._multi = self.params.problem == "multi_label" or (
            self.params.problem == "auto" and config.problem_type == "multi_label_classification"
        )
        names = [config.id2label[i] for i in range(config.num_labels)]
        self._names = [self.params.labels.get(name, name) for name in names]
        keep = self.params.keep
        self.labels = tuple(n for n in self._names if keep is None or n in keep)
        self._np = np

    def score(self, texts: Sequence[str]) -> list[LabelScores]:
        return by_length(texts, self._score_batch, self.params.batch_size)

    def _score_batch(self, texts: list[str]) -> list[LabelScores]:
        np = self._np
        # Long texts become overlapping chunks at the model's limit (special tokens included);
        # padding is per batch; chunk scores max-pool back to their text.
        limit = min(self.params.max_length, self._tokenizer.model_max_length)
        batch = self._tokenizer(
            texts,
            truncation=True,
            max_length=limit,
            stride=limit // 4,
            padding=True,
            return_overflowing_tokens=True,
            return_tensors="np",
        )
        owners = batch.pop("overflow_to_sample_mapping").tolist()
        logits = self._forward(dict(batch))
        if self._multi:
            probs = 1 / (1 + np.exp(-logits))
        else:
            exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
            probs = exp / exp.sum(axis=-1, keepdims=True)
        keep = set(self.labels)
        per_chunk = [{n: float(v) for n, v in zip(self._names, row) if n in keep} for row in probs.tolist()]
        return max_pool(per_chunk, owners, len(texts))
