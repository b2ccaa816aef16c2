"""Loading a model through sentence-transformers: the torch backend, and where builds start.

:func:`load_transformer` reads a model folder with sentence-transformers (tokenizer,
transformer, prompts) and either runs it on torch (:class:`TorchRunner`, fp32) or builds its
compiled backend from it once (:func:`~xsearch.embed.encoder.compiled_runner`). After a
compiled backend is ready it saves what a later load needs besides the build
(:func:`~xsearch.embed.prebuilt.save_record`), so that later loads skip this module, torch
and transformers altogether.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import numpy as np

from ..config import BACKENDS
from ..errors import ModelError
from .backends import LoadedModel, ModelFacts, Runner, compiled_runner, default_backend
from .registry import CARDS, ResolvedModel
from .tokenizer import Tokenizer

LOGGER = logging.getLogger(__name__)


def quiet_transformers() -> None:
    """Keep transformers' and sentence-transformers' advice and progress bars from the user."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="sentence_transformers")


class TorchRunner:
    """Runs the torch model: ``(input_ids, attention_mask)`` int64 arrays to the hidden states of ``layer``."""

    def __init__(self, transformer: Any, layer: int | None) -> None:
        self._transformer = transformer
        self._layer = layer

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            outputs = self._transformer(input_ids=torch.from_numpy(input_ids),
                                        attention_mask=torch.from_numpy(attention_mask),
                                        output_hidden_states=self._layer is not None)
            hidden = outputs.last_hidden_state if self._layer is None else outputs.hidden_states[self._layer]
            return hidden.float().numpy()


def fallbacks(backend: str) -> tuple[str, ...]:
    """``backend``, then the backends after it in :data:`~xsearch.config.BACKENDS` (fastest first)."""
    return BACKENDS[BACKENDS.index(backend):]


def model_facts(model: Any, resolved: ResolvedModel) -> ModelFacts:
    """What the encoder needs to know of a loaded sentence-transformers ``model``."""
    config = model[0].auto_model.config
    prompts = getattr(model, "prompts", {}) or {}
    model_max = getattr(config, "max_position_embeddings", 512)
    if getattr(config, "model_type", "") in ("xlm-roberta", "roberta", "camembert"):
        model_max -= 2  # RoBERTa positions start after the padding index
    card = CARDS.get(resolved.name)
    if card is not None:
        model_max = min(model_max, card.max_length)
    return ModelFacts(dim=int(config.hidden_size), layers=getattr(config, "num_hidden_layers", None),
                      max_length=model_max, query_prefix=prompts.get("query", resolved.query_prefix),
                      passage_prefix=prompts.get("passage", prompts.get("document", resolved.passage_prefix)))


def load_transformer(resolved: ResolvedModel, *, pooling: str, layer: int | None, max_length: int | None,
                     threads: int, backend: str | None) -> LoadedModel:
    """Load the model in ``resolved`` through sentence-transformers and run it on ``backend``
    (see :meth:`Encoder.load <xsearch.embed.encoder.Encoder.load>`), building it first if needed."""
    chosen = backend is not None or bool(os.environ.get("XSEARCH_BACKEND"))
    backend = backend or default_backend()
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    import torch

    quiet_transformers()
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    try:
        model = SentenceTransformer(str(resolved.path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {resolved.name!r} from {resolved.path}: {exc}") from exc
    model.eval()
    transformer = model[0].auto_model
    tokenizer = Tokenizer.from_transformers(model.tokenizer, resolved.name)
    facts = model_facts(model, resolved)
    info = facts.describe(resolved.name, pooling=pooling, layer=layer, max_length=max_length)
    runner: Runner = TorchRunner(transformer, layer)
    used = "torch"
    # the default backend, not asked for: a model a compiled backend cannot take runs on the next
    for candidate in (backend,) if chosen else fallbacks(backend):
        if candidate == "torch":
            break
        try:
            runner = compiled_runner(candidate, resolved.path, info, threads, transformer=transformer,
                                     tokenizer=tokenizer)
        except ModelError as exc:
            if chosen:
                raise
            LOGGER.warning("%s; trying the next backend for %s", exc, resolved.name)
            continue
        from .prebuilt import save_record

        save_record(resolved, facts, tokenizer)
        used = candidate
        break
    return LoadedModel(info, tokenizer, runner, used, resolved.path)
