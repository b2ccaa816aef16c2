"""Vector index backends by name, and building one for a corpus.

:data:`BACKENDS` maps a backend's name to its :class:`~xsearch.ann.base.AnnIndex` class;
:func:`load` reads a saved index of a named backend and :func:`build` trains and fills a
new one, shaped by :mod:`.sizing`, with nprobe tuned by measured recall.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import UsageError
from .base import AnnIndex
from .faiss_index import FaissIndex
from .sizing import choose_factory, default_nprobe

BACKENDS: dict[str, type[AnnIndex]] = {"faiss": FaissIndex}
"""Vector index backends by name; each class is made as ``cls(dim, factory_string)``."""
DEFAULT_BACKEND = "faiss"


def backend_class(name: str) -> type[AnnIndex]:
    """The :class:`AnnIndex` class of the backend called ``name``."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise UsageError(f"unknown vector index backend {name!r}; choose one of {', '.join(BACKENDS)}") from None


def load(name: str, path: str | os.PathLike[str]) -> AnnIndex:
    """Read an index of backend ``name`` saved at ``path`` (see :meth:`AnnIndex.load`)."""
    return backend_class(name).load(path)


def build(vectors: np.ndarray, ids: np.ndarray, *, factory: str | None = None,
          backend: str = DEFAULT_BACKEND) -> AnnIndex:
    """Choose (unless ``factory`` is given), train and fill an index over ``vectors``.

    Args:
        vectors: (n, dim) float32, L2-normalised.
        ids: (n,) non-negative int64 ids (SQLite row ids).
        factory: a FAISS index-factory string to use instead of :func:`~.sizing.choose_factory`.
        backend: a name in :data:`BACKENDS`.
    """
    cls = backend_class(backend)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise UsageError(f"vectors must be a 2-D array (n, dim), got shape {vectors.shape}")
    n, dim = vectors.shape
    index = cls(dim, factory or choose_factory(n, dim))
    index.train(vectors)
    index.add(ids, vectors)
    if isinstance(index, FaissIndex) and index.nlist:
        index.nprobe = tune_nprobe(index, vectors, ids)
    return index


TUNE_RECALL = 0.97
"""Recall@10 (after exact re-scoring of :data:`TUNE_CANDIDATES`) that :func:`tune_nprobe` aims for."""
TUNE_QUERIES = 200
TUNE_CANDIDATES = 100
"""Candidates the query engine re-scores with the exact vectors (its rerank depth)."""
TUNE_SEED = 7


def measured_recall(index: FaissIndex, vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray,
                    nprobe: int, *, k: int = 10, candidates: int = TUNE_CANDIDATES) -> float:
    """Recall@k of ``index`` at ``nprobe`` against exact search over ``vectors``, with the
    top ``candidates`` re-scored exactly as the query engine does."""
    exact = exact_top_k(queries, vectors, k)
    _, found = index.search(queries, candidates, nprobe=nprobe)
    order = np.argsort(ids)
    sorted_ids = ids[order]
    at = np.clip(np.searchsorted(sorted_ids, found), 0, len(ids) - 1)
    rows = np.where((found >= 0) & (sorted_ids[at] == found), order[at], -1)
    sims = np.einsum("qd,qcd->qc", queries, vectors[np.maximum(rows, 0)])
    sims[rows < 0] = -np.inf
    best = np.take_along_axis(rows, np.argsort(-sims, axis=1)[:, :k], axis=1)
    return float(np.mean([np.isin(e, b).mean() for e, b in zip(exact, best)]))


def exact_top_k(queries: np.ndarray, vectors: np.ndarray, k: int, *, block: int = 65_536) -> np.ndarray:
    """Row positions of each query's ``k`` best ``vectors`` by inner product (any order),
    computed a block of rows at a time so memory stays at queries x block."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), block):
        scores = queries @ vectors[start : start + block].T
        scores = np.concatenate([best_scores, scores], axis=1)
        rows = np.concatenate([best_rows, np.broadcast_to(np.arange(start, start + scores.shape[1] - best_rows.shape[1]),
                                                          (len(queries), scores.shape[1] - best_rows.shape[1]))], axis=1)
        if scores.shape[1] > k:
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            scores, rows = np.take_along_axis(scores, top, axis=1), np.take_along_axis(rows, top, axis=1)
        best_scores, best_rows = scores, rows
    return best_rows


def tune_nprobe(index: FaissIndex, vectors: np.ndarray, ids: np.ndarray, *, target: float = TUNE_RECALL,
                queries: int = TUNE_QUERIES) -> int:
    """The smallest nprobe, doubling from :func:`default_nprobe`, whose measured recall reaches ``target``.

    Queries are a seeded sample of the indexed vectors themselves, nudged off their exact
    position by Gaussian noise (real queries are near, not on, the passages they find).
    Real queries sit further from their passages than the sample does (cross-lingual
    questions on 100k bible-nt-7 chunks needed twice the nprobe the sample asked for), so
    the sample only ever raises the default, for data less kindly clustered; at most nlist.
    """
    rng = np.random.default_rng(TUNE_SEED)
    sample = vectors[rng.choice(len(vectors), min(queries, len(vectors)), replace=False)]
    sample = sample + rng.standard_normal(sample.shape, dtype=np.float32) * (0.5 / np.sqrt(sample.shape[1]))
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    nprobe = default_nprobe(index.nlist)
    while nprobe < index.nlist:
        if measured_recall(index, vectors, ids, sample, nprobe) >= target:
            return nprobe
        nprobe *= 2
    return index.nlist
