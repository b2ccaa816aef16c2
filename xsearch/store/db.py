"""The SQLite side of an index: files, documents, chunks, their vectors, and settings.

SQLite is the source of truth. Every write happens in one transaction that also bumps the
index *generation*; chunk rows remember the generation that added them and removed chunk
ids are kept as tombstones, so the vector index (a derived file) can be brought up to date
from any earlier generation. Chunk ids come from AUTOINCREMENT and are never reused.

A *source* is a row of ``files``: a file by its absolute path, or a text added through the
API by ``text:<id>`` (:func:`text_source`). Every document has a string id
(:func:`document_key`): the text's id, or the file's path (``path#N`` for record N > 0).

Threads: writes go through one connection, one thread at a time (:meth:`Store._writing`);
every other thread reads through a connection of its own, so in WAL mode it sees the last
committed state and never a write in progress. :meth:`Store.snapshot` makes a series of
reads see one state.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from ..errors import IndexCorruptError, IndexNotFoundError
from ..token_codec import training_sample
from ..types import Chunk, ChunkRow, ChunkTokens, Document, LanguageMeans
from .lexical import FtsReader, ensure_lexical
from .tokens import EncodedTokens, StoredTokens, TokenCodec, read_chunks, read_tokens

TOKEN_CODEC = "pq"
"""How token vectors are stored unless the index settings say otherwise (see store/tokens.py)."""

DB_NAME = "xsearch.db"
SCHEMA_VERSION = 1
TEXT_SOURCE = "text:"
"""Prefix of the ``files.path`` of a text added through the API (absolute paths never start so)."""


def text_source(key: str) -> str:
    """The ``files.path`` under which the text with id ``key`` is stored."""
    return TEXT_SOURCE + key


def is_text_source(path: str) -> bool:
    """Whether a stored ``files.path`` / ``documents.path`` is a text rather than a file."""
    return path.startswith(TEXT_SOURCE)


def document_key(path: str, record: int) -> str:
    """The id of the document stored under ``path`` and ``record`` (see the module docstring)."""
    if is_text_source(path):
        return path[len(TEXT_SOURCE) :]
    return path if record == 0 else f"{path}#{record}"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, hash TEXT NOT NULL, mtime REAL NOT NULL, size INTEGER NOT NULL,
    indexed_gen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL REFERENCES files(path) ON DELETE CASCADE,
    record INTEGER NOT NULL DEFAULT 0, title TEXT NOT NULL DEFAULT '',
    lang TEXT NOT NULL DEFAULT '', metadata TEXT NOT NULL DEFAULT '{}',
    n_chars INTEGER NOT NULL DEFAULT 0,
    UNIQUE (path, record)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL, text TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    lang TEXT NOT NULL DEFAULT '', n_tokens INTEGER NOT NULL DEFAULT 0, gen INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ord);
CREATE INDEX IF NOT EXISTS chunks_gen ON chunks(gen);
CREATE INDEX IF NOT EXISTS chunks_lang ON chunks(lang);
CREATE TABLE IF NOT EXISTS vectors (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE, vec BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS lang_stats (lang TEXT PRIMARY KEY, n INTEGER NOT NULL, sum BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS token_vectors (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
    n INTEGER NOT NULL, offsets BLOB NOT NULL, codes BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS token_lang_stats (lang TEXT PRIMARY KEY, n INTEGER NOT NULL, sum BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (chunk_id INTEGER PRIMARY KEY, gen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_gen ON tombstones(gen);
"""
_LINKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS translations (
    chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    other_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    score REAL NOT NULL,
    PRIMARY KEY (chunk_id, other_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS translations_other ON translations(other_id);
"""
"""Translation links between chunks (both directions stored): made by the writer after each run,
so an index from before them gets its links on its next write."""


@dataclass(frozen=True)
class FileState:
    """What the index knows of a file, to decide whether it must be read again."""

    path: str
    hash: str
    mtime: float
    size: int


@dataclass(frozen=True)
class StoredVectors:
    """Chunk ids with their languages and vectors, row-aligned."""

    ids: np.ndarray
    langs: list[str]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class NewDocument:
    """A document ready to store: its chunks, one vector per chunk, and optionally token vectors."""

    document: Document
    chunks: Sequence[Chunk]
    vectors: np.ndarray
    tokens: Sequence[ChunkTokens] | Sequence[EncodedTokens] | None = None
    """One item per chunk: the token vectors, compressed by the write, or already compressed
    (:func:`~xsearch.store.tokens.encode_tokens`) with the index's codec
    (:meth:`Store.choose_token_codec` gives it), so that a writer keeps only the codes."""


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to ``path``; ``readonly`` opens it so that nothing can change the file
    (``immutable`` when neither the file nor its folder may be written: no ``-shm`` is needed)."""
    if readonly:
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        if not _writable(path):
            uri += "&immutable=1"
        conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _writable(path: Path) -> bool:
    """Whether this process may write ``path`` and the files SQLite keeps beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


TEMP_PREFIX = DB_NAME + ".new-"
"""Name prefix of a database being created; renamed to :data:`DB_NAME` once complete."""
_OUR_TABLES = {"settings", "files", "documents", "chunks", "vectors", "lang_stats", "token_vectors",
               "token_lang_stats", "blobs", "tombstones", "translations", "roots", "sqlite_sequence"}


def probe(directory: Path) -> str:
    """What ``directory``'s database is, read without changing it: ``"index"`` (ours),
    ``"unfinished"`` (left half-made by an interrupted creation: no tables, or our tables
    without settings and without files), ``"foreign"`` (another program's SQLite file) or
    ``"missing"``. Raises :class:`IndexCorruptError` if the file is no SQLite database."""
    path = directory / DB_NAME
    if not path.is_file():
        return "missing"
    try:
        conn = _connect(path, readonly=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return "unfinished"
            if not {name for name in tables if not name.startswith("chunks_fts")} <= _OUR_TABLES:
                return "foreign"
            if "settings" in tables and conn.execute(
                    "SELECT 1 FROM settings WHERE key = 'schema_version'").fetchone() is not None:
                return "index"
            if "files" not in tables or conn.execute("SELECT 1 FROM files LIMIT 1").fetchone() is None:
                return "unfinished"
            return "foreign"
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"{path} is not a readable xsearch database: {exc}") from exc


def discard_unfinished(directory: Path) -> None:
    """Delete what an interrupted creation left in ``directory`` (call only when :func:`probe`
    says ``"unfinished"`` or ``"missing"``): the half-made database and temporary files."""
    for leftover in [*directory.glob(TEMP_PREFIX + "*"), *(directory / (DB_NAME + s) for s in ("", "-wal", "-shm"))]:
        leftover.unlink(missing_ok=True)


def _create(directory: Path, settings: Mapping[str, Any]) -> None:
    """Write a complete new database (schema, FTS tables, ``settings``) under a temporary name
    and rename it into place, so :data:`DB_NAME` never exists half-made."""
    temp = directory / f"{TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}"
    temp.unlink(missing_ok=True)
    conn = sqlite3.connect(temp, isolation_level=None)
    try:
        conn.executescript(_SCHEMA)
        ensure_lexical(conn)
        conn.execute("BEGIN")
        conn.executemany("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                         [(k, json.dumps(v)) for k, v in
                          {**settings, "schema_version": SCHEMA_VERSION, "generation": 0}.items()])
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    os.replace(temp, directory / DB_NAME)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Database:
    """A connection as a sqlite-utils ``Database`` shows it to the store (``conn``, ``execute``,
    ``db[table]``), with sqlite-utils imported (a twentieth of a second) only when a table is
    first asked for by name, which only writes do: a search never imports it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.execute("PRAGMA recursive_triggers=on")  # as sqlite_utils.Database sets it
        self._tables: Any = None

    def execute(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None) -> sqlite3.Cursor:
        return self.conn.execute(sql) if parameters is None else self.conn.execute(sql, parameters)

    def __getitem__(self, name: str) -> Any:
        """sqlite-utils' ``Table`` called ``name``."""
        if self._tables is None:
            import sqlite_utils

            self._tables = sqlite_utils.Database(self.conn)
        return self._tables[name]


class _Reader:
    """One thread's read connection; closed when the thread ends or the store closes."""

    def __init__(self, path: Path, readonly: bool) -> None:
        conn = _connect(path, readonly=readonly)
        self.db = _Database(conn)
        self.depth = 0
        """Nesting of :meth:`Store.snapshot` on this connection."""
        weakref.finalize(self, conn.close)


@dataclass
class _Write:
    """What one write (:meth:`Store._transaction`) adds up while it runs: its generation and
    the index's per-language sums and counts of sentence and token vectors."""

    gen: int
    sums: dict[str, np.ndarray]
    counts: dict[str, int]
    token_sums: dict[str, np.ndarray]
    token_counts: dict[str, int]

    def add_tokens(self, lang: str, n: int, total: np.ndarray) -> None:
        """Count ``n`` token vectors of ``lang`` summing to ``total`` (float64)."""
        self.token_sums[lang] = self.token_sums.get(lang, np.zeros(len(total), dtype=np.float64)) + total
        self.token_counts[lang] = self.token_counts.get(lang, 0) + n


class Store:
    """One index's SQLite database, opened through sqlite-utils (see :class:`_Database`); safe to
    share between threads.

    ``create`` makes a new database (see :func:`_create`) holding ``settings``. An existing one
    is first read without changing it and only written to once it is known to be an index;
    ``readonly`` (by default: when the file or folder may not be written) opens it for reading
    only (the facade then refuses writes with :class:`~xsearch.errors.IndexReadOnlyError`).
    """

    def __init__(self, directory: Path, *, create: bool = False, settings: Mapping[str, Any] | None = None,
                 readonly: bool | None = None) -> None:
        path = directory / DB_NAME
        self.path = path
        self._codec: TokenCodec | None = None
        self._offered_codec: TokenCodec | None = None
        self._chosen_codec: TokenCodec | None = None
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._closed = False
        if create:
            _create(directory, settings or {})
        if not path.is_file():
            raise IndexCorruptError(f"{directory} has no {DB_NAME}")
        kind = probe(directory)
        if kind == "foreign":
            raise IndexNotFoundError(f"{path} is not an xsearch index (another program's SQLite database)")
        if kind == "unfinished":
            raise IndexNotFoundError(f"{path} was left unfinished by an interrupted `xsearch index`; "
                                     "run `xsearch index` again to build it")
        self.readonly = not _writable(path) if readonly is None else readonly
        """Whether this store was opened for reading only."""
        try:
            conn = _connect(path, readonly=self.readonly)
            if not self.readonly:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            self._writer = _Database(conn)
            with self._writing():
                if not self.readonly:
                    if self._has_table("chunks") and not self._has_table("token_vectors"):
                        conn.executescript(_SCHEMA)
                    ensure_lexical(conn)
                version = self.get_setting("schema_version")
                if version != SCHEMA_VERSION:
                    raise IndexCorruptError(f"{path}: unsupported schema version {version!r}")
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"{path} is not a readable xsearch database: {exc}") from exc

    @property
    def db(self) -> _Database:
        """The calling thread's connection: the writer's during a write, else the thread's own."""
        if getattr(self._local, "writing", 0):
            return self._writer
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is None:
            with self._readers_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                reader = self._local.reader = _Reader(self.path, self.readonly)
                self._readers.add(reader)
        return reader.db

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """Hold the write connection: one thread at a time; :attr:`db` is that connection meanwhile."""
        with self._write_lock:
            depth = getattr(self._local, "writing", 0)
            self._local.writing = depth + 1
            try:
                yield self._writer.conn
            finally:
                self._local.writing = depth

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Make the reads inside see one committed state (one read transaction); nests."""
        if getattr(self._local, "writing", 0):
            yield
            return
        conn = self.db.conn
        reader: _Reader = self._local.reader
        if reader.depth == 0:
            conn.execute("BEGIN")
        reader.depth += 1
        try:
            yield
        finally:
            reader.depth -= 1
            if reader.depth == 0 and conn.in_transaction:
                conn.execute("COMMIT")

    def _has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone() is not None

    def close(self) -> None:
        """Close every connection (the writer's and each thread's)."""
        with self._readers_lock:
            self._closed = True
            readers = list(self._readers)
        for reader in readers:
            reader.db.conn.close()
        self._writer.conn.close()

    # settings -------------------------------------------------------------
    def get_setting(self, key: str, default: Any = None) -> Any:
        """One setting, decoded from JSON."""
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return default if row is None else self._decoded(key, row[0])

    def settings(self) -> dict[str, Any]:
        """All settings, decoded from JSON."""
        return {k: self._decoded(k, v) for k, v in self.db.execute("SELECT key, value FROM settings")}

    def _decoded(self, key: str, value: Any) -> Any:
        try:
            return json.loads(value)
        except (TypeError, ValueError) as exc:
            raise IndexCorruptError(f"{self.path}: setting {key!r} is damaged; rebuild the index") from exc

    def _whole_number(self, key: str) -> int:
        value = self.get_setting(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise IndexCorruptError(f"{self.path}: setting {key!r} is {value!r}, not a whole number; rebuild the index")
        return value

    def set_settings(self, values: dict[str, Any]) -> None:
        """Insert or replace settings."""
        with self._writing():
            self.db["settings"].upsert_all(
                [{"key": k, "value": json.dumps(v)} for k, v in values.items()], pk="key"
            )

    @property
    def generation(self) -> int:
        """The number of committed writes so far."""
        return self._whole_number("generation")

    # files ----------------------------------------------------------------
    def file_states(self) -> dict[str, FileState]:
        """Every indexed file by path."""
        rows = self.db.execute("SELECT path, hash, mtime, size FROM files")
        return {r[0]: FileState(*r) for r in rows}

    def touch_files(self, states: Iterable[FileState]) -> None:
        """Record new mtimes of files whose content did not change."""
        with self._writing() as conn, conn:
            conn.executemany(
                "UPDATE files SET mtime = ?, size = ? WHERE path = ?",
                [(s.mtime, s.size, s.path) for s in states],
            )

    # writes ---------------------------------------------------------------
    def replace_files(self, removed: Sequence[str], added: Sequence[tuple[FileState, Sequence[NewDocument]]], *,
                      removed_documents: Sequence[int] = ()) -> int:
        """Remove ``removed`` sources (files or texts) and the documents with the row ids
        ``removed_documents``, and (re)write ``added`` sources, all in one transaction.

        A source in ``added`` that is already indexed has its old documents replaced. Returns
        the new generation.
        """
        with self._writing() as conn:
            return self._replace(conn, removed, added, [int(i) for i in removed_documents])

    def _replace(self, conn: sqlite3.Connection, removed: Sequence[str],
                 added: Sequence[tuple[FileState, Sequence[NewDocument]]], removed_documents: list[int]) -> int:
        with self._transaction(conn, [*removed, *(state.path for state, _ in added)], removed_documents) as write:
            codec = self._codec_for(added)
            for state, docs in added:
                conn.execute(
                    "INSERT INTO files (path, hash, mtime, size, indexed_gen) VALUES (?, ?, ?, ?, ?)",
                    (state.path, state.hash, state.mtime, state.size, write.gen),
                )
                for new in docs:
                    self._insert_document(new, write.gen, codec)
                    langs = [c.lang for c in new.chunks]
                    vectors = np.asarray(new.vectors, dtype=np.float16).astype(np.float64)
                    _accumulate(write.sums, write.counts, vectors, langs, 1)
                    for lang, tokens in zip(langs, new.tokens or ()):
                        if isinstance(tokens, EncodedTokens):
                            n, total = tokens.n, tokens.total
                        else:
                            n, total = len(tokens.vectors), tokens.vectors.astype(np.float64).sum(axis=0)
                        if n:
                            write.add_tokens(lang, n, total)
        return write.gen

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection, paths: Sequence[str],
                     removed_documents: Sequence[int] = ()) -> Iterator[_Write]:
        """One write (hold :meth:`_writing` around it): a transaction that removes the sources
        ``paths`` and the documents ``removed_documents`` (their chunks become tombstones of the
        new generation and leave the language sums), yields what the block adds to, and on
        leaving stores the language sums, bumps the generation and commits; an exception rolls
        it all back (a codec stored inside it included)."""
        had_codec = self._codec is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            sums, counts = self._lang_sums("lang_stats")
            token_sums, token_counts = self._lang_sums("token_lang_stats")
            write = _Write(self.generation + 1, sums, counts, token_sums, token_counts)
            # Sources first: a document removed with its source is then gone, not counted twice.
            for table, column, values in (("files", "path", paths), ("documents", "id", removed_documents)):
                self._subtract(f"d.{column}", values, sums, counts, token_sums, token_counts)
                self._tombstone(f"d.{column}", values, write.gen)
                for part, marks in _parts(values):
                    conn.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", part)
            yield write
            self._write_lang_sums("lang_stats", sums, counts)
            self._write_lang_sums("token_lang_stats", token_sums, token_counts)
            conn.execute("UPDATE settings SET value = ? WHERE key = 'generation'", (json.dumps(write.gen),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            if not had_codec:
                self._codec = None  # stored in the rolled-back transaction only
            raise

    def _store_codec(self, codec: TokenCodec) -> None:
        """Store ``codec`` as the index's token codec (inside a write's transaction)."""
        self.db.conn.execute("INSERT INTO blobs (key, value) VALUES ('token_codec', ?)", (codec.to_bytes(),))
        self._codec = codec

    def _lang_sums(self, table: str) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        sums, counts = {}, {}
        for lang, n, blob in self.db.execute(f"SELECT lang, n, sum FROM {table}"):
            if not isinstance(blob, bytes) or len(blob) % 8 or not isinstance(n, int):
                raise IndexCorruptError(f"{self.path}: the language statistics are damaged; rebuild the index")
            sums[lang], counts[lang] = np.frombuffer(blob, dtype=np.float64).copy(), n
        return sums, counts

    def _write_lang_sums(self, table: str, sums: dict[str, np.ndarray], counts: dict[str, int]) -> None:
        conn = self.db.conn
        conn.execute(f"DELETE FROM {table}")
        conn.executemany(f"INSERT INTO {table} (lang, n, sum) VALUES (?, ?, ?)",
                         [(lang, counts[lang], sums[lang].tobytes()) for lang in sums])

    def _subtract(self, column: str, values: Sequence[Any], sums: dict[str, np.ndarray], counts: dict[str, int],
                  token_sums: dict[str, np.ndarray], token_counts: dict[str, int]) -> None:
        """Take the chunks of the documents whose ``column`` is in ``values`` out of the language sums."""
        codec = self.token_codec()
        for part, marks in _parts(values):
            rows = self.db.execute(
                "SELECT c.lang, v.vec, t.n, t.codes FROM chunks c JOIN documents d ON d.id = c.doc_id "
                "JOIN vectors v ON v.chunk_id = c.id LEFT JOIN token_vectors t ON t.chunk_id = c.id "
                f"WHERE {column} IN ({marks})", part).fetchall()
            if not rows:
                continue
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float16).reshape(len(rows), -1)
            _accumulate(sums, counts, vectors.astype(np.float64), [r[0] for r in rows], -1)
            with_tokens = [r for r in rows if r[3] is not None]
            if codec is None:
                continue
            for start in range(0, len(with_tokens), _DECODE_CHUNKS):  # a large file's tokens, a slice at a time
                some = with_tokens[start : start + _DECODE_CHUNKS]
                decoded = codec.decode_concat([r[3] for r in some], [r[2] for r in some])
                langs = [r[0] for r in some for _ in range(r[2])]
                _accumulate(token_sums, token_counts, decoded.astype(np.float64), langs, -1)

    def language_means(self) -> LanguageMeans:
        """Per-language sums and counts of the stored chunk vectors."""
        return LanguageMeans(*self._lang_sums("lang_stats"))

    def token_language_means(self) -> LanguageMeans:
        """Per-language sums and counts of the stored token vectors (as stored, i.e. decoded)."""
        return LanguageMeans(*self._lang_sums("token_lang_stats"))

    def fts(self) -> FtsReader:
        """The keyword index, read through the calling thread's connection."""
        return FtsReader(self.db.conn)

    # token vectors --------------------------------------------------------
    def token_codec(self) -> TokenCodec | None:
        """The codec the token vectors are stored with, or None before any were stored."""
        if self._codec is None:
            row = self.db.execute("SELECT value FROM blobs WHERE key = 'token_codec'").fetchone()
            if row is not None:
                self._codec = TokenCodec.from_bytes(row[0])
        return self._codec

    def read_tokens(self, ids: Sequence[int] | np.ndarray) -> StoredTokens:
        """The stored tokens of the chunks ``ids`` with their languages, in one query per 500 ids
        (see :func:`~xsearch.store.tokens.read_tokens`); the index must keep token vectors."""
        return read_tokens(self.db.conn, ids, self._required_codec().bytes_per_token)

    def read_chunks(self, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray, StoredTokens]:
        """What a search compares of the chunks ``ids``: their vectors and stored tokens in one
        query per 500 ids (see :func:`~xsearch.store.tokens.read_chunks`)."""
        return read_chunks(self.db.conn, ids, self.dim, self._required_codec().bytes_per_token)

    def _required_codec(self) -> TokenCodec:
        codec = self.token_codec()
        if codec is None:
            raise ValueError("this index keeps no token vectors: nothing to read")
        return codec

    def set_token_codec(self, codec: TokenCodec) -> None:
        """Offer the codec the model was built with (``Encoder.token_codec()``) for an index that
        has stored no token vectors yet: its first write then stores them with it instead of
        training one. Taken only when it is of the kind the index's ``token_codec`` setting asks
        for and fits the vectors' dimension; ignored once the index has a codec."""
        self._offered_codec = codec

    def choose_token_codec(self, sample: Sequence[np.ndarray]) -> TokenCodec:
        """The codec token vectors are stored with: the index's, or for an index that has stored
        none yet the one its first write will store, chosen now from ``sample`` (``(n, d)``
        arrays of the first token vectors): the one offered (:meth:`set_token_codec`) or, failing
        that, one trained on a seeded sample of their rows. Compress with it
        (:func:`~xsearch.store.tokens.encode_tokens`) before the write; it is kept until a write
        stores it."""
        codec = self.token_codec() or self._chosen_codec
        if codec is None:
            kind = self.get_setting("token_codec", TOKEN_CODEC)
            offered = self._offered_codec
            dim = np.shape(sample[0])[-1] if len(sample) else None
            if offered is not None and offered.kind == kind and offered.dim == dim:
                codec = offered
            else:
                codec = TokenCodec.for_vectors(training_sample(sample), kind)
            self._chosen_codec = codec
        return codec

    def _codec_for(self, added: Sequence[tuple[FileState, Sequence[NewDocument]]]) -> TokenCodec | None:
        """The index's codec, stored by the first write of token vectors (see :meth:`choose_token_codec`)."""
        codec = self.token_codec()
        if codec is not None:
            return codec
        tokens = [t for _, docs in added for new in docs for t in (new.tokens or ())]
        if not tokens:
            return None
        raw = [t.vectors for t in tokens if not isinstance(t, EncodedTokens)]
        if len(raw) < len(tokens) and self._chosen_codec is None:
            raise ValueError("token vectors compressed for an index without a codec: take it from choose_token_codec")
        codec = self._chosen_codec or self.choose_token_codec(raw)
        self._store_codec(codec)
        return codec

    def token_rows(self, ids: Sequence[int]) -> dict[int, tuple[np.ndarray, int, bytes]]:
        """Stored token data by chunk id: ``(offsets (n, 2), n, codes)``."""
        out: dict[int, tuple[np.ndarray, int, bytes]] = {}
        for part, marks in _parts([int(i) for i in ids]):
            for cid, n, offsets, codes in self.db.execute(
                    f"SELECT chunk_id, n, offsets, codes FROM token_vectors WHERE chunk_id IN ({marks})", part):
                out[cid] = (np.frombuffer(offsets, dtype=np.int32).reshape(-1, 2), n, codes)
        return out

    def _tombstone(self, column: str, values: Sequence[Any], gen: int) -> None:
        """Record the chunks of the documents whose ``column`` is in ``values`` as removed in ``gen``."""
        for part, marks in _parts(values):
            self.db.conn.execute(
                f"INSERT OR REPLACE INTO tombstones (chunk_id, gen) SELECT c.id, {gen:d} FROM chunks c "
                f"JOIN documents d ON d.id = c.doc_id WHERE {column} IN ({marks})",
                part,
            )

    def _insert_document(self, new: NewDocument, gen: int, codec: TokenCodec | None) -> None:
        conn = self.db.conn
        doc = new.document
        cur = conn.execute(
            "INSERT INTO documents (path, record, title, lang, metadata, n_chars) VALUES (?, ?, ?, ?, ?, ?)",
            (doc.path, doc.record, doc.title, doc.lang, json.dumps(doc.metadata, ensure_ascii=False), len(doc.text)),
        )
        doc_id = cur.lastrowid
        vectors = np.asarray(new.vectors, dtype=np.float16)
        for ordinal, (chunk, vec) in enumerate(zip(new.chunks, vectors, strict=True)):
            cur = conn.execute(
                'INSERT INTO chunks (doc_id, ord, text, start, "end", lang, n_tokens, gen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                (doc_id, ordinal, chunk.text, chunk.start, chunk.end, chunk.lang, chunk.n_tokens, gen),
            )
            conn.execute("INSERT INTO vectors (chunk_id, vec) VALUES (?, ?)", (cur.lastrowid, vec.tobytes()))
            if new.tokens is not None and codec is not None:
                tokens = new.tokens[ordinal]
                if isinstance(tokens, EncodedTokens):
                    if len(tokens.codes) != tokens.n * codec.bytes_per_token:
                        raise ValueError(f"token codes of {len(tokens.codes)} bytes for {tokens.n} tokens "
                                         f"of {codec.bytes_per_token} bytes: not this index's codec")
                    row = (cur.lastrowid, tokens.n, tokens.offsets, tokens.codes)
                else:
                    row = (cur.lastrowid, len(tokens.vectors), np.asarray(tokens.offsets, dtype=np.int32).tobytes(),
                           codec.encode(tokens.vectors))
                conn.execute("INSERT INTO token_vectors (chunk_id, n, offsets, codes) VALUES (?, ?, ?, ?)", row)

    # translation links ----------------------------------------------------
    def links_of(self, ids: Sequence[int]) -> dict[int, list[tuple[int, float]]]:
        """The translations linked to each of ``ids``: ``(chunk id, cosine)``, closest first."""
        out: dict[int, list[tuple[int, float]]] = {}
        if not len(ids) or not self._has_table("translations"):
            return out
        for part, marks in _parts([int(i) for i in ids]):
            for cid, other, score in self.db.execute(
                    f"SELECT chunk_id, other_id, score FROM translations WHERE chunk_id IN ({marks})", part):
                out.setdefault(cid, []).append((other, score))
        for found in out.values():
            found.sort(key=lambda pair: -pair[1])
        return out

    def link_count(self) -> int:
        """Translation links between two chunks (each counted once)."""
        if not self._has_table("translations"):
            return 0
        return self.db.execute("SELECT count(*) FROM translations").fetchone()[0] // 2

    def replace_links(self, cleared: Sequence[int], links: Sequence[tuple[int, int, float]], *, upto_gen: int) -> None:
        """In one transaction: drop every link of the ``cleared`` chunks, store ``links``
        (``(chunk id, chunk id, cosine)``, kept in both directions) and record that links are
        current up to generation ``upto_gen``. Links to chunks removed meanwhile are skipped."""
        with self._writing() as conn:
            if not self._has_table("translations"):
                conn.executescript(_LINKS_SCHEMA)
            rows = [(int(a), int(b), float(s)) for a, b, s in links] + [(int(b), int(a), float(s)) for a, b, s in links]
            conn.execute("BEGIN IMMEDIATE")
            try:
                for part, marks in _parts([int(i) for i in cleared]):
                    conn.execute(f"DELETE FROM translations WHERE chunk_id IN ({marks}) OR other_id IN ({marks})",
                                 part + part)
                conn.executemany("INSERT OR REPLACE INTO translations (chunk_id, other_id, score) SELECT ?1, ?2, ?3 "
                                 "WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?1) "
                                 "AND EXISTS (SELECT 1 FROM chunks WHERE id = ?2)", rows)
                conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('links_gen', ?)",
                             (json.dumps(int(upto_gen)),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def prune_tombstones(self, upto_gen: int) -> None:
        """Forget tombstones that every saved vector index has already applied."""
        with self._writing() as conn, conn:
            conn.execute("DELETE FROM tombstones WHERE gen <= ?", (upto_gen,))

    # reads ----------------------------------------------------------------
    def changes_since(self, gen: int) -> tuple[np.ndarray, StoredVectors]:
        """Chunk ids removed after ``gen``, and the chunks added after it."""
        removed = np.array([r[0] for r in self.db.execute("SELECT chunk_id FROM tombstones WHERE gen > ?", [gen])],
                           dtype=np.int64)
        return removed, self._vectors_where("c.gen > ?", [gen])

    def all_vectors(self) -> StoredVectors:
        """Every chunk's id, language and vector (float32), in id order."""
        return self._vectors_where("1", [])

    def vectors_of(self, ids: Sequence[int]) -> StoredVectors:
        """The stored vectors of the given chunk ids (missing ids are left out)."""
        parts = [self._vectors_where(f"c.id IN ({marks})", part) for part, marks in _parts([int(i) for i in ids])]
        if not parts:
            return self._vectors_where("0", [])
        return StoredVectors(np.concatenate([p.ids for p in parts]), [l for p in parts for l in p.langs],
                             np.concatenate([p.vectors for p in parts]))

    def _vectors_where(self, where: str, params: list[Any]) -> StoredVectors:
        rows = self.db.execute(
            f"SELECT c.id, c.lang, v.vec FROM chunks c JOIN vectors v ON v.chunk_id = c.id WHERE {where} ORDER BY c.id",
            params,
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return StoredVectors(ids, [], np.zeros((0, self.dim), dtype=np.float32))
        blob = b"".join(r[2] for r in rows)
        if len(blob) != len(rows) * self.dim * 2:
            raise IndexCorruptError(f"{self.path}: stored vectors are damaged (not {self.dim}-d); rebuild the index")
        vectors = np.frombuffer(blob, dtype=np.float16).reshape(len(rows), -1).astype(np.float32)
        return StoredVectors(ids, [r[1] for r in rows], vectors)

    @property
    def dim(self) -> int:
        """Vector dimension recorded in the settings."""
        return self._whole_number("dim")

    def chunk_rows(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunks with their documents, by id."""
        out: dict[int, ChunkRow] = {}
        for part, marks in _parts([int(i) for i in ids]):
            rows = self.db.execute(
                'SELECT c.id, c.text, c.start, c."end", c.lang, c.ord, d.id, d.path, d.record, d.title, d.metadata '
                f"FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})",
                part,
            )
            for r in rows:
                path, record = r[7], r[8]
                out[r[0]] = ChunkRow(*r[:7], "" if is_text_source(path) else path, *r[8:10],
                                     metadata=json.loads(r[10]), doc_key=document_key(path, record))
        return out

    def chunk_context(self, chunk_id: int, *, before: int = 1, after: int = 1) -> list[ChunkRow]:
        """A chunk and its neighbours in the same document, in document order (empty if unknown)."""
        row = self.db.execute("SELECT doc_id, ord FROM chunks WHERE id = ?", [int(chunk_id)]).fetchone()
        if row is None:
            return []
        doc_id, ord_ = row
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE doc_id = ? AND ord BETWEEN ? AND ? ORDER BY ord",
                                             [doc_id, ord_ - before, ord_ + after])]
        rows = self.chunk_rows(ids)
        return [rows[i] for i in ids if i in rows]

    def chunk_langs(self, ids: Sequence[int]) -> dict[int, str]:
        """Language of each chunk id."""
        out: dict[int, str] = {}
        for part, marks in _parts([int(i) for i in ids]):
            out.update(self.db.execute(f"SELECT id, lang FROM chunks WHERE id IN ({marks})", part).fetchall())
        return out

    def chunk_ids_where_lang(self, langs: Sequence[str]) -> np.ndarray:
        """Ids of chunks whose language is one of ``langs``."""
        marks = ",".join("?" * len(langs))
        rows = self.db.execute(f"SELECT id FROM chunks WHERE lang IN ({marks})", list(langs))
        return np.array([r[0] for r in rows], dtype=np.int64)

    def chunk_ids_where(self, where: str, params: Sequence[Any]) -> np.ndarray:
        """Ids of chunks matching an SQL condition over ``chunks c`` joined with ``documents d``."""
        rows = self.db.execute(f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {where}",
                               list(params))
        return np.array([r[0] for r in rows], dtype=np.int64)

    # documents by id --------------------------------------------------------
    def find_documents(self, keys: Sequence[str]) -> tuple[list[str], list[int], list[str]]:
        """Look documents up by id: ``(text sources, file document row ids, ids found)``."""
        texts: list[str] = []
        rows: list[int] = []
        found: list[str] = []
        for key in keys:
            if self.db.execute("SELECT 1 FROM files WHERE path = ?", [text_source(key)]).fetchone():
                texts.append(text_source(key))
                found.append(key)
                continue
            candidates = [(key, 0)]
            head, _, tail = key.rpartition("#")
            if head and tail.isdigit() and int(tail) > 0:
                candidates.append((head, int(tail)))
            for path, record in candidates:
                if is_text_source(path):  # "text:cat" is no file path, and not the id of text "cat"
                    continue
                row = self.db.execute("SELECT id FROM documents WHERE path = ? AND record = ?", [path, record]).fetchone()
                if row is not None:
                    rows.append(row[0])
                    found.append(key)
                    break
        return texts, rows, found

    def document_keys_of(self, sources: Sequence[str]) -> list[str]:
        """Ids of the documents stored under the given sources (files or texts)."""
        keys: list[str] = []
        for part, marks in _parts(sources):
            rows = self.db.execute(f"SELECT path, record FROM documents WHERE path IN ({marks}) ORDER BY path, record",
                                   part)
            keys += [document_key(path, record) for path, record in rows]
        return keys

    def counts(self) -> dict[str, int]:
        """Numbers of files, texts (documents added as text), documents and chunks."""
        q = ("SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM files WHERE path GLOB ?), "
             "(SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)")
        sources, texts, docs, chunks = self.db.execute(q, [TEXT_SOURCE + "*"]).fetchone()
        return {"files": sources - texts, "texts": texts, "documents": docs, "chunks": chunks}

    def languages(self) -> dict[str, int]:
        """Chunk counts per language, most frequent first."""
        rows = self.db.execute("SELECT lang, count(*) n FROM chunks GROUP BY lang ORDER BY n DESC, lang")
        return {lang or "und": n for lang, n in rows}

    def check(self) -> None:
        """Raise :class:`IndexCorruptError` if SQLite finds the database damaged."""
        try:
            result = self.db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"{self.path} is damaged: {exc}") from exc
        if result != "ok":
            raise IndexCorruptError(f"{self.path} is damaged: {result}")


_DECODE_CHUNKS = 64
"""Chunks whose token vectors are decoded at once when their files are removed or replaced."""


def _parts(values: Sequence[Any], size: int = 500) -> Iterator[tuple[list[Any], str]]:
    """``values`` in slices of at most ``size``, each with its ``?,?,...`` placeholders."""
    for start in range(0, len(values), size):
        part = list(values[start : start + size])
        yield part, ",".join("?" * len(part))


def _accumulate(sums: dict[str, np.ndarray], counts: dict[str, int], vectors: np.ndarray, langs: Sequence[str],
                sign: int) -> None:
    """Add (``sign=1``) or remove (``sign=-1``) vectors from per-language sums, in place."""
    for lang in set(langs):
        rows = [i for i, code in enumerate(langs) if code == lang]
        sums[lang] = sums.get(lang, np.zeros(vectors.shape[1], dtype=np.float64)) + sign * vectors[rows].sum(axis=0)
        counts[lang] = counts.get(lang, 0) + sign * len(rows)
        if counts[lang] <= 0:
            del sums[lang], counts[lang]
