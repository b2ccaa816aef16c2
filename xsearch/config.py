"""Typed settings of an index, saved inside it so every later run uses the same ones."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

DEFAULT_MODEL = "multilingual-e5-small"
DEFAULT_MAX_TOKENS = 256
DEFAULT_OVERLAP = 1
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024
MODES = ("dense", "lexical", "hybrid")
"""First stages of a search: ``dense`` (sentence vectors), ``lexical`` (BM25 over trigrams) or
``hybrid`` (both, fused by reciprocal rank)."""
SCORINGS = ("centered", "plain")
"""How dense scores compare vectors: ``centered`` (per-language mean centring) or ``plain`` cosine."""
POOLINGS = ("mean", "cls", "max", "mean_sqrt_len")
"""How token vectors become a sentence vector."""
GROUPINGS = ("document", "translation")
"""What ``group_by`` may merge hits by: a document's chunks, or a passage's language versions."""
MAX_K = 1000
"""Most hits one query may ask for, in every interface."""
ENGINES = ("local", "spark")
"""Where ``xsearch index`` reads and embeds files: in this process, or on Apache Spark (an
optional extra; the result is the same kind of index)."""
BACKENDS = ("openvino", "onnx", "torch")
"""How the encoder runs: ``openvino`` (int8 OpenVINO, statically quantized once from the local
weights; the default), ``onnx`` (int8 ONNX Runtime, dynamically quantized) or ``torch`` (the
transformers model, fp32). Their vectors agree to a mean cosine of 0.998 (0.989 at worst), so
this is a choice per process, not a setting of the index."""


@dataclass(frozen=True)
class IndexConfig:
    """How an index turns text into vectors. Fixed when the index is created."""

    model: str = DEFAULT_MODEL
    """Model name (registry name, hub id or local path) that embeds chunks and queries."""
    pooling: str = "mean"
    """How token vectors become a sentence vector: mean, cls, max or mean_sqrt_len."""
    layer: int | None = None
    """Hidden layer to pool from (0 = embeddings); None means the last layer."""
    max_tokens: int = DEFAULT_MAX_TOKENS
    """Upper bound of model tokens per chunk."""
    overlap: int = DEFAULT_OVERLAP
    """Sentences repeated at the start of the next chunk."""
    scoring: str = "centered"
    """Default query scoring: ``centered`` (per-language mean centring) or ``plain`` cosine."""
    token_vectors: bool = True
    """Keep compressed token vectors of every chunk, for reranking and highlights."""

    def to_settings(self) -> dict[str, Any]:
        """The settings rows that record this config."""
        return asdict(self)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> IndexConfig:
        """Read a config back from an index's settings."""
        return cls(**{f.name: settings[f.name] for f in fields(cls) if f.name in settings})
