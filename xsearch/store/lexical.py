"""Lexical search over chunks: an FTS5 trigram index scored with BM25.

Dense vectors miss exact strings: product codes (``XK-4711``), formulas (``C6H12O6``),
names and rare words. This module keeps an FTS5 index of ``chunks.text`` in step with the
``chunks`` table and answers keyword queries in every script.

The index (:data:`LEXICAL_SCHEMA`)
    ``chunks_fts`` is an external-content FTS5 table (``content='chunks'``, so the text is
    stored once) with the ``trigram`` tokenizer: every run of three characters is a token,
    so a quoted term matches as a substring anywhere, with or without spaces between words.
    That is what makes Chinese, Japanese and Thai searchable without a word segmenter.
    ``case_sensitive 0`` folds case with SQLite's simple Unicode folding (``Ö`` = ``ö``,
    ``Д`` = ``д``; but ``ß`` is not ``ss``). ``remove_diacritics`` exists for ``trigram``
    only from SQLite 3.45, and a database whose schema names it cannot be opened by an older
    SQLite at all, so it is not used: ``cafe`` does not find ``café``. Triggers on ``chunks``
    keep the index in step, including for rows removed by ``ON DELETE CASCADE`` from
    ``files`` and ``documents`` (foreign-key actions fire triggers).

Reads (:class:`FtsReader`)
    The query side (:mod:`xsearch.search.lexical`) parses queries and ranks chunks with BM25;
    it reads the index only through :class:`FtsReader`: FTS5 matches with ``-bm25()``, the
    trigram occurrences of the ``fts5vocab`` instance table, and the collection statistics
    FTS5 keeps for bm25() (rows, trigrams per row).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import closing

import numpy as np

from ..errors import XsearchError

_STATEMENTS = (
    (
        "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5("
        "text, content='chunks', content_rowid='id', tokenize='trigram case_sensitive 0')"
    ),
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts_instance USING fts5vocab(chunks_fts, instance)",
    (
        "CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN "
        "INSERT INTO chunks_fts (rowid, text) VALUES (new.id, new.text); END"
    ),
    (
        "CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN "
        "INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
    ),
    (
        "CREATE TRIGGER IF NOT EXISTS chunks_fts_update AFTER UPDATE OF id, text ON chunks BEGIN "
        "INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); "
        "INSERT INTO chunks_fts (rowid, text) VALUES (new.id, new.text); END"
    ),
)
LEXICAL_SCHEMA = ";\n".join(_STATEMENTS) + ";\n"
"""SQL creating ``chunks_fts``, its vocabulary view and the triggers that keep it in step with ``chunks``."""
_SYNCED = frozenset({"chunks_fts", "chunks_fts_insert", "chunks_fts_delete", "chunks_fts_update"})
_NAMES = _SYNCED | {"chunks_fts_instance"}

# schema -----------------------------------------------------------------
def ensure_lexical(conn: sqlite3.Connection) -> None:
    """Create ``chunks_fts`` and its triggers if missing; index existing chunks when new.

    Call after the main schema exists, e.g. on every open: when all is in place it only reads
    ``sqlite_master``. Otherwise it writes in its own transaction unless the caller already
    holds one, and fills the table with FTS5's ``'rebuild'`` if the table or a trigger was
    missing while ``chunks`` has rows. Raises :class:`XsearchError` if this SQLite has no FTS5 trigram
    tokenizer (it needs 3.34 or newer).
    """
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'chunks_fts%'")}
    if _NAMES <= names:
        return  # the usual case: no write lock taken, so opening an index never waits on a writer
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _STATEMENTS:
            conn.execute(statement)
        # A new table, or one that missed writes while a trigger was gone, is filled from chunks.
        if not _SYNCED <= names and conn.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is not None:
            conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild')")
        if own:
            conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if own:
            conn.execute("ROLLBACK")
        if "tokenize" in str(exc) or "fts5" in str(exc):
            raise XsearchError(
                f"SQLite {sqlite3.sqlite_version} cannot build the keyword index "
                f"(FTS5 with the trigram tokenizer needs SQLite 3.34 or newer): {exc}"
            ) from exc
        raise
    except BaseException:
        if own:
            conn.execute("ROLLBACK")
        raise


# reads ----------------------------------------------------------------------
class FtsReader:
    """Read access to the keyword index over one connection (the calling thread's)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def top(self, match: str, k: int, allowed: set[int] | None) -> dict[int, float]:
        """The best ``k`` FTS matches of an FTS5 ``match`` expression (``-bm25()``, higher is
        better) among the ``allowed`` chunks (all when None)."""
        sql = ("SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
               "ORDER BY bm25(chunks_fts), rowid")
        if allowed is None:
            return {int(cid): float(score) for cid, score in self.conn.execute(sql + " LIMIT ?", (match, k))}
        # Matches stream best first and are filtered until k pass: cheaper than handing SQLite
        # the id list (for 100k allowed ids, ~10 ms against ~50 ms for IN (json_each(...))).
        found: dict[int, float] = {}
        with closing(self.conn.execute(sql, (match,))) as cursor:
            for cid, score in cursor:
                if cid in allowed:
                    found[int(cid)] = float(score)
                    if len(found) == k:
                        break
        return found

    def scores_of(self, match: str, ids: Sequence[int]) -> dict[int, float]:
        """FTS scores of the given chunks, where they match ``match``."""
        # "+rowid": a plain rowid IN (...) is handed to FTS5, which then runs the whole MATCH
        # once per listed id; as a filter the list is built once and probed per match.
        sql = ("SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
               "AND +rowid IN (SELECT value FROM json_each(?))")
        return {int(cid): float(score) for cid, score in self.conn.execute(sql, (match, _json_ids(ids)))}

    def trigram_counts(self, low: str, high: str) -> dict[int, int]:
        """Per chunk, the occurrences of trigrams in ``[low, high)`` (case-folded)."""
        return dict(self.conn.execute("SELECT doc, count(*) FROM chunks_fts_instance WHERE term >= ? AND term < ? "
                                      "GROUP BY doc", (low, high)))

    def trigram_instances(self, low: str, high: str) -> list[tuple[int, str, int]]:
        """``(chunk id, trigram, offset in trigrams)`` of every trigram in ``[low, high)``."""
        return self.conn.execute("SELECT doc, term, offset FROM chunks_fts_instance WHERE term >= ? AND term < ?",
                                 (low, high)).fetchall()

    def texts(self, ids: Sequence[int]) -> dict[int, str]:
        """The text of the given chunks."""
        if not len(ids):
            return {}
        return dict(self.conn.execute("SELECT id, text FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
                                      (_json_ids(ids),)))

    def collection_stats(self) -> tuple[int, float]:
        """Rows and mean tokens per row, as FTS5 keeps them for bm25() (its "averages" record)."""
        row = self.conn.execute("SELECT block FROM chunks_fts_data WHERE id = 1").fetchone()
        if row is None or not row[0]:
            return 0, 0.0
        n_rows, at = _varint(row[0], 0)
        n_tokens, _ = _varint(row[0], at)
        return n_rows, (n_tokens / n_rows if n_rows else 0.0)

    def lengths(self, ids: Sequence[int]) -> np.ndarray:
        """Tokens (trigrams) per chunk, from FTS5's docsize table, in the order of ``ids``."""
        sizes = {doc: _varint(blob, 0)[0] for doc, blob in self.conn.execute(
            "SELECT id, sz FROM chunks_fts_docsize WHERE id IN (SELECT value FROM json_each(?))", (_json_ids(ids),))}
        return np.array([sizes.get(doc, 0) for doc in ids], dtype=np.float64)


def _json_ids(ids: np.ndarray | Sequence[int]) -> str:
    """Ids as a JSON array, for ``IN (SELECT value FROM json_each(?))`` (one parameter, any length)."""
    return json.dumps(np.asarray(ids, dtype=np.int64).tolist())


def _varint(blob: bytes, at: int) -> tuple[int, int]:
    """An SQLite varint (FTS5's integer encoding) at ``at``: (value, offset after it)."""
    value = 0
    for i in range(at, min(at + 9, len(blob))):
        byte = blob[i]
        if i == at + 8:
            return (value << 8) | byte, i + 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, i + 1
    return value, len(blob)
