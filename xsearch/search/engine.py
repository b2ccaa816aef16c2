"""The query engine: a batch of queries through the stages of its mode, then hits.

Every mode is a short sequence of stages (:data:`STAGES`), each a module of this package:
first stages find candidates (:mod:`.dense`, :mod:`.lexical`), :mod:`.fusion` merges their
rankings, :mod:`.late_interaction` re-ranks by token vectors, and :mod:`.highlights` marks the
words that matched. A new stage is a function ``(SearchContext, list[Ranked]) -> list[Ranked]``
in a module of its own and one entry in the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..types import Hit
from . import dense, feedback, fusion, late_interaction, lexical, scores
from .base import Ranked, SearchContext, Stage
from .grouping import group_by_document, group_by_translation
from .highlights import highlighted, whole_words

if TYPE_CHECKING:
    from ..ann import AnnIndex
    from ..embed.encoder import Encoder
    from ..store.db import Store

STAGES: dict[str, tuple[Stage, ...]] = {
    "dense": (dense.candidates, late_interaction.rerank, scores.cosine_scale, feedback.pull_translations),
    "lexical": (lexical.candidates,),
    "hybrid": (dense.candidates, lexical.candidates, fusion.reciprocal_rank, late_interaction.rerank,
               scores.cosine_scale, feedback.pull_translations),
}
"""The stages of each search mode (:data:`xsearch.config.MODES`), in order."""
RERANK_CANDIDATES = 100
"""First-stage candidates reranked by late interaction."""


def run_search(store: Store, ann: AnnIndex | None, encoder: Encoder | None, queries: list[str], k: int, *,
               mode: str, scoring: str, allowed: np.ndarray | None, query_lang: str | None,
               rerank_candidates: int = 0, feedback: bool = False, explain: bool = False,
               group_by: str | None = None, min_score: float = 0.0) -> list[list[Hit]]:
    """The whole query path for a batch of queries: the stages of ``mode`` (late interaction
    over ``rerank_candidates`` candidates, when > 0 and the index keeps token vectors;
    translation ``feedback``), then ``k`` hits per query with readable scores of at least
    ``min_score``, highlights, grouped ``group_by`` ``"document"`` or ``"translation"`` when
    asked, and the evidence for each hit with ``explain``. ``allowed`` (chunk ids), when given,
    restricts every stage before its top-k cut."""
    from ..ingest import detect_languages

    stages = STAGES[mode]
    if late_interaction.rerank not in stages:
        rerank_candidates = 0
    n = k if group_by is None else max(10 * k, GROUPED_CANDIDATES)
    langs = [query_lang] * len(queries) if query_lang else detect_languages(queries)
    ctx = SearchContext(store, ann, encoder, queries, langs, n, n, scoring, allowed, rerank_candidates,
                        feedback=feedback, explain=explain)
    if ctx.reranking:
        ctx.n_fetch = max(n, rerank_candidates)
    elif fusion.reciprocal_rank in stages:
        ctx.n_fetch = max(n, fusion.FUSED_CANDIDATES)
    ranked: list[Ranked] = []
    for stage in stages:
        ranked = stage(ctx, ranked)
    ranked = [r.top(n) for r in ranked]
    term_spans = lexical.lexical_spans if "lexical" in ctx.runs else None
    results = highlighted(queries, ranked, to_hits(ctx, ranked), term_spans=term_spans)
    results = [[hit for hit in hits if hit.score >= min_score] for hits in results]
    if group_by == "document":
        return [group_by_document(hits, k) for hits in results]
    if group_by == "translation":
        return [group_by_translation(ctx, q, hits, k) for q, hits in enumerate(results)]
    return results


GROUPED_CANDIDATES = 100
"""Hits looked at per query to make grouped results (at least ten per group asked for)."""


def to_hits(ctx: SearchContext, ranked: Sequence[Ranked]) -> list[list[Hit]]:
    """Turn each query's ranking into hits with text, path, metadata and readable scores."""
    all_ids = np.unique(np.concatenate([r.ids for r in ranked])) if ranked else []
    rows = ctx.store.chunk_rows(all_ids)
    results = []
    for found in ranked:
        readable = scores.readable(ctx, found)
        hits = []
        for i, (cid, score) in enumerate(zip(found.ids.tolist(), readable.tolist())):
            row = rows.get(cid)
            if row is not None:
                hits.append(Hit(chunk_id=row.id, score=score, text=row.text, path=row.path, lang=row.lang,
                                start=row.start, end=row.end, id=row.doc_key, title=row.title, record=row.record,
                                metadata=row.metadata, explain=_explain(found, i, row.text) if ctx.explain else None))
        results.append(hits)
    return results


def _explain(found: Ranked, i: int, text: str) -> dict[str, object]:
    """Why the ``i``-th candidate (whose passage is ``text``) ranks where it does: every stage's
    score for it (rounded), and the query's tokens aligned to its words."""
    out: dict[str, object] = {"rank_score": round(float(found.scores[i]), 4)}
    for name, values in found.details.items():
        value = float(values[i])
        if not np.isnan(value):
            out[name] = round(value, 4)
    aligned = found.aligned.get(int(found.ids[i]))
    if aligned is not None:
        out["matched"] = [{"query": word, "passage": text[start:end], "span": [start, end],
                           "cosine": round(float(cos), 4)}
                          for word, (start, end), cos in ((w, whole_words(text, [s])[0], c) for w, s, c in aligned)]
    return out
