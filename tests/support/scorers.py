"""What the scorer tests share: a test backend (`test_fixed`), registered once on import, and configs."""

from udfs.scorers import ScorersConfig
from udfs.scorers.base import LabelScores, Scorer, register


@register
class FixedScores(Scorer):
    """Test backend: a fixed score per label, from its params."""

    backend = "test_fixed"

    class Params(Scorer.Params):
        values: dict[str, float]

    def open(self, device="cpu"):
        self.labels = tuple(self.params.values)

    def score(self, texts) -> list[LabelScores]:
        # "toxic" texts score their configured values; others 0.
        return [{k: (v if "toxic" in t or "women" in t.lower() else 0.0) for k, v in self.params.values.items()}
                for t in texts]


def scorers_config(**raw) -> ScorersConfig:
    """A scorers config from its sections, validated."""
    return ScorersConfig.model_validate(raw)
