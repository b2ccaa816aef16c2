"""Late-interaction reranking: MaxSim over token vectors, score fusion and highlights.

The stage (:func:`rerank`) takes the token codes, spans and languages of all the first stage's
candidates (read with their vectors, in the dense stage's one query:
:meth:`~xsearch.search.base.SearchContext.chunk_tokens`), decodes them and takes
their cosines to the query's tokens in one product (:func:`token_similarities`,
:func:`similarities`), both corrected by the per-language mean token vector (``centres`` /
``groups`` for the documents, :func:`centre` for the query: the same correction the sentence
vectors get). From that matrix it scores
(:func:`maxsim_of`; :func:`maxsim_packed` and :func:`maxsim` in one call), mixes the scores
with the first-stage score through :func:`~xsearch.search.fusion.fuse`, and marks the matching
words of the best (:func:`matched_spans`; :func:`highlight_spans` from vectors). The maths are
pure numpy functions with documented shapes; :func:`xsearch.embed.tokens.content_mask` picks
the tokens worth storing and matching.

On bible-nt-7 (benchmarks/bench_rerank.py) MaxSim on centred content tokens of the top 100
raised mAP@20 from 0.165 to 0.254 at fusion weight 0.75; on raw token vectors only to 0.212.

Scoring the PQ codes without decoding them (asymmetric distance: per token, the sum of one
lookup per sub-quantizer in a table of the query's sub-vectors against the centroids) does 8x
fewer operations, but in numpy each lookup is a row gather: for the 15-50 content tokens of the
bible-nt-7 queries and their 100 candidates (about 7,000 tokens, 48 codes each) it took about
twice the time of decoding and one BLAS product, and 1.3x that time even for a 4-token query.

Shapes: ``q`` query tokens, ``n`` document tokens, ``d`` the vector dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..embed.centering import SHRINK
from ..embed.tokens import content_mask
from ..runtime import blas
from ..store.tokens import StoredTokens, TokenCodec, decode_tokens
from .base import Ranked, SearchContext
from .fusion import fuse
from .highlights import merge_spans

RERANK_WEIGHT = 0.75
"""Weight of the MaxSim score in the z-score fusion with the first-stage score (chosen on
bible-nt-7 and Tatoeba: mAP@20 0.165 -> 0.254 on bible-nt-7; benchmarks/bench_rerank.py)."""
HIGHLIGHT_THRESHOLD = 0.5
"""Minimum cosine between (centred) query and passage tokens for a highlight."""
RERANK_BLAS_THREADS = 1
"""BLAS threads for the MaxSim product. One: for 100 candidates (about 7,000 tokens) the
token-major product takes 1.4 ms at best on one thread and 2.0 ms on two (handing the work to a
second thread costs more than it saves at this size), and on two cores shared with other work
the medians were 10.9 against 14.2 ms (decode and MaxSim of the candidates of 30 bible-nt-7
queries in the 100,000-chunk index of benchmarks/bench_query.py)."""

__all__ = [
    "alignment",
    "centre",
    "highlight_spans",
    "matched_spans",
    "maxsim",
    "maxsim_of",
    "maxsim_packed",
    "normalise",
    "rerank",
    "similarities",
    "token_similarities",
]

_EPS = 1e-12


def normalise(vectors: np.ndarray) -> np.ndarray:
    """``(n, d)`` -> ``(n, d)`` float32 rows scaled to unit length (all-zero rows stay zero)."""
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, _EPS)


def centre(vectors: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    """``(n, d)`` minus a ``(d,)`` mean vector, then L2-normalised; just normalised when ``mean`` is None."""
    x = np.asarray(vectors, dtype=np.float32)
    return normalise(x if mean is None else x - np.asarray(mean, dtype=np.float32))


def maxsim(query: np.ndarray, docs: Sequence[np.ndarray], *, centres: np.ndarray | None = None,
           groups: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """ColBERT MaxSim of one query against many documents.

    Args:
        query: ``(q, d)`` token vectors of the query (any scale; normalised here). Centre
            them first (:func:`centre`) when the documents are centred.
        docs: one ``(n_i, d)`` array of token vectors per document.
        centres: optional ``(g, d)`` vectors to subtract from document tokens before they
            are normalised (the per-language mean token vectors); the centred tokens are
            never materialised.
        groups: ``(len(docs),)`` row of ``centres`` for each document (its language);
            required with ``centres``.

    Returns:
        ``(len(docs),)`` float32: for each document, the best cosine of every query token
        over the document's tokens, averaged over the query tokens, so in ``[-1, 1]`` and
        comparable across queries. A document with no tokens scores -1; a query with no
        tokens gives all zeros.
    """
    counts = np.fromiter((len(doc) for doc in docs), dtype=np.int64, count=len(docs))
    dim = np.shape(query)[-1]
    tokens = np.concatenate(docs) if len(docs) else np.zeros((0, dim), dtype=np.float32)
    return maxsim_packed(query, tokens, counts, centres=centres, groups=groups)


def maxsim_packed(query: np.ndarray, tokens: np.ndarray, counts: Sequence[int] | np.ndarray, *,
                  centres: np.ndarray | None = None, groups: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """:func:`maxsim` over documents packed end to end, as :meth:`TokenCodec.decode_concat` gives them.

    Args:
        query: ``(q, d)`` query token vectors.
        tokens: ``(sum(counts), d)`` document token vectors, document after document.
        counts: ``(n_docs,)`` tokens per document (zeros allowed).
        centres, groups: as in :func:`maxsim`.

    Returns:
        ``(n_docs,)`` float32 scores, as :func:`maxsim`.
    """
    return maxsim_of(similarities(query, tokens, counts, centres=centres, groups=groups), counts)


def similarities(query: np.ndarray, tokens: np.ndarray, counts: Sequence[int] | np.ndarray, *,
                 centres: np.ndarray | None = None, groups: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """``(q, sum(counts))`` float32 cosines between query tokens and packed document tokens.

    Arguments as :func:`maxsim_packed`; document tokens are centred on ``centres[groups[i]]``
    when given. The cosines come from one ``(n, d) x (d, q + g)`` product and the token norms,
    using ``q.(x - c) = q.x - q.c`` and ``|x - c|^2 = |x|^2 - 2 x.c + |c|^2``: the tokens are
    read twice and never copied, which is what keeps 100 candidates within a few milliseconds.
    The product is token-major (the result is a transposed view of an ``(n, q)`` array): with
    the tokens as the long side OpenBLAS runs it 1.3x faster on one thread and 5x faster on two
    than ``(q + g, d) x (d, n)``, which splits badly between threads.
    :func:`maxsim_of` reduces them to scores and :func:`matched_spans` to highlights.
    """
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    x = np.asarray(tokens, dtype=np.float32)
    if counts.sum() != len(x):
        raise ValueError(f"counts add up to {counts.sum()} tokens, but {len(x)} were given")
    if (centres is None) != (groups is None):
        raise ValueError("centres and groups go together")
    q = normalise(query)
    if len(q) == 0 or len(x) == 0:
        return np.zeros((len(q), len(x)), dtype=np.float32)
    squares = np.einsum("nd,nd->n", x, x)
    if centres is None:
        dots = x @ q.T  # (n, q)
    else:
        c = np.asarray(centres, dtype=np.float32).reshape(-1, x.shape[1])
        token_group = np.repeat(np.asarray(groups, dtype=np.int64), counts)
        both = x @ np.concatenate([q, c]).T  # (n, q + g): x.q and x.c
        dots = both[:, : len(q)] - (c @ q.T)[token_group]
        squares += np.einsum("gd,gd->g", c, c)[token_group] - 2 * both[np.arange(len(x)), len(q) + token_group]
    dots /= np.sqrt(np.maximum(squares, _EPS**2))[:, None]
    return dots.T


def maxsim_of(sims: np.ndarray, counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """``(n_docs,)`` MaxSim scores from :func:`similarities`' ``(q, sum(counts))`` matrix:
    each query token's best cosine within a document, averaged over the query tokens; -1 for
    a document without tokens, zeros for a query without tokens."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if len(sims) == 0:
        return np.zeros(len(counts), dtype=np.float32)
    scores = np.full(len(counts), -1.0, dtype=np.float32)
    nonempty = np.flatnonzero(counts)
    if nonempty.size:
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[nonempty]
        best = np.maximum.reduceat(sims.T, starts, axis=0)  # (documents with tokens, q)
        scores[nonempty] = best.mean(axis=1)
    return scores


def alignment(query: np.ndarray, doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query token, the document token it matches best.

    Args:
        query: ``(q, d)`` token vectors; doc: ``(n, d)`` token vectors, ``n >= 1``.

    Returns:
        ``(best, sim)``: ``(q,)`` int64 index into ``doc`` and ``(q,)`` float32 cosine.
    """
    if len(doc) == 0:
        raise ValueError("alignment needs a document with at least one token")
    return _best(normalise(query) @ normalise(doc).T)


def _best(sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    best = sims.argmax(axis=1) if len(sims) else np.zeros(0, dtype=np.int64)
    return best.astype(np.int64), sims[np.arange(len(best)), best].astype(np.float32)


def highlight_spans(query_vecs: np.ndarray, query_keep_mask: np.ndarray | None, doc_vecs: np.ndarray,
                    doc_offsets: np.ndarray, *, threshold: float) -> list[tuple[int, int]]:
    """Character spans of the document that match some query token.

    A document token is highlighted when it is the best match (cosine, see :func:`alignment`)
    of a kept query token with similarity ``>= threshold``. Only document tokens with a
    non-empty span can be matched (special tokens and bare word-start markers are skipped,
    so they never take a query token's best match). Spans that overlap or touch
    (``end == start``) are merged.

    Args:
        query_vecs: ``(q, d)`` query token vectors (centred the same way as ``doc_vecs``).
        query_keep_mask: ``(q,)`` bool, False for query tokens that must not highlight
            anything (specials, punctuation; see :func:`content_mask`); None keeps all.
        doc_vecs: ``(n, d)`` document token vectors.
        doc_offsets: ``(n, 2)`` character spans of the document tokens.
        threshold: minimum cosine for a match.

    Returns:
        Sorted, disjoint ``(start, end)`` pairs.
    """
    query = np.asarray(query_vecs)
    if query_keep_mask is not None:
        query = query[np.asarray(query_keep_mask, dtype=bool)]
    doc = np.asarray(doc_vecs)
    if len(query) == 0 or len(doc) == 0:
        return []
    return matched_spans(normalise(query) @ normalise(doc).T, doc_offsets, threshold=threshold)


def matched_spans(sims: np.ndarray, doc_offsets: np.ndarray, *, threshold: float) -> list[tuple[int, int]]:
    """:func:`highlight_spans` from the ``(q, n)`` cosines of one document's tokens (a slice
    of :func:`similarities`), so that reranking and highlighting share one product."""
    offsets = np.asarray(doc_offsets).reshape(-1, 2)
    candidates = np.flatnonzero(offsets[:, 1] > offsets[:, 0])
    if candidates.size == 0 or len(sims) == 0:
        return []
    best, sim = _best(sims[:, candidates])
    return merge_spans(offsets[candidates[np.unique(best[sim >= threshold])]].tolist())


def rerank(ctx: SearchContext, ranked: list[Ranked]) -> list[Ranked]:
    """Stage: re-rank each query's first-stage candidates by MaxSim over token vectors.

    Token vectors of candidates come from the index's token store; with ``centered`` scoring
    both sides are centred on their language's mean token vector first. The MaxSim score is
    z-score fused with the first-stage score (:data:`RERANK_WEIGHT` on MaxSim). Returns, per
    query, the top ``ctx.k`` with the spans of their matching tokens. Without token vectors
    (or when not asked for) the ranking passes through.
    """
    if not ctx.reranking:
        return ranked
    _, query_tokens = ctx.encoded()
    store = ctx.store
    codec = store.token_codec()
    means = store.token_language_means() if ctx.scoring == "centered" else None
    stored = ctx.chunk_tokens(np.concatenate([r.ids for r in ranked]) if ranked else [])  # every query's at once
    out = []
    for found, tokens, lang in zip(ranked, query_tokens, ctx.langs):
        keep = content_mask(tokens.text, tokens.offsets, tokens.special)
        if not keep.any():
            keep = ~tokens.special
        query = centre(tokens.vectors[keep], means.mean(lang, shrink=SHRINK) if means else None)
        present, rows = _located(stored.ids, found.ids)
        if len(present) < len(stored):  # a batch's union of candidates: this query's alone
            present, docs = stored.select(found.ids)
            rows = np.arange(len(present))
        else:
            docs = stored  # exactly this query's candidates, in another order: nothing to copy
        if not len(present) or not len(query):
            out.append(found.top(ctx.k))
            continue
        centres = groups = None
        if means is not None:
            lang_list = sorted(set(docs.langs))
            centres = np.stack([means.mean(lang, shrink=SHRINK) for lang in lang_list]).astype(np.float32)
            group_of = {lang: g for g, lang in enumerate(lang_list)}
            groups = np.array([group_of[lang] for lang in docs.langs], dtype=np.int64)
        sims = token_similarities(codec, query, docs, centres=centres, groups=groups)
        maxsims = maxsim_of(sims, docs.counts)[rows]
        fused = fuse(found.scores[present], maxsims, RERANK_WEIGHT)
        order = np.argsort(-fused, kind="stable")[: ctx.k]
        starts = docs.starts
        cids = found.ids[present].tolist()
        spans = {cids[j]: matched_spans(sims[:, starts[r] : starts[r + 1]], docs.offsets[starts[r] : starts[r + 1]],
                                        threshold=HIGHLIGHT_THRESHOLD) for j, r in zip(order, rows[order].tolist())}
        reranked = found.take(present[order], fused[order], maxsim=maxsims[order])
        aligned = {}
        if ctx.explain:
            words = [tokens.text[a:b] for a, b in tokens.offsets[keep].tolist()]
            aligned = {cids[j]: _aligned(words, sims[:, starts[r] : starts[r + 1]],
                                         docs.offsets[starts[r] : starts[r + 1]])
                       for j, r in zip(order, rows[order].tolist())}
        out.append(Ranked(reranked.ids, reranked.scores, spans=spans, aligned=aligned, details=reranked.details))
    return out


def _located(have: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(present, rows)``: the positions in ``wanted`` of the ids that ``have`` holds, and
    their rows in ``have`` (whose ids are distinct)."""
    if not len(have):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(have, kind="stable")
    at = np.minimum(np.searchsorted(have, wanted, sorter=order), len(have) - 1)
    present = np.flatnonzero(have[order[at]] == wanted)
    return present, order[at[present]]


def token_similarities(codec: TokenCodec, query: np.ndarray, docs: StoredTokens, *, centres: np.ndarray | None = None,
                       groups: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """``(q, n)`` cosines between query tokens and the stored tokens ``docs``: their codes
    decoded (:func:`~xsearch.store.tokens.decode_tokens`), then :func:`similarities`."""
    decoded = decode_tokens(codec, docs.codes)
    with blas().limit(limits=RERANK_BLAS_THREADS, user_api="blas"):
        return similarities(query, decoded, docs.counts, centres=centres, groups=groups)


def _aligned(words: Sequence[str], sims: np.ndarray, offsets: np.ndarray) -> list[tuple[str, tuple[int, int], float]]:
    """Each query token's best passage token, as ``(query token, passage span, cosine)``, for
    the matches of at least :data:`HIGHLIGHT_THRESHOLD`, best first."""
    if not sims.size:
        return []
    best, sim = _best(sims)
    spans = np.asarray(offsets).reshape(-1, 2)
    found = [(word, (int(spans[b][0]), int(spans[b][1])), float(s))
             for word, b, s in zip(words, best.tolist(), sim.tolist()) if s >= HIGHLIGHT_THRESHOLD]
    return sorted(found, key=lambda item: -item[2])
