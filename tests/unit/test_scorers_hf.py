"""The Hugging Face transformers backend (udfs/scorers/hf.py): a checkpoint directory, offline."""

import pytest

from udfs.scorers.base import ScorerError
from udfs.scorers.hf import TransformersParams, TransformersScorer, resolve_model


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
