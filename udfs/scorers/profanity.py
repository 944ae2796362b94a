"""The profanity SVM of `alt-profanity-check`: TF-IDF + a calibrated linear SVM (scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence

from udfs.scorers.base import LabelScores, Scorer, package_dir, register


@register
class ProfanitySVM(Scorer):
    """One label, `profanity`: fast (microseconds per text) and strong on swearing."""

    backend = "profanity_svm"

    def open(self, device: str = "cpu") -> None:
        import joblib

        folder = package_dir("profanity_check", "alt-profanity-check") / "data"
        # Loaded by path: importing the package would load it a second time at import.
        self._vectorizer = joblib.load(folder / "vectorizer.joblib")
        self._model = joblib.load(folder / "model.joblib")
        self.labels = ("profanity",)

    def score(self, texts: Sequence[str]) -> list[LabelScores]:
        if not texts:
            return []
        probs = self._model.predict_proba(self._vectorizer.transform(list(texts)))[:, 1]
        return [{"profanity": float(p)} for p in probs]
