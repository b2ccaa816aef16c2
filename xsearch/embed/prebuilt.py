"""Loading a model whose compiled backend is built, with neither torch nor transformers.

A search only needs the tokenizer and the compiled graph, yet loading a model through
sentence-transformers imports torch and transformers (about 5 s before the first query). So
when a model is first built for a compiled backend, :func:`save_record` keeps beside the
builds what the encoder needs besides the graph: the tokenizer as transformers set it up
(``tokenizer.json``, read back by the ``tokenizers`` library) and the model's
:class:`~xsearch.embed.encoder.ModelFacts` with the padding id (``encoder.json``), in a folder
per model (``<cache>/encoders/<key>``, written atomically by
:func:`~xsearch.embed.export.build_cached`). :func:`load_prebuilt` loads from it and the
compiled build, or answers None when something is missing, and the encoder is then loaded
through transformers (which builds what is missing).
"""

from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .backends import (COMPILED, EncoderInfo, LoadedModel, ModelFacts, Runner, compiled_module, compiled_runner,
                      default_backend)
from .export import build_cached, cache_key, is_built
from .registry import ResolvedModel, cache_dir, find_model
from .tokenizer import FILE as TOKENIZER_FILE
from .tokenizer import Tokenizer

FORMAT_VERSION = 1
"""Bumped whenever what is saved changes."""
RECORD_FILE = "encoder.json"
FILES = (RECORD_FILE, TOKENIZER_FILE)


def record_dir(resolved: ResolvedModel) -> Path:
    """Where the record of a model is kept: one per model folder and name (a name may bring
    prefixes and a length limit of its own, see :data:`~xsearch.embed.registry.CARDS`)."""
    return cache_dir() / "encoders" / cache_key(resolved.path, None, f"v{FORMAT_VERSION}|{resolved.name}")


def save_record(resolved: ResolvedModel, facts: ModelFacts, tokenizer: Tokenizer) -> None:
    """Keep what :func:`load_prebuilt` needs to load ``resolved`` again (once; kept after)."""

    def write(tmp: Path) -> None:
        tokenizer.save(tmp)
        record = {"facts": dataclasses.asdict(facts), "pad_id": tokenizer.pad_id}
        (tmp / RECORD_FILE).write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")

    build_cached(record_dir(resolved), FILES, write, {"format_version": FORMAT_VERSION, "source": str(resolved.path)},
                 f"the tokenizer record of {resolved.name}")


def load_prebuilt(model: str, *, pooling: str, layer: int | None, max_length: int | None, threads: int,
                  backend: str | None) -> LoadedModel | None:
    """``model`` on a compiled backend already built for it, loaded without torch; None when
    the model, its record or the build is missing or the build cannot be loaded (loading
    through transformers then builds, falls back or reports, as it always does).

    Raises:
        ModelError: ``pooling`` or ``layer`` do not fit the model.
    """
    backend = backend or os.environ.get("XSEARCH_BACKEND") or default_backend()
    if backend not in COMPILED:
        return None
    resolved = find_model(model)
    if resolved is None:
        return None
    folder = record_dir(resolved)
    if not is_built(folder, FILES):
        return None
    try:
        record = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
        facts = ModelFacts(**record["facts"])
        pad_id = int(record["pad_id"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    info = facts.describe(resolved.name, pooling=pooling, layer=layer, max_length=max_length)
    # The tokenizer takes longest to load (its 250k-piece vocabulary, about 0.5 s) and holds the
    # GIL meanwhile; OpenVINO and ONNX Runtime compile and run without it, so they go alongside,
    # once their Python side is imported (an import needs the GIL).
    try:
        import_module(compiled_module(backend).RUNTIME)
    except ImportError:
        return None
    with ThreadPoolExecutor(max_workers=1) as pool:
        compiling = pool.submit(_ready_runner, backend, resolved.path, info, threads, pad_id)
        tokenizer = Tokenizer.load(folder, pad_id)
        try:
            runner = compiling.result()
        except ModelError:  # loading through transformers reports it or falls back
            return None
    return None if runner is None else LoadedModel(info, tokenizer, runner, backend, resolved.path)


def _ready_runner(backend: str, model_dir: Path, info: EncoderInfo, threads: int, pad_id: int) -> Runner | None:
    """The compiled runner, run once on a short input: the first run sets up what later ones reuse."""
    runner = compiled_runner(backend, model_dir, info, threads)
    if runner is not None:
        width = int(getattr(runner, "width_step", 1))
        runner(np.full((1, width), pad_id, dtype=np.int64), np.ones((1, width), dtype=np.int64))
    return runner
