"""The interface every vector index implements, and the checks they share.

An ANN index maps int64 ids (SQLite row ids) to L2-normalised float32 vectors and
answers top-k inner-product queries. It only has to return good *candidates*: the
exact vectors live in the store and the query engine re-scores what comes back.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import IndexMismatchError, UsageError

if TYPE_CHECKING:
    from typing import Self

PAD_ID = -1
"""Id returned where fewer than ``k`` hits exist; its score is ``-inf``."""


class AnnIndex(ABC):
    """A vector index behind train / add / remove / search / copy / save / load.

    Attributes:
        dim: dimension of the vectors it holds.
        factory: the FAISS index-factory string it was built from (e.g. ``"Flat"``,
            ``"IVF1024,PQ48x8"``); saved with the index.
    """

    dim: int
    factory: str

    @property
    @abstractmethod
    def is_trained(self) -> bool:
        """Whether vectors can be added (exact indexes are always trained)."""

    @property
    @abstractmethod
    def trained_size(self) -> int:
        """Number of vectors passed to :meth:`train` (0 for indexes that need none).

        This is the corpus size at training time, not the size of the sample drawn
        from it, so it can be compared with the current corpus size.
        """

    @abstractmethod
    def train(self, vectors: np.ndarray) -> None:
        """Learn the index's quantizers from ``vectors`` (n, dim); a no-op when none are needed."""

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` (n, dim) under ``ids`` (n,), new non-negative int64 ids."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids``; unknown ids are ignored. Returns how many vectors went."""

    @abstractmethod
    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed_ids: np.ndarray | None = None,
        nprobe: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` neighbours of each query by inner product.

        Args:
            queries: (nq, dim) float32; a single (dim,) vector is read as one query.
            k: number of hits per query, >= 1.
            allowed_ids: when given, only these ids may be returned; the filter is
                applied before the top-k is cut, so k hits come back when k exist.
            nprobe: inverted lists visited per query (IVF only); defaults to the
                value stored with the index.

        Returns:
            ``(scores, ids)``, both of shape (nq, k): float32 scores, best first, and
            int64 ids, padded with ``-1`` (score ``-inf``) where fewer hits exist.
        """

    @abstractmethod
    def copy(self) -> Self:
        """An independent copy: change it while searches go on in the original."""

    @abstractmethod
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to ``path`` atomically (see :func:`atomic_write`)."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read an index written by :meth:`save`.

        Raises:
            FileNotFoundError: no file at ``path`` (left to the caller, which knows
                whether that means "no index" or "replaced by a writer meanwhile").
            IndexCorruptError: the file is truncated, garbage or of another format.
        """

    @abstractmethod
    def __len__(self) -> int:
        """Number of vectors held."""

    # Shared input checks: backends call these so they accept the same inputs.

    def _vectors(self, vectors: Any, what: str = "vectors") -> np.ndarray:
        """``vectors`` as a C-contiguous float32 (n, dim) array, or a clear error."""
        array = np.ascontiguousarray(vectors, dtype=np.float32)
        if array.ndim != 2:
            raise UsageError(f"{what} must be a 2-D array (n, {self.dim}), got shape {array.shape}")
        if array.shape[1] != self.dim:
            raise IndexMismatchError(
                f"{what} have dimension {array.shape[1]} but the index holds dimension {self.dim}"
            )
        if not np.isfinite(array).all():
            raise UsageError(f"{what} contain NaN or infinite values")
        return array

    @staticmethod
    def _ids(ids: Any, n: int | None = None) -> np.ndarray:
        """``ids`` as a 1-D int64 array of non-negative ids (of length ``n`` if given)."""
        array = np.asarray(ids)
        if array.size == 0:
            array = array.astype(np.int64)
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise UsageError(
                f"ids must be a 1-D array of integers, got {array.dtype} {array.shape}"
            )
        if n is not None and array.shape[0] != n:
            raise UsageError(f"got {array.shape[0]} ids for {n} vectors")
        if array.size and array.min() < 0:
            raise UsageError("ids must be non-negative (-1 marks padding in results)")
        return np.ascontiguousarray(array, dtype=np.int64)


def padded(nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """An all-padding result: ``-inf`` scores and ``-1`` ids of shape (nq, k)."""
    return np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), PAD_ID, dtype=np.int64)


def atomic_write(path: str | os.PathLike[str], chunks: Iterable[Any]) -> None:
    """Write ``chunks`` (bytes-like) to ``path`` so readers see the old file or the new one
    (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(chunk)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; on success it replaces ``path``.

    Whatever the block writes to the temporary file is fsynced, then the file replaces
    ``path`` with :func:`os.replace` and the directory is fsynced, so the rename itself
    survives a crash: readers see the old file or the new one, never a part. On error
    the temporary file is removed.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make the renames inside ``folder`` durable (a no-op where directories cannot be opened)."""
    if os.name == "posix":
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
