"""The query engine's first stage: dense retrieval with exact re-scoring and filters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ann import AnnIndex
from ..store.db import Store
from ..types import Hit

MIN_CANDIDATES = 100
"""ANN candidates fetched per query before exact re-scoring (at least ``4 * k``)."""


def rescore(store: Store, query_vectors: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products of each query with its candidate chunks, best first.

    ``ids`` is ``(n_queries, n_candidates)`` with -1 padding; the result has the same shape.
    """
    exact = store.vectors_for(np.unique(ids[ids >= 0]))
    scores = np.full(ids.shape, -np.inf, dtype=np.float32)
    for q, row in enumerate(ids):
        for j, cid in enumerate(row):
            vec = exact.get(int(cid))
            if vec is not None:
                scores[q, j] = float(vec @ query_vectors[q])
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(scores, order, 1), np.take_along_axis(np.where(np.isfinite(scores), ids, -1), order, 1)


def dense_search(store: Store, ann: AnnIndex | None, query_vectors: np.ndarray, k: int, *,
                 langs: Sequence[str] | None = None) -> list[list[Hit]]:
    """Top-``k`` hits per query vector, restricted to chunks in ``langs`` when given."""
    if ann is None or len(ann) == 0 or k <= 0:
        return [[] for _ in range(len(query_vectors))]
    allowed = store.chunk_ids_where_lang(langs) if langs else None
    if allowed is not None and len(allowed) == 0:
        return [[] for _ in range(len(query_vectors))]
    exact = ann.factory == "Flat"
    n_candidates = k if exact else max(MIN_CANDIDATES, 4 * k)
    scores, ids = ann.search(query_vectors, n_candidates, allowed_ids=allowed)
    if not exact:
        scores, ids = rescore(store, query_vectors, ids)
    scores, ids = scores[:, :k], ids[:, :k]
    rows = store.chunk_rows(np.unique(ids[ids >= 0]))
    results = []
    for score_row, id_row in zip(scores, ids):
        hits = []
        for score, cid in zip(score_row, id_row):
            row = rows.get(int(cid))
            if row is None:
                continue
            hits.append(Hit(chunk_id=row.id, score=float(score), text=row.text, path=row.path, lang=row.lang,
                            start=row.start, end=row.end, title=row.title, record=row.record,
                            metadata=row.metadata))
        results.append(hits)
    return results
