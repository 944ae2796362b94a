"""How a network runs: PyTorch (fp16 on a GPU), or on a CPU ONNX Runtime.

On this project's 2-core machine the MiniLM classifiers are bound by fp32 matrix products (PyTorch runs
them at the cores' peak), so only fewer bits help: dynamic int8 quantization, one text per run, runs them
1.1-1.3x faster in the suite, with the leave-one-source-out ROC AUCs within 0.01 (docs/benchmarks.md). The Jigsaw BiLSTM and the injection
encoder stay fp32 (int8 moves the BiLSTM's scores by up to 0.025), in ONNX Runtime all the same: the
BiLSTM runs 1.5x faster there, the same to 1e-7. Each graph is exported once, on first open, and cached
beside the other built models, keyed by the weights' hash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from udfs.scorers.base import ScorerError, models_dir

Runtime = Literal["auto", "torch", "onnx"]
RUNTIME_HELP = "auto: ONNX Runtime on a CPU, PyTorch (fp16) on a GPU; or torch, or onnx"
EXPORT_VERSION = "1"  # bump when the export below changes what it writes; part of the cache key

_log = logging.getLogger(__name__)

# A batch's tensors by name (input_ids, attention_mask, ...) -> the model's first output, as float32 numpy.
Forward = Callable[[dict[str, Any]], Any]


def use_onnx(runtime: Runtime, device: str) -> bool:
    """'auto': ONNX Runtime on a CPU, PyTorch on a GPU."""
    if runtime == "onnx" and device.startswith("cuda"):
        raise ScorerError("runtime 'onnx' runs on the CPU; on a GPU use runtime 'auto' or 'torch'")
    return runtime == "onnx" or (runtime == "auto" and not device.startswith("cuda"))


def load_forward(
    model: Any, path: str, device: str, runtime: Runtime, output: str, int8: bool, inputs: list[str]
) -> Forward:
    """The forward pass of `model` (a loaded transformers model, in eval mode, from checkpoint `path`):
    `output` ("logits" or "last_hidden_state") for a batch of its tokenizer's `inputs` (its
    model_input_names); in ONNX Runtime with int8 weights where `int8` (logits only)."""
    import numpy as np
    import torch

    if int8 and output != "logits":
        raise ValueError("int8 runs a text at a time, for logits only")

    if not use_onnx(runtime, device):
        if device.startswith("cuda"):
            model = model.half()
        model = model.to(device)

        def run_torch(batch: dict[str, Any]) -> Any:
            with torch.inference_mode():
                out = model(**{k: torch.as_tensor(v).to(device) for k, v in batch.items()})
            return getattr(out, output).float().cpu().numpy()

        return run_torch
    # Every weights file: a sharded checkpoint changed in its second shard must not reuse the old graph.
    weights = sorted(p for p in Path(path).glob("*") if p.suffix in (".safetensors", ".bin"))
    graph = cached_graph(
        f"{Path(path).name}-{output}", [output, *inputs], weights or [Path(path)],
        lambda out: _export(model, out, output, inputs), int8,
    )  # fmt: skip
    session = onnx_session(graph)
    names = [i.name for i in session.get_inputs()]

    def run_fp32(batch: dict[str, Any]) -> Any:
        return session.run(None, {name: _numpy(batch[name]) for name in names if name in batch})[0]

    def run_int8(batch: dict[str, Any]) -> Any:
        # One text per run: int8 activations are scaled per run, so in a batch a text's score would depend on
        # the texts beside it and on their padding (by up to 0.38 in a logit, measured), and a replay after a
        # restart, batched otherwise, could flip a finding. Unpadded, a text at a time costs little here.
        inputs = {name: _numpy(batch[name]) for name in names if name in batch}
        lengths = inputs["attention_mask"].sum(axis=1)
        return np.concatenate(
            [session.run(None, {k: v[i : i + 1, :n] for k, v in inputs.items()})[0] for i, n in enumerate(lengths)]
        )

    return run_int8 if int8 else run_fp32


def _numpy(value: Any) -> Any:
    import numpy as np

    return np.asarray(value, dtype=np.int64)


def onnx_session(graph: Path) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ScorerError(
            "runtime 'onnx' needs onnxruntime (a project dependency): reinstall with `make install`, "
            "or set the scorer's runtime to 'torch'"
        ) from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The cores are shared with the JVM and the other scorers: idle threads sleep instead of spinning.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: quiet worker logs
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def cached_graph(name: str, key: list[str], weights: list[Path], export: Callable[[Path], None], int8: bool) -> Path:
    """The ONNX graph of a network, exported (by `export`, to the path it is given) and, where `int8`, its
    weights quantized, on first use; cached under the models directory, keyed by `key`, the weights files'
    bytes (a path that is no file: the path), the export code and the library versions."""
    import onnxruntime
    import torch

    digest = hashlib.sha256()
    for part in (*key, str(int8), EXPORT_VERSION, torch.__version__, onnxruntime.__version__):
        digest.update(part.encode())
    for path in weights:
        if not path.is_file():
            digest.update(str(path.resolve()).encode())
            continue
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    cache = models_dir() / "onnx"
    graph = cache / f"{name}-{digest.hexdigest()[:16]}{'.int8' if int8 else ''}.onnx"
    if graph.exists():
        return graph
    _log.info("exporting %s to ONNX (once per model): %s", name, graph)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with warnings.catch_warnings():  # the exporter's notes on tracing a Python model are expected
            warnings.simplefilter("ignore")
            export(fp32)
        if int8:
            _quantize(fp32, Path(tmp) / "int8.onnx")
        # atomic: a TaskManager opening beside this one sees the whole file or none
        os.replace(Path(tmp) / ("int8.onnx" if int8 else "fp32.onnx"), graph)
    return graph


def _export(model: Any, out: Path, output: str, names: list[str]) -> None:
    import torch

    class Named(torch.nn.Module):  # by keyword: positional order differs between model classes
        def __init__(self) -> None:
            super().__init__()
            self.model = model.float().cpu().eval()

        def forward(self, *tensors: Any) -> Any:
            return getattr(self.model(**dict(zip(names, tensors))), output)

    sample = tuple((torch.zeros if name == "token_type_ids" else torch.ones)(2, 8, dtype=torch.long) for name in names)
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    axes[output] = {0: "batch"} if output == "logits" else {0: "batch", 1: "tokens"}
    torch.onnx.export(
        Named(), sample, str(out), input_names=names, output_names=[output], dynamic_axes=axes, opset_version=17,
        dynamo=False,
    )  # fmt: skip


def _quantize(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().disabled, was = True, logging.getLogger().disabled  # it logs advice to the root logger
    try:
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().disabled = was
