"""The ensemble backend (udfs/scorers/ensemble.py): a weighted mean per label, and gated members."""

from tests.support.scorers import FixedScores, scorers_config
from udfs.scorers import ScorerSuite
from udfs.scorers.base import register


def test_ensemble_is_a_weighted_mean_per_mapped_label():
    config = scorers_config(toxicity={"backend": "ensemble", "main": ["toxicity", "threat"], "params": {"members": [
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
    class _Counting(FixedScores):
        backend = "test_counting"

        def score(self, texts):
            calls.extend(texts)
            return super().score(texts)

    config = scorers_config(toxicity={"backend": "ensemble", "main": ["toxicity", "threat"], "params": {"members": [
        {"backend": "test_fixed", "params": {"values": {"toxicity": 0.5}}},
        {"backend": "test_counting", "params": {"values": {"threat": 0.9}}, "gate": {"label": "toxicity", "min": 0.1}},
    ]}})
    suite = ScorerSuite(config, ["toxicity"], "cpu")
    suite.open()
    calls.clear()  # open() scored its self-check text
    toxic, clean = suite.score(["toxic text", "kind text"])
    assert calls == ["toxic text"]  # the clean text never reached the gated member
    assert toxic.scores["toxicity.threat"] == 0.9 and "toxicity.threat" not in clean.scores
