"""The dense first stage: sentence vectors searched in the vector index, then re-scored exactly.

Scoring is ``"centered"`` (per-language mean centring, see :mod:`xsearch.embed.centering`)
or ``"plain"`` cosine. The vector index holds vectors prepared for the index's own scoring;
whatever the scoring asked for, the best ``max(100, n)`` candidates are re-scored exactly
from the stored vectors with the current language means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..embed.centering import prepare
from .base import Ranked, SearchContext, empty

if TYPE_CHECKING:
    from ..ann import AnnIndex
    from ..store.db import Store

MIN_CANDIDATES = 100
"""ANN candidates fetched per query before exact re-scoring (at least as many as asked for)."""


def candidates(ctx: SearchContext, _ranked: list[Ranked]) -> list[Ranked]:
    """Stage: the ``ctx.n_fetch`` nearest chunks of each query's sentence vector."""
    found = dense_candidates(ctx.store, ctx.ann, ctx.query_vectors(), ctx.langs, ctx.n_fetch, scoring=ctx.scoring,
                             allowed=ctx.allowed, prepared=True)
    ctx.runs["dense"] = found
    return found


def dense_candidates(store: Store, ann: AnnIndex | None, query_vectors: np.ndarray, query_langs: Sequence[str],
                     n: int, *, scoring: str, allowed: np.ndarray | None = None, prepared: bool = False
                     ) -> list[Ranked]:
    """Per query, up to ``n`` chunks with their exact scores, best first; only ``allowed`` ids if
    given. ``prepared``: the query vectors are already as ``scoring`` compares them."""
    if ann is None or len(ann) == 0 or (allowed is not None and len(allowed) == 0):
        return [empty() for _ in range(len(query_vectors))]
    means = store.language_means()
    queries = query_vectors if prepared else prepare(query_vectors, query_langs, scoring, means)
    _, ids = ann.search(queries, max(n, MIN_CANDIDATES), allowed_ids=allowed)
    stored = store.vectors_of(np.unique(ids[ids >= 0]))
    exact = prepare(stored.vectors, stored.langs, scoring, means)
    row_of = {int(cid): row for row, cid in enumerate(stored.ids)}
    results = []
    for q, id_row in enumerate(ids):
        found = np.array([cid for cid in id_row if int(cid) in row_of], dtype=np.int64)
        scores = exact[[row_of[int(c)] for c in found]] @ queries[q] if len(found) else np.zeros(0, np.float32)
        order = np.argsort(-scores, kind="stable")[:n]
        best = scores[order].astype(np.float32)
        results.append(Ranked(found[order], best, details={"dense": best}))
    return results
