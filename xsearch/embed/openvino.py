"""The int8 OpenVINO backend: the encoder exported once and statically quantized with NNCF.

:func:`build_openvino_model` exports the encoder (:func:`~xsearch.embed.export.export_onnx`),
reads the graph into OpenVINO and quantizes it with NNCF's transformer scheme: SmoothQuant
moves activation outliers into the weights, then every matrix product runs in int8, weights
with one scale per output channel and activations with scales measured once on a calibration
set (:func:`calibration_inputs`: original texts in 24 languages and scripts shipped with
xsearch, as queries, as passages and as long passages). Layer norms, softmax and GELU stay in
float. Measured against the dynamic int8 ONNX Runtime graph of the same model on a 2-core
AVX-512 VNNI machine, it is faster (no activation quantization at run time, fused int8
kernels) and closer to fp32 (``benchmarks/bench_encoder.py``). The result is cached
(:func:`~xsearch.embed.export.build_cached`) as ``model.xml`` and ``model.bin``.

:class:`OpenVinoRunner` runs it, one inference request per calling thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .export import build_cached, cache_key, export_onnx, installed

FORMAT_VERSION = 1
"""Bumped whenever the export, the quantization or the calibration set changes."""
MODEL_FILE = "model.xml"
WEIGHTS_FILE = "model.bin"
COMPILED_DIR = "compiled"
"""OpenVINO's cache of the model compiled for this CPU, filled on first load."""
SHORT_TOKENS = 32
"""Calibration texts up to this many tokens are also run as queries."""
LONG_GROUP = 3
"""Consecutive calibration texts joined into one long passage."""
WIDTH_STEP = 16
"""A single text is padded to a multiple of this many tokens. OpenVINO prepares each new input
shape once (about 35 ms for a one-line query, against 6 ms at a width it has seen), so a few
widths keep every query at its warm latency. Activation scales are static, so the masked padding
leaves the vectors as they were (ONNX Runtime's dynamic int8 would move them)."""


def available() -> bool:
    """Whether OpenVINO and NNCF are installed."""
    return installed("openvino", "nncf")


def calibration_texts() -> list[str]:
    """The shipped calibration texts: short questions and paragraphs in 24 languages."""
    lines = resources.files(__package__).joinpath("calibration.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def calibration_inputs(tokenizer: Any, texts: Sequence[str], *, query_prefix: str, passage_prefix: str,
                       max_length: int) -> list[dict[str, np.ndarray]]:
    """One model input per calibration sample, as the encoder will see them at run time.

    Every text as a passage, the short ones also as queries, and runs of :data:`LONG_GROUP`
    texts joined as long passages, so that activation ranges are measured over the lengths
    and prefixes that indexing and search produce.
    """
    samples = [passage_prefix + t for t in texts]
    counts = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    samples += [query_prefix + t for t, n in zip(texts, counts) if n <= SHORT_TOKENS]
    samples += [passage_prefix + " ".join(texts[i:i + LONG_GROUP]) for i in range(0, len(texts), LONG_GROUP)]
    out = []
    for text in samples:
        ids = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
        array = np.asarray([ids], dtype=np.int64)
        out.append({"input_ids": array, "attention_mask": np.ones_like(array)})
    return out


def _quantize(source: Path, target: Path, inputs: list[dict[str, np.ndarray]]) -> None:
    # NNCF reports usage to a web service unless it believes it runs under CI; xsearch never
    # talks to the network, so it is told so before its first import.
    os.environ.setdefault("NNCF_CI", "1")
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(source))
    names = {i.get_any_name() for i in model.inputs}  # layer 0 never reads the mask
    dataset = nncf.Dataset([{k: v for k, v in x.items() if k in names} for x in inputs])
    quantized = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(inputs))
    ov.save_model(quantized, str(target), compress_to_fp16=True)


def build_openvino_model(transformer: Any, tokenizer: Any, model_dir: Path, layer: int | None, cache: Path, *,
                         query_prefix: str, passage_prefix: str, max_length: int) -> Path:
    """The int8 OpenVINO model for ``transformer`` (loaded from ``model_dir``), built once into ``cache``."""
    if not available():
        raise ModelError("the openvino backend needs openvino and nncf: pip install openvino nncf")

    texts = calibration_texts()

    def build(tmp: Path) -> None:
        inputs = calibration_inputs(tokenizer, texts, query_prefix=query_prefix,
                                    passage_prefix=passage_prefix, max_length=max_length)
        export_onnx(transformer, layer, tmp / "fp32.onnx")
        _quantize(tmp / "fp32.onnx", tmp / MODEL_FILE, inputs)

    version = f"v{FORMAT_VERSION}|{query_prefix}|{passage_prefix}|{max_length}"
    target = cache / "openvino" / cache_key(model_dir, layer, version)
    manifest = {"format_version": FORMAT_VERSION, "source": str(model_dir), "layer": layer,
                "weights": "int8 per-channel", "activations": "int8, static (calibrated)",
                "calibration_samples": len(texts)}
    built = build_cached(target, (MODEL_FILE, WEIGHTS_FILE), build, manifest, f"the openvino backend for {model_dir}")
    return built / MODEL_FILE


class OpenVinoRunner:
    """Runs a built encoder: ``(input_ids, attention_mask)`` int64 arrays to hidden states."""

    width_step = WIDTH_STEP

    def __init__(self, path: Path, *, threads: int) -> None:
        import openvino as ov

        # CACHE_DIR keeps the compiled blob beside the model: loads take 0.4 s instead of 2 s
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32", "CACHE_DIR": str(path.parent / COMPILED_DIR)}
        try:
            self._model = ov.Core().compile_model(str(path), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError for anything it cannot read
            raise ModelError(f"cannot load {path}: {exc}; delete it to rebuild") from exc
        self._inputs = {i.get_any_name() for i in self._model.inputs}
        self._local = threading.local()

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:  # an inference request is not thread-safe: one per thread
            request = self._local.request = self._model.create_infer_request()
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        request.infer({name: feed[name] for name in self._inputs})
        return request.get_output_tensor(0).data.copy()
