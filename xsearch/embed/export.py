"""What the compiled encoder backends share: the ONNX export of a torch encoder and the cache.

Both int8 backends (:mod:`~xsearch.embed.onnx` for ONNX Runtime, :mod:`~xsearch.embed.openvino`
for OpenVINO) start from the same graph: :func:`export_onnx` turns a loaded transformers
encoder into an ONNX graph that maps ``input_ids`` and ``attention_mask`` to the hidden states
of one layer. Each backend then compiles and quantizes that graph its own way, and
:func:`build_cached` keeps the result beside the models xsearch builds
(:func:`~xsearch.embed.registry.cache_dir`), keyed by the source weights and the layer, written
atomically: a temporary directory renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ModelError

LOGGER = logging.getLogger(__name__)
MANIFEST = "xsearch-build.json"
OPSET = 17


def installed(*modules: str) -> bool:
    """Whether every one of ``modules`` can be imported (without importing it)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in modules)


def cache_key(model_dir: Path, layer: int | None, version: str) -> str:
    """A name for a built model: the build's version, the source weights' identity and the layer."""
    digest = hashlib.sha256(f"{version}|{model_dir.resolve()}|layer={layer}".encode())
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


def export_onnx(transformer: Any, layer: int | None, path: Path) -> None:
    """Write ``transformer`` as an fp32 ONNX graph: ``(input_ids, attention_mask)`` to ``hidden``."""
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


def is_built(target: Path, files: tuple[str, ...]) -> bool:
    """Whether :func:`build_cached` has finished building ``files`` into ``target``."""
    return (target / MANIFEST).is_file() and all((target / name).is_file() for name in files)


def build_cached(target: Path, files: tuple[str, ...], build: Callable[[Path], None], manifest: dict[str, Any],
                 what: str) -> Path:
    """``target``, built once by ``build(tmp)`` into a temporary folder that is renamed into place.

    ``files`` are the names ``build`` must leave in the folder; anything else it leaves there
    (intermediate graphs) is removed. A folder that already holds them and the manifest is
    returned as it is. Failures become :class:`ModelError` naming ``what`` was being built.
    """
    if is_built(target, files):
        return target
    LOGGER.info("building %s once; it is cached for later runs", what)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with quiet():
            build(tmp)
        for extra in tmp.iterdir():
            if extra.name not in files:
                shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
        (tmp / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:
            if not all((target / name).is_file() for name in files):  # another process may have finished first
                raise
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot build {what}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextmanager
def quiet() -> Iterator[None]:
    """The exporter's tracer warnings and the quantizers' advice and progress are not for the user.

    NNCF draws its progress bars on rich's global console, which writes to ``sys.stdout``:
    that would break ``--json`` output, so stdout is set aside while a model is built.
    """
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    loggers = [logging.getLogger(name) for name in ("nncf", "openvino")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
        for logger, previous in zip(loggers, levels):
            logger.setLevel(previous)
