"""Lexical ranking: keyword queries cut into terms and scored with BM25 over the trigram index.

Dense vectors miss exact strings: product codes (``XK-4711``), formulas (``C6H12O6``),
names and rare words. This stage finds them in every script, reading the FTS5 trigram index
that :mod:`xsearch.store.lexical` keeps in step with the chunks.

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

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..text import UNSPACED, is_word_char, script_of
from .base import Ranked, SearchContext, empty
from .highlights import merge_spans

if TYPE_CHECKING:
    from ..store.db import Store
    from ..store.lexical import FtsReader

SHORT_WEIGHT = 0.5
"""Factor on the BM25 score of 1-2 character terms: substring hits that short are weaker evidence."""
MAX_PHRASES = 64
"""Phrases kept per query (a pasted paragraph of Chinese would otherwise yield hundreds)."""
MAX_SHORT = 16
"""Short terms kept per query; each one is a vocabulary lookup."""
_K1, _B = 1.2, 0.75
_CONNECTORS = frozenset("-./+'’:@&")

_SHORT_SCRIPTS = frozenset({"han", "katakana", "hangul"})
"""Scripts whose 2-character sub-runs are words worth a short term (not hiragana particles)."""
_GROUP = {script: ("cjk" if script in {"han", "hiragana", "katakana", "hangul", "bopomofo"} else script)
          for script in UNSPACED}
"""Unspaced script -> the run it belongs to: Chinese, Japanese and Korean scripts form one run."""


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


def _script(ch: str) -> tuple[str, str] | None:
    """(run, script) of a character of a script written without spaces, else None: the run
    decides where an unspaced segment ends, the script splits Japanese runs into kanji and kana."""
    script = _GROUP.get(script_of(ch))
    return None if script is None else (script, script_of(ch))


def _words(text: str) -> list[str]:
    """Runs of word characters, joined across single connectors like ``-`` or ``.``."""
    words: list[str] = []
    start = None
    for i, ch in enumerate(text):
        if is_word_char(ch):
            if start is None:
                start = i
        elif start is not None and ch in _CONNECTORS and i + 1 < len(text) and is_word_char(text[i + 1]):
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


# ranking ------------------------------------------------------------------
def candidates(ctx: SearchContext, _ranked: list[Ranked]) -> list[Ranked]:
    """Stage: the ``ctx.n_fetch`` best BM25 matches of each query's terms."""
    found = lexical_search(ctx.store, ctx.queries, ctx.n_fetch, allowed_ids=ctx.allowed)
    ctx.runs["lexical"] = found
    return found


def lexical_search(store: Store, queries: Sequence[str], k: int, *,
                   allowed_ids: np.ndarray | None = None) -> list[Ranked]:
    """Per query, up to ``k`` chunks with their BM25 scores, best first.

    ``allowed_ids`` restricts the results (filters) before the top-k cut. A query with no
    usable term (empty, punctuation only) gives an empty result.
    """
    if k <= 0 or (allowed_ids is not None and len(allowed_ids) == 0):
        return [empty() for _ in queries]
    fts = store.fts()
    allowed = None if allowed_ids is None else set(np.asarray(allowed_ids, dtype=np.int64).ravel().tolist())
    results = []
    for query in queries:
        terms = parse_query(query)
        results.append(_search_one(fts, terms, k, allowed) if terms else empty())
    return results


def _search_one(fts: FtsReader, terms: LexicalQuery, k: int, allowed: set[int] | None) -> Ranked:
    match = " OR ".join('"' + p.replace('"', '""') + '"' for p in terms.phrases)
    scores: dict[int, float] = {}
    if match:
        scores.update(fts.top(match, k, allowed))
    if terms.short:
        extra = _short_scores(fts, terms.short, allowed)
        missing = [cid for cid in extra if cid not in scores]
        if match and missing:
            # Rows the short terms found may have FTS scores below the top k: fetch those too,
            # so the top k of the sums is exact.
            scores.update(fts.scores_of(match, missing))
        for cid, score in extra.items():
            scores[cid] = scores.get(cid, 0.0) + score
    found = Ranked.of(sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k])
    return Ranked(found.ids, found.scores, details={"lexical": found.scores})


def _short_scores(fts: FtsReader, terms: Sequence[ShortTerm], allowed: set[int] | None) -> dict[int, float]:
    """BM25 of the short terms, on FTS5's own collection statistics, times :data:`SHORT_WEIGHT`.

    A term of 1-2 characters is found through the index's vocabulary: every trigram that
    *starts* with it marks one occurrence (so one in the last two characters of a chunk is
    missed). A bounded term counts only where the trigram's next character and the chunk's
    character before it are not letters, digits or ``_``.
    """
    n_rows, avgdl = fts.collection_stats()
    if not n_rows:
        return {}
    tfs = [_short_counts(fts, term) for term in terms]
    dfs = [len(counts) for counts in tfs]
    if allowed is not None:
        tfs = [{doc: tf for doc, tf in counts.items() if doc in allowed} for counts in tfs]
    docs = sorted({doc for counts in tfs for doc in counts})
    if not docs:
        return {}
    lengths = fts.lengths(docs)
    scores = np.zeros(len(docs), dtype=np.float64)
    for counts, df in zip(tfs, dfs):
        idf = max(math.log((n_rows - df + 0.5) / (df + 0.5)), 1e-6)  # FTS5's bm25() clamps the same way
        tf = np.array([counts.get(doc, 0) for doc in docs], dtype=np.float64)
        scores += idf * tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * lengths / avgdl))
    return {doc: SHORT_WEIGHT * float(score) for doc, score in zip(docs, scores) if score > 0}


def _short_counts(fts: FtsReader, term: ShortTerm) -> dict[int, int]:
    """Occurrences of a short term per chunk, from the trigrams that start with it."""
    needle = term.text.lower()  # the index folds case as lower() does, character by character
    bounds = (needle, needle[:-1] + chr(ord(needle[-1]) + 1))
    if not term.bounded:
        return fts.trigram_counts(*bounds)
    offsets: dict[int, list[int]] = {}
    for doc, trigram, offset in fts.trigram_instances(*bounds):
        if len(trigram) <= len(needle) or not is_word_char(trigram[len(needle)]):
            offsets.setdefault(doc, []).append(offset)
    inside = [doc for doc, found in offsets.items() if any(found)]  # offset 0 starts the chunk: bounded
    texts = fts.texts(inside)
    counts = {}
    for doc, found in offsets.items():
        text = texts.get(doc, "")
        n = sum(1 for at in found if at == 0 or (at <= len(text) and not is_word_char(text[at - 1])))
        if n:
            counts[doc] = n
    return counts


def _occurrences(haystack: str, needle: str, bounded: bool) -> list[int]:
    """Start offsets of ``needle`` in ``haystack`` (overlapping), at word boundaries if ``bounded``."""
    found = []
    at = haystack.find(needle)
    while at >= 0:
        end = at + len(needle)
        if not bounded or ((at == 0 or not is_word_char(haystack[at - 1]))
                           and (end == len(haystack) or not is_word_char(haystack[end]))):
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
    return merge_spans(spans)
