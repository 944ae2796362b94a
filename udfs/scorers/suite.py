"""The models the job runs: toxicity, bias and named entities, configured in YAML, run together per batch.

Scores come out flat per text, the way score rules read them: `toxicity` (the main score: the
highest of its `main` labels) and `toxicity.<label>` for each label; `bias` and
`bias.counterfactual_gap` only for texts with a sentence that names a social group: the highest
over those sentences, with the group terms and the most biased sentence as evidence. Named
entities have no score: their spans are evidence (`entities`), which `entities` rules read.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from udfs.scorers.base import LabelScores, Scorer, ScorerError, build_scorer, pick_device
from udfs.scorers.entities import EntityRecognizer, EntitySpec
from udfs.scorers.groups import GroupLexicon, Mention, default_lexicon

# PyFlink opens the subtasks of one Python worker in threads; transformers' lazy imports are not
# thread-safe (seen at parallelism 2: "cannot import name 'AutoModelForSequenceClassification'").
_OPEN_LOCK = threading.Lock()

SCORER_NAMES = ("toxicity", "bias", "entities")
DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
_SENTENCE = re.compile(r"[^\s.!?;][^.!?;\n]*[.!?;]*")  # sentences and clauses, without leading space


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScorerSpec(_Strict):
    backend: str
    params: dict = {}
    main: list[str] = Field(min_length=1, description="labels whose maximum is the scorer's main score")
    granularity: Literal["text", "sentence"] = Field(
        default="text",
        description="score whole texts, or each sentence (max-pooled: one insult in a long "
        "response is not diluted, and its sentence is the evidence)",
    )

    @model_validator(mode="after")
    def _backend_valid(self) -> ScorerSpec:
        self.build()
        return self

    def build(self) -> Scorer:
        return build_scorer(self.backend, self.params)


class BiasSpec(ScorerSpec):
    counterfactual: bool = Field(default=True, description="also score toxicity with the group swapped")


class ScorersConfig(_Strict):
    toxicity: ScorerSpec | None = None
    bias: BiasSpec | None = None
    entities: EntitySpec | None = None
    max_chars: int = Field(
        default=16_384,
        ge=100,
        description="characters of each text scored; the rest is not scored, and its evidence says so (`not_scored`)",
    )

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
    # Why: {"groups": group terms named, "bias_span"/"toxicity_span": [start, end] of the top sentence,
    # "entities": [[start, end, entity, model label], ...]}.
    evidence: dict = field(default_factory=dict)


class ScorerSuite:
    """Runs the enabled scorers over a batch of texts: one forward pass per model per batch."""

    def __init__(self, config: ScorersConfig, enabled: Sequence[str] | None = None, device: str = "auto"):
        if enabled is None:  # every scorer the config configures
            enabled = [name for name in SCORER_NAMES if getattr(config, name) is not None]
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
        self._entities: EntityRecognizer | None = None

    def open(self) -> None:
        with _OPEN_LOCK:
            self._open()

    def _open(self) -> None:
        self.device = pick_device(self.requested_device)
        bias = self.config.bias if "bias" in self.enabled else None
        needs_toxicity = "toxicity" in self.enabled or (bias is not None and bias.counterfactual)
        if needs_toxicity and self.config.toxicity is not None:  # configured: checked in __init__ and the config
            self._toxicity = self.config.toxicity.build()
            self._toxicity.open(self.device)
        if bias is not None:
            self._bias = bias.build()
            self._bias.open(self.device)
            self._lexicon = default_lexicon()
        if "entities" in self.enabled and self.config.entities is not None:
            self._entities = EntityRecognizer(self.config.entities)
            self._entities.open()  # a CPU pipeline: spaCy's small models are built for it

    @property
    def entities_model(self) -> str | None:
        """The NER pipeline and its version, once open."""
        return self._entities.model if self._entities is not None else None

    def score(self, texts: Sequence[str]) -> list[TextScores]:
        out = [TextScores() for _ in texts]
        spec, toxicity = self.config.toxicity, self._toxicity
        if "toxicity" in self.enabled and spec is not None and toxicity is not None:  # enabled: configured and open
            if spec.granularity == "text":
                for result, scores in zip(out, toxicity.score(texts)):
                    result.scores.update(_named("toxicity", scores, spec.main))
            else:
                spans = [
                    (i, m.start(), m.end())
                    for i, text in enumerate(texts)
                    for m in _SENTENCE.finditer(text)
                    if m.group().strip()
                ]
                per_sentence = toxicity.score([texts[i][a:b] for i, a, b in spans])
                for (i, a, b), sentence in zip(spans, per_sentence):
                    named = _named("toxicity", sentence, spec.main)
                    result = out[i]
                    if named["toxicity"] > result.scores.get("toxicity", -1.0):
                        result.evidence["toxicity_span"] = [a, b]  # the most toxic sentence
                    for label, value in named.items():  # max-pool every label over the sentences
                        result.scores[label] = max(value, result.scores.get(label, 0.0))
        if self._bias is not None:
            self._score_bias(texts, out)
        if self._entities is not None:
            for result, entities in zip(out, self._entities.find(texts)):
                if entities:
                    result.evidence["entities"] = [list(span) for span in entities]
        return out

    def score_events(self, events: Sequence) -> list[tuple[dict, dict]]:
        """(scores, evidence) per audit event, each keyed by field; all their texts in one batch."""
        texts, where = [], []
        for i, event in enumerate(events):
            for field_name, text in event.texts():
                if text:
                    texts.append(text[: self.config.max_chars])  # a 2 MB prompt must not hold up the batch
                    where.append((i, field_name, len(text)))
        out: list[tuple[dict, dict]] = [({}, {}) for _ in events]
        for (i, field_name, length), result in zip(where, self.score(texts)):
            out[i][0][field_name] = result.scores
            if length > self.config.max_chars:
                result.evidence["not_scored"] = [self.config.max_chars, length]
            if result.evidence:
                out[i][1][field_name] = result.evidence
        return out

    def _score_bias(self, texts: Sequence[str], out: list[TextScores]) -> None:
        # The classifier learnt from single sentences and comments: score each sentence that
        # names a group, so a stereotype is not diluted by the rest of a long response.
        spec, model, lexicon = self.config.bias, self._bias, self._lexicon
        if spec is None or model is None or lexicon is None:  # bias is not enabled
            return
        sentences: list[tuple[int, int, int, list[Mention]]] = []  # (text, start, end, mentions)
        for i, text in enumerate(texts):
            for m in _SENTENCE.finditer(text):
                found = lexicon.mentions(m.group())
                if found:
                    sentences.append((i, m.start(), m.end(), found))
        if not sentences:
            return
        plain = [texts[i][a:b] for i, a, b, _ in sentences]
        bias = [_named("bias", scores, spec.main) for scores in model.score(plain)]
        gaps = [0.0] * len(sentences)
        toxicity_spec, toxicity = self.config.toxicity, self._toxicity
        if spec.counterfactual and toxicity_spec is not None and toxicity is not None:  # the config requires both
            main = toxicity_spec.main
            swapped = [lexicon.swap(text, found) for text, (_, _, _, found) in zip(plain, sentences)]
            both = toxicity.score(plain + swapped)
            gaps = [abs(_top(both[k], main) - _top(both[k + len(plain)], main)) for k in range(len(plain))]
        for (i, a, b, found), scores, gap in zip(sentences, bias, gaps):
            result = out[i]
            if scores["bias"] > result.scores.get("bias", -1.0):
                result.scores.update(scores)
                result.evidence["bias_span"] = [a, b]  # the most biased sentence
            result.scores["bias.counterfactual_gap"] = round(
                max(gap, result.scores.get("bias.counterfactual_gap", 0)), 4
            )
            groups = result.evidence.setdefault("groups", [])
            groups.extend(term for term in dict.fromkeys(m.term for m in found) if term not in groups)


def _top(scores: LabelScores, labels: list[str]) -> float:
    return max(scores.get(label, 0.0) for label in labels)


def _named(name: str, scores: LabelScores, main: list[str]) -> LabelScores:
    named = {f"{name}.{label}": round(value, 4) for label, value in scores.items()}
    named[name] = round(max(scores.get(label, 0.0) for label in main), 4)
    return named
