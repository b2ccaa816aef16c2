"""Readable scores: one number per hit in [0, 1] that means the same in every result list.

Stages order candidates by whatever orders them best: a z-score fusion of the first-stage
score with MaxSim, reciprocal rank fusion of dense and lexical ranks. Those numbers are
comparable within one list only. :func:`cosine_scale` re-expresses a dense list on the cosine
scale without changing its order: the hit at rank ``i`` takes the ``i``-th highest cosine
between the query and the listed passages (centred when the scoring is). :func:`relevance`
then maps that cosine through a logistic curve, :data:`MIDPOINT` giving 0.5: a score is
comparable across queries, modes and filters, and a query that matches nothing well gets low
scores everywhere. Fitted on the relevance judgements of bible-nt-7 and ``data/eval``
(Platt scaling put 0.5 at centred cosines 0.42 and 0.30; relevant passages' median cosine
is 0.22 and 0.31 there, the top-100 non-relevant's 0.17 and -0.02).

Lexical-only lists have no cosine; their BM25 score ``b`` becomes ``1 - exp(-b / BM25_SCALE)``.
"""

from __future__ import annotations

import numpy as np

from .base import Ranked, SearchContext

MIDPOINT = 0.30
"""Cosine that scores 0.5."""
SLOPE = 0.07
"""Cosine difference that moves the logistic by one unit: 0.2 scores 0.19, 0.4 scores 0.81."""
BM25_SCALE = 10.0
"""BM25 score at which a lexical hit scores 0.63."""


def relevance(cosines: np.ndarray) -> np.ndarray:
    """Cosines (on the scale of :func:`cosine_scale`) to readable scores in ``(0, 1)``."""
    x = np.asarray(cosines, dtype=np.float64)
    return (1.0 / (1.0 + np.exp(-(x - MIDPOINT) / SLOPE))).astype(np.float32)


def bm25_relevance(scores: np.ndarray) -> np.ndarray:
    """BM25 scores to readable scores in ``[0, 1)``."""
    return (1.0 - np.exp(-np.maximum(np.asarray(scores, dtype=np.float64), 0.0) / BM25_SCALE)).astype(np.float32)


def cosine_scale(ctx: SearchContext, ranked: list[Ranked]) -> list[Ranked]:
    """Stage: each list in its order, scored with its passages' cosines to the query sorted
    from highest to lowest; every candidate's own cosine is kept as the detail ``cosine``."""
    out = []
    for q, found in enumerate(ranked):
        own = np.asarray(found.details.get("dense", np.full(len(found), np.nan)), dtype=np.float32)
        missing = np.flatnonzero(np.isnan(own))
        if len(missing):
            own = own.copy()
            own[missing] = ctx.cosines(q, found.ids[missing])
        out.append(found.take(np.arange(len(found)), -np.sort(-own), cosine=own))
    return out


def readable(ctx: SearchContext, found: Ranked) -> np.ndarray:
    """The readable scores of one final list (see the module docstring)."""
    if "cosine" in found.details:
        return relevance(found.scores)
    return bm25_relevance(found.scores)
