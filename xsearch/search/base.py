"""What the stages of the query engine pass to each other.

A search runs a batch of queries through a short sequence of stages (see
:data:`xsearch.search.engine.STAGES`). Each stage is a function
``(SearchContext, list[Ranked]) -> list[Ranked]``: it reads what it needs from the context
(the store, the vector index, the encoder, the queries and their options) and returns one
:class:`Ranked` per query, best first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..embed.centering import prepare
from ..store.tokens import StoredTokens

if TYPE_CHECKING:
    from ..ann import AnnIndex
    from ..embed.encoder import Encoder, TokenEmbeddings
    from ..store.db import Store
    from ..types import LanguageMeans

Span = tuple[int, int]


@dataclass(frozen=True)
class Ranked:
    """One query's candidates, best first."""

    ids: np.ndarray
    """``(n,)`` int64 chunk ids."""
    scores: np.ndarray
    """``(n,)`` float32 scores of the stage that ranked them (higher is better)."""
    spans: Mapping[int, Sequence[Span]] = field(default_factory=dict)
    """Character spans of a chunk's text that matched the query, by chunk id (when known)."""
    aligned: Mapping[int, Sequence[tuple[str, Span, float]]] = field(default_factory=dict)
    """With ``explain``: per chunk id, each query word's best-matching span and its cosine."""
    details: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Scores the stages gave each candidate, by name, ``(n,)`` aligned with ``ids`` (NaN where
    a stage did not score one): why a hit ranks where it does."""

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, order: np.ndarray | Sequence[int], scores: np.ndarray | None = None, **details: np.ndarray
             ) -> Ranked:
        """The candidates at positions ``order``, in that order, with new ``scores`` (else
        their own) and more ``details`` (aligned with ``order``)."""
        order = np.asarray(order, dtype=np.int64)
        kept = {name: values[order] for name, values in self.details.items()}
        return Ranked(self.ids[order], self.scores[order] if scores is None else np.asarray(scores, np.float32),
                      self.spans, self.aligned, {**kept, **details})

    def top(self, k: int) -> Ranked:
        """The best ``k``."""
        return self.take(np.arange(min(k, len(self))))

    @classmethod
    def of(cls, pairs: Sequence[tuple[int, float]]) -> Ranked:
        """From ``(chunk id, score)`` pairs, best first."""
        return cls(np.fromiter((i for i, _ in pairs), dtype=np.int64, count=len(pairs)),
                   np.fromiter((s for _, s in pairs), dtype=np.float32, count=len(pairs)))


def empty() -> Ranked:
    """No candidates."""
    return Ranked(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))


@dataclass
class SearchContext:
    """One batch of queries with everything the stages may read; built once per search."""

    store: Store
    ann: AnnIndex | None
    encoder: Encoder | None
    queries: list[str]
    langs: list[str]
    """The language of each query (given or detected)."""
    k: int
    """Hits wanted per query."""
    n_fetch: int
    """Candidates each first stage returns per query."""
    scoring: str
    allowed: np.ndarray | None
    """Chunk ids a hit may have (from filters), or None for all."""
    rerank_candidates: int = 0
    """First-stage candidates that late interaction re-scores (0: none)."""
    feedback: bool = False
    """Whether the translations of each query's best hit are pulled up (see :mod:`.feedback`)."""
    explain: bool = False
    """Whether stages keep the evidence for :attr:`xsearch.types.Hit.explain`."""
    runs: dict[str, list[Ranked]] = field(default_factory=dict)
    """Each first stage's own ranking, by stage name, for the stages that fuse them."""
    _encoded: tuple[np.ndarray, list[TokenEmbeddings]] | None = None
    _prepared: np.ndarray | None = None
    _means: LanguageMeans | None = None
    _tokens: tuple[set[int], StoredTokens] | None = None

    @functools.cached_property
    def reranking(self) -> bool:
        """Whether late interaction runs: asked for, and the index keeps token vectors. Decided
        once per search: a writer storing an index's first token vectors meanwhile must not switch
        reranking on halfway through (the queries were encoded without token vectors)."""
        return self.rerank_candidates > 0 and self.store.token_codec() is not None

    def encoded(self) -> tuple[np.ndarray, list[TokenEmbeddings]]:
        """The queries' sentence vectors and (when reranking) token vectors, encoded once."""
        if self._encoded is None:
            if self.encoder is None:
                raise ValueError("this search has no encoder")
            self._encoded = self.encoder.embed(self.queries, kind="query", tokens=self.reranking)
        return self._encoded

    def language_means(self) -> LanguageMeans:
        """The index's per-language sums of chunk vectors, read once per search."""
        if self._means is None:
            self._means = self.store.language_means()
        return self._means

    def query_vectors(self) -> np.ndarray:
        """The queries' vectors as the search's scoring compares them (centred or plain)."""
        if self._prepared is None:
            self._prepared = prepare(self.encoded()[0], self.langs, self.scoring, self.language_means())
        return self._prepared

    def chunk_vectors(self, ids: Sequence[int] | np.ndarray, *, tokens: bool = False) -> PreparedVectors:
        """The stored vectors of the chunks ``ids``, as the search's scoring compares them; with
        ``tokens`` (when reranking) their stored tokens are read in the same query and kept for
        :meth:`chunk_tokens`."""
        if not (tokens and self.reranking):
            return prepared_vectors(self.store, ids, self.scoring, self.language_means())
        chunk_ids, langs, vectors, stored = self.store.read_chunks(ids)
        self._tokens = ({int(i) for i in ids}, stored)
        return PreparedVectors(chunk_ids, prepare(vectors, langs, self.scoring, self.language_means()))

    def chunk_tokens(self, ids: Sequence[int] | np.ndarray) -> StoredTokens:
        """The stored tokens of the chunks ``ids`` (see :class:`~xsearch.store.tokens.StoredTokens`;
        pick a query's candidates with ``select``): those :meth:`chunk_vectors` read already, or
        read now."""
        if self._tokens is not None and self._tokens[0].issuperset(int(i) for i in ids):
            return self._tokens[1]
        return self.store.read_tokens(ids)

    def cosines(self, q: int, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(len(ids),)`` cosines of query ``q`` to the chunks ``ids``, as the scoring compares
        them (0 for a chunk that is gone)."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros(0, dtype=np.float32)
        stored = self.chunk_vectors(ids)
        rows = stored.rows(ids)
        out = np.zeros(len(ids), dtype=np.float32)
        found = rows >= 0
        out[found] = stored.vectors[rows[found]] @ self.query_vectors()[q]
        return out


@dataclass(frozen=True)
class PreparedVectors:
    """Stored chunk vectors as a scoring compares them (see :func:`prepared_vectors`)."""

    ids: np.ndarray
    """``(c,)`` int64 chunk ids, ascending."""
    vectors: np.ndarray
    """``(c, d)`` float32, row-aligned with ``ids``."""

    def rows(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(len(ids),)`` int64 row of each chunk id, -1 for one that is not here."""
        ids = np.asarray(ids, dtype=np.int64)
        rows = np.searchsorted(self.ids, ids)
        inside = rows < len(self.ids)
        inside[inside] = self.ids[rows[inside]] == ids[inside]
        return np.where(inside, rows, -1)


def prepared_vectors(store: Store, ids: Sequence[int] | np.ndarray, scoring: str, means: LanguageMeans
                     ) -> PreparedVectors:
    """The stored vectors of the chunks ``ids`` (those that exist), read in one go and prepared
    for ``scoring`` (:func:`~xsearch.embed.centering.prepare`): what the dense stage re-scores,
    the cosine scale and translation feedback compare."""
    stored = store.vectors_of(np.unique(np.asarray(ids, dtype=np.int64)))
    return PreparedVectors(stored.ids, prepare(stored.vectors, stored.langs, scoring, means))


Stage = Callable[[SearchContext, list[Ranked]], list[Ranked]]
"""A step of the query engine: the context and the ranking so far in, a new ranking out."""
