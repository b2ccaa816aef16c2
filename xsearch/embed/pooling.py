"""Pooling: how a sequence of token vectors becomes one sentence vector.

Pure functions over padded batches. Shapes: ``hidden`` is ``(batch, tokens, dim)`` and
``mask`` is ``(batch, tokens)`` with 1 for real tokens (special tokens included, as
sentence-transformers does) and 0 for padding.
"""

from __future__ import annotations

import numpy as np

from ..config import POOLINGS


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Pool ``hidden`` over its real tokens into ``(batch, dim)``."""
    weights = mask[..., None].astype(hidden.dtype)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return np.where(weights == 0, -np.inf, hidden).max(axis=1)
    summed = (hidden * weights).sum(axis=1)
    lengths = np.maximum(weights.sum(axis=1), 1.0)
    if mode == "mean":
        return summed / lengths
    if mode == "mean_sqrt_len":
        return summed / np.sqrt(lengths)
    raise ValueError(f"unknown pooling mode {mode!r}; choose one of {', '.join(POOLINGS)}")


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
