"""The int8 ONNX Runtime backend: the same encoder, exported once, fused and quantized.

:func:`build_onnx_model` turns a loaded transformers encoder into an ONNX graph that maps
``input_ids`` and ``attention_mask`` to the hidden states of one layer, applies ONNX
Runtime's BERT fusion (attention, layer norm and GELU kernels) and quantizes the weights of
every matrix product to int8 with one scale per output channel (per-tensor scales cost 1–4
Tatoeba points; per-channel ones keep the fp32 quality). Activations are quantized
dynamically at run time. The result is cached beside the models xsearch builds
(:func:`~xsearch.embed.registry.cache_dir`), keyed by the source weights and the layer, and
written atomically: a temporary directory renamed into place.

:class:`OnnxRunner` runs it; an ``InferenceSession`` may be called from several threads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

FORMAT_VERSION = 1
"""Bumped whenever the export or the quantization changes, so old caches are rebuilt."""
MODEL_FILE = "model.onnx"
MANIFEST = "xsearch-onnx.json"
OPSET = 17


def available() -> bool:
    """Whether ONNX Runtime and the ONNX package are installed."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def cache_key(model_dir: Path, layer: int | None) -> str:
    """A name for the exported model: the source weights' identity and the layer."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}|{model_dir.resolve()}|layer={layer}".encode())
    for file in sorted(model_dir.glob("**/*")):
        if file.is_file() and file.suffix in (".safetensors", ".bin", ".json"):
            stat = file.stat()
            digest.update(f"|{file.relative_to(model_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _layer_module(transformer: Any, layer: int | None) -> Any:
    """A torch module around ``transformer`` that returns the hidden states of ``layer``."""
    import torch

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                   output_hidden_states=layer is not None, return_dict=True)
            return out.last_hidden_state if layer is None else out.hidden_states[layer]

    return Hidden().eval()


def _export(transformer: Any, layer: int | None, path: Path) -> None:
    import torch

    config = transformer.config
    previous = getattr(config, "_attn_implementation", None)
    try:
        config._attn_implementation = "eager"  # SDPA does not export to a fusable graph
        module = _layer_module(transformer, layer)
        ids = torch.tensor([[0, 100, 200, 300, 2], [0, 400, 2, 1, 1]], dtype=torch.long)
        mask = (ids != 1).long()
        with torch.inference_mode():
            torch.onnx.export(module, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                              output_names=["hidden"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                            "attention_mask": {0: "batch", 1: "seq"},
                                            "hidden": {0: "batch", 1: "seq"}})
    finally:
        if previous is not None:
            config._attn_implementation = previous


def _fuse(source: Path, target: Path, config: Any) -> None:
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(str(source), model_type="bert", num_heads=int(config.num_attention_heads),
                                     hidden_size=int(config.hidden_size), opt_level=1, use_gpu=False)
    fused.save_model_to_file(str(target))


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def build_onnx_model(transformer: Any, model_dir: Path, layer: int | None, cache: Path) -> Path:
    """The int8 ONNX file for ``transformer`` (loaded from ``model_dir``), built once into ``cache``."""
    if not available():
        raise ModelError("the onnx backend needs onnxruntime and onnx: pip install onnxruntime onnx")
    target = cache / "onnx" / cache_key(model_dir, layer)
    if (target / MANIFEST).is_file() and (target / MODEL_FILE).is_file():
        return target / MODEL_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with _quiet():
            _export(transformer, layer, tmp / "fp32.onnx")
            _fuse(tmp / "fp32.onnx", tmp / "fused.onnx", transformer.config)
            _quantize(tmp / "fused.onnx", tmp / MODEL_FILE)
        for name in ("fp32.onnx", "fused.onnx"):
            (tmp / name).unlink()
        for extra in tmp.glob("*.data"):
            extra.unlink()
        (tmp / MANIFEST).write_text(json.dumps({"format_version": FORMAT_VERSION, "source": str(model_dir),
                                                "layer": layer, "weights": "int8 per-channel"}), encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / MODEL_FILE).is_file():  # another process may have finished first
                raise
    except Exception as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"cannot build the onnx backend for {model_dir}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / MODEL_FILE


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's tracer warnings and the quantizer's advice are not for the user."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


class OnnxRunner:
    """Runs an exported encoder: ``(input_ids, attention_mask)`` int64 arrays to hidden states."""

    def __init__(self, path: Path, *, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle workers sleep instead of spinning: on a 2-core machine a spinning pool takes the
        # cores from what runs next (the rerank after a query, chunking during ingest). Measured:
        # whole searches as fast or faster, batch throughput unchanged.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own exception types
            raise ModelError(f"cannot load {path}: {exc}; delete it to rebuild") from exc

        # A graph that never reads an input (layer 0 ignores the mask) has it pruned away.
        self._inputs = {i.name for i in self._session.get_inputs()}

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self._session.run(["hidden"], {name: feed[name] for name in self._inputs})[0]
