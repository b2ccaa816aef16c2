"""Bulk loading: many files' documents, chunks, vectors and token codes written in one transaction.

An indexing run on a cluster (:mod:`xsearch.spark`) embeds and compresses everything before
anything is stored; :func:`bulk_write` then stores it the way :meth:`Store.replace_files`
stores one group, as one write (one generation), with what is already computed taken as it
is: chunk ids given by the caller (after the highest id the index ever gave, so never reused),
float16 vectors and token codes as bytes, and the per-language sums of the vectors added.

Rows go in with ``executemany`` as they arrive (:class:`BulkWriter`), so the whole load need
not fit in memory; nothing is visible to readers before the commit, and an error (or a
process killed) before it leaves the index as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..types import LanguageMeans
from .db import FileState, Store
from .tokens import TokenCodec


@dataclass(frozen=True)
class BulkDocument:
    """A document's row, before its id is given."""

    path: str
    record: int
    title: str
    lang: str
    metadata: str
    """The metadata as a JSON object."""
    n_chars: int


@dataclass(frozen=True)
class BulkChunk:
    """A chunk's row with its float16 vector and, if the index keeps them, its token codes."""

    text: str
    start: int
    end: int
    lang: str
    n_tokens: int
    vector: bytes
    """The L2-normalised sentence vector as little-endian float16."""
    token_count: int | None = None
    token_offsets: bytes | None = None
    token_codes: bytes | None = None


def next_ids(store: Store) -> tuple[int, int]:
    """The first document id and the first chunk id the next write may give: one past the
    highest ever given (AUTOINCREMENT's counter, or the highest row when it has none)."""
    conn = store.db.conn
    first = []
    for table in ("documents", "chunks"):
        seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", [table]).fetchone()
        top = conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
        first.append(max(seq[0] if seq else 0, top or 0) + 1)
    return first[0], first[1]


class BulkWriter:
    """Adds rows inside the transaction of :func:`bulk_write`; ids are given in order from the
    first ones free when it began."""

    def __init__(self, conn: sqlite3.Connection, gen: int, first_doc: int, first_chunk: int) -> None:
        self._conn = conn
        self._gen = gen
        self.next_doc = first_doc
        self.next_chunk = first_chunk
        self.files = self.documents = self.chunks = 0
        self.means = LanguageMeans({}, {})
        """Sums and counts of the sentence vectors added, per language (:meth:`add_sums`)."""
        self.token_means = LanguageMeans({}, {})
        """The same of the token vectors added."""

    def add_sums(self, added: LanguageMeans, added_tokens: LanguageMeans) -> None:
        """Count sums of the sentence and token vectors added (float64, per language) in the
        index's language means; the float16 vectors and the raw (not decoded) token vectors are
        summed, as :meth:`Store.replace_files` sums them."""
        for mine, more in ((self.means, added), (self.token_means, added_tokens)):
            _add_means(mine.sums, mine.counts, more)  # type: ignore[arg-type]  # built here as dicts

    def add_file(self, state: FileState) -> None:
        """A source, before its documents."""
        self._conn.execute("INSERT INTO files (path, hash, mtime, size, indexed_gen) VALUES (?, ?, ?, ?, ?)",
                           (state.path, state.hash, state.mtime, state.size, self._gen))
        self.files += 1

    def add_document(self, doc: BulkDocument, chunks: Sequence[BulkChunk]) -> int:
        """A document of the last file added, with its chunks in order; returns the document's id."""
        doc_id = self.next_doc
        self._conn.execute(
            "INSERT INTO documents (id, path, record, title, lang, metadata, n_chars) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (doc_id, doc.path, doc.record, doc.title, doc.lang, doc.metadata, doc.n_chars))
        ids = range(self.next_chunk, self.next_chunk + len(chunks))
        self._conn.executemany(
            'INSERT INTO chunks (id, doc_id, ord, text, start, "end", lang, n_tokens, gen) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(cid, doc_id, ordinal, c.text, c.start, c.end, c.lang, c.n_tokens, self._gen)
             for ordinal, (cid, c) in enumerate(zip(ids, chunks))])
        self._conn.executemany("INSERT INTO vectors (chunk_id, vec) VALUES (?, ?)",
                               [(cid, c.vector) for cid, c in zip(ids, chunks)])
        self._conn.executemany("INSERT INTO token_vectors (chunk_id, n, offsets, codes) VALUES (?, ?, ?, ?)",
                               [(cid, c.token_count, c.token_offsets, c.token_codes)
                                for cid, c in zip(ids, chunks) if c.token_codes is not None])
        self.next_doc += 1
        self.next_chunk += len(chunks)
        self.documents += 1
        self.chunks += len(chunks)
        return doc_id


@contextmanager
def bulk_write(store: Store, *, removed: Sequence[str] = (), touched: Sequence[FileState] = (),
               replaced: Sequence[str] = (), codec: TokenCodec | None = None) -> Iterator[BulkWriter]:
    """One write of many files: yields a :class:`BulkWriter` inside a transaction that first
    removes the sources ``removed`` and ``replaced`` (their chunks become tombstones of the new
    generation) and records the new mtimes of ``touched`` files; on leaving, it adds the
    per-language sums the writer was given (:meth:`BulkWriter.add_sums`) to the index's and
    commits, with the generation bumped.

    ``codec`` is stored as the index's token codec when it has none yet (the token codes added
    must be its codes). An exception inside the block rolls everything back.
    """
    with store._writing() as conn, store._transaction(conn, [*removed, *replaced]) as write:
        conn.executemany("UPDATE files SET mtime = ?, size = ? WHERE path = ?",
                         [(s.mtime, s.size, s.path) for s in touched])
        if codec is not None and store.token_codec() is None:
            store._store_codec(codec)
        writer = BulkWriter(conn, write.gen, *next_ids(store))
        yield writer
        _add_means(write.sums, write.counts, writer.means)
        _add_means(write.token_sums, write.token_counts, writer.token_means)


def _add_means(sums: dict[str, np.ndarray], counts: dict[str, int], added: LanguageMeans) -> None:
    """Add per-language sums and counts to ``sums`` / ``counts``, in place."""
    for lang, total in added.sums.items():
        n = int(added.counts.get(lang, 0))
        if n <= 0:
            continue
        sums[lang] = sums.get(lang, np.zeros(len(total), dtype=np.float64)) + np.asarray(total, dtype=np.float64)
        counts[lang] = counts.get(lang, 0) + n
