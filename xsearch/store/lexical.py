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

Queries (:func:`parse_query`)
    The query is NFC-normalised (as extracted text is) and cut into words of letters, marks,
    digits and ``_``; ``- . / + ' ’ : @ &`` between two word characters stay inside the word,
    so ``XK-4711`` and ``C6H12O6`` are kept whole. Everything else (FTS5 syntax included) only
    separates words, and every term is quoted, so no input can be an FTS5 syntax error.

    * A word in a script written with spaces becomes a phrase if it has 3+ characters; a
      word with inner punctuation also contributes its parts (``XK-4711`` -> ``xk-4711``,
      ``4711``, and ``xk``). Parts and words of 2 characters become *short* terms matched at
      word boundaries; 1-character ones are dropped.
    * A run of a script written without spaces (Han, kana, Hangul, Thai, Lao, Khmer, Myanmar,
      Tibetan) of 3+ characters becomes its overlapping trigrams plus the whole run, so a
      document sharing only part of the run still matches and one holding all of it ranks
      first. Kanji or katakana sub-runs of exactly 2 characters (``酸素を作る`` -> ``酸素``)
      and whole runs of 1-2 characters become short terms matched as plain substrings.

Scores
    Phrases are OR-ed in one FTS5 query and scored with ``-bm25()`` (higher is better).
    A MATCH cannot find terms under 3 characters, but the index's vocabulary can: the
    ``fts5vocab`` table ``chunks_fts_instance`` lists every trigram occurrence, and those
    that start with a short term are its occurrences (found with a range lookup, no scan of
    ``chunks``; one in the last two characters of a chunk is missed). Short terms are scored
    with bm25()'s own formula and collection statistics (k1 = 1.2, b = 0.75, trigrams per
    chunk) times :data:`SHORT_WEIGHT`, and added to the chunk's FTS score; the top k of the
    sums is exact. ``allowed_ids`` filters before the cut; like bm25(), IDF counts the whole
    collection.
"""

from __future__ import annotations

import json
import math
import sqlite3
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

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

SHORT_WEIGHT = 0.5
"""Factor on the BM25 score of 1-2 character terms: substring hits that short are weaker evidence."""
MAX_PHRASES = 64
"""Phrases kept per query (a pasted paragraph of Chinese would otherwise yield hundreds)."""
MAX_SHORT = 16
"""Short terms kept per query; each one is a vocabulary lookup."""
_K1, _B = 1.2, 0.75
_CONNECTORS = frozenset("-./+'’:@&")

# Scripts written without spaces between words: (first, last, coarse group, fine script).
# The coarse group decides where a run ends; the fine script splits Japanese runs into
# kanji / kana sub-runs. Unlisted code points belong to scripts written with spaces.
_SCRIPT_RANGES = (
    (0x0E00, 0x0E7F, "thai", "thai"),
    (0x0E80, 0x0EFF, "lao", "lao"),
    (0x0F00, 0x0FFF, "tibetan", "tibetan"),
    (0x1000, 0x109F, "myanmar", "myanmar"),
    (0x1100, 0x11FF, "cjk", "hangul"),
    (0x1780, 0x17FF, "khmer", "khmer"),
    (0x2E80, 0x2FDF, "cjk", "han"),
    (0x3005, 0x3007, "cjk", "han"),
    (0x3040, 0x309F, "cjk", "hiragana"),
    (0x30A0, 0x30FF, "cjk", "katakana"),
    (0x3100, 0x312F, "cjk", "bopomofo"),
    (0x3130, 0x318F, "cjk", "hangul"),
    (0x31F0, 0x31FF, "cjk", "katakana"),
    (0x3400, 0x4DBF, "cjk", "han"),
    (0x4E00, 0x9FFF, "cjk", "han"),
    (0xA960, 0xA97F, "cjk", "hangul"),
    (0xAC00, 0xD7FF, "cjk", "hangul"),
    (0xF900, 0xFAFF, "cjk", "han"),
    (0xFF66, 0xFF9F, "cjk", "katakana"),
    (0x20000, 0x3FFFF, "cjk", "han"),
)
_RANGE_STARTS = [r[0] for r in _SCRIPT_RANGES]
_SHORT_SCRIPTS = frozenset({"han", "katakana", "hangul"})
"""Fine scripts whose 2-character sub-runs are words worth a short term (not hiragana particles)."""


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


# query parsing ------------------------------------------------------------
@dataclass(frozen=True)
class ShortTerm:
    """A 1-2 character term, which the trigram index cannot match."""

    text: str
    bounded: bool
    """Match only at word boundaries (scripts written with spaces); else any substring."""


@dataclass(frozen=True)
class LexicalQuery:
    """The terms of one query, as :func:`parse_query` cuts them."""

    phrases: tuple[str, ...]
    """Terms of 3+ characters, matched as substrings through the trigram index."""
    short: tuple[ShortTerm, ...]

    def __bool__(self) -> bool:
        return bool(self.phrases or self.short)


def parse_query(query: str) -> LexicalQuery:
    """Cut a query into lexical terms (see the module docstring for the rules)."""
    phrases: dict[str, str] = {}
    short: dict[str, ShortTerm] = {}

    def add_phrase(term: str) -> None:
        if len(phrases) < MAX_PHRASES:
            phrases.setdefault(term.casefold(), term)

    def add_short(term: str, bounded: bool) -> None:
        if len(short) < MAX_SHORT:
            short.setdefault(term.casefold(), ShortTerm(term, bounded))

    for word in _words(unicodedata.normalize("NFC", query)):
        for group, segment in _segments(word):
            if group is None:
                parts = _split_connectors(segment)
                if len(segment) >= 3:
                    add_phrase(segment)
                elif len(segment) == 2:
                    add_short(segment, True)
                if len(parts) > 1:
                    for part in parts:
                        if len(part) >= 3:
                            add_phrase(part)
                        elif len(part) == 2:
                            add_short(part, True)
            elif len(segment) <= 2:
                add_short(segment, False)
            else:
                for i in range(len(segment) - 2):
                    add_phrase(segment[i : i + 3])
                if len(segment) > 3:
                    add_phrase(segment)
                for script, sub in _fine_runs(segment):
                    if len(sub) == 2 and script in _SHORT_SCRIPTS:
                        add_short(sub, False)
    return LexicalQuery(tuple(phrases.values()), tuple(short.values()))


def _is_word(ch: str) -> bool:
    return ch == "_" or unicodedata.category(ch)[0] in "LMN"


def _script(ch: str) -> tuple[str, str] | None:
    """(group, script) of a character of a script written without spaces, else None."""
    cp = ord(ch)
    i = bisect_right(_RANGE_STARTS, cp) - 1
    if i >= 0 and cp <= _SCRIPT_RANGES[i][1]:
        return _SCRIPT_RANGES[i][2], _SCRIPT_RANGES[i][3]
    return None


def _words(text: str) -> list[str]:
    """Runs of word characters, joined across single connectors like ``-`` or ``.``."""
    words: list[str] = []
    start = None
    for i, ch in enumerate(text):
        if _is_word(ch):
            if start is None:
                start = i
        elif start is not None and ch in _CONNECTORS and i + 1 < len(text) and _is_word(text[i + 1]):
            continue
        elif start is not None:
            words.append(text[start:i])
            start = None
    if start is not None:
        words.append(text[start:])
    return words


def _segments(word: str) -> list[tuple[str | None, str]]:
    """Split a word where it changes between spaced scripts and each unspaced group."""
    out: list[tuple[str | None, str]] = []
    current: str | None = None
    start = 0
    for i, ch in enumerate(word):
        script = None if ch in _CONNECTORS else _script(ch)
        group = script[0] if script else None
        if i and group != current:
            out.append((current, word[start:i]))
            start = i
        current = group
    out.append((current, word[start:]))
    cleaned = []
    for group, segment in out:
        segment = segment.strip("".join(_CONNECTORS)) if group is None else segment
        if segment:
            cleaned.append((group, segment))
    return cleaned


def _fine_runs(segment: str) -> list[tuple[str, str]]:
    """Sub-runs of one fine script (kanji, hiragana, katakana, ...) of an unspaced run."""
    runs: list[tuple[str, str]] = []
    for ch in segment:
        script = _script(ch)
        name = script[1] if script else ""
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1] + ch)
        else:
            runs.append((name, ch))
    return runs


def _split_connectors(segment: str) -> list[str]:
    parts, current = [], []
    for ch in segment:
        if ch in _CONNECTORS:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p]


# search -------------------------------------------------------------------
def lexical_search(conn: sqlite3.Connection, queries: Sequence[str], k: int, *,
                   allowed_ids: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query, up to ``k`` (chunk ids int64, scores float32), best first.

    ``allowed_ids`` restricts the results (language filters) before the top-k cut. A query
    with no usable term (empty, punctuation only) gives an empty result.
    """
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    if k <= 0 or (allowed_ids is not None and len(allowed_ids) == 0):
        return [empty for _ in queries]
    allowed = None if allowed_ids is None else set(np.asarray(allowed_ids, dtype=np.int64).ravel().tolist())
    results = []
    for query in queries:
        terms = parse_query(query)
        results.append(_search_one(conn, terms, k, allowed) if terms else empty)
    return results


def _search_one(conn: sqlite3.Connection, terms: LexicalQuery, k: int,
                allowed: set[int] | None) -> tuple[np.ndarray, np.ndarray]:
    match = " OR ".join('"' + p.replace('"', '""') + '"' for p in terms.phrases)
    scores: dict[int, float] = {}
    if match:
        scores.update(_fts_top(conn, match, k, allowed))
    if terms.short:
        extra = _short_scores(conn, terms.short, allowed)
        missing = [cid for cid in extra if cid not in scores]
        if match and missing:
            # Rows the short terms found may have FTS scores below the top k: fetch those too,
            # so the top k of the sums is exact.
            scores.update(_fts_scores_of(conn, match, missing))
        for cid, score in extra.items():
            scores[cid] = scores.get(cid, 0.0) + score
    if not scores:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
    return (np.fromiter((cid for cid, _ in best), dtype=np.int64, count=len(best)),
            np.fromiter((score for _, score in best), dtype=np.float32, count=len(best)))


def _json_ids(ids: np.ndarray | Sequence[int]) -> str:
    """Ids as a JSON array, for ``IN (SELECT value FROM json_each(?))`` (one parameter, any length)."""
    return json.dumps(np.asarray(ids, dtype=np.int64).tolist())


def _fts_top(conn: sqlite3.Connection, match: str, k: int, allowed: set[int] | None) -> dict[int, float]:
    """The best ``k`` FTS matches (``-bm25()``) among the allowed chunks."""
    sql = "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts), rowid"
    if allowed is None:
        return {int(cid): float(score) for cid, score in conn.execute(sql + " LIMIT ?", (match, k))}
    # Matches stream best first and are filtered until k pass: cheaper than handing SQLite
    # the id list (for 100k allowed ids, ~10 ms against ~50 ms for IN (json_each(...))).
    found: dict[int, float] = {}
    with closing(conn.execute(sql, (match,))) as cursor:
        for cid, score in cursor:
            if cid in allowed:
                found[int(cid)] = float(score)
                if len(found) == k:
                    break
    return found


def _fts_scores_of(conn: sqlite3.Connection, match: str, ids: Sequence[int]) -> dict[int, float]:
    """FTS scores of the given chunks, where they match."""
    # "+rowid": a plain rowid IN (...) is handed to FTS5, which then runs the whole MATCH
    # once per listed id; as a filter the list is built once and probed per match.
    sql = ("SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
           "AND +rowid IN (SELECT value FROM json_each(?))")
    return {int(cid): float(score) for cid, score in conn.execute(sql, (match, _json_ids(ids)))}


def _short_scores(conn: sqlite3.Connection, terms: Sequence[ShortTerm], allowed: set[int] | None) -> dict[int, float]:
    """BM25 of the short terms, on FTS5's own collection statistics, times :data:`SHORT_WEIGHT`.

    A term of 1-2 characters is found through the index's vocabulary: every trigram that
    *starts* with it marks one occurrence (so one in the last two characters of a chunk is
    missed). A bounded term counts only where the trigram's next character and the chunk's
    character before it are not letters, digits or ``_``.
    """
    n_rows, avgdl = _collection_stats(conn)
    if not n_rows:
        return {}
    tfs = [_short_counts(conn, term) for term in terms]
    dfs = [len(counts) for counts in tfs]
    if allowed is not None:
        tfs = [{doc: tf for doc, tf in counts.items() if doc in allowed} for counts in tfs]
    docs = sorted({doc for counts in tfs for doc in counts})
    if not docs:
        return {}
    lengths = _doc_lengths(conn, docs)
    scores = np.zeros(len(docs), dtype=np.float64)
    for counts, df in zip(tfs, dfs):
        idf = max(math.log((n_rows - df + 0.5) / (df + 0.5)), 1e-6)  # FTS5's bm25() clamps the same way
        tf = np.array([counts.get(doc, 0) for doc in docs], dtype=np.float64)
        scores += idf * tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * lengths / avgdl))
    return {doc: SHORT_WEIGHT * float(score) for doc, score in zip(docs, scores) if score > 0}


def _short_counts(conn: sqlite3.Connection, term: ShortTerm) -> dict[int, int]:
    """Occurrences of a short term per chunk, from the trigrams that start with it."""
    needle = term.text.lower()  # the index folds case as lower() does, character by character
    bounds = (needle, needle[:-1] + chr(ord(needle[-1]) + 1))
    if not term.bounded:
        return dict(conn.execute("SELECT doc, count(*) FROM chunks_fts_instance WHERE term >= ? AND term < ? "
                                 "GROUP BY doc", bounds))
    offsets: dict[int, list[int]] = {}
    for doc, trigram, offset in conn.execute(
            "SELECT doc, term, offset FROM chunks_fts_instance WHERE term >= ? AND term < ?", bounds):
        if len(trigram) <= len(needle) or not _is_word(trigram[len(needle)]):
            offsets.setdefault(doc, []).append(offset)
    inside = [doc for doc, found in offsets.items() if any(found)]  # offset 0 starts the chunk: bounded
    texts = dict(conn.execute("SELECT id, text FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
                              (_json_ids(inside),))) if inside else {}
    counts = {}
    for doc, found in offsets.items():
        text = texts.get(doc, "")
        n = sum(1 for at in found if at == 0 or (at <= len(text) and not _is_word(text[at - 1])))
        if n:
            counts[doc] = n
    return counts


def _collection_stats(conn: sqlite3.Connection) -> tuple[int, float]:
    """Rows and mean tokens per row, as FTS5 keeps them for bm25() (its "averages" record)."""
    row = conn.execute("SELECT block FROM chunks_fts_data WHERE id = 1").fetchone()
    if row is None or not row[0]:
        return 0, 0.0
    n_rows, at = _varint(row[0], 0)
    n_tokens, _ = _varint(row[0], at)
    return n_rows, (n_tokens / n_rows if n_rows else 0.0)


def _doc_lengths(conn: sqlite3.Connection, docs: list[int]) -> np.ndarray:
    """Tokens (trigrams) per chunk, from FTS5's docsize table, in the order of ``docs``."""
    sizes = {doc: _varint(blob, 0)[0] for doc, blob in conn.execute(
        "SELECT id, sz FROM chunks_fts_docsize WHERE id IN (SELECT value FROM json_each(?))", (_json_ids(docs),))}
    return np.array([sizes.get(doc, 0) for doc in docs], dtype=np.float64)


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


def _occurrences(haystack: str, needle: str, bounded: bool) -> list[int]:
    """Start offsets of ``needle`` in ``haystack`` (overlapping), at word boundaries if ``bounded``."""
    found = []
    at = haystack.find(needle)
    while at >= 0:
        end = at + len(needle)
        if not bounded or ((at == 0 or not _is_word(haystack[at - 1]))
                           and (end == len(haystack) or not _is_word(haystack[end]))):
            found.append(at)
        at = haystack.find(needle, at + 1)
    return found


# highlights -----------------------------------------------------------------
def lexical_spans(text: str, query: str) -> list[tuple[int, int]]:
    """Character spans of ``text`` where the query's terms occur, merged and sorted.

    Matching is case-insensitive by Unicode case folding (``STRASSE`` marks ``Straße``);
    terms are those of :func:`parse_query`, so 1-character Latin terms are never marked
    and 2-character ones only as whole words.
    """
    terms = parse_query(query)
    if not terms or not text:
        return []
    folded = text.casefold()
    if len(folded) == len(text):
        origin = None
    else:  # case folding expanded some characters (ß -> ss): map folded offsets back
        origin = [i for i, ch in enumerate(text) for _ in ch.casefold()]
    needles = [(p.casefold(), False) for p in terms.phrases] + [(s.text.casefold(), s.bounded) for s in terms.short]
    spans = []
    for needle, bounded in needles:
        for at in _occurrences(folded, needle, bounded):
            end = at + len(needle)
            spans.append((at, end) if origin is None else (origin[at], origin[end - 1] + 1))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
