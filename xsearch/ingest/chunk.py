"""Split text into sentences, and pack sentences into chunks that fit the encoder.

Sentence splitting is rule-based and multilingual: terminal punctuation of many
scripts, abbreviations and decimals in Latin-script text, whitespace between
Thai phrases, and line structure (blank lines, list items, short lines) as hard
boundaries. Chunking counts tokens with a caller-supplied function, so this
module needs no tokenizer of its own.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import NamedTuple

from xsearch.config import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP
from xsearch.errors import UsageError
from xsearch.ingest.lang import UNDETERMINED, detect_languages
from xsearch.text import is_cjk, script_class, script_of
from xsearch.types import Chunk, Document

__all__ = ["CountTokens", "chunk_documents", "chunk_text", "split_sentences"]

CountTokens = Callable[[list[str]], list[int]]
"""Counts the model tokens of each string of a batch, without special tokens."""

# --- sentence splitting ------------------------------------------------------

# Terminators that end a sentence even with no space after them.
_HARD_TERMINATORS = "。！？｡؟۔।॥։።፧။។៕‼⁇⁈⁉"
# Terminators that need whitespace (or the end of the text) after them.
_SOFT_TERMINATORS = ".!?…"
_GREEK_QUESTION = ";\u037e"
_FULLWIDTH_STOP = "．"
_CLOSERS = "\"'”’»›)]}」』）］｝】〕》〉〗〙〛｣"
_TERMINATOR_RUN = re.compile(
    "([" + re.escape(_HARD_TERMINATORS + _SOFT_TERMINATORS + _GREEK_QUESTION + _FULLWIDTH_STOP) + "]+)"
    "[" + re.escape(_CLOSERS) + "]*"
)
_NEXT_NON_SPACE = re.compile(r"\s*(\S)")
_OPENERS = "\"'“‘«‹([{¿¡„"
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
_THAI_LAO = script_class({"thai", "lao"})
_THAI_GAP = re.compile(rf"(?<={_THAI_LAO})[^\S\n]+(?={_THAI_LAO})")
_LIST_OR_MARKUP = re.compile(r"(?:[-*+•◦‣▪–—>#|]|\d{1,3}[.)]|[a-zA-Z][.)]|\(\d{1,3}\))(?:\s|$)")
_DOTTED_ABBREVIATION = re.compile(r"(?:[^\W\d_]{1,3}\.)+[^\W\d_]{1,3}")

# Lower-case words that a full stop does not end when they come before it.
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms mx dr prof sr sra srta jr st mt ft rev hon gen col lt sgt capt cf vs al
    approx dept inc ltd co corp feb apr jun jul aug sep sept oct nov dec
    bzw usw ca evtl ggf sog vgl bspw inkl hr fr frl dipl mio mrd tel abs
    mme mlle env ud uds dra
    др пр см стр ул гг тыс млн млрд руб
    """.split()
)
# Words next to "3." that make it an ordinal (German-style dates and counts), not a sentence end.
_ORDINAL_CUES = frozenset(
    """
    am vom zum bis ab seit der die das den dem des im zur jeden jedes jeder
    januar februar märz april mai juni juli august september oktober november dezember
    jahrhundert jahrhunderts weltkrieg weltkriegs klasse auflage platz stock mal
    """.split()
)
_NEXT_WORD = re.compile(r"\s*(\w+)")
# Abbreviations that are also ordinary words: only when a number follows ("No. 5").
_NUMBER_ABBREVIATIONS = frozenset("no nos nr art fig figs p pp vol vols ch sec tab s".split())

_WRAP_WIDTH = 40
"""A line at least this wide that runs on into the next line is taken for hard-wrapped prose."""


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``, in order.

    ``text[start:end]`` is a sentence with no whitespace at either end, and
    every non-whitespace character of ``text`` lies in exactly one span.
    Boundaries are:

    * terminal punctuation, with any closing quotes or brackets: ``. ! ? …``
      followed by whitespace (not after an abbreviation such as ``e.g.``,
      ``Dr.``, ``z. B.``, a single initial, a list number opening a line, or
      an ordinal such as ``am 3. Mai``, nor before a lower-case word); ``。！？．`` and the stops of
      Arabic-script, Devanagari, Armenian, Ethiopic, Myanmar and Khmer text
      wherever they occur; ``;`` after a Greek letter (the Greek question mark);
    * whitespace between Thai or Lao letters (those scripts have no stops);
    * blank lines, and single line breaks except where a long line runs on
      into the next (hard-wrapped prose): a line break is hard after a short
      line (headings, verse, code), after a colon, and before a list item.
    """
    cuts = {0, len(text)}
    cuts.update(match.start() for match in _BLANK_LINE.finditer(text))
    cuts.update(match.start() for match in _THAI_GAP.finditer(text))
    cuts.update(_line_break_cuts(text))
    cuts.update(_punctuation_cuts(text))
    spans = []
    bounds = sorted(cuts)
    for start, end in zip(bounds, bounds[1:]):
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            spans.append((start, end))
    return spans


def _punctuation_cuts(text: str) -> list[int]:
    cuts = []
    for match in _TERMINATOR_RUN.finditer(text):
        if _ends_sentence(text, match.group(1), match.start(), match.end()):
            cuts.append(match.end())
    return cuts


def _ends_sentence(text: str, run: str, start: int, end: int) -> bool:
    """Whether the terminator ``run`` at ``text[start:]`` (closers included up to ``end``) ends a sentence."""
    following = text[end] if end < len(text) else ""
    if any(char in _HARD_TERMINATORS for char in run):
        return True
    if all(char == _FULLWIDTH_STOP for char in run):  # not inside a number: ３．１４
        return not (start > 0 and text[start - 1].isdigit() and following.isdigit())
    if all(char in _GREEK_QUESTION for char in run):
        return start > 0 and script_of(text[start - 1]) == "greek" and (not following or following.isspace())
    if ("!" in run or "?" in run) and is_cjk(following):
        return True
    if following and not following.isspace():  # 3.14, e.g.x, example.com
        return False
    if "!" in run or "?" in run:
        return True
    next_char = _NEXT_NON_SPACE.match(text, end)
    next_word = next_char.group(1) if next_char else ""
    if next_word.islower():
        return False
    if run != ".":
        return True  # an ellipsis before a capital or the end
    begin = _word_start(text, start)
    word = text[begin:start].lstrip(_OPENERS).lower()
    if word in _ABBREVIATIONS or _DOTTED_ABBREVIATION.fullmatch(word):
        return False
    if len(word) == 1 and word.isalpha():  # an initial, or z. B. / т. е.
        return False
    if word.isdigit() and len(word) <= 2 and _is_ordinal(text, begin, end):
        return False
    return not (word in _NUMBER_ABBREVIATIONS and next_word.isdigit())


def _word_start(text: str, index: int) -> int:
    while index > 0 and not text[index - 1].isspace():
        index -= 1
    return index


def _is_ordinal(text: str, begin: int, end: int) -> bool:
    """Whether the small number at ``text[begin:]`` followed by a stop is a list number or an ordinal.

    "1. First" at the start of a line, "am 3. Mai", "der 2. Weltkrieg"; but
    not "topic 3. Next".
    """
    before = begin
    while before > 0 and text[before - 1] in " \t":
        before -= 1
    if before == 0 or text[before - 1] == "\n":
        return True
    previous_word = text[_word_start(text, before) : before].lower()
    following = _NEXT_WORD.match(text, end)
    next_word = following.group(1).lower() if following else ""
    return previous_word in _ORDINAL_CUES or next_word in _ORDINAL_CUES


def _line_break_cuts(text: str) -> list[int]:
    """Positions of single line breaks that end a sentence (blank lines are found elsewhere)."""
    cuts = []
    line_start = 0
    while True:
        newline = text.find("\n", line_start)
        if newline < 0:
            return cuts
        next_end = text.find("\n", newline + 1)
        if next_end < 0:
            next_end = len(text)
        line = text[line_start:newline].strip()
        next_line = text[newline + 1 : next_end].strip()
        if line and next_line and not _runs_on(line, next_line):
            cuts.append(newline)
        line_start = newline + 1


def _runs_on(line: str, next_line: str) -> bool:
    """Whether a line break between two non-blank lines looks like hard-wrapped prose."""
    if len(line) < _WRAP_WIDTH and _display_width(line) < _WRAP_WIDTH:
        return False
    if line.endswith(":") or _LIST_OR_MARKUP.match(next_line):
        return False
    return "|" not in line and "\t" not in line


def _display_width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in line)


# --- chunking ----------------------------------------------------------------


class _Unit(NamedTuple):
    """A sentence, or a piece of an over-long one: ``text[start:end]`` has ``n_tokens`` tokens."""

    start: int
    end: int
    n_tokens: int


_SPLIT_HEADROOM = 0.9
"""Pieces of an over-long sentence aim at this share of ``max_tokens``, so most fit at once."""


def chunk_text(
    text: str,
    count_tokens: CountTokens,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
) -> list[Chunk]:
    """Pack the sentences of ``text`` into chunks of at most ``max_tokens`` tokens.

    Consecutive sentences are packed greedily; the last ``overlap`` sentences of
    a chunk open the next one when they fit beside at least one new sentence
    (a chunk never repeats the whole of the previous one). A sentence longer
    than ``max_tokens`` is cut at whitespace, or between characters in text
    without spaces (CJK, Thai), into pieces that fit.

    ``count_tokens`` is called once with all the sentences, and then once per
    round of cutting over-long sentences (usually one round, none for ordinary
    prose). ``Chunk.n_tokens`` is the *sum* of the counts of the chunk's
    sentences; with SentencePiece tokenizers such as XLM-R the joined text
    typically counts the same or fewer (it loses the word-start marks of the
    pieces it joins without a space). ``Chunk.text == text[start:end]`` exactly, and
    ``Chunk.lang`` is left empty.

    Raises:
        UsageError: ``max_tokens`` is below 1 or ``overlap`` is negative.
    """
    return _chunk_batch([text], count_tokens, max_tokens, overlap)[0]


def chunk_documents(
    docs: Sequence[Document],
    count_tokens: CountTokens,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
) -> list[list[Chunk]]:
    """:func:`chunk_text` for each document, with each chunk's language detected.

    Returns one list per document, in order. ``count_tokens`` is called with the
    sentences of all documents at once. A chunk whose language cannot be told
    (``"und"``) takes its document's ``lang``.
    """
    batches = _chunk_batch([doc.text for doc in docs], count_tokens, max_tokens, overlap)
    langs = iter(detect_languages([chunk.text for chunks in batches for chunk in chunks]))
    result = []
    for doc, chunks in zip(docs, batches):
        labelled = []
        for chunk in chunks:
            lang = next(langs)
            if lang == UNDETERMINED and doc.lang:
                lang = doc.lang
            labelled.append(dataclasses.replace(chunk, lang=lang))
        result.append(labelled)
    return result


def _chunk_batch(
    texts: Sequence[str], count_tokens: CountTokens, max_tokens: int, overlap: int
) -> list[list[Chunk]]:
    if max_tokens < 1:
        raise UsageError(f"max_tokens must be at least 1, got {max_tokens}")
    if overlap < 0:
        raise UsageError(f"overlap must not be negative, got {overlap}")
    spans = [split_sentences(text) for text in texts]
    counts = iter(
        _count(count_tokens, [text[start:end] for text, sents in zip(texts, spans) for start, end in sents])
    )
    units = [[_Unit(start, end, next(counts)) for start, end in sents] for sents in spans]
    units = _cut_long_units(texts, units, count_tokens, max_tokens)
    return [_pack(text, text_units, max_tokens, overlap) for text, text_units in zip(texts, units)]


def _count(count_tokens: CountTokens, strings: list[str]) -> list[int]:
    if not strings:
        return []
    counts = count_tokens(strings)
    if len(counts) != len(strings):
        raise ValueError(f"count_tokens returned {len(counts)} counts for {len(strings)} strings")
    return [int(count) for count in counts]


def _pack(text: str, units: list[_Unit], max_tokens: int, overlap: int) -> list[Chunk]:
    """Greedy packing of ``units`` into chunks, carrying ``overlap`` units forward."""
    chunks = []
    first_new = 0  # the first unit no chunk holds yet
    carry = 0  # where the next chunk starts: first_new minus the overlap
    while first_new < len(units):
        start = carry
        total = sum(unit.n_tokens for unit in units[start:first_new])
        while start < first_new and total + units[first_new].n_tokens > max_tokens:
            total -= units[start].n_tokens
            start += 1
        stop = first_new
        while stop < len(units) and (stop == first_new or total + units[stop].n_tokens <= max_tokens):
            total += units[stop].n_tokens
            stop += 1
        begin, end = units[start].start, units[stop - 1].end
        chunks.append(Chunk(text=text[begin:end], start=begin, end=end, n_tokens=total))
        carry = max(stop - overlap, start + 1)
        first_new = stop
    return chunks


def _cut_long_units(
    texts: Sequence[str], units: list[list[_Unit]], count_tokens: CountTokens, max_tokens: int
) -> list[list[_Unit]]:
    """Replace every unit over ``max_tokens`` by pieces that fit, counting each round's pieces in one batch."""
    pending = [
        (index, unit)
        for index, text_units in enumerate(units)
        for unit in text_units
        if unit.n_tokens > max_tokens
    ]
    if not pending:
        return units
    long_units = {(index, unit.start) for index, unit in pending}
    pieces: dict[int, list[_Unit]] = {}
    while pending:
        proposals = [
            (index, start, end)
            for index, unit in pending
            for start, end in _propose_pieces(texts[index], unit, max_tokens)
        ]
        counts = _count(count_tokens, [texts[index][start:end] for index, start, end in proposals])
        pending = []
        for (index, start, end), n_tokens in zip(proposals, counts):
            piece = _Unit(start, end, n_tokens)
            if n_tokens <= max_tokens or _is_atom(texts[index], start, end):
                pieces.setdefault(index, []).append(piece)
            else:
                pending.append((index, piece))
    result = []
    for index, text_units in enumerate(units):
        kept = [unit for unit in text_units if (index, unit.start) not in long_units]
        result.append(sorted(kept + pieces.get(index, []), key=lambda unit: unit.start))
    return result


def _propose_pieces(text: str, unit: _Unit, max_tokens: int) -> list[tuple[int, int]]:
    """Cut ``unit`` into pieces of about ``max_tokens`` tokens, guessing from its tokens per character.

    Cuts fall on whitespace in the second half of each piece when there is
    some, else between characters (never before a combining mark). Every
    piece is shorter than the unit, so repeated rounds end.
    """
    length = unit.end - unit.start
    step = max(1, int(length * max_tokens * _SPLIT_HEADROOM / unit.n_tokens))
    step = min(step, length - 1) if length > 1 else 1
    pieces = []
    position = unit.start
    while position < unit.end:
        if unit.end - position <= step:
            pieces.append((position, unit.end))
            break
        cut = _cut_point(text, position, position + step)
        end = cut
        while text[end - 1].isspace():
            end -= 1
        pieces.append((position, end))
        position = cut
        while text[position].isspace():
            position += 1
    return pieces


def _cut_point(text: str, start: int, limit: int) -> int:
    """Where to end a piece that starts at ``start`` and may reach ``limit``: ``start < cut <= limit``."""
    for cut in range(limit, start + (limit - start) // 2, -1):
        if text[cut].isspace():
            return cut
    for cut in range(limit, start, -1):
        if _can_cut(text, cut):
            return cut
    return limit


def _can_cut(text: str, index: int) -> bool:
    """Whether a cut between ``text[index - 1]`` and ``text[index]`` keeps characters whole.

    Not before a combining mark, joiner, variation selector or Thai/Lao
    following vowel; not after a Thai/Lao leading vowel.
    """
    char = text[index]
    return not (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or char in _JOINS_PREVIOUS
        or "\ufe00" <= char <= "\ufe0f"
        or text[index - 1] in _JOINS_NEXT
    )


_JOINS_PREVIOUS = "\u200c\u200d\u0e30\u0e32\u0e33\u0e45\u0eb0\u0eb2\u0eb3"
_JOINS_NEXT = "\u200d\u0e40\u0e41\u0e42\u0e43\u0e44\u0ec0\u0ec1\u0ec2\u0ec3\u0ec4"


def _is_atom(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` cannot be cut anywhere (one character with its marks)."""
    return not any(_can_cut(text, index) for index in range(start + 1, end))
