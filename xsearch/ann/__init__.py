"""The vector index behind a small interface: exact ``Flat`` below a threshold, FAISS
IVF-PQ above it. Candidates it returns are re-scored exactly by the query engine.

- :mod:`.base`: the :class:`AnnIndex` interface every backend implements;
- :mod:`.sizing`: the index shape for a corpus size, nprobe, when to retrain;
- :mod:`.faiss_index`: the FAISS backend;
- :mod:`.factory`: backends by name, loading and building;
- :mod:`.shards`: a large IVF index built in shards and merged on disk, searched memory-mapped.

FAISS is imported on first use, not on import of this package.
"""

from .base import PAD_ID, AnnIndex
from .factory import BACKENDS, DEFAULT_BACKEND, backend_class, build, load
from .faiss_index import FaissIndex
from .sizing import FLAT_THRESHOLD, choose_factory, default_nprobe, needs_retrain

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "FLAT_THRESHOLD",
    "PAD_ID",
    "AnnIndex",
    "FaissIndex",
    "backend_class",
    "build",
    "choose_factory",
    "default_nprobe",
    "load",
    "needs_retrain",
]
