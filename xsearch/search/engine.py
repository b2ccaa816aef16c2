"""The query engine's first stage: dense retrieval, exact re-scoring, filters.

Scoring is ``"centered"`` (per-language mean centring, see :mod:`.centering`) or
``"plain"`` cosine. The vector index holds vectors prepared for the index's own scoring;
whatever the scoring asked for, the best ``max(100, 4k)`` candidates are re-scored exactly
from the stored vectors with the current language means.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import ThreadpoolController

from ..ann import AnnIndex
from ..config import MODES, SCORINGS
from ..embed.centering import SHRINK, prepare
from ..store.db import Store
from ..types import Hit
from .fusion import rrf
from ..embed.tokens import content_mask
from .rerank import centre, fuse, matched_spans, maxsim_of, merge_spans, similarities

if TYPE_CHECKING:
    from ..embed.encoder import Encoder, TokenEmbeddings

RRF_K = 60
RERANK_CANDIDATES = 100
"""First-stage candidates reranked by late interaction."""
RERANK_WEIGHT = 0.75
"""Weight of the MaxSim score in the z-score fusion with the first-stage score (chosen on
bible-nt-7 and Tatoeba: mAP@20 0.165 -> 0.254 on bible-nt-7; benchmarks/bench_rerank.py)."""
HIGHLIGHT_THRESHOLD = 0.5
"""Minimum cosine between (centred) query and passage tokens for a highlight."""
MIN_CANDIDATES = 100
"""ANN candidates fetched per query before exact re-scoring (at least ``4 * k``)."""
RERANK_BLAS_THREADS = 2
"""BLAS threads for the MaxSim product: two halve it (3 ms of 6 for 100 candidates); more only
fight over matrices this small."""


@functools.lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries, found once (finding them costs milliseconds per query)."""
    return ThreadpoolController()


def dense_candidates(store: Store, ann: AnnIndex | None, query_vectors: np.ndarray, query_langs: Sequence[str],
                     n: int, *, scoring: str, allowed: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query, up to ``n`` (chunk ids, exact scores), best first; only ``allowed`` ids if given."""
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    if ann is None or len(ann) == 0:
        return [empty for _ in range(len(query_vectors))]
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
                                start=row.start, end=row.end, id=row.doc_key, title=row.title, record=row.record,
                                metadata=row.metadata))
        results.append(hits)
    return results


def group_by_document(hits: Sequence[Hit], k: int, *, per_document: int = 3) -> list[Hit]:
    """Each document once, as its best chunk, with up to ``per_document - 1`` more in ``Hit.more``."""
    groups: dict[str, list[Hit]] = {}
    for hit in hits:
        groups.setdefault(hit.id, []).append(hit)
    best = sorted(groups.values(), key=lambda g: -g[0].score)[:k]
    return [replace(g[0], more=tuple(g[1:per_document])) for g in best]


def rerank(store: Store, ranked: Sequence[tuple[np.ndarray, np.ndarray]], query_tokens: Sequence[TokenEmbeddings],
           query_langs: Sequence[str], k: int, *, weight: float = RERANK_WEIGHT, scoring: str = "centered",
           threshold: float = HIGHLIGHT_THRESHOLD) -> list[tuple[np.ndarray, np.ndarray, dict[int, list]]]:
    """Late interaction: re-rank each query's candidates by MaxSim over token vectors.

    Token vectors of candidates come from the index's token store; with ``centered``
    scoring both sides are centred on their language's mean token vector first. The MaxSim
    score is z-score fused with the first-stage score (``weight`` on MaxSim). Returns, per
    query, the top ``k`` (ids, fused scores, {chunk id: highlight spans}).
    """
    codec = store.token_codec()
    if codec is None:
        return [(ids[:k], scores[:k], {}) for ids, scores in ranked]
    means = store.token_language_means() if scoring == "centered" else None
    rows = store.token_rows(np.unique(np.concatenate([ids for ids, _ in ranked])) if ranked else [])
    chunk_langs = store.chunk_langs(list(rows))
    out = []
    for (ids, scores), tokens, lang in zip(ranked, query_tokens, query_langs):
        keep = content_mask(tokens.text, tokens.offsets, tokens.special)
        if not keep.any():
            keep = ~tokens.special
        query = centre(tokens.vectors[keep], means.mean(lang, shrink=SHRINK) if means else None)
        present = [i for i, cid in enumerate(ids) if int(cid) in rows]
        if not present or not len(query):
            out.append((ids[:k], scores[:k], {}))
            continue
        cids = [int(ids[i]) for i in present]
        counts = [rows[c][1] for c in cids]
        doc_tokens = codec.decode_concat([rows[c][2] for c in cids], counts)
        centres = groups = None
        if means is not None:
            doc_langs = [chunk_langs.get(c, "") for c in cids]
            lang_list = sorted(set(doc_langs))
            centres = np.stack([means.mean(lang, shrink=SHRINK) for lang in lang_list]).astype(np.float32)
            groups = np.array([lang_list.index(lang) for lang in doc_langs], dtype=np.int64)
        with _blas().limit(limits=RERANK_BLAS_THREADS, user_api="blas"):
            sims = similarities(query, doc_tokens, counts, centres=centres, groups=groups)
        fused = fuse(scores[present], maxsim_of(sims, counts), weight)
        order = np.argsort(-fused, kind="stable")[:k]
        starts = np.concatenate(([0], np.cumsum(counts)))
        spans = {cids[j]: matched_spans(sims[:, starts[j] : starts[j + 1]], rows[cids[j]][0], threshold=threshold)
                 for j in order}
        out.append((np.array([cids[j] for j in order], dtype=np.int64), fused[order], spans))
    return out


def run_search(store: Store, ann: AnnIndex | None, encoder: Encoder | None, queries: list[str], k: int, *,
               mode: str, scoring: str, allowed: np.ndarray | None, query_lang: str | None,
               rerank_candidates: int = 0) -> list[list[Hit]]:
    """The whole query path for a batch of queries: first stage in ``mode``, then (when
    ``rerank_candidates`` > 0 and the index keeps token vectors) late-interaction reranking
    of that many candidates; hits carry highlights from token alignment and lexical matches.
    ``allowed`` (chunk ids), when given, restricts every stage before its top-k cut."""
    from ..ingest import detect_languages
    from ..store.lexical import lexical_search, lexical_spans

    reranking = rerank_candidates > 0 and mode != "lexical" and store.token_codec() is not None
    n_fetch = max(k, rerank_candidates) if reranking else (k if mode != "hybrid" else max(k, MIN_CANDIDATES))
    dense: list[tuple[np.ndarray, np.ndarray]] = []
    lexical: list[tuple[np.ndarray, np.ndarray]] = []
    query_langs = [query_lang] * len(queries) if query_lang else detect_languages(queries)
    query_tokens: list[TokenEmbeddings] = []
    if mode in ("dense", "hybrid"):
        assert encoder is not None
        vectors, query_tokens = encoder.embed(queries, kind="query", tokens=reranking)
        dense = dense_candidates(store, ann, vectors, query_langs, n_fetch, scoring=scoring, allowed=allowed)
    if mode in ("lexical", "hybrid"):
        lexical = lexical_search(store.db.conn, queries, n_fetch, allowed_ids=allowed)
    if mode == "dense":
        ranked = dense
    elif mode == "lexical":
        ranked = lexical
    else:
        ranked = []
        for (d_ids, _), (l_ids, _) in zip(dense, lexical):
            fused = rrf([d_ids.tolist(), l_ids.tolist()], k=RRF_K)[:n_fetch]
            ranked.append((np.array([i for i, _ in fused], dtype=np.int64),
                           np.array([s for _, s in fused], dtype=np.float32)))
    spans: list[dict[int, list]] = [{} for _ in queries]
    if reranking:
        reranked = rerank(store, ranked, query_tokens, query_langs, k, scoring=scoring)
        ranked = [(ids, scores) for ids, scores, _ in reranked]
        spans = [s for _, _, s in reranked]
    results = to_hits(store, [(ids[:k], scores[:k]) for ids, scores in ranked])
    out = []
    for query, hits, token_spans in zip(queries, results, spans):
        with_spans = []
        for hit in hits:
            found = list(token_spans.get(hit.chunk_id, []))
            if mode != "dense":
                found += lexical_spans(hit.text, query)
            spans_ = merge_spans(whole_words(hit.text, found))
            with_spans.append(replace(hit, highlights=tuple(spans_)) if spans_ else hit)
        out.append(with_spans)
    return out


def _in_word(ch: str) -> bool:
    # Letters and digits of scripts written with spaces; CJK and Thai have no word spaces,
    # so growing a span there would swallow the sentence.
    code = ord(ch)
    return (ch.isalnum() or unicodedata.category(ch).startswith("M")) and not (
        0x0E00 <= code <= 0x0EFF or 0x1000 <= code <= 0x109F or 0x1780 <= code <= 0x17FF or code >= 0x2E80)


def whole_words(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Grow token spans to the whole words they are part of (``ze`` -> ``Pflanzen``)."""
    out = []
    for start, end in spans:
        start, end = int(start), int(end)
        if start < end and _in_word(text[start]) and _in_word(text[end - 1]):
            while start > 0 and _in_word(text[start - 1]):
                start -= 1
            while end < len(text) and _in_word(text[end]):
                end += 1
        out.append((start, end))
    return out
