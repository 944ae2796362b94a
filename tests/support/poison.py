"""A scorer backend that raises on one marker: an event that makes a scorer fail, for the fault-isolation tests.

Used as `backend: tests.support.poison:RaisesOnMarker` in tests/fixtures/scorers/poison.yaml; the job's
workers import it by that name, as they would a user's own backend.
"""

from __future__ import annotations

from collections.abc import Sequence

from udfs.scorers.base import LabelScores, Scorer

MARKER = "POISON-FOR-THE-SCORER"


class RaisesOnMarker(Scorer):
    """toxicity 0.9 for texts containing "hate", 0.1 otherwise; raises on any batch with a text containing MARKER."""

    backend = "tests.support.poison:RaisesOnMarker"

    def open(self, device: str = "cpu") -> None:
        self.labels = ("toxicity",)

    def score(self, texts: Sequence[str]) -> list[LabelScores]:
        if any(MARKER in text for text in texts):
            raise RuntimeError(f"this scorer fails on {MARKER}")
        return [{"toxicity": 0.9 if "hate" in text else 0.1} for text in texts]
