"""Language identification: ISO 639-1 codes from script rules and py3langid.

Scripts that belong to one language (kana, Hangul, Thai, Greek, ...) decide by
themselves, since n-gram models are weakest exactly there on short texts;
everything else goes to py3langid, whose regional and historical variants are
folded into their ISO 639-1 parent (``arz`` -> ``ar``, ``yue`` -> ``zh``).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from xsearch.types import Document

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

__all__ = ["UNDETERMINED", "detect_document_languages", "detect_language", "detect_languages"]

UNDETERMINED = "und"
"""The code returned when a text is too short or too ambiguous to tell."""

MIN_LETTERS = 3
"""Texts with fewer letters than this are :data:`UNDETERMINED`."""

MIN_PROBABILITY = 0.5
"""py3langid's normalised probability (after folding variants) below which we abstain."""

SAMPLE_CHARS = 2000
"""How much of a document :func:`detect_document_languages` looks at."""

# py3langid labels without an ISO 639-1 code of their own -> the closest 639-1 code.
_FOLD = {
    "ary": "ar", "arz": "ar", "wuu": "zh", "yue": "zh", "uzs": "uz", "grc": "el",
    "hbo": "he", "gug": "gn", "sdh": "ku", "zxx": UNDETERMINED,
}

# Scripts that name their language outright.
_SCRIPT_LANG = {
    "hangul": "ko", "thai": "th", "armenian": "hy", "georgian": "ka", "greek": "el",
    "hebrew": "he", "lao": "lo", "khmer": "km", "myanmar": "my", "ethiopic": "am",
    "sinhala": "si", "bengali": "bn", "gurmukhi": "pa", "gujarati": "gu", "oriya": "or",
    "tamil": "ta", "telugu": "te", "kannada": "kn", "malayalam": "ml", "tibetan": "bo",
}
_ARABIC_SCRIPT_LANGS = ("ar", "fa", "ur")
_DEVANAGARI_OTHERS = ("mr", "ne")

# (first code point, last code point, script); letters elsewhere are "other".
_SCRIPT_RANGES = (
    (0x0041, 0x024F, "latin"), (0x0370, 0x03FF, "greek"), (0x1F00, 0x1FFF, "greek"),
    (0x0400, 0x052F, "cyrillic"), (0x0530, 0x058F, "armenian"), (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"), (0x08A0, 0x08FF, "arabic"),
    (0xFB50, 0xFDFF, "arabic"), (0xFE70, 0xFEFF, "arabic"), (0x0900, 0x097F, "devanagari"),
    (0x0980, 0x09FF, "bengali"), (0x0A00, 0x0A7F, "gurmukhi"), (0x0A80, 0x0AFF, "gujarati"),
    (0x0B00, 0x0B7F, "oriya"), (0x0B80, 0x0BFF, "tamil"), (0x0C00, 0x0C7F, "telugu"),
    (0x0C80, 0x0CFF, "kannada"), (0x0D00, 0x0D7F, "malayalam"), (0x0D80, 0x0DFF, "sinhala"),
    (0x0E00, 0x0E7F, "thai"), (0x0E80, 0x0EFF, "lao"), (0x0F00, 0x0FFF, "tibetan"),
    (0x1000, 0x109F, "myanmar"), (0x10A0, 0x10FF, "georgian"), (0x1100, 0x11FF, "hangul"),
    (0x1200, 0x139F, "ethiopic"), (0x1780, 0x17FF, "khmer"), (0x1E00, 0x1EFF, "latin"),
    (0x3040, 0x30FF, "kana"), (0x31F0, 0x31FF, "kana"), (0x3130, 0x318F, "hangul"),
    (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"), (0xA960, 0xA97F, "hangul"),
    (0xAC00, 0xD7FF, "hangul"), (0xF900, 0xFAFF, "han"), (0xFF66, 0xFF9F, "kana"),
    (0xFF21, 0xFF5A, "latin"), (0x20000, 0x3134F, "han"),
)


def detect_language(text: str) -> str:
    """The ISO 639-1 code of ``text``'s language, or ``"und"`` when it cannot be told."""
    return detect_languages([text])[0]


def detect_languages(texts: Sequence[str]) -> list[str]:
    """:func:`detect_language` for each of ``texts``, in order.

    Script rules come first. Where Han, kana and Hangul make up at least half
    of the letters: any kana -> ``ja``, else any Hangul -> ``ko``, else ``zh``.
    Then Thai, Armenian, Georgian, Greek, Hebrew (and other one-language
    scripts) -> their language; Devanagari -> ``hi`` unless py3langid prefers
    ``mr`` or ``ne``; Arabic script -> the likeliest of ``ar``/``fa``/``ur``.
    Other texts (Latin, Cyrillic, ...) get py3langid's answer, or ``"und"`` when
    its probability is below :data:`MIN_PROBABILITY` or the text has fewer than
    :data:`MIN_LETTERS` letters.
    """
    return [_detect(text) for text in texts]


def detect_document_languages(docs: Sequence[Document]) -> list[Document]:
    """Copies of ``docs`` with ``lang`` set from the first :data:`SAMPLE_CHARS` characters."""
    langs = detect_languages([doc.text[:SAMPLE_CHARS] for doc in docs])
    return [dataclasses.replace(doc, lang=lang) for doc, lang in zip(docs, langs)]


def _detect(text: str) -> str:
    scripts = _script_counts(text)
    n_letters = sum(scripts.values())
    if n_letters < MIN_LETTERS:
        return UNDETERMINED
    cjk = scripts["han"] + scripts["kana"] + scripts["hangul"]
    if cjk and cjk >= n_letters - cjk:
        if scripts["kana"]:
            return "ja"
        return "ko" if scripts["hangul"] else "zh"
    top, _ = scripts.most_common(1)[0]
    if top in _SCRIPT_LANG:
        return _SCRIPT_LANG[top]
    ranked = _ranked(text)
    if top == "devanagari":
        best = max(ranked, key=ranked.__getitem__)
        return best if best in _DEVANAGARI_OTHERS else "hi"
    if top == "arabic":
        return max(_ARABIC_SCRIPT_LANGS, key=lambda code: ranked.get(code, 0.0))
    code, probability = max(ranked.items(), key=lambda item: item[1])
    if code == UNDETERMINED or probability < MIN_PROBABILITY:
        return UNDETERMINED
    return code


def _script_counts(text: str) -> Counter[str]:
    """Letters of ``text`` per script (only scripts that occur are present)."""
    counts: Counter[str] = Counter()
    for char in text:
        if char.isalpha():
            counts[_script(ord(char))] += 1
    return counts


def _script(code_point: int) -> str:
    index = bisect.bisect_right(_RANGE_STARTS, code_point) - 1
    if index >= 0 and code_point <= _SORTED_RANGES[index][1]:
        return _SORTED_RANGES[index][2]
    return "other"


_SORTED_RANGES = sorted(_SCRIPT_RANGES)
_RANGE_STARTS = [first for first, _, _ in _SORTED_RANGES]


def _ranked(text: str) -> dict[str, float]:
    """py3langid's probability per ISO 639-1 code, with variants folded into their parent."""
    folded: dict[str, float] = {}
    for label, probability in _identifier().rank(text):
        code = _FOLD.get(label, label)
        folded[code] = folded.get(code, 0.0) + probability
    return folded


@functools.lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    """py3langid's model with normalised probabilities, loaded on first use (about a second)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
