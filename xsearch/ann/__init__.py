"""The vector index behind a small interface: exact ``Flat`` below a threshold, FAISS
IVF-PQ above it. Candidates it returns are re-scored exactly by the query engine.

FAISS is imported on first use, not on import of this package.
"""

from .base import PAD_ID, AnnIndex
from .factory import FLAT_THRESHOLD, build, choose_factory, default_nprobe, needs_retrain
from .faiss_index import FaissIndex

__all__ = [
    "FLAT_THRESHOLD",
    "PAD_ID",
    "AnnIndex",
    "FaissIndex",
    "build",
    "choose_factory",
    "default_nprobe",
    "needs_retrain",
]
