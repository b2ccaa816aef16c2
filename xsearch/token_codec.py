"""Compact token vectors: a codec per model or per index, one BLOB per chunk.

A :class:`TokenCodec` turns a chunk's ``(n, d)`` float32 token vectors into ``n *
bytes_per_token`` bytes and back. Kinds:

``fp16``
    Half floats, ``2 * d`` bytes per token, no training, exact to fp16 precision.
``pq``
    FAISS product quantizer, ``m`` sub-quantizers of 8 bits: ``m`` bytes per token
    (``d`` must be a multiple of ``m``). Trained on a seeded sample of token vectors.
``ivfpq``
    ColBERTv2-style residual coding: the nearest of ``nlist`` (<= 256) k-means centroids
    (1 byte) plus a product-quantized residual, ``1 + m`` bytes per token.

The codec itself is saved with :meth:`TokenCodec.to_bytes`::

    MAGIC (8 bytes) | header length (uint32, little-endian) | JSON header | FAISS bytes

where the header names the kind, dimension, ``m``, ``nlist`` and the length and CRC-32 of the
serialized FAISS codebook (empty for ``fp16``).

A new index trains its codec on the token vectors of its first write. When that write is small
(:data:`xsearch.pipeline.MODEL_CODEC_BELOW`), it takes the model's ``pq`` codec instead, trained
once on xsearch's calibration texts by the encoder
(:meth:`xsearch.embed.encoder.Encoder.token_codec`) and offered to the store
(:meth:`xsearch.store.db.Store.set_token_codec`); an index whose settings ask for another kind
always trains its own. The codec sits below both layers so that both can use it.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import runtime
from .errors import IndexCorruptError, UsageError, XsearchError

__all__ = ["DIMS_PER_CODE", "KINDS", "MIN_TRAIN_TOKENS", "NotEnoughTokensError", "TokenCodec", "training_sample"]

KINDS = ("fp16", "pq", "ivfpq")
MAGIC = b"XSTOKCDC"
FORMAT_VERSION = 1
MIN_TRAIN_TOKENS = 256
"""Fewest training vectors for a trained kind: each 8-bit sub-quantizer has 256 centroids."""
MAX_TRAIN_TOKENS = 16_384
"""Training uses a seeded sample of at most this many vectors: 64 per centroid. Training time grows
with the sample; on bible-nt-7 token vectors, codebooks from 16,384 reconstruct held-out tokens
at a mean cosine of 0.951, against 0.953 from 60,000 (FAISS's own cap is 65,536)."""
TRAIN_ITERATIONS = 8
"""k-means iterations per sub-quantizer (FAISS's default is 25). On 8,000 bible-nt-7 token
vectors, 8 took a third of the CPU time of 25 for a held-out cosine of 0.9502 against 0.9503."""
DEFAULT_M = 48
DIMS_PER_CODE = 8
"""Dimensions per one-byte code in :meth:`TokenCodec.for_vectors`: 384-d tokens take 48 bytes."""
DEFAULT_NLIST = 256


def training_sample(parts: Sequence[np.ndarray], seed: int = 1234) -> np.ndarray:
    """The rows :meth:`TokenCodec.train` (with ``seed``) trains on when given ``parts`` stacked
    into one ``(n, d)`` array, gathered from ``parts`` without stacking them: at most
    :data:`MAX_TRAIN_TOKENS` rows, float32. Training on the result gives the same codec as
    training on the stack, for a fraction of its memory."""
    parts = [np.asarray(p) for p in parts]
    total = sum(len(p) for p in parts)
    if total <= MAX_TRAIN_TOKENS:
        return np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros((0, 0)), dtype=np.float32)
    rows = _sample_rows(total, seed)
    picked = []
    start = 0
    for part in parts:
        lo, hi = np.searchsorted(rows, [start, start + len(part)])
        picked.append(part[rows[lo:hi] - start])
        start += len(part)
    return np.ascontiguousarray(np.concatenate(picked), dtype=np.float32)


def _sample_rows(total: int, seed: int) -> np.ndarray:
    """The ascending rows of a seeded sample of :data:`MAX_TRAIN_TOKENS` out of ``total``."""
    return np.sort(np.random.default_rng(seed).choice(total, MAX_TRAIN_TOKENS, replace=False))


class NotEnoughTokensError(XsearchError):
    """Too few token vectors to train a quantizer; use the ``fp16`` kind instead."""


class TokenCodec:
    """Encodes ``(n, d)`` token vectors into ``n * bytes_per_token`` bytes and back.

    Create with :meth:`train` (or :meth:`from_bytes` for a saved codec); the constructor
    is internal.
    """

    def __init__(self, kind: str, dim: int, *, m: int = 0, nlist: int = 0, index: Any = None) -> None:
        self.kind = kind
        self.dim = dim
        self.m = m
        self.nlist = nlist
        self._index = index  # a trained FAISS index used through sa_encode / sa_decode

    # construction -------------------------------------------------------------
    @classmethod
    def train(cls, sample: np.ndarray, kind: str, m: int | None = None, seed: int = 1234, *,
              nlist: int = DEFAULT_NLIST) -> TokenCodec:
        """A codec of ``kind`` for vectors like ``sample`` (``(n, d)`` float32).

        ``m`` is the number of sub-quantizers of the ``pq`` and ``ivfpq`` kinds (default 48;
        must divide ``d``); ``nlist`` the coarse centroids of ``ivfpq`` (at most 256). At most
        :data:`MAX_TRAIN_TOKENS` rows, drawn with ``seed``, are used.

        Raises:
            NotEnoughTokensError: a trained kind got fewer than :data:`MIN_TRAIN_TOKENS`
                rows (or fewer than ``nlist``); fall back to ``fp16``.
            UsageError: unknown kind, or ``m`` / ``nlist`` that do not fit ``d``.
        """
        x = np.asarray(sample)
        if x.ndim != 2 or x.shape[1] == 0:
            raise UsageError(f"token vectors must be a (n, d) array, got shape {x.shape}")
        dim = x.shape[1]
        if kind not in KINDS:
            raise UsageError(f"unknown token codec {kind!r}; choose one of {', '.join(KINDS)}")
        if kind == "fp16":
            return cls("fp16", dim)
        m = DEFAULT_M if m is None else m
        if m < 1 or dim % m:
            raise UsageError(f"pq needs m dividing the dimension {dim}, got m={m}")
        if kind == "ivfpq" and not 1 <= nlist <= 256:
            raise UsageError(f"ivfpq needs 1 <= nlist <= 256 (one-byte centroid ids), got {nlist}")
        need = max(MIN_TRAIN_TOKENS, nlist if kind == "ivfpq" else 0)
        if len(x) < need:
            raise NotEnoughTokensError(f"{kind} token codec needs at least {need} training vectors, "
                                       f"got {len(x)}; use fp16")
        if len(x) > MAX_TRAIN_TOKENS:
            x = x[_sample_rows(len(x), seed)]
        x = np.ascontiguousarray(x, dtype=np.float32)
        faiss = runtime.faiss()
        factory = f"PQ{m}x8" if kind == "pq" else f"IVF{nlist},PQ{m}x8"
        index = faiss.index_factory(dim, factory)
        clusterings = [index.pq.cp] + ([index.cp] if kind == "ivfpq" else [])
        for clustering in clusterings:
            clustering.seed = seed
            clustering.niter = TRAIN_ITERATIONS
            # FAISS warns on stderr below 39 points per centroid; the codebooks are the same without
            # the warning, and a small index's first write is often that small
            clustering.min_points_per_centroid = 1
        index.do_polysemous_training = False  # the factory turns it on; it only reorders codes, slowly
        if kind == "ivfpq":
            index.by_residual = True
        index.train(x)
        return cls(kind, dim, m=m, nlist=nlist if kind == "ivfpq" else 0, index=index)

    @classmethod
    def for_vectors(cls, sample: np.ndarray, kind: str = "pq", seed: int = 1234) -> TokenCodec:
        """A codec of ``kind`` for vectors like ``sample``, with one one-byte code per
        :data:`DIMS_PER_CODE` dimensions; ``fp16`` when the dimension does not split evenly
        or ``sample`` is too small to train ``kind``."""
        dim = np.shape(sample)[-1]
        if kind != "fp16" and dim % DIMS_PER_CODE == 0:
            try:
                return cls.train(sample, kind, m=dim // DIMS_PER_CODE, seed=seed)
            except NotEnoughTokensError:
                pass
        return cls.train(sample, "fp16")

    # sizes --------------------------------------------------------------------
    @property
    def bytes_per_token(self) -> int:
        """Size of one encoded token vector."""
        if self.kind == "fp16":
            return 2 * self.dim
        return int(self._index.sa_code_size())

    # coding -------------------------------------------------------------------
    def encode(self, vectors: np.ndarray) -> bytes:
        """``(n, d)`` token vectors -> ``n * bytes_per_token`` bytes."""
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise UsageError(f"expected (n, {self.dim}) token vectors, got shape {x.shape}")
        if self.kind == "fp16":
            return x.astype("<f2").tobytes()
        if len(x) == 0:
            return b""
        return self._index.sa_encode(x).tobytes()

    def decode(self, blob: bytes, n_tokens: int) -> np.ndarray:
        """Bytes from :meth:`encode` -> ``(n_tokens, d)`` float32 vectors.

        Raises:
            IndexCorruptError: the blob's length does not match ``n_tokens``.
        """
        return self._decode_codes(self._codes(blob, n_tokens))

    def decode_many(self, blobs: Sequence[bytes], counts: Sequence[int]) -> list[np.ndarray]:
        """Decode many chunks in one call: ``blobs[i]`` holds ``counts[i]`` tokens.

        Returns one ``(counts[i], d)`` float32 array per blob (views into one buffer).
        """
        flat = self.decode_concat(blobs, counts)
        return np.split(flat, np.cumsum(np.asarray(counts, dtype=np.int64))[:-1]) if len(counts) else []

    def decode_concat(self, blobs: Sequence[bytes], counts: Sequence[int]) -> np.ndarray:
        """Like :meth:`decode_many`, but the chunks stay packed end to end in one
        ``(sum(counts), d)`` float32 array, ready for :func:`xsearch.search.rerank.maxsim_packed`.
        """
        if len(blobs) != len(counts):
            raise UsageError(f"{len(blobs)} blobs but {len(counts)} token counts")
        return self._decode_codes(self._codes(b"".join(blobs), int(sum(counts))))

    def _codes(self, blob: bytes, n_tokens: int) -> np.ndarray:
        size = self.bytes_per_token
        if n_tokens < 0 or len(blob) != n_tokens * size:
            raise IndexCorruptError(f"token vectors are corrupt: {len(blob)} bytes for {n_tokens} tokens "
                                    f"of {size} bytes; rebuild the index")
        if self.kind == "fp16":
            return np.frombuffer(blob, dtype="<f2").reshape(n_tokens, self.dim)
        return np.frombuffer(blob, dtype=np.uint8).reshape(n_tokens, size)

    def _decode_codes(self, codes: np.ndarray) -> np.ndarray:
        if self.kind == "fp16":
            return codes.astype(np.float32)
        if len(codes) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.sa_decode(np.ascontiguousarray(codes))

    # persistence --------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The codec (kind, sizes, codebooks) as bytes for :meth:`from_bytes`."""
        payload = b"" if self._index is None else runtime.faiss().serialize_index(self._index).tobytes()
        header = {"format": FORMAT_VERSION, "kind": self.kind, "dim": self.dim, "m": self.m, "nlist": self.nlist,
                  "payload_bytes": len(payload), "crc32": zlib.crc32(payload)}
        head = json.dumps(header, sort_keys=True).encode()
        return b"".join([MAGIC, struct.pack("<I", len(head)), head, payload])

    @classmethod
    def from_bytes(cls, data: bytes) -> TokenCodec:
        """Read back a codec saved with :meth:`to_bytes`.

        Raises:
            IndexCorruptError: the bytes are not a codec, or are damaged.
        """
        data = bytes(data)
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
            raise _corrupt("not a token codec")
        (size,) = struct.unpack_from("<I", data, len(MAGIC))
        start = len(MAGIC) + 4
        try:
            header = json.loads(data[start : start + size])
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _corrupt("unreadable header") from None
        fields = {"format": int, "kind": str, "dim": int, "m": int, "nlist": int, "payload_bytes": int, "crc32": int}
        if not isinstance(header, dict) or any(not isinstance(header.get(k), t) for k, t in fields.items()):
            raise _corrupt("incomplete header")
        if header["format"] != FORMAT_VERSION:
            raise _corrupt(f"format {header['format']} is not {FORMAT_VERSION}")
        if header["kind"] not in KINDS:
            raise _corrupt(f"unknown kind {header['kind']!r}")
        payload = data[start + size :]
        if len(payload) != header["payload_bytes"] or zlib.crc32(payload) != header["crc32"]:
            raise _corrupt("truncated or damaged codebook")
        index = None
        if header["kind"] != "fp16":
            faiss = runtime.faiss()
            try:
                index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
            except RuntimeError as exc:
                raise _corrupt(f"unreadable codebook ({exc})") from exc
            if index.d != header["dim"]:
                raise _corrupt("codebook does not match its header")
        return cls(header["kind"], header["dim"], m=header["m"], nlist=header["nlist"], index=index)

    def __repr__(self) -> str:
        extra = "" if self.kind == "fp16" else f", m={self.m}" + (f", nlist={self.nlist}" if self.nlist else "")
        return f"TokenCodec({self.kind!r}, dim={self.dim}{extra}, {self.bytes_per_token} B/token)"


def _corrupt(why: str) -> IndexCorruptError:
    return IndexCorruptError(f"token codec is corrupt: {why}; rebuild the index")
