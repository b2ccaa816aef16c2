"""Rank fusion: combine the lexical and dense first stages, and first-stage with rerank scores.

Pure functions over ids and score vectors; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rrf(rankings: Sequence[Sequence[int]], *, k: int = 60,
        weights: Sequence[float] | None = None) -> list[tuple[int, float]]:
    """Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009).

    Each ranking lists ids best first; an id at rank ``r`` (from 1) in ranking ``i`` earns
    ``weights[i] / (k + r)``, summed over rankings (an id repeated within one ranking counts
    at its first rank only). Returns ``(id, score)`` best first; ties go to the id with the
    better single rank in any ranking, then to the smaller id.
    """
    if k < 0:
        raise ValueError(f"rrf needs k >= 0, not {k}")
    if weights is None:
        weights = [1.0] * len(rankings)
    elif len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    scores: dict[int, float] = {}
    best_rank: dict[int, int] = {}
    for ranking, weight in zip(rankings, weights):
        seen: set[int] = set()
        for rank, item in enumerate(ranking, start=1):
            item = int(item)
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + float(weight) / (k + rank)
            best_rank[item] = min(best_rank.get(item, rank), rank)
    order = sorted(scores, key=lambda item: (-scores[item], best_rank[item], item))
    return [(item, scores[item]) for item in order]


def zscore_fuse(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * z(a) + weight * z(b)`` over one candidate set, as float32.

    ``a`` and ``b`` score the same candidates (shape ``(n,)``). ``z`` standardises a vector
    to mean 0 and standard deviation 1; a constant vector (no information) becomes zeros.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"zscore_fuse needs two vectors of one length, not shapes {a.shape} and {b.shape}")
    return ((1.0 - weight) * _zscore(a) + weight * _zscore(b)).astype(np.float32)


def _zscore(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    centred = x - x.mean()
    std = centred.std()
    if not np.isfinite(std) or std <= 1e-12 * max(1.0, float(np.abs(x).max())):
        return np.zeros_like(x)
    return centred / std
