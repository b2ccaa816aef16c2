"""The int8 ONNX Runtime backend: the encoder exported once, fused and quantized.

:func:`build` exports the encoder (:func:`~xsearch.embed.export.export_onnx`),
applies ONNX Runtime's BERT fusion (attention, layer norm and GELU kernels) and quantizes the
weights of every matrix product to int8 with one scale per output channel (per-tensor scales
cost 1–4 Tatoeba points; per-channel ones keep the fp32 quality). Activations are quantized
dynamically at run time. The result is cached (:func:`~xsearch.embed.export.build_cached`) in
:func:`target`.

:class:`Runner` runs it; an ``InferenceSession`` may be called from several threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelError
from .export import build_cached, cache_key, export_onnx, installed

if TYPE_CHECKING:
    from .backends import EncoderInfo

FORMAT_VERSION = 1
"""Bumped whenever the export or the quantization changes, so old caches are rebuilt."""
MODEL_FILE = "model.onnx"
FILES = (MODEL_FILE,)
RUNTIME = "onnxruntime"


def available() -> bool:
    """Whether ONNX Runtime and the ONNX package are installed."""
    return installed("onnxruntime", "onnx")


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


def target(cache: Path, model_dir: Path, info: EncoderInfo) -> Path:
    """The folder the int8 graph of the model in ``model_dir`` is built into, for ``info``'s layer."""
    return cache / "onnx" / cache_key(model_dir, info.layer, f"v{FORMAT_VERSION}")


def build(transformer: Any, tokenizer: Any, model_dir: Path, info: EncoderInfo, folder: Path) -> None:
    """Build the int8 graph of ``transformer`` (loaded from ``model_dir``) into ``folder`` once
    (``tokenizer`` is not needed: the quantization is dynamic)."""
    if not available():
        raise ModelError("the onnx backend needs onnxruntime and onnx: pip install onnxruntime onnx")

    def run(tmp: Path) -> None:
        export_onnx(transformer, info.layer, tmp / "fp32.onnx")
        _fuse(tmp / "fp32.onnx", tmp / "fused.onnx", transformer.config)
        _quantize(tmp / "fused.onnx", tmp / MODEL_FILE)

    manifest = {"format_version": FORMAT_VERSION, "source": str(model_dir), "layer": info.layer,
                "weights": "int8 per-channel", "activations": "int8, dynamic"}
    build_cached(folder, FILES, run, manifest, f"the onnx backend for {model_dir}")


class Runner:
    """Runs the graph built into ``folder``: ``(input_ids, attention_mask)`` int64 arrays to hidden states."""

    def __init__(self, folder: Path, *, threads: int) -> None:
        import onnxruntime as ort

        path = folder / MODEL_FILE

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
