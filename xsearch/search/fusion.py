"""Rank fusion: combine the lexical and dense first stages, and first-stage with rerank scores.

Pure functions over ids and score vectors, and the stage that fuses the first stages' rankings
(:func:`reciprocal_rank`); no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import Ranked, SearchContext

RRF_K = 60
"""Rank offset of reciprocal rank fusion: the value of its paper, which fits here too."""
FUSED_CANDIDATES = 100
"""Candidates each first stage gives to the fusion, when more are not asked for anyway."""
_EPS = 1e-12


def reciprocal_rank(ctx: SearchContext, _ranked: list[Ranked]) -> list[Ranked]:
    """Stage: the first stages' rankings of each query (``ctx.runs``) fused by :func:`rrf`."""
    out = []
    for q in range(len(ctx.queries)):
        runs = [run[q] for run in ctx.runs.values()]
        fused = Ranked.of(rrf([run.ids.tolist() for run in runs], k=RRF_K)[: ctx.n_fetch])
        details = {"rrf": fused.scores}
        for run in runs:  # each first stage's own score, NaN where it did not find the chunk
            score_of = {int(c): i for i, c in enumerate(run.ids)}
            for name, values in run.details.items():
                details[name] = np.array([values[score_of[int(c)]] if int(c) in score_of else np.nan
                                          for c in fused.ids], dtype=np.float32)
        out.append(Ranked(fused.ids, fused.scores, details=details))
    return out


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


def zscore(scores: np.ndarray) -> np.ndarray:
    """``(n,)`` scores -> ``(n,)`` standard scores over the list (zeros when all are equal)."""
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0:
        return x.astype(np.float32)
    std = x.std()
    return ((x - x.mean()) / std if std > _EPS else np.zeros_like(x)).astype(np.float32)


def fuse(first_stage: np.ndarray, rerank: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * z(first_stage) + weight * z(rerank)`` over one query's candidates.

    ``weight`` 0 keeps the first-stage order, 1 ranks by the rerank score alone. Both
    inputs are ``(n,)``; the result is ``(n,)`` float32 (higher is better).
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight must be in [0, 1], got {weight}")
    if np.shape(first_stage) != np.shape(rerank) or np.ndim(first_stage) != 1:
        raise ValueError(f"fuse needs two vectors of one length, not shapes {np.shape(first_stage)} and "
                         f"{np.shape(rerank)}")
    return ((1.0 - weight) * zscore(first_stage) + weight * zscore(rerank)).astype(np.float32)
