"""The dense first stage: sentence vectors searched in the vector index, then re-scored exactly.

Scoring is ``"centered"`` (per-language mean centring, see :mod:`xsearch.embed.centering`)
or ``"plain"`` cosine. The vector index holds vectors prepared for the index's own scoring;
whatever the scoring asked for, the best ``max(100, n)`` candidates are re-scored exactly
from the stored vectors with the current language means.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..embed.centering import prepare
from .base import PreparedVectors, Ranked, SearchContext, empty, prepared_vectors

if TYPE_CHECKING:
    from ..ann import AnnIndex
    from ..store.db import Store

MIN_CANDIDATES = 100
"""ANN candidates fetched per query before exact re-scoring (at least as many as asked for)."""


def candidates(ctx: SearchContext, _ranked: list[Ranked]) -> list[Ranked]:
    """Stage: the ``ctx.n_fetch`` nearest chunks of each query's sentence vector."""
    found = dense_candidates(ctx.store, ctx.ann, ctx.query_vectors(), ctx.langs, ctx.n_fetch, scoring=ctx.scoring,
                             allowed=ctx.allowed, prepared=True, read=lambda ids: ctx.chunk_vectors(ids, tokens=True))
    ctx.runs["dense"] = found
    return found


def dense_candidates(store: Store, ann: AnnIndex | None, query_vectors: np.ndarray, query_langs: Sequence[str],
                     n: int, *, scoring: str, allowed: np.ndarray | None = None, prepared: bool = False,
                     read: Callable[[np.ndarray], PreparedVectors] | None = None) -> list[Ranked]:
    """Per query, up to ``n`` chunks with their exact scores, best first; only ``allowed`` ids if
    given. ``prepared``: the query vectors are already as ``scoring`` compares them. ``read``
    reads the candidates' prepared vectors (by default :func:`~.base.prepared_vectors`; the
    stage's own also keeps their token codes for the rerank, from the same query)."""
    if ann is None or len(ann) == 0 or (allowed is not None and len(allowed) == 0):
        return [empty() for _ in range(len(query_vectors))]
    means = None if prepared and read is not None else store.language_means()  # the stage's context has them
    queries = query_vectors if prepared else prepare(query_vectors, query_langs, scoring, means)
    _, ids = ann.search(queries, max(n, MIN_CANDIDATES), allowed_ids=allowed)
    candidate_ids = ids[ids >= 0]
    stored = read(candidate_ids) if read is not None else prepared_vectors(store, candidate_ids, scoring, means)
    results = []
    for q, id_row in enumerate(ids):
        rows = stored.rows(id_row)
        found = id_row[rows >= 0].astype(np.int64)
        scores = stored.vectors[rows[rows >= 0]] @ queries[q]
        order = np.argsort(-scores, kind="stable")[:n]
        best = scores[order].astype(np.float32)
        results.append(Ranked(found[order], best, details={"dense": best}))
    return results
