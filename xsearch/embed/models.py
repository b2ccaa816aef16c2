"""Where a model's files come from: a local path, the local Hugging Face cache, or the bundle.

Resolution never downloads. Hub models are used only when their files are already in the
local cache (``huggingface_hub`` with ``local_files_only=True``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from .bundled import BUNDLED_NAME, PASSAGE_PREFIX, QUERY_PREFIX, build_bundled_model

DEFAULT_MODEL = BUNDLED_NAME
BUNDLED_DIRNAME = "multilingual-e5-small-q4"


@dataclass(frozen=True)
class ResolvedModel:
    """A model name bound to the directory its files are read from."""

    name: str
    path: Path
    source: str
    """``"path"``, ``"hf-cache"`` or ``"bundled"``."""
    query_prefix: str = ""
    passage_prefix: str = ""


HUB_IDS = {BUNDLED_NAME: "intfloat/multilingual-e5-small"}
"""Short names and the hub repositories they stand for."""

PREFIXES = {"intfloat/multilingual-e5-small": (QUERY_PREFIX, PASSAGE_PREFIX)}


def cache_dir() -> Path:
    """Where xsearch keeps models it builds: ``$XSEARCH_CACHE_DIR`` or the user cache dir."""
    env = os.environ.get("XSEARCH_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("xsearch"))


def hf_cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder of a hub repository, or None when it is not cached."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def resolve_model(name: str) -> ResolvedModel:
    """Find a model's files without touching the network.

    Order: an existing local directory, then the Hugging Face cache, then (for the
    default model) the bundled 4-bit weights, dequantized into the user cache once.
    """
    local = Path(name).expanduser()
    if local.is_dir():
        return ResolvedModel(name, local.resolve(), "path")
    repo_id = HUB_IDS.get(name, name)
    query_prefix, passage_prefix = PREFIXES.get(repo_id, ("", ""))
    snapshot = hf_cached_snapshot(repo_id) if "/" in repo_id else None
    if snapshot is not None:
        return ResolvedModel(name, snapshot, "hf-cache", query_prefix, passage_prefix)
    if name == BUNDLED_NAME:
        path = build_bundled_model(cache_dir() / "models" / BUNDLED_DIRNAME)
        return ResolvedModel(name, path, "bundled", query_prefix, passage_prefix)
    raise ModelError(
        f"model {name!r} is not available offline: give a local directory, "
        f"or put it in the Hugging Face cache first (huggingface-cli download {repo_id})"
    )
