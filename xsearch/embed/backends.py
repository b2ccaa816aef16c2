"""What the encoder's loaders share: the forward-pass runners, the compiled backends, and what
identifies a model's vectors.

:mod:`~xsearch.embed.prebuilt` (a model already built, without torch) and
:mod:`~xsearch.embed.transformer` (through sentence-transformers) each return a
:class:`LoadedModel`; :meth:`xsearch.embed.encoder.Encoder.load` tries them in turn.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..config import BACKENDS, POOLINGS
from ..errors import ModelError

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A model's forward pass: ``(input_ids, attention_mask)`` int64 arrays to float32 hidden states.
A runner may have a ``width_step``: it wants one text padded to a multiple of that many tokens;
and a ``run_batches`` method: an iterable of such pairs to their hidden states, in order, with
several batches running at once (the encoder uses it for more than one batch)."""

COMPILED = ("openvino", "onnx")
"""The backends that run a model built once from the torch one: each is a module of this
package with ``FILES``, ``RUNTIME`` (the library that runs it), ``target()``, ``build()`` and
``Runner``, and optionally ``QueryRunner``, a ``Runner`` tuned for single texts that is used
in its place (see :func:`compiled_runner`)."""
@dataclass(frozen=True)
class EncoderInfo:
    """What identifies the vectors an encoder makes; saved with every index."""

    model: str
    pooling: str
    layer: int | None
    dim: int
    max_length: int
    query_prefix: str
    passage_prefix: str


@dataclass(frozen=True)
class ModelFacts:
    """What the encoder needs to know of a model besides its weights and tokenizer; read from
    the model when it is loaded through transformers and saved with its builds."""

    dim: int
    layers: int | None
    """Hidden layers (None: unknown), for checking a requested layer."""
    max_length: int
    """The most tokens the model takes, special tokens included."""
    query_prefix: str
    passage_prefix: str

    def describe(self, model: str, *, pooling: str, layer: int | None, max_length: int | None) -> EncoderInfo:
        """The info of ``model`` run with ``pooling`` from ``layer``, cut to ``max_length`` tokens."""
        if pooling not in POOLINGS:
            raise ModelError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        if layer is not None and self.layers is not None and not -self.layers <= layer <= self.layers:
            raise ModelError(f"layer {layer} out of range: {model} has {self.layers} layers (0 = embeddings)")
        return EncoderInfo(model=model, pooling=pooling, layer=layer, dim=self.dim,
                           max_length=min(max_length or self.max_length, self.max_length),
                           query_prefix=self.query_prefix, passage_prefix=self.passage_prefix)


def default_backend() -> str:
    """``$XSEARCH_BACKEND`` if set, else the first of :data:`~xsearch.config.BACKENDS` installed.

    The statically quantized int8 OpenVINO encoder is the fastest measured here and the closest
    to fp32 of the two int8 backends; ONNX Runtime's dynamically quantized int8 graph comes next
    (``benchmarks/bench_encoder.py`` gives the figures; the README's Speed section has a run).
    """
    from . import onnx, openvino

    if os.environ.get("XSEARCH_BACKEND"):
        return os.environ["XSEARCH_BACKEND"]
    available = {"openvino": openvino.available, "onnx": onnx.available}  # torch always is
    return next(backend for backend in BACKENDS if available.get(backend, lambda: True)())


def compiled_runner(backend: str, model_dir: Path, info: EncoderInfo, threads: int, *, transformer: Any = None,
                    tokenizer: Tokenizer | None = None) -> Runner | None:
    """The runner of a compiled backend (``openvino``, ``onnx``) for the model in ``model_dir``.

    Built once from ``transformer`` (the loaded torch model) and ``tokenizer`` into the cache
    when missing; without them, None unless it is already built.
    """
    from .export import is_built
    from .registry import cache_dir

    module = compiled_module(backend)
    target = module.target(cache_dir(), model_dir, info)
    if not is_built(target, module.FILES):
        if transformer is None:
            return None
        module.build(transformer, tokenizer, model_dir, info, target)
    return getattr(module, "QueryRunner", module.Runner)(target, threads=threads)


def compiled_module(backend: str) -> ModuleType:
    """The module of a compiled backend (one of :data:`COMPILED`)."""
    return import_module(f".{backend}", __package__)


class LoadedModel(NamedTuple):
    """A model ready to encode with: what :class:`~xsearch.embed.encoder.Encoder` is made of."""

    info: EncoderInfo
    tokenizer: Tokenizer
    runner: Runner
    backend: str
    """How the model runs: ``openvino``, ``onnx`` or ``torch``."""
    model_dir: Path
