"""Building a large IVF index in shards: train once, fill shards in parallel, merge on disk.

The recipe FAISS uses for indexes larger than one machine's memory
(``faiss.contrib.ondisk``, ``demos/demo_ondisk_ivf.py``), in three calls that a distributed
job (a driver and its tasks) or a single process can make:

1. :func:`train_empty` on the driver: a trained, empty index over a sample of the corpus,
   as bytes to ship to every task;
2. :func:`write_shard` in each task: that index, filled with the task's vectors, written to
   a shard file (a plain FAISS file; shards are intermediate, not vector index files);
3. :func:`merge_shards` once all shards exist: their inverted lists concatenated list by
   list into one data file, ``<stem>.ivfdata``, beside the merged index file (see
   :mod:`.faiss_index`), which :meth:`FaissIndex.load` then memory-maps.

Only IVF indexes have inverted lists to merge: :func:`merge_shards` refuses a ``Flat``
factory (build such a small corpus in one piece with :func:`xsearch.ann.build`) rather than
falling back to a ``faiss.IndexShards`` that would search every shard in memory. Shards must
be filled from one :func:`train_empty` result (checked) and hold distinct ids (not checked:
they are the store's row ids).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .. import runtime
from ..errors import IndexCorruptError, IndexMismatchError, UsageError
from .base import atomic_path, fsync_dir
from .faiss_index import DATA_SUFFIX, FaissIndex, _faiss_message


ADD_BLOCK = 65_536
"""Vectors :func:`write_shard` converts and adds at a time."""


def train_empty(sample: np.ndarray, factory: str) -> bytes:
    """A trained, empty index for ``factory``, serialized (the format of :meth:`FaissIndex.save`).

    ``sample`` (n, dim) holds L2-normalised vectors drawn from the corpus; training follows
    :meth:`FaissIndex.train` (inner product, a seeded sub-sample when ``sample`` is larger
    than the index needs). ``factory`` is an index-factory string such as
    :func:`~xsearch.ann.sizing.choose_factory` returns for the corpus size.
    """
    sample = np.asarray(sample)
    if sample.ndim != 2:
        raise UsageError(f"the training sample must be a 2-D array (n, dim), got shape {sample.shape}")
    index = FaissIndex(sample.shape[1], factory)
    index.train(sample)
    return index.to_bytes()


def write_shard(trained: bytes, ids: np.ndarray, vectors: np.ndarray,
                path: str | os.PathLike[str]) -> int:
    """Fill a copy of the ``trained`` index with ``vectors`` under ``ids`` and write it to
    ``path`` atomically, as a FAISS file; returns the number of vectors written.

    Vectors are added :data:`ADD_BLOCK` at a time, so memory is the caller's arrays, the
    trained index and the codes, plus one block as float32 (not a float32 copy of them all).
    """
    index = FaissIndex.from_bytes(trained, "the trained index")
    ids, vectors = index._ids(ids), np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
        raise UsageError(f"got {ids.shape[0]} ids for vectors of shape {vectors.shape}")
    if np.unique(ids).size != ids.size:
        raise UsageError("ids added to the vector index must be unique")
    for start in range(0, len(ids), ADD_BLOCK):
        index.add(ids[start : start + ADD_BLOCK], vectors[start : start + ADD_BLOCK])
    with atomic_path(path) as tmp:
        runtime.faiss().write_index(index._index, str(tmp))
    return len(index)


def merge_shards(trained: bytes, shard_paths: Iterable[str | os.PathLike[str]],
                 out_path: str | os.PathLike[str]) -> None:
    """Merge the inverted lists of the shards at ``shard_paths`` into one index at ``out_path``.

    The lists are written to ``<stem>.ivfdata`` beside ``out_path`` (shards are memory-mapped
    while they are read, so neither side has to fit in memory), then ``out_path`` itself is
    written; both go to a temporary name, are fsynced and renamed, the data file first, so a
    reader never finds an index file without its data. When the shards hold no vector at all,
    the empty index is written as a single file.

    Raises:
        UsageError: ``trained`` is not an empty IVF index, or no shard is given.
        IndexMismatchError: a shard was not filled from ``trained``.
        IndexCorruptError: a shard file is not a readable FAISS index.
        FileNotFoundError: a shard file is missing.
    """
    base = FaissIndex.from_bytes(trained, "the trained index")
    if base.nlist == 0:
        raise UsageError(
            f"cannot merge shards of a {base.factory!r} index: only IVF indexes have inverted lists "
            "to merge; build a corpus this small in one piece"
        )
    if len(base):
        raise UsageError("the trained index given to merge_shards must be empty")
    paths = [Path(p) for p in shard_paths]
    if not paths:
        raise UsageError("no shards to merge")
    out_path = Path(out_path)
    faiss = runtime.faiss()
    shards = [_read_shard(path, base) for path in paths]  # kept alive while their lists are read
    if sum(int(shard.ntotal) for shard in shards) == 0:
        base.save(out_path)
        return

    index = base._index
    ivf = faiss.extract_index_ivf(index)
    data_path = out_path.parent / f"{out_path.stem}{DATA_SUFFIX}"
    fd, name = tempfile.mkstemp(prefix=f".{data_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        lists = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(tmp))
        sources = faiss.InvertedListsPtrVector()
        for shard in shards:
            sources.push_back(faiss.extract_index_ivf(shard).invlists)
        with runtime.native_stdout_to_stderr():  # FAISS prints "resizing ..." as it grows the file
            ntotal = lists.merge_from_multiple(sources.data(), sources.size(), False)
        ivf.replace_invlists(lists, True)
        lists.this.disown()
        index.ntotal = ivf.ntotal = ntotal
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # also writes back the pages dirtied through the mapping
        os.replace(tmp, data_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(out_path.parent)
    merged = FaissIndex.__new__(FaissIndex)
    merged._attach(index, base.factory, base.nprobe, ntotal, data_path)
    merged.save(out_path)


def _read_shard(path: Path, base: FaissIndex) -> Any:
    """The shard at ``path``, its lists memory-mapped, checked against the trained ``base``."""
    faiss = runtime.faiss()
    if not path.is_file():
        raise FileNotFoundError(f"shard {path} does not exist")
    try:
        shard = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError as exc:
        raise IndexCorruptError(f"{path}: shard is not a readable FAISS index ({_faiss_message(exc)})") from exc
    ivf = faiss.try_extract_index_ivf(shard)
    mine = faiss.extract_index_ivf(base._index)
    if ivf is None or ivf.nlist != mine.nlist or ivf.code_size != mine.code_size or shard.d != base.dim:
        raise IndexMismatchError(f"{path}: shard does not have the shape of the trained index ({base.factory})")
    if not np.array_equal(_centroids(ivf), _centroids(mine)):
        raise IndexMismatchError(f"{path}: shard was filled from another trained index")
    return shard


def _centroids(ivf: Any) -> np.ndarray:
    """The coarse centroids of an IVF index (nlist, dim)."""
    return ivf.quantizer.reconstruct_n(0, ivf.nlist)
