"""Language-agnostic scoring: per-language mean centring of sentence vectors.

Sentence encoders put a language-specific offset into every vector, so a same-language
near-miss often outscores a translation that answers the query. Subtracting each
language's mean vector (over the index's chunks in that language) from chunk vectors, and
the query language's mean from the query vector, removes most of that offset.

Means of languages with few chunks are noisy and carry topic, so they are shrunk towards
the mean over all chunks: ``(sum_l + s * global) / (n_l + s)`` with ``s = SHRINK``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import SCORINGS
from ..types import LanguageMeans

SHRINK = 8.0
"""Pseudo-count pulling a language's mean towards the global mean."""


def center(vectors: np.ndarray, langs: Sequence[str], means: LanguageMeans, *, shrink: float = SHRINK) -> np.ndarray:
    """Subtract each row's language mean and L2-normalise; ``(n, d)`` in, ``(n, d)`` float32 out."""
    out = np.asarray(vectors, dtype=np.float32).copy()
    if means.total == 0 or len(out) == 0:
        return out
    codes = np.asarray(langs, dtype=object)
    for lang in set(langs):
        out[codes == lang] -= means.mean(lang, shrink=shrink).astype(np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def prepare(vectors: np.ndarray, langs: Sequence[str], scoring: str, means: LanguageMeans) -> np.ndarray:
    """Vectors as the given scoring compares them: centred on their language's mean
    (``"centered"``) or as they are (``"plain"`` cosine)."""
    if scoring == "centered":
        return center(vectors, langs, means)
    if scoring == "plain":
        return np.asarray(vectors, dtype=np.float32)
    raise ValueError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")


CSLS_K = 3
"""Neighbourhood size of cross-domain similarity local scaling (chosen on Tatoeba)."""


def csls(similarities: np.ndarray, k: int = CSLS_K) -> np.ndarray:
    """Cross-domain similarity local scaling (Conneau et al. 2018) of an ``(n, m)`` cosine matrix.

    ``2 cos(x, y) - r(x) - r(y)``, where ``r`` is a vector's mean cosine to its ``k`` nearest
    neighbours on the other side: it demotes "hub" vectors that are close to everything.
    """
    k_rows, k_cols = min(k, similarities.shape[1]), min(k, similarities.shape[0])
    r_rows = np.sort(similarities, axis=1)[:, -k_rows:].mean(axis=1)
    r_cols = np.sort(similarities, axis=0)[-k_cols:, :].mean(axis=0)
    return 2 * similarities - r_rows[:, None] - r_cols[None, :]
