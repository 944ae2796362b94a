"""What the scorer backends share (udfs/scorers/base.py): chunking, pooling, batching by length, backends by
name or import path, and the device."""

import pytest

from udfs.scorers.base import ScorerError, by_length, chunk_spans, get_backend, max_pool, pick_device


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


def test_scorer_backends_of_your_own_by_import_path_and_clear_errors():
    assert get_backend("tests.support.poison:RaisesOnMarker").__name__ == "RaisesOnMarker"
    with pytest.raises(ScorerError, match="valid backends: .*ensemble.*package.module:Class"):
        get_backend("nope")
    with pytest.raises(ScorerError, match="cannot be imported"):
        get_backend("no.such.module:Thing")
    with pytest.raises(ScorerError, match="not a subclass"):
        get_backend("json:dumps")
