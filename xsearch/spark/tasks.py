"""What a Spark task runs: files in, the rows of their documents and chunks out, as Arrow batches.

A task gets a partition of the files to read (path, content hash, mtime, size) and runs the
stages of a local run on them, group by group, with the same functions
(:mod:`xsearch.pipeline`): extract → detect languages → chunk → embed (sentence and token
vectors); then it picks each chunk's content tokens (:func:`~xsearch.embed.tokens.content_tokens`)
and compresses them with the index's token codec. It writes rows of :data:`PART_SCHEMA`, in
order: for every document a ``doc`` row (with its file's hash, mtime and size) followed by a
``chunk`` row per chunk; a ``skip`` row per file that could not be read; at the end of the
partition a ``stats`` row per language (the sums of the sentence and token vectors it made, for
centring) and a ``time`` row per stage (``model``: getting this worker's encoder).

The encoder is loaded once per Python worker process (Spark reuses them between tasks), with
one inference thread: a task is one core's work.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..config import IndexConfig
from .. import runtime
from ..embed.tokens import content_tokens
from ..pipeline import PreparedGroup, StageTimer, Target, embed_group, file_groups, prepare_group
from ..store.tokens import EncodedTokens, encode_tokens
from ..token_codec import TokenCodec
from ..types import LanguageMeans, SourceFile

PART_SCHEMA = pa.schema([
    ("kind", pa.string()),  # doc, chunk, skip, stats or time
    ("path", pa.string()),  # the file's key (doc, chunk, skip), the language (stats), the stage (time)
    ("hash", pa.string()), ("mtime", pa.float64()), ("size", pa.int64()),
    ("record", pa.int64()), ("title", pa.string()), ("lang", pa.string()), ("metadata", pa.string()),
    ("n_chars", pa.int64()),  # a document's length; stats: how many sentence vectors were summed
    ("text", pa.string()),  # a chunk's text; skip: the reason
    ("start", pa.int64()), ("end", pa.int64()), ("n_tokens", pa.int64()),
    ("vector", pa.binary()),  # a chunk's float16 vector; stats: the float64 sum of the sentence vectors
    ("token_count", pa.int64()),  # a chunk's kept tokens; stats: how many token vectors were summed
    ("token_offsets", pa.binary()),
    ("token_codes", pa.binary()),  # a chunk's token codes; stats: the float64 sum of the token vectors
    ("seconds", pa.float64()),  # time: seconds the task spent in the stage
])
"""The columns of a part (a Spark DDL string of them: :func:`spark_ddl`)."""
INPUT_DDL = "path binary, hash string, mtime double, size long"
"""The columns of the files a task reads: the path as the OS names it (as bytes) and what the scan found."""


def spark_ddl(schema: pa.Schema = PART_SCHEMA) -> str:
    """``schema`` as a Spark DDL string."""
    names = {pa.string(): "string", pa.float64(): "double", pa.int64(): "long", pa.binary(): "binary"}
    return ", ".join(f"`{field.name}` {names[field.type]}" for field in schema)


@dataclass(frozen=True)
class TaskSettings:
    """What every task needs, sent with the job: the index's settings and its token codec."""

    config: IndexConfig
    backend: str | None
    codec: bytes | None
    """The serialized token codec (None when the index keeps no token vectors)."""


_ENCODERS: dict[tuple, object] = {}
_CODECS: dict[bytes, TokenCodec] = {}
_CACHE_LOCK = threading.Lock()


def worker_encoder(config: IndexConfig, backend: str | None):  # noqa: ANN201 - Encoder, imported lazily
    """This process's encoder for ``config`` (loaded on first use, one inference thread)."""
    key = (config.model, config.pooling, config.layer, backend)
    with _CACHE_LOCK:
        if key not in _ENCODERS:
            from ..embed.encoder import Encoder

            _ENCODERS[key] = Encoder.load(config.model, pooling=config.pooling, layer=config.layer,
                                          backend=backend, threads=1)
        return _ENCODERS[key]


def worker_codec(data: bytes | None) -> TokenCodec | None:
    """The token codec serialized as ``data``, decoded once per process."""
    if data is None:
        return None
    with _CACHE_LOCK:
        if data not in _CODECS:
            _CODECS[data] = TokenCodec.from_bytes(data)
        return _CODECS[data]


def embed_partition(batches: Iterator[pa.RecordBatch], settings: TaskSettings,
                    counted: Callable[[int, int], None] = lambda files, chunks: None) -> Iterator[pa.RecordBatch]:
    """The rows of :data:`PART_SCHEMA` for the files of ``batches`` (columns :data:`INPUT_DDL`).

    ``counted(files, chunks)`` is called after each group of files (a Spark accumulator's
    ``add``, for the driver's progress bar).
    """
    runtime.steady_heap()
    timer = StageTimer()
    with timer.stage("model"):
        encoder = worker_encoder(settings.config, settings.backend)
        codec = worker_codec(settings.codec)
    target = Target(None, settings.config, lambda: encoder)  # type: ignore[arg-type]  # no store: nothing is written here
    means = LanguageSums()
    token_means = LanguageSums()
    stop = threading.Event()
    for batch in batches:
        columns = batch.to_pydict()
        todo = [(SourceFile(os.fsdecode(path), size, mtime), digest) for path, digest, mtime, size
                in zip(columns["path"], columns["hash"], columns["mtime"], columns["size"])]
        skipped: list = []
        done = 0
        for group, files_done in file_groups(todo, skipped, stop, timer):
            prepared = prepare_group(target, group, 0, timer)
            vectors, tokens = [], []
            for piece in embed_group(target, prepared, timer):  # slice by slice, keeping float16 vectors and codes
                with timer.stage("write"):
                    vectors.append(piece.vectors.astype(np.float16))
                    if codec is not None:
                        tokens += encode_tokens(codec, [content_tokens(t) for t in piece.tokens])
            rows = _Rows()
            with timer.stage("write"):
                chunks = rows.add_group(prepared, np.concatenate(vectors), tokens if codec else None,
                                        means, token_means)
            for item in skipped:
                rows.add(kind="skip", path=item.path, text=item.reason)
            skipped.clear()
            yield rows.batch()
            counted(files_done - done, chunks)
            done = files_done
    rows = _Rows()
    for lang in sorted(means.sums):
        tokens = token_means.sums.get(lang)
        rows.add(kind="stats", path=lang, n_chars=means.counts[lang], vector=means.sums[lang].tobytes(),
                 token_count=token_means.counts.get(lang, 0), token_codes=None if tokens is None else tokens.tobytes())
    for stage, seconds in timer.seconds().items():
        rows.add(kind="time", path=stage, seconds=seconds)
    yield rows.batch()


class LanguageSums:
    """Per-language sums (float64) and counts of vectors."""

    def __init__(self) -> None:
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, int] = {}

    def add(self, lang: str, n: int | None, total: np.ndarray | None) -> None:
        """Count ``n`` vectors summing to ``total`` (float64) in ``lang`` (nothing when none)."""
        if not n or total is None:
            return
        self.sums[lang] = self.sums[lang] + total if lang in self.sums else total.copy()
        self.counts[lang] = self.counts.get(lang, 0) + n


class _Rows:
    """Rows of :data:`PART_SCHEMA`, column by column."""

    def __init__(self) -> None:
        self.columns: dict[str, list] = {name: [] for name in PART_SCHEMA.names}

    def add(self, **values: object) -> None:
        for name, column in self.columns.items():
            column.append(values.get(name))

    def add_group(self, batch: PreparedGroup, vectors: np.ndarray, tokens: list[EncodedTokens] | None,
                  means: LanguageSums, token_means: LanguageSums) -> int:
        """The ``doc`` and ``chunk`` rows of a group with its chunks' float16 vectors and, if the
        index keeps them, compressed tokens (in the order of the group's chunks); returns its
        number of chunks."""
        pos = doc_pos = 0
        for state, file_docs in batch.group:
            for _ in file_docs:
                doc = batch.docs[doc_pos]
                self.add(kind="doc", path=state.path, hash=state.hash, mtime=state.mtime, size=state.size,
                         record=doc.record, title=doc.title, lang=doc.lang, n_chars=len(doc.text),
                         metadata=json.dumps(doc.metadata, ensure_ascii=False))
                for chunk in batch.chunks[doc_pos]:
                    means.add(chunk.lang, 1, vectors[pos].astype(np.float64))
                    token_row: dict[str, object] = {}
                    if tokens is not None:
                        encoded = tokens[pos]
                        token_means.add(chunk.lang, encoded.n, encoded.total)
                        token_row = {"token_count": encoded.n, "token_offsets": encoded.offsets,
                                     "token_codes": encoded.codes}
                    self.add(kind="chunk", path=state.path, text=chunk.text, start=chunk.start, end=chunk.end,
                             lang=chunk.lang, n_tokens=chunk.n_tokens, vector=vectors[pos].tobytes(), **token_row)
                    pos += 1
                doc_pos += 1
        return pos

    def batch(self) -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict(self.columns, schema=PART_SCHEMA)


def write_part_shard(part: str, first_id: int, shard: str, trained: bytes, scoring: str,
                     means: LanguageMeans) -> int:
    """Fill a copy of the ``trained`` vector index with the chunks of the Parquet part ``part``
    (stored under consecutive ids from ``first_id``, in the part's order), centred as the index
    compares them, and write it to the shard file ``shard``; returns the vectors written."""
    import pyarrow.parquet as pq

    from ..ann.shards import write_shard
    from ..embed.centering import prepare

    table = pq.read_table(part, columns=["kind", "lang", "vector"], filters=[("kind", "==", "chunk")])
    vectors = np.frombuffer(b"".join(table.column("vector").to_pylist()), dtype=np.float16)
    vectors = vectors.reshape(len(table), -1).astype(np.float32)
    ids = np.arange(first_id, first_id + len(table), dtype=np.int64)
    return write_shard(trained, ids, prepare(vectors, table.column("lang").to_pylist(), scoring, means), shard)
