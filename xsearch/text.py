"""Facts about characters that every stage shares: scripts, word characters, spacing.

One table of script ranges (:data:`SCRIPT_RANGES`) serves language detection, the chunker's
sentence rules, the lexical query parser, token selection and highlights, so that they agree
on what a word is and which scripts are written without spaces between words.

Pure functions of a character; no I/O and no third-party imports.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Collection

SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x024F, "latin"),
    (0x0370, 0x03FF, "greek"),
    (0x0400, 0x052F, "cyrillic"),
    (0x0530, 0x058F, "armenian"),
    (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"),
    (0x0750, 0x077F, "arabic"),
    (0x08A0, 0x08FF, "arabic"),
    (0x0900, 0x097F, "devanagari"),
    (0x0980, 0x09FF, "bengali"),
    (0x0A00, 0x0A7F, "gurmukhi"),
    (0x0A80, 0x0AFF, "gujarati"),
    (0x0B00, 0x0B7F, "oriya"),
    (0x0B80, 0x0BFF, "tamil"),
    (0x0C00, 0x0C7F, "telugu"),
    (0x0C80, 0x0CFF, "kannada"),
    (0x0D00, 0x0D7F, "malayalam"),
    (0x0D80, 0x0DFF, "sinhala"),
    (0x0E00, 0x0E7F, "thai"),
    (0x0E80, 0x0EFF, "lao"),
    (0x0F00, 0x0FFF, "tibetan"),
    (0x1000, 0x109F, "myanmar"),
    (0x10A0, 0x10FF, "georgian"),
    (0x1100, 0x11FF, "hangul"),
    (0x1200, 0x139F, "ethiopic"),
    (0x1780, 0x17FF, "khmer"),
    (0x1E00, 0x1EFF, "latin"),
    (0x1F00, 0x1FFF, "greek"),
    (0x2E80, 0x2FDF, "han"),
    (0x3005, 0x3007, "han"),
    (0x3040, 0x309F, "hiragana"),
    (0x30A0, 0x30FF, "katakana"),
    (0x3100, 0x312F, "bopomofo"),
    (0x3130, 0x318F, "hangul"),
    (0x31F0, 0x31FF, "katakana"),
    (0x3400, 0x4DBF, "han"),
    (0x4E00, 0x9FFF, "han"),
    (0xA960, 0xA97F, "hangul"),
    (0xAC00, 0xD7FF, "hangul"),
    (0xF900, 0xFAFF, "han"),
    (0xFB50, 0xFDFF, "arabic"),
    (0xFE70, 0xFEFF, "arabic"),
    (0xFF21, 0xFF5A, "latin"),
    (0xFF66, 0xFF9F, "katakana"),
    (0x20000, 0x3FFFF, "han"),
)
"""``(first code point, last code point, script)``, sorted and disjoint; code points outside
every range belong to script ``"other"``."""

KANA = frozenset({"hiragana", "katakana"})
CJK = frozenset({"han", "hiragana", "katakana", "hangul", "bopomofo"})
"""Scripts of Chinese, Japanese and Korean."""
UNSPACED = CJK | {"thai", "lao", "khmer", "myanmar", "tibetan"}
"""Scripts written without spaces between words: a word there cannot be found by spaces."""

_STARTS = [first for first, _, _ in SCRIPT_RANGES]


def script_of(ch: str) -> str:
    """The script of one character (a name from :data:`SCRIPT_RANGES`, or ``"other"``)."""
    code = ord(ch)
    i = bisect.bisect_right(_STARTS, code) - 1
    if i >= 0 and code <= SCRIPT_RANGES[i][1]:
        return SCRIPT_RANGES[i][2]
    return "other"


def script_class(scripts: Collection[str]) -> str:
    """A regular-expression character class (``[...]``) matching the characters of ``scripts``."""
    ranges = (f"{re.escape(chr(first))}-{re.escape(chr(last))}"
              for first, last, script in SCRIPT_RANGES if script in scripts)
    return "[" + "".join(ranges) + "]"


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` is Han, kana, Hangul or Bopomofo (``""`` is not)."""
    return bool(ch) and script_of(ch) in CJK


def is_unspaced(ch: str) -> bool:
    """Whether ``ch`` belongs to a script written without spaces between words."""
    return script_of(ch) in UNSPACED


def is_content_char(ch: str) -> bool:
    """A letter, digit or combining mark (Indic vowel signs are marks, not letters)."""
    return unicodedata.category(ch)[0] in "LNM"


def is_word_char(ch: str) -> bool:
    """A character that belongs inside a word: :func:`is_content_char` or ``_``."""
    return ch == "_" or is_content_char(ch)


def in_spaced_word(ch: str) -> bool:
    """A word character of a script written with spaces, where a word can be grown to its
    ends; in unspaced scripts growing would swallow the whole sentence."""
    return is_content_char(ch) and not is_unspaced(ch)
