"""The FAISS backend: an index-factory string, inner-product metric, SQLite row ids.

``Flat`` (and any other index that cannot hold ids itself) is wrapped in
``IndexIDMap2``; IVF indexes take ids natively. An index is saved as one file:

    MAGIC (8 bytes) | header length (uint32, little-endian) | JSON header | FAISS bytes

The header carries dim, factory, nprobe, trained_size, ntotal and the length and
CRC-32 of the FAISS bytes, so a truncated or damaged file is caught before FAISS
parses it.

An IVF index merged from shards (:mod:`.shards`) keeps its inverted lists in a second
file beside the first, ``<stem>.ivfdata`` (``ann-12.ivfdata`` for ``ann-12.faiss``), which
is memory-mapped read-only when loaded, so a searching process holds only the pages it
visits. Its header is format 2: format 1's fields plus ``data_file`` (the data file's name,
in the same directory) and ``data_bytes`` (its size, checked before it is mapped). The
FAISS bytes then hold the coarse quantizer, the PQ codebooks and the lists' offsets; the
data file's path recorded inside them by FAISS is ignored. Files without lists on disk are
still written as format 1, which every version reads.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .. import runtime
from ..errors import IndexCorruptError, UsageError
from .base import PAD_ID, AnnIndex, atomic_path, atomic_write, padded
from .sizing import default_nprobe

MAGIC = b"XSANNIDX"
FORMAT_VERSION = 1
MAPPED_FORMAT_VERSION = 2
"""Format of a file whose inverted lists live in a data file beside it."""
DATA_SUFFIX = ".ivfdata"
"""Suffix of the data file holding a merged index's inverted lists."""

TRAIN_SEED = 1234
"""Seed of the training sample, so the same vectors always give the same index."""

TRAIN_SAMPLE_MIN = 100_000
TRAIN_POINTS_PER_LIST = 64
"""Training uses at most max(TRAIN_SAMPLE_MIN, TRAIN_POINTS_PER_LIST x nlist) vectors."""


def _faiss_message(exc: Exception) -> str:
    """The useful part of a FAISS C++ error, on one line."""
    text = " ".join(str(exc).split())
    return re.sub(r"^Error in .*? at \S+:\d+: (Error: '.*?' failed: )?", "", text)


class FaissIndex(AnnIndex):
    """A FAISS index built from an index-factory string, searched by inner product.

    Args:
        dim: vector dimension.
        factory: FAISS index-factory string, e.g. ``"Flat"`` or ``"IVF1024,PQ48x8"``
            (see :func:`xsearch.ann.sizing.choose_factory`).
        nprobe: IVF lists visited per query unless :meth:`search` says otherwise;
            defaults to :func:`~xsearch.ann.sizing.default_nprobe` of nlist.
    """

    def __init__(self, dim: int, factory: str, *, nprobe: int | None = None) -> None:
        faiss = runtime.faiss()
        if dim < 1:
            raise UsageError(f"vector dimension must be positive, got {dim}")
        try:
            index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise UsageError(f"bad FAISS index factory {factory!r}: {_faiss_message(exc)}") from exc
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is None:
            index = faiss.IndexIDMap2(index)
        else:
            # Polysemous codes only serve Hamming-threshold search, which we do not
            # use, and training them is the slowest part of building IVF-PQ.
            ivf = faiss.downcast_index(ivf)
            if hasattr(ivf, "do_polysemous_training"):
                ivf.do_polysemous_training = False
        self._attach(index, factory, nprobe, trained_size=0)

    def _attach(self, index: Any, factory: str, nprobe: int | None, trained_size: int,
                data: Path | None = None) -> None:
        self._index = index
        self._ivf = runtime.faiss().try_extract_index_ivf(index)
        self._data = data
        self.dim = int(index.d)
        self.factory = factory
        self._trained_size = trained_size
        self.nprobe = default_nprobe(self.nlist) if nprobe is None else nprobe

    @property
    def data_file(self) -> Path | None:
        """The memory-mapped file holding the inverted lists, or None when they are in memory.

        Such an index is read-only where it is: :meth:`add` and :meth:`remove` first read
        its lists into memory (so later saves write one file again), and :meth:`copy`
        returns an in-memory copy. Searches only touch the pages of the lists they visit.
        """
        return self._data

    @property
    def nprobe(self) -> int:
        """IVF lists visited per query by default (1 and unused for non-IVF indexes)."""
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._nprobe = _check_nprobe(value)

    @property
    def nlist(self) -> int:
        """Number of IVF lists, 0 for indexes without them."""
        return int(self._ivf.nlist) if self._ivf is not None else 0

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    @property
    def trained_size(self) -> int:
        return self._trained_size

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        return (
            f"FaissIndex(dim={self.dim}, factory={self.factory!r}, ntotal={len(self)}, "
            f"nprobe={self.nprobe}, trained_size={self.trained_size})"
        )

    def train(self, vectors: np.ndarray) -> None:
        """Train on a seeded sample of ``vectors`` (deterministic); no-op for ``Flat``.

        Raises:
            UsageError: the index is already trained, or there are too few vectors.
        """
        x = self._vectors(vectors)
        if self._index.is_trained:
            if self._trained_size:
                raise UsageError("the vector index is already trained; build a new one to retrain")
            return
        n = x.shape[0]
        cap = max(TRAIN_SAMPLE_MIN, TRAIN_POINTS_PER_LIST * self.nlist)
        if n > cap:
            rows = np.random.default_rng(TRAIN_SEED).choice(n, cap, replace=False)
            x = x[np.sort(rows)]
        try:
            self._index.train(x)
        except RuntimeError as exc:
            raise UsageError(
                f"cannot train {self.factory} on {n} vectors: {_faiss_message(exc)}"
            ) from exc
        self._trained_size = n

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` under ``ids``; ids must be unique and not yet in the index
        (SQLite row ids are never reused; only uniqueness within the call is checked)."""
        x = self._vectors(vectors)
        ids = self._ids(ids, x.shape[0])
        if not self.is_trained:
            raise UsageError("train the vector index before adding vectors")
        if np.unique(ids).size != ids.size:
            raise UsageError("ids added to the vector index must be unique")
        if x.shape[0] == 0:
            return
        self._to_memory()
        self._index.add_with_ids(x, ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = self._ids(ids)
        if ids.size == 0:
            return 0
        self._to_memory()
        return int(self._index.remove_ids(runtime.faiss().IDSelectorBatch(ids)))

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed_ids: np.ndarray | None = None,
        nprobe: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by inner product; see :meth:`AnnIndex.search`.

        With ``allowed_ids`` on an IVF index, nprobe is scaled up by the share of the
        index the filter keeps (so about as many allowed vectors are scanned as an
        unfiltered search scans), and a query that still finds fewer than ``k`` hits
        is repeated over every list, so k hits come back whenever k exist.
        """
        q = self._vectors(np.atleast_2d(queries), "queries")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise UsageError(f"k must be a positive integer, got {k!r}")
        if not self.is_trained:
            raise UsageError("the vector index is not trained")
        k = int(k)
        nprobe = self.nprobe if nprobe is None else _check_nprobe(nprobe)
        nq = q.shape[0]
        if nq == 0 or len(self) == 0:
            return padded(nq, k)

        if allowed_ids is None:
            scores, ids = self._search(q, k, None, nprobe)
        else:
            if not isinstance(allowed_ids, np.ndarray):  # list, set, generator of ids
                allowed_ids = np.fromiter(allowed_ids, dtype=np.int64)
            allowed = np.unique(self._ids(allowed_ids))
            if allowed.size == 0:
                return padded(nq, k)
            selector = runtime.faiss().IDSelectorBatch(allowed)
            if self._ivf is not None:
                share = min(1.0, allowed.size / len(self))
                nprobe = min(self.nlist, math.ceil(nprobe / share))
            scores, ids = self._search(q, k, selector, nprobe)
            short = ids[:, -1] == PAD_ID
            if self._ivf is not None and nprobe < self.nlist and short.any():
                scores[short], ids[short] = self._search(q[short], k, selector, self.nlist)

        scores[ids == PAD_ID] = -np.inf
        return scores, ids

    def _search(
        self, q: np.ndarray, k: int, selector: Any, nprobe: int
    ) -> tuple[np.ndarray, np.ndarray]:
        faiss = runtime.faiss()
        if self._ivf is not None:
            params = faiss.SearchParametersIVF(nprobe=min(nprobe, self.nlist))
            if selector is not None:
                params.sel = selector
            if isinstance(self._index, faiss.IndexPreTransform):  # e.g. OPQ,IVF...
                params = faiss.SearchParametersPreTransform(index_params=params)
        elif selector is not None:
            params = faiss.SearchParameters(sel=selector)
        else:
            params = None
        return self._index.search(q, k, params=params)

    def copy(self) -> FaissIndex:
        clone = type(self).__new__(type(self))
        index = self._in_memory() if self._data is not None else runtime.faiss().clone_index(self._index)
        clone._attach(index, self.factory, self.nprobe, self._trained_size)
        return clone

    def _to_memory(self) -> None:
        """Read memory-mapped inverted lists into memory, so the index can change."""
        if self._data is not None:
            self._attach(self._in_memory(), self.factory, self.nprobe, self._trained_size)

    def _in_memory(self) -> Any:
        """A copy of this index whose inverted lists are in memory (``self`` is unchanged)."""
        faiss = runtime.faiss()
        clone = faiss.deserialize_index(faiss.serialize_index(self._index), faiss.IO_FLAG_SKIP_IVF_DATA)
        source = faiss.downcast_InvertedLists(self._ivf.invlists)
        lists = faiss.ArrayInvertedLists(source.nlist, source.code_size)
        for list_no in range(source.nlist):
            size = source.list_size(list_no)
            if size:
                lists.add_entries(list_no, size, source.get_ids(list_no), source.get_codes(list_no))
        ivf = faiss.extract_index_ivf(clone)
        ivf.replace_invlists(lists, True)
        lists.this.disown()
        return clone

    def to_bytes(self) -> bytes:
        """The index in the format of :meth:`save`, as bytes (inverted lists in memory only)."""
        if self._data is not None:
            raise UsageError("an index whose inverted lists are on disk cannot be serialized to bytes")
        return b"".join(bytes(part) for part in self._serialized({}))

    @classmethod
    def from_bytes(cls, data: bytes, origin: str = "<bytes>") -> FaissIndex:
        """Read an index from the bytes :meth:`to_bytes` returned; ``origin`` names them in errors."""
        header, payload = _parse(Path(origin), data)
        if header["format"] != FORMAT_VERSION:
            raise _corrupt(Path(origin), "inverted lists on disk cannot be read from bytes")
        return cls._from_payload(Path(origin), header, payload, 0)

    def _serialized(self, extra: dict[str, Any]) -> list[Any]:
        """The parts of a saved file: magic, header length, header, FAISS bytes."""
        payload = runtime.faiss().serialize_index(self._index)
        header = {
            "format": FORMAT_VERSION,
            "dim": self.dim,
            "factory": self.factory,
            "nprobe": self.nprobe,
            "trained_size": self.trained_size,
            "ntotal": len(self),
            "payload_bytes": int(payload.nbytes),
            "crc32": zlib.crc32(payload),
            **extra,
        }
        head = json.dumps(header, sort_keys=True).encode()
        return [MAGIC, struct.pack("<I", len(head)), head, payload]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to ``path`` atomically.

        An index whose inverted lists are memory-mapped is saved as format 2: its data file
        is first linked (copied where links are not possible) to ``<stem>.ivfdata`` beside
        ``path``, unless it is that file already, then ``path`` is written.
        """
        path = Path(path)
        if self._data is None:
            atomic_write(path, self._serialized({}))
            return
        target = path.parent / f"{path.stem}{DATA_SUFFIX}"
        if target.resolve() != self._data.resolve():
            with atomic_path(target) as tmp:
                tmp.unlink()
                try:
                    os.link(self._data, tmp)
                except OSError:
                    shutil.copyfile(self._data, tmp)
        extra = {
            "format": MAPPED_FORMAT_VERSION,
            "data_file": target.name,
            "data_bytes": target.stat().st_size,
        }
        atomic_write(path, self._serialized(extra))
        self._data = target  # the same lists, under the name that lives as long as ``path``

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FaissIndex:
        """Read an index written by :meth:`save`; a merged index's lists are memory-mapped.

        Raises:
            FileNotFoundError: no file at ``path``, or its data file went with it (both
                replaced by a writer meanwhile).
            IndexCorruptError: the file or its data file is truncated, damaged or missing.
        """
        path = Path(path)
        data = path.read_bytes()
        header, payload = _parse(path, data)
        data_bytes = 0
        if header["format"] == MAPPED_FORMAT_VERSION:
            data_bytes = _checked_data_file(path, header)
        return cls._from_payload(path, header, payload, data_bytes)

    @classmethod
    def _from_payload(cls, path: Path, header: dict[str, Any], payload: memoryview,
                      data_bytes: int) -> FaissIndex:
        faiss = runtime.faiss()
        flags = faiss.IO_FLAG_SKIP_IVF_DATA if data_bytes else 0
        try:
            index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8), flags)
        except RuntimeError as exc:
            raise _corrupt(path, f"unreadable FAISS data ({_faiss_message(exc)})") from exc
        if index.d != header["dim"] or index.ntotal != header["ntotal"]:
            raise _corrupt(path, "FAISS data does not match its header")
        data = None
        if data_bytes:
            data = path.parent / header["data_file"]
            _map_lists(path, index, data, data_bytes)
        self = cls.__new__(cls)
        self._attach(index, header["factory"], header["nprobe"], header["trained_size"], data)
        return self


def _checked_data_file(path: Path, header: dict[str, Any]) -> int:
    """The size of the data file a format 2 header names, checked against the header."""
    name, size = header.get("data_file"), header.get("data_bytes")
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(DATA_SUFFIX):
        raise _corrupt(path, "header field 'data_file' is missing or not a file name")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise _corrupt(path, "header field 'data_bytes' is missing or not a positive int")
    try:
        found = (path.parent / name).stat().st_size
    except FileNotFoundError:
        if not path.exists():
            raise  # both replaced by a writer meanwhile
        raise _corrupt(path, f"its data file {name} is missing") from None
    if found != size:
        raise _corrupt(path, f"expected {size} bytes in its data file {name}, found {found}")
    return size


def _map_lists(path: Path, index: Any, data: Path, size: int) -> None:
    """Map ``data`` read-only as the on-disk inverted lists of ``index`` (read with
    ``IO_FLAG_SKIP_IVF_DATA``), after checking that the lists fit in it."""
    faiss = runtime.faiss()
    ivf = faiss.try_extract_index_ivf(index)
    lists = None if ivf is None else faiss.downcast_InvertedLists(ivf.invlists)
    if not isinstance(lists, faiss.OnDiskInvertedLists):
        raise _corrupt(path, "a format 2 file must hold inverted lists on disk")
    if lists.totsize != size:
        raise _corrupt(path, f"its inverted lists need {lists.totsize} bytes, the header says {size}")
    lists.filename = str(data)
    lists.read_only = True
    try:
        lists.do_mmap()
    except RuntimeError as exc:
        if not data.exists() and not path.exists():
            raise FileNotFoundError(str(data)) from exc
        raise _corrupt(path, f"cannot map its data file ({_faiss_message(exc)})") from exc


def _check_nprobe(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError(f"nprobe must be a positive integer, got {value!r}")
    return int(value)


def _corrupt(path: Path, why: str) -> IndexCorruptError:
    return IndexCorruptError(f"{path}: vector index is corrupt: {why}; rebuild the index")


_HEADER_FIELDS = {
    "format": int,
    "dim": int,
    "factory": str,
    "nprobe": int,
    "trained_size": int,
    "ntotal": int,
    "payload_bytes": int,
    "crc32": int,
}


def _parse(path: Path, data: bytes) -> tuple[dict[str, Any], memoryview]:
    """Split a saved index into its checked header and its FAISS bytes."""
    prefix = len(MAGIC) + 4
    if len(data) < prefix or not data.startswith(MAGIC):
        raise _corrupt(path, "not an xsearch vector index file")
    (head_len,) = struct.unpack_from("<I", data, len(MAGIC))
    if prefix + head_len > len(data):
        raise _corrupt(path, "file is truncated inside its header")
    try:
        header = json.loads(data[prefix : prefix + head_len])
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise _corrupt(path, "header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise _corrupt(path, "header is not a JSON object")
    for key, kind in _HEADER_FIELDS.items():
        value = header.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _corrupt(path, f"header field {key!r} is missing or not {kind.__name__}")
    if header["format"] not in (FORMAT_VERSION, MAPPED_FORMAT_VERSION):
        raise _corrupt(path, f"unknown format version {header['format']}")
    if header["dim"] < 1 or header["nprobe"] < 1:
        raise _corrupt(path, "header holds an impossible dim or nprobe")
    payload = memoryview(data)[prefix + head_len :]
    if len(payload) != header["payload_bytes"]:
        raise _corrupt(
            path, f"expected {header['payload_bytes']} bytes of FAISS data, found {len(payload)}"
        )
    if zlib.crc32(payload) != header["crc32"]:
        raise _corrupt(path, "checksum mismatch")
    return header, payload
