"""The Jigsaw BiLSTM of the `toxic-comment-classifier` package, ported from Keras to torch.

The package ships Keras weights (model.weights.h5) and a pickled Keras tokenizer but needs
TensorFlow to run; we read both without it: h5py for the weights, a restricted unpickler for
the tokenizer's word index. Same architecture, same 100-token pre-padding, so its scores
match the original to 4 decimals. On a CPU it runs in ONNX Runtime (udfs.scorers.runtime).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from udfs.scorers.base import (
    BackendParams,
    LabelScores,
    Scorer,
    by_length,
    chunk_spans,
    max_pool,
    package_dir,
    register,
)
from udfs.scorers.runtime import RUNTIME_HELP, Runtime, cached_graph, onnx_session, use_onnx

LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
MAXLEN, VOCAB, EMBED, UNITS = 100, 20000, 50, 50
_SPLIT = re.compile(r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~\t\n ]+")  # Keras text_to_word_sequence filters


class _KerasTokenizerState:
    """Stands in for keras' Tokenizer class while unpickling: keeps its attributes, runs nothing."""

    def __setstate__(self, state):
        self.__dict__.update(state)


class _TokenizerUnpickler(pickle.Unpickler):
    _ALLOWED = {("collections", "OrderedDict"), ("collections", "defaultdict"), ("builtins", "int")}

    def find_class(self, module, name):
        if module.startswith("keras") and name == "Tokenizer":
            return _KerasTokenizerState
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in the tokenizer pickle")


def load_word_index(path: Path) -> dict[str, int]:
    with path.open("rb") as handle:
        state = _TokenizerUnpickler(handle).load()
    limit = state.num_words or VOCAB
    return {word: i for word, i in state.word_index.items() if i < limit}  # Keras drops ids >= num_words


def build_network():
    import torch
    from torch import nn

    class BiLSTMClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(VOCAB, EMBED)
            self.lstm = nn.LSTM(EMBED, UNITS, batch_first=True, bidirectional=True)
            self.dense = nn.Linear(2 * UNITS, 50)
            self.out = nn.Linear(50, len(LABELS))

        def forward(self, ids):
            hidden, _ = self.lstm(self.embedding(ids))
            pooled = hidden.max(dim=1).values  # GlobalMaxPooling1D
            return torch.sigmoid(self.out(torch.relu(self.dense(pooled))))

    return BiLSTMClassifier()


def load_keras_weights(network, path: Path) -> None:
    """Copy the Keras h5 weights in; Keras LSTM gates (i, f, c, o) are torch's order, kernels transposed."""
    import h5py
    import torch

    def var(f, layer, i):
        return torch.from_numpy(f[f"layers/{layer}/vars/{i}"][()])

    with h5py.File(path, "r") as f, torch.no_grad():
        network.embedding.weight.copy_(var(f, "embedding", 0))
        for suffix, direction in (("", "forward_layer"), ("_reverse", "backward_layer")):
            layer = f"bidirectional/{direction}/cell"
            getattr(network.lstm, f"weight_ih_l0{suffix}").copy_(var(f, layer, 0).T)
            getattr(network.lstm, f"weight_hh_l0{suffix}").copy_(var(f, layer, 1).T)
            getattr(network.lstm, f"bias_ih_l0{suffix}").copy_(var(f, layer, 2))
            getattr(network.lstm, f"bias_hh_l0{suffix}").zero_()  # Keras has one bias per gate
        network.dense.weight.copy_(var(f, "dense", 0).T)
        network.dense.bias.copy_(var(f, "dense", 1))
        network.out.weight.copy_(var(f, "dense_1", 0).T)
        network.out.bias.copy_(var(f, "dense_1", 1))


class JigsawParams(BackendParams):
    runtime: Runtime = Field(default="auto", description=RUNTIME_HELP)


@register
class JigsawBiLSTM(Scorer):
    """Six Jigsaw labels: toxic, severe_toxic, obscene, threat, insult, identity_hate."""

    backend = "jigsaw_bilstm"
    Params = JigsawParams
    batch_size = 64

    def open(self, device: str = "cpu") -> None:
        import torch

        folder = package_dir("toxic_classifier", "toxic-comment-classifier") / "model"
        self._index = load_word_index(folder / "tokenizer.pickle")
        network = build_network()
        load_keras_weights(network, folder / "model.weights.h5")
        network.eval()
        self.labels = LABELS
        if use_onnx(self.params.runtime, device):
            sample = (torch.zeros(2, MAXLEN, dtype=torch.long),)

            def export(out: Path) -> None:
                torch.onnx.export(network, sample, str(out), input_names=["ids"], output_names=["probs"],
                                  dynamic_axes={"ids": {0: "batch"}, "probs": {0: "batch"}}, opset_version=17,
                                  dynamo=False)  # fmt: skip

            session = onnx_session(cached_graph("jigsaw-bilstm", [], [folder / "model.weights.h5"], export, False))
            self._run = lambda rows: session.run(None, {"ids": np.asarray(rows, dtype=np.int64)})[0].tolist()
        else:
            network = network.to(device)

            def run(rows: list[list[int]]) -> list[list[float]]:
                with torch.inference_mode():
                    return network(torch.tensor(rows, device=device)).cpu().tolist()

            self._run = run

    def token_ids(self, text: str) -> list[int]:
        index = self._index
        return [i for i in (index.get(w) for w in _SPLIT.split(text.lower()) if w) if i is not None]

    def score(self, texts: Sequence[str]) -> list[LabelScores]:
        return by_length(texts, self._score_batch, self.batch_size)

    def _score_batch(self, texts: list[str]) -> list[LabelScores]:
        rows, owners = [], []
        for owner, ids in enumerate(map(self.token_ids, texts)):
            for start, end in chunk_spans(len(ids), MAXLEN):
                chunk = ids[start:end]
                rows.append([0] * (MAXLEN - len(chunk)) + chunk)  # Keras pad_sequences: zeros in front
                owners.append(owner)
        probs = self._run(rows) if rows else []
        return max_pool([dict(zip(LABELS, row)) for row in probs], owners, len(texts))
