"""The ensemble backend (udfs/scorers/ensemble.py): a weighted mean per label, and gated members."""

from udfs.scorers import ScorersConfig, ScorerSuite
from udfs.scorers.base import LabelScores, Scorer, register


@register
class _Fixed(Scorer):
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


def _config(**raw):
    return ScorersConfig.model_validate(raw)


def test_ensemble_is_a_weighted_mean_per_mapped_label():
    config = _config(toxicity={"backend": "ensemble", "main": ["toxicity", "threat"], "params": {"members": [
        {"backend": "test_fixed", "weight": 3, "params": {"values": {"toxic": 1.0}}, "labels": {"toxic": "toxicity"}},
        {"backend": "test_fixed", "weight": 1, "params": {"values": {"profanity": 0.2, "threat": 0.6}},
         "labels": {"profanity": "toxicity"}},
    ]}})
    suite = ScorerSuite(config, ["toxicity"], "cpu")
    suite.open()
    toxic, clean = suite.score(["toxic text", "kind text"])
    assert toxic.scores == {"toxicity": 0.8, "toxicity.toxicity": 0.8, "toxicity.threat": 0.6}  # (3*1 + 0.2) / 4
    assert clean.scores["toxicity"] == 0.0 and clean.evidence == {}


def test_a_gated_member_runs_only_where_earlier_members_see_signal():
    calls = []

    @register
    class _Counting(_Fixed):
        backend = "test_counting"

        def score(self, texts):
            calls.extend(texts)
            return super().score(texts)

    config = _config(toxicity={"backend": "ensemble", "main": ["toxicity", "threat"], "params": {"members": [
        {"backend": "test_fixed", "params": {"values": {"toxicity": 0.5}}},
        {"backend": "test_counting", "params": {"values": {"threat": 0.9}}, "gate": {"label": "toxicity", "min": 0.1}},
    ]}})
    suite = ScorerSuite(config, ["toxicity"], "cpu")
    suite.open()
    calls.clear()  # open() scored its self-check text
    toxic, clean = suite.score(["toxic text", "kind text"])
    assert calls == ["toxic text"]  # the clean text never reached the gated member
    assert toxic.scores["toxicity.threat"] == 0.9 and "toxicity.threat" not in clean.scores
