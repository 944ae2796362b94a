"""The scorers the job runs: toxicity and bias, configured in YAML, scored together per batch.

Scores come out flat per text, the way score rules read them: `toxicity` (the main score: the
highest of its `main` labels) and `toxicity.<label>` for each label; `bias` and
`bias.counterfactual_gap` only for texts that mention a social group, whose terms are the
evidence (`groups`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from udfs.scorers.base import LabelScores, Scorer, ScorerError, get_backend, pick_device
from udfs.scorers.groups import GroupLexicon, default_lexicon

SCORER_NAMES = ("toxicity", "bias")
DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScorerSpec(_Strict):
    backend: str
    params: dict = {}
    main: list[str] = Field(min_length=1, description="labels whose maximum is the scorer's main score")

    @model_validator(mode="after")
    def _backend_valid(self) -> ScorerSpec:
        self.build()
        return self

    def build(self) -> Scorer:
        cls = get_backend(self.backend)
        try:
            return cls(cls.Params.model_validate(self.params))
        except ValidationError as exc:
            raise ValueError(f"backend {self.backend!r} params: {exc}") from None


class BiasSpec(ScorerSpec):
    counterfactual: bool = Field(default=True, description="also score toxicity with the group swapped")


class ScorersConfig(_Strict):
    toxicity: ScorerSpec | None = None
    bias: BiasSpec | None = None

    @model_validator(mode="after")
    def _counterfactual_needs_toxicity(self) -> ScorersConfig:
        if self.bias and self.bias.counterfactual and not self.toxicity:
            raise ValueError("bias.counterfactual needs a toxicity scorer; configure one or set counterfactual: false")
        return self


def load_config(path: Path = DEFAULT_CONFIG) -> ScorersConfig:
    """The scorers YAML, validated; errors name the file and the field."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScorerError(f"{path}: cannot read scorers config: {exc}") from None
    try:
        return ScorersConfig.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        raise ScorerError(f"{path}: {problems}") from None


@dataclass
class TextScores:
    scores: LabelScores = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)  # social-group terms the text mentions


class ScorerSuite:
    """Runs the enabled scorers over a batch of texts: one forward pass per model per batch."""

    def __init__(self, config: ScorersConfig, enabled: Sequence[str] = SCORER_NAMES, device: str = "auto"):
        unknown = [name for name in enabled if name not in SCORER_NAMES]
        if unknown:
            raise ScorerError(f"unknown scorers {unknown}; valid: {', '.join(SCORER_NAMES)}")
        missing = [name for name in enabled if getattr(config, name) is None]
        if missing:
            raise ScorerError(f"scorers {missing} are enabled but not configured in the scorers config")
        self.config, self.enabled, self.requested_device = config, tuple(enabled), device
        self._toxicity: Scorer | None = None
        self._bias: Scorer | None = None
        self._lexicon: GroupLexicon | None = None

    def open(self) -> None:
        self.device = pick_device(self.requested_device)
        bias = self.config.bias if "bias" in self.enabled else None
        needs_toxicity = "toxicity" in self.enabled or (bias is not None and bias.counterfactual)
        if needs_toxicity:
            self._toxicity = self.config.toxicity.build()
            self._toxicity.open(self.device)
        if bias is not None:
            self._bias = bias.build()
            self._bias.open(self.device)
            self._lexicon = default_lexicon()

    def score(self, texts: Sequence[str]) -> list[TextScores]:
        out = [TextScores() for _ in texts]
        toxicity = self._toxicity.score(texts) if self._toxicity else None
        if "toxicity" in self.enabled:
            for result, scores in zip(out, toxicity):
                result.scores.update(_named("toxicity", scores, self.config.toxicity.main))
        if self._bias is not None:
            self._score_bias(texts, out, toxicity)
        return out

    def score_events(self, events: Sequence) -> list[tuple[dict, dict]]:
        """(scores, groups) per audit event, each keyed by field; all their texts in one batch."""
        texts, where = [], []
        for i, event in enumerate(events):
            for field_name, text in event.texts():
                if text:
                    texts.append(text)
                    where.append((i, field_name))
        out: list[tuple[dict, dict]] = [({}, {}) for _ in events]
        for (i, field_name), result in zip(where, self.score(texts)):
            out[i][0][field_name] = result.scores
            if result.groups:
                out[i][1][field_name] = result.groups
        return out

    def _score_bias(self, texts: Sequence[str], out: list[TextScores], toxicity: list[LabelScores] | None) -> None:
        mentions = [self._lexicon.mentions(text) for text in texts]
        idx = [i for i, found in enumerate(mentions) if found]
        if not idx:
            return
        spec = self.config.bias
        for i, scores in zip(idx, self._bias.score([texts[i] for i in idx])):
            out[i].scores.update(_named("bias", scores, spec.main))
            out[i].groups = list(dict.fromkeys(m.term for m in mentions[i]))
        if spec.counterfactual:
            main = self.config.toxicity.main
            swapped = self._toxicity.score([self._lexicon.swap(texts[i], mentions[i]) for i in idx])
            for i, scores in zip(idx, swapped):
                gap = max(scores.get(label, 0.0) for label in main) - max(toxicity[i].get(label, 0.0) for label in main)
                out[i].scores["bias.counterfactual_gap"] = round(abs(gap), 4)


def _named(name: str, scores: LabelScores, main: list[str]) -> LabelScores:
    named = {f"{name}.{label}": round(value, 4) for label, value in scores.items()}
    named[name] = round(max(scores.get(label, 0.0) for label in main), 4)
    return named

