"""Fine-tuning (udfs/scorers/training.py): the build path of `llm-audit models build`, on a tiny set."""

from udfs.scorers.hf import TransformersParams, TransformersScorer


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
