"""The scorer suite and its config (udfs/scorers/suite.py): sections, bias with its counterfactual, the text
bound, and a scorer that fails on one event or on every text."""

import os

import pytest

from tests.support.poison import MARKER
from tests.support.scorers import scorers_config
from udfs.events import AuditEvent
from udfs.scorers import BACKENDS, ScorerError, ScorersConfig, ScorerSuite, load_config


def test_bias_is_scored_only_for_group_mentions_with_a_counterfactual_gap():
    config = scorers_config(toxicity={"backend": "test_fixed", "main": ["toxic"], "params": {"values": {"toxic": 0.9}}},
                     bias={"backend": "test_fixed", "main": ["bias"], "params": {"values": {"bias": 0.7}}})
    suite = ScorerSuite(config, ["bias"], "cpu")
    suite.open()
    women, plain = suite.score(["The build is green. Women are bad at maths.", "The build is green."])
    assert plain.scores == {} and plain.evidence == {}
    assert women.evidence == {"groups": ["women"], "bias_span": [20, 43]} and women.scores["bias"] == 0.7
    # The fixed toxicity backend scores "women" 0.9 and the swapped "Men are ..." 0: the gap is 0.9.
    assert women.scores["bias.counterfactual_gap"] == 0.9
    assert "toxicity" not in women.scores  # toxicity ran for the counterfactual only


def test_config_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "scorers.yaml"
    bad.write_text("bias:\n  backend: transformers\n  params: {model: x}\n  main: [bias]\n")
    with pytest.raises(ScorerError, match=r"scorers.yaml: .*counterfactual needs a toxicity scorer"):
        load_config(bad)
    bad.write_text("toxicity:\n  backend: bert\n  main: [toxicity]\n")
    with pytest.raises(ScorerError, match="unknown scorer backend 'bert'; valid backends"):
        load_config(bad)
    bad.write_text("toxicity:\n  backend: profanity_svm\n  main: [profanity]\n  extra: 1\n")
    with pytest.raises(ScorerError, match="toxicity.extra: Extra inputs are not permitted"):
        load_config(bad)


def test_enabled_scorers_must_be_configured():
    config = scorers_config(toxicity={"backend": "profanity_svm", "main": ["profanity"]})
    with pytest.raises(ScorerError, match=r"scorers \['bias'\] are enabled but not configured"):
        ScorerSuite(config, ["toxicity", "bias"])
    with pytest.raises(ScorerError, match="unknown scorers"):
        ScorerSuite(config, ["sentiment"])


def test_a_registered_scorer_is_a_config_section_and_score_rules_read_the_scoring_ones():
    from udfs.rules import SCORERS as SCORED
    from udfs.scorers.suite import MEASURED, SCORERS, Member

    assert set(ScorersConfig.model_fields) == {"max_chars", *SCORERS}
    assert SCORED == tuple(name for name, member in SCORERS.items() if member.scores) == ("toxicity", "bias", "injection")
    assert MEASURED == ("toxicity", "bias")  # the window metrics, anomalies and archive keep these
    for name, member in SCORERS.items():
        assert issubclass(member, Member) and ScorersConfig.model_fields[name].annotation == member.Spec | None
    with pytest.raises(ValueError, match="bias.counterfactual needs a toxicity scorer"):
        ScorersConfig.model_validate({"bias": load_config().section("bias").model_dump()})


def test_default_config_is_valid_and_uses_only_registered_backends():
    config = load_config()
    assert config.toxicity.backend in BACKENDS and config.bias.backend in BACKENDS
    assert os.path.basename(str(config.bias.params["model"])) == "bias-minilm"


def test_text_past_max_chars_is_not_scored_and_the_evidence_says_so():
    config = scorers_config(max_chars=100, toxicity={"backend": "test_fixed", "main": ["toxic"], "granularity": "sentence",
                                              "params": {"values": {"toxic": 0.9}}})
    suite = ScorerSuite(config, ["toxicity"], "cpu")
    suite.open()
    event = AuditEvent(event_id="e", timestamp=1_800_000_000_000, tenant="t", model="m",
                       prompt="Kind words. " * 10 + "A toxic sentence.", response="toxic reply")
    [(scores, evidence)] = suite.score_events([event])
    assert scores["prompt"]["toxicity"] == 0.0 and evidence["prompt"]["not_scored"] == [100, 137]  # toxic past 100
    assert scores["response"]["toxicity"] == 0.9 and "not_scored" not in evidence["response"]


@pytest.mark.parametrize("english_only", [True, False])
def test_sentences_not_in_english_are_not_scored_and_counted_as_evidence(english_only):
    config = scorers_config(toxicity={"backend": "test_fixed", "main": ["toxic"], "granularity": "sentence",
                                      "english_only": english_only, "params": {"values": {"toxic": 0.9}}})
    suite = ScorerSuite(config, ["toxicity"], "cpu")
    suite.open()
    text = "Die toxic Lieferung verzögert sich um zwei Tage. Fine. This is not toxic at all, you see."
    german, mixed, short = suite.score([text[:48], text, "toxic!"])
    if english_only:
        assert german.scores == {} and german.evidence == {"toxicity_not_english": 1}  # not judged, and it says so
        assert mixed.evidence == {"toxicity_not_english": 1, "toxicity_span": [55, 89]} and mixed.scores["toxicity"] == 0.9
    else:
        assert german.scores["toxicity"] == 0.9 and mixed.evidence == {"toxicity_span": [0, 48]}
    assert short.scores["toxicity"] == 0.9  # a short line is read either way


def event(**fields) -> AuditEvent:
    return AuditEvent(**{"event_id": "e", "timestamp": 1_800_000_000_000, "tenant": "acme", "model": "m", **fields})


def test_a_scorer_that_raises_on_one_event_costs_that_event_its_scores_only():
    suites = [ScorerSuite(load_config(f"tests/fixtures/scorers/{name}.yaml"), ["toxicity"], "cpu")
              for name in ("poison", "packaged")]
    for suite in suites:
        suite.open()
    poisoned, packaged = suites
    events = [event(event_id=str(i), prompt=p) for i, p in enumerate(["hi", f"I hate {MARKER}", "I hate you"])]
    with pytest.raises(RuntimeError):
        poisoned.score_events(events)  # the batch fails as a whole
    (s0, _, f0), (s1, _, [failure]), (s2, _, f2) = poisoned.score_events_isolated(events)
    expected = packaged.score_events([events[0], events[2]])
    assert [s0["prompt"]["toxicity"], s2["prompt"]["toxicity"]] == [s["prompt"]["toxicity"] for s, _ in expected]
    assert f0 == f2 == [] and s1 == {"prompt": {}}
    assert (failure.stage, failure.where, failure.error) == ("score", "toxicity", "RuntimeError")


def test_a_scorer_that_fails_on_every_text_fails_at_open(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("toxicity: {backend: 'tests.support.poison:AlwaysRaises', main: [toxicity]}\n")
    suite = ScorerSuite(load_config(config), ["toxicity"], "cpu")
    with pytest.raises(ScorerError, match="scorer toxicity fails on an ordinary text, so on every event: broken"):
        suite.open()
