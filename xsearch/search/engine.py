"""The query engine's first stage: dense retrieval, exact re-scoring, filters.

Scoring is ``"centered"`` (per-language mean centring, see :mod:`.centering`) or
``"plain"`` cosine. The vector index holds vectors prepared for the index's own scoring;
whatever the scoring asked for, the best ``max(100, 4k)`` candidates are re-scored exactly
from the stored vectors with the current language means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..ann import AnnIndex
from ..store.db import LanguageMeans, Store
from ..types import Hit
from .centering import center
from .fusion import rrf

if TYPE_CHECKING:
    from ..embed.encoder import Encoder

SCORINGS = ("centered", "plain")
MODES = ("dense", "lexical", "hybrid")
RRF_K = 60
MIN_CANDIDATES = 100
"""ANN candidates fetched per query before exact re-scoring (at least ``4 * k``)."""


def prepare(vectors: np.ndarray, langs: Sequence[str], scoring: str, means: LanguageMeans) -> np.ndarray:
    """Vectors as the given scoring compares them."""
    if scoring == "centered":
        return center(vectors, langs, means)
    if scoring == "plain":
        return np.asarray(vectors, dtype=np.float32)
    raise ValueError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")


def dense_candidates(store: Store, ann: AnnIndex | None, query_vectors: np.ndarray, query_langs: Sequence[str],
                     n: int, *, scoring: str, langs: Sequence[str] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query, up to ``n`` (chunk ids, exact scores), best first."""
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    if ann is None or len(ann) == 0:
        return [empty for _ in range(len(query_vectors))]
    allowed = store.chunk_ids_where_lang(langs) if langs else None
    if allowed is not None and len(allowed) == 0:
        return [empty for _ in range(len(query_vectors))]
    means = store.language_means()
    queries = prepare(query_vectors, query_langs, scoring, means)
    _, ids = ann.search(queries, max(n, MIN_CANDIDATES), allowed_ids=allowed)
    stored = store.vectors_of(np.unique(ids[ids >= 0]))
    exact = prepare(stored.vectors, stored.langs, scoring, means)
    row_of = {int(cid): row for row, cid in enumerate(stored.ids)}
    results = []
    for q, id_row in enumerate(ids):
        found = np.array([cid for cid in id_row if int(cid) in row_of], dtype=np.int64)
        scores = exact[[row_of[int(c)] for c in found]] @ queries[q] if len(found) else np.zeros(0, np.float32)
        order = np.argsort(-scores, kind="stable")[:n]
        results.append((found[order], scores[order].astype(np.float32)))
    return results


def to_hits(store: Store, ranked: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[list[Hit]]:
    """Turn (chunk ids, scores) per query into hits with text, path and metadata."""
    all_ids = np.unique(np.concatenate([ids for ids, _ in ranked])) if ranked else []
    rows = store.chunk_rows(all_ids)
    results = []
    for ids, scores in ranked:
        hits = []
        for cid, score in zip(ids, scores):
            row = rows.get(int(cid))
            if row is not None:
                hits.append(Hit(chunk_id=row.id, score=float(score), text=row.text, path=row.path, lang=row.lang,
                                start=row.start, end=row.end, title=row.title, record=row.record,
                                metadata=row.metadata))
        results.append(hits)
    return results


def group_by_document(hits: Sequence[Hit], k: int, *, per_document: int = 3) -> list[Hit]:
    """Each document once, as its best chunk, with up to ``per_document - 1`` more in ``Hit.more``."""
    groups: dict[tuple[str, int], list[Hit]] = {}
    for hit in hits:
        groups.setdefault((hit.path, hit.record), []).append(hit)
    best = sorted(groups.values(), key=lambda g: -g[0].score)[:k]
    return [replace(g[0], more=tuple(g[1:per_document])) for g in best]


def run_search(store: Store, ann: AnnIndex | None, encoder: Encoder | None, queries: list[str], k: int, *,
               mode: str, scoring: str, langs: Sequence[str] | None, query_lang: str | None) -> list[list[Hit]]:
    """The first stage for a batch of queries in ``mode``; hits carry lexical highlights."""
    from ..ingest import detect_languages
    from ..store.lexical import lexical_search, lexical_spans

    n_fetch = k if mode != "hybrid" else max(k, MIN_CANDIDATES)
    dense: list[tuple[np.ndarray, np.ndarray]] = []
    lexical: list[tuple[np.ndarray, np.ndarray]] = []
    if mode in ("dense", "hybrid"):
        assert encoder is not None
        vectors = encoder.encode_queries(queries)
        query_langs = [query_lang] * len(queries) if query_lang else detect_languages(queries)
        dense = dense_candidates(store, ann, vectors, query_langs, n_fetch, scoring=scoring, langs=langs)
    if mode in ("lexical", "hybrid"):
        allowed = store.chunk_ids_where_lang(langs) if langs else None
        lexical = lexical_search(store.db.conn, queries, n_fetch, allowed_ids=allowed)
    if mode == "dense":
        ranked = dense
    elif mode == "lexical":
        ranked = lexical
    else:
        ranked = []
        for (d_ids, _), (l_ids, _) in zip(dense, lexical):
            fused = rrf([d_ids.tolist(), l_ids.tolist()], k=RRF_K)[:k]
            ranked.append((np.array([i for i, _ in fused], dtype=np.int64),
                           np.array([s for _, s in fused], dtype=np.float32)))
    results = to_hits(store, ranked)
    if mode == "dense":
        return results
    return [[replace(hit, highlights=tuple(lexical_spans(hit.text, query))) for hit in hits]
            for query, hits in zip(queries, results)]
