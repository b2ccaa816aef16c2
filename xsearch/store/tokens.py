"""The token store: the codec the token vectors are kept with, and reading them back.

The codec is :class:`~xsearch.token_codec.TokenCodec`, shared with the encoder, which trains one
per model (see :mod:`xsearch.token_codec`). :func:`read_tokens` reads the token codes, spans and
languages of many chunks in one query, packed end to end, and :func:`read_chunks` their vectors
with them (a search's first stage and its rerank read the same candidates); :func:`decode_tokens` turns codes into
vectors, for a ``pq`` codec through its :func:`codebook` (the centroids as one contiguous array,
worked out once per codec). On the way in, :func:`encode_tokens` compresses many chunks' token
vectors in one codec call into :class:`EncodedTokens`, what the store writes of a chunk, so that
a writer need not keep float32 token vectors until its transaction.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import IndexCorruptError
from ..token_codec import KINDS, MIN_TRAIN_TOKENS, NotEnoughTokensError, TokenCodec
from ..types import ChunkTokens

__all__ = ["KINDS", "MIN_TRAIN_TOKENS", "Codebook", "EncodedTokens", "NotEnoughTokensError", "StoredTokens",
           "TokenCodec", "codebook", "decode_tokens", "encode_tokens", "read_chunks", "read_tokens"]

CENTROIDS = 256
"""Centroids per sub-quantizer of a ``pq`` codec (one-byte codes)."""
_BATCH = 500
"""Chunk ids per SQL statement (below SQLite's smallest limit on bound variables)."""


@dataclass(frozen=True)
class StoredTokens:
    """The stored tokens of some chunks, packed end to end, chunk after chunk."""

    ids: np.ndarray
    """``(c,)`` int64 chunk ids."""
    counts: np.ndarray
    """``(c,)`` int64 tokens of each chunk."""
    codes: np.ndarray
    """``(sum(counts), bytes_per_token)`` uint8 codes, as the codec wrote them."""
    offsets: np.ndarray
    """``(sum(counts), 2)`` int32 character spans of the tokens in their chunk's text."""
    langs: list[str]
    """Language of each chunk."""

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def starts(self) -> np.ndarray:
        """``(c + 1,)`` int64: chunk ``j``'s tokens are rows ``starts[j]:starts[j + 1]``."""
        return np.concatenate(([0], np.cumsum(self.counts)))

    def select(self, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, StoredTokens]:
        """The chunks of ``ids`` that are here, in that order: their positions in ``ids`` and
        their tokens."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == len(self.ids) and np.array_equal(ids, self.ids):
            return np.arange(len(ids)), self
        row_of = {c: j for j, c in enumerate(self.ids.tolist())}
        present = [i for i, c in enumerate(ids.tolist()) if c in row_of]
        rows = [row_of[int(ids[i])] for i in present]
        starts = self.starts
        tokens = np.concatenate([np.arange(starts[j], starts[j + 1]) for j in rows]) if rows else np.zeros(0, np.int64)
        chosen = StoredTokens(self.ids[rows], self.counts[rows], self.codes[tokens], self.offsets[tokens],
                              [self.langs[j] for j in rows])
        return np.asarray(present, dtype=np.int64), chosen


@dataclass(frozen=True)
class EncodedTokens:
    """A chunk's token vectors as the store writes them: compressed with the index's codec."""

    n: int
    """Tokens of the chunk."""
    offsets: bytes
    """``(n, 2)`` int32 character spans in the chunk's text, in native byte order."""
    codes: bytes
    """``n * bytes_per_token`` bytes from :meth:`TokenCodec.encode`."""
    total: np.ndarray
    """``(d,)`` float64 sum of the uncompressed vectors, for the per-language token means."""


def encode_tokens(codec: TokenCodec, tokens: Sequence[ChunkTokens]) -> list[EncodedTokens]:
    """Compress the token vectors of many chunks in one call of ``codec`` (each vector is coded
    on its own, so the codes are those of one call per chunk)."""
    if not tokens:
        return []
    counts = [len(t.vectors) for t in tokens]
    codes = codec.encode(np.concatenate([t.vectors for t in tokens]))
    size = codec.bytes_per_token
    out = []
    start = 0
    for chunk, n in zip(tokens, counts):
        total = np.asarray(chunk.vectors).astype(np.float64).sum(axis=0)
        out.append(EncodedTokens(n, np.asarray(chunk.offsets, dtype=np.int32).tobytes(),
                                 codes[start * size : (start + n) * size], total))
        start += n
    return out


def read_tokens(conn: sqlite3.Connection, ids: Sequence[int] | np.ndarray, bytes_per_token: int) -> StoredTokens:
    """The stored tokens of the chunks ``ids`` (once each, in the order given; chunks without
    token vectors are left out), read with their languages in one query per 500 ids."""
    wanted = list(dict.fromkeys(int(i) for i in ids))
    found: dict[int, tuple[int, bytes, bytes, str]] = {}
    for start in range(0, len(wanted), _BATCH):
        part = wanted[start : start + _BATCH]
        marks = ",".join("?" * len(part))
        for cid, n, codes, offsets, lang in conn.execute(
                "SELECT t.chunk_id, t.n, t.codes, t.offsets, c.lang FROM token_vectors t "
                f"JOIN chunks c ON c.id = t.chunk_id WHERE t.chunk_id IN ({marks})", part):
            found[cid] = (n, codes, offsets, lang)
    return _packed([(cid, *found[cid]) for cid in wanted if cid in found], bytes_per_token)


def read_chunks(conn: sqlite3.Connection, ids: Sequence[int] | np.ndarray, dim: int, bytes_per_token: int
                ) -> tuple[np.ndarray, list[str], np.ndarray, StoredTokens]:
    """What a search compares of the chunks ``ids``, in one query per 500 ids: the ids of those
    that exist (ascending), their languages, their ``(c, dim)`` float32 vectors and their stored
    tokens (:func:`read_tokens`, in the same order, without the chunks that have none)."""
    wanted = sorted({int(i) for i in ids})
    rows: list[tuple[int, str, bytes, int | None, bytes | None, bytes | None]] = []
    for start in range(0, len(wanted), _BATCH):
        part = wanted[start : start + _BATCH]
        marks = ",".join("?" * len(part))
        rows += conn.execute(
            "SELECT c.id, c.lang, v.vec, t.n, t.codes, t.offsets FROM chunks c JOIN vectors v ON v.chunk_id = c.id "
            f"LEFT JOIN token_vectors t ON t.chunk_id = c.id WHERE c.id IN ({marks}) ORDER BY c.id", part).fetchall()
    chunk_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = (np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float16).reshape(len(rows), -1).astype(np.float32)
               if rows else np.zeros((0, dim), dtype=np.float32))
    tokens = [(r[0], r[3], r[4], r[5], r[1]) for r in rows if r[3] is not None]
    return chunk_ids, [r[1] for r in rows], vectors, _packed(tokens, bytes_per_token)


def _packed(rows: Sequence[tuple[int, int, bytes, bytes, str]], bytes_per_token: int) -> StoredTokens:
    """:class:`StoredTokens` from ``(chunk id, n, codes, offsets, lang)`` rows."""
    counts = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    codes = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.uint8).reshape(-1, bytes_per_token)
    offsets = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.int32).reshape(-1, 2)
    if len(codes) != counts.sum() or len(offsets) != len(codes):
        raise IndexCorruptError("token vectors are corrupt: codes, spans and token counts disagree; rebuild the index")
    return StoredTokens(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)), counts, codes, offsets,
                        [r[4] for r in rows])


@dataclass(frozen=True)
class Codebook:
    """A product quantizer's centroids: a code ``(c_0, ..., c_{m-1})`` stands for the vector
    ``centroids[0, c_0] | centroids[1, c_1] | ...`` (the sub-vectors side by side)."""

    centroids: np.ndarray
    """``(m, 256, d / m)`` float32."""

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """``(n, m)`` uint8 codes -> ``(n, d)`` float32 vectors: one lookup of a ``d / m``-float
        row per code, in one call, on the calling thread."""
        m, ksub, dsub = self.centroids.shape
        rows = np.asarray(codes, dtype=np.uint8).reshape(-1, m).astype(np.intp)
        rows += np.arange(0, m * ksub, ksub, dtype=np.intp)
        return self.centroids.reshape(m * ksub, dsub).take(rows.ravel(), axis=0).reshape(len(rows), m * dsub)


_CODEBOOKS: weakref.WeakKeyDictionary[TokenCodec, Codebook | None] = weakref.WeakKeyDictionary()


def codebook(codec: TokenCodec) -> Codebook | None:
    """The centroids of a ``pq`` codec (worked out once per codec), or None for a codec whose
    codes do not decode to centroids side by side (``fp16``, ``ivfpq``)."""
    if codec not in _CODEBOOKS:
        _CODEBOOKS[codec] = _codebook(codec)
    return _CODEBOOKS[codec]


def _codebook(codec: TokenCodec) -> Codebook | None:
    m = codec.bytes_per_token
    if codec.kind != "pq" or codec.dim % m:
        return None
    # code (k, k, ..., k) decodes to every sub-quantizer's k-th centroid side by side
    unit = np.repeat(np.arange(CENTROIDS, dtype=np.uint8)[:, None], m, axis=1)
    decoded = codec.decode(unit.tobytes(), CENTROIDS)
    centroids = np.ascontiguousarray(decoded.reshape(CENTROIDS, m, -1).transpose(1, 0, 2), dtype=np.float32)
    probe = np.random.default_rng(0).integers(0, CENTROIDS, (64, m), dtype=np.uint8)
    gathered = centroids[np.arange(m), probe].reshape(len(probe), -1)
    if not np.allclose(codec.decode(probe.tobytes(), len(probe)), gathered, atol=1e-6):
        return None
    return Codebook(centroids)


def decode_tokens(codec: TokenCodec, codes: np.ndarray) -> np.ndarray:
    """``(n, bytes_per_token)`` uint8 codes (as :attr:`StoredTokens.codes`) -> ``(n, d)``
    float32 token vectors, as :meth:`TokenCodec.decode` gives them. A ``pq`` codec's codes are
    looked up in its :func:`codebook` (numpy, on the calling thread): FAISS's own decoder
    starts OpenMP threads, which wait for a core whenever the machine is busy (median 4.6 ms
    against 1.2 ms for 100 candidates on two loaded cores, the same minimum of 0.5 ms)."""
    book = codebook(codec)
    if book is not None:
        return book.decode(codes)
    return codec.decode(np.ascontiguousarray(codes).tobytes(), len(codes))
