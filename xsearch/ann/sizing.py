"""How big an index a corpus gets, how much of it a query visits, and when it is outgrown.

Small corpora get exact ``Flat`` search; from :data:`FLAT_THRESHOLD` vectors on,
an IVF-PQ index whose candidates the query engine re-scores with the exact vectors.
The numbers below were measured with ``benchmarks/bench_ann.py`` on clustered
synthetic embeddings (384-d); see that script to re-check them. Pure arithmetic:
nothing here needs a backend.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import AnnIndex

FLAT_THRESHOLD = 10_000
"""Corpus size (vectors) from which IVF-PQ replaces exact ``Flat`` search.

Below it, brute force is both exact and cheap (10,000 x 384-d is 15 MB and about a
millisecond a query). It must also stay above what PQ training needs: 256 centroids
per sub-quantizer x 39 points each = 9,984 training vectors.
"""

MIN_POINTS_PER_CENTROID = 39
"""FAISS's k-means wants at least this many training points per centroid."""

PQ_NBITS = 8
"""Bits per PQ code (256 centroids per sub-quantizer)."""

PQ_SUBVECTOR_DIMS = (8, 7, 6, 5, 4)
"""Sub-vector sizes tried, in order, to split ``dim`` into ``m`` PQ sub-quantizers.

8 dims per sub-vector (m = 48 at 384-d, 96 at 768-d, 128 at 1024-d) gives 48 bytes
a vector at 384-d; m = 96 raised raw recall@10 from 0.66 to 0.83 at 100k vectors
but recall after exact re-scoring of the top-100 was the same (0.98 at nprobe 8),
so the smaller code wins. OPQ was measured too: 12x slower to train, no gain.
"""

RETRAIN_FACTOR = 4
"""An IVF index is rebuilt once the corpus is this many times larger, or smaller,
than the corpus it was trained on."""


def choose_nlist(n_vectors: int) -> int:
    """Number of IVF lists for ``n_vectors``: about 4·sqrt(n), a power of two, with
    at least :data:`MIN_POINTS_PER_CENTROID` vectors per list."""
    nlist = 2 ** round(math.log2(4 * math.sqrt(max(n_vectors, 1))))
    while nlist > 1 and nlist * MIN_POINTS_PER_CENTROID > n_vectors:
        nlist //= 2
    return nlist


def choose_pq_m(dim: int) -> int | None:
    """Number of PQ sub-quantizers for ``dim``, or None when no sub-vector size of
    :data:`PQ_SUBVECTOR_DIMS` divides it."""
    for sub in PQ_SUBVECTOR_DIMS:
        if dim % sub == 0:
            return dim // sub
    return None


def choose_factory(n_vectors: int, dim: int) -> str:
    """The FAISS index-factory string for a corpus of ``n_vectors`` of dimension ``dim``.

    ``"Flat"`` below :data:`FLAT_THRESHOLD`; otherwise ``"IVF{nlist},PQ{m}x8"``, or
    ``"IVF{nlist},SQ8"`` (one byte per dimension) when no PQ split of ``dim`` fits.
    """
    if n_vectors < FLAT_THRESHOLD:
        return "Flat"
    nlist = choose_nlist(n_vectors)
    m = choose_pq_m(dim)
    if m is None:
        return f"IVF{nlist},SQ8"
    return f"IVF{nlist},PQ{m}x{PQ_NBITS}"


def default_nprobe(nlist: int) -> int:
    """Inverted lists to visit per query: max(8, ceil(sqrt(nlist))), at most nlist.

    Measured recall@10 after exact re-scoring of the top-100 candidates: on clustered
    synthetic 384-d data it reaches 0.95 at about sqrt(nlist) / 4, but real cross-lingual
    queries sit further from their passages: on 100k bible-nt-7 chunks (nlist 1024) they
    reached 0.88 at nprobe 8, 0.94 at 16 and 0.96 at 32 (``benchmarks/bench_query.py``);
    on 1M synthetic vectors (nlist 4096), 0.95 at 16 and 0.98 at 32. A query at nprobe 32-64
    still costs well under a millisecond.
    """
    if nlist <= 0:
        return 1
    return min(nlist, max(8, math.ceil(math.sqrt(nlist))))


def needs_retrain(index: AnnIndex, n_vectors: int) -> bool:
    """Whether ``index`` should be rebuilt now that the corpus holds ``n_vectors``.

    True when the index is untrained, when a ``Flat`` index has reached
    :data:`FLAT_THRESHOLD`, or when a trained (IVF) index holds :data:`RETRAIN_FACTOR`
    times more, or fewer, vectors than it was trained on.
    """
    if not index.is_trained:
        return True
    if index.factory == "Flat":
        return n_vectors >= FLAT_THRESHOLD
    trained = index.trained_size
    if trained <= 0:
        return False
    return n_vectors >= RETRAIN_FACTOR * trained or n_vectors * RETRAIN_FACTOR <= trained
