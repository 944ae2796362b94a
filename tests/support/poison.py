"""A scorer backend that raises on one marker: an event that makes a scorer fail, for the fault-isolation tests.

A member of the packaged toxicity ensemble in tests/fixtures/scorers/poison.yaml
(`backend: tests.support.poison:RaisesOnMarker`); the job's workers import it by that name, as they
would a user's own backend. Its label `marker` is always 0: the ensemble's toxicity is the packaged one.
"""

from __future__ import annotations

from collections.abc import Sequence

from udfs.scorers.base import LabelScores, Scorer

MARKER = "POISON-FOR-THE-SCORER"


class RaisesOnMarker(Scorer):
    backend = "tests.support.poison:RaisesOnMarker"

    def open(self, device: str = "cpu") -> None:
        self.labels = ("marker",)

    def score(self, texts: Sequence[str]) -> list[LabelScores]:
        if any(MARKER in text for text in texts):
            raise RuntimeError(f"this scorer fails on {MARKER}")
        return [{"marker": 0.0} for _ in texts]


class AlwaysRaises(Scorer):
    """A broken scorer: fails on every text, so the suite must refuse to start with it."""

    backend = "tests.support.poison:AlwaysRaises"

    def score(self, texts: Sequence[str]) -> list[LabelScores]:
        raise RuntimeError("broken on every input")
