"""Language identification: ISO 639-1 codes from script rules and py3langid.

Scripts that belong to one language (kana, Hangul, Thai, Greek, ...) decide by
themselves, since n-gram models are weakest exactly there on short texts;
everything else goes to py3langid, whose regional and historical variants are
folded into their ISO 639-1 parent (``arz`` -> ``ar``, ``yue`` -> ``zh``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from xsearch.runtime import cache_dir, sha256_file
from xsearch.text import KANA, script_of
from xsearch.types import Document

if TYPE_CHECKING:
    import numpy as np
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
    """Letters of ``text`` per script (only scripts that occur are present); hiragana and
    katakana count together as ``"kana"``."""
    counts: Counter[str] = Counter()
    for char in text:
        if char.isalpha():
            script = script_of(char)
            counts["kana" if script in KANA else script] += 1
    return counts


def _ranked(text: str) -> dict[str, float]:
    """py3langid's probability per ISO 639-1 code, with variants folded into their parent."""
    folded: dict[str, float] = {}
    for label, probability in _identifier().rank(text):
        code = _FOLD.get(label, label)
        folded[code] = folded.get(code, 0.0) + probability
    return folded


@functools.lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    """py3langid's model with normalised probabilities, loaded on first use.

    Its model file is LZMA-compressed (half a second to read); the arrays are kept
    uncompressed under the cache dir (:func:`_model_copy`) and memory-mapped from there, a few
    hundredths of a second, so a query pays only for the pages its text touches.
    """
    import numpy as np
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    arrays = _model_copy(MODEL_DIR / MODEL_FILE)
    if arrays is None:
        return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    # The DFA tables as flat buffers of Python ints, as py3langid's own loader gives them
    # (there: copied into ``array``s; here: views of the mapped files).
    return LanguageIdentifier(np.asarray(arrays["ptc"]), np.asarray(arrays["pc"]), arrays["classes"].tolist(),
                              memoryview(arrays["nextmove"]), memoryview(arrays["out_feat"]), norm_probs=True,
                              tk_row=memoryview(arrays["nextmove_row"]))


MODEL_ARRAYS = ("ptc", "pc", "classes", "nextmove", "nextmove_row", "out_feat")
"""The arrays of py3langid's model file (an LZMA-compressed ``.npz``)."""


def _model_copy(model_file: Path) -> dict[str, np.ndarray] | None:
    """The arrays of py3langid's ``model_file``, memory-mapped from an uncompressed copy under
    ``<cache>/langid/<key>`` (the key: py3langid's version and the file's hash), written
    atomically the first time; None when the copy can neither be read nor written (the
    caller then reads the model file itself)."""
    import numpy as np
    import py3langid

    try:
        key = hashlib.sha256(f"{py3langid.__version__}|{sha256_file(model_file)}".encode()).hexdigest()[:16]
        folder = cache_dir() / "langid" / key
        if not folder.is_dir():
            _write_model_copy(model_file, folder)
        return {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in MODEL_ARRAYS}
    except (OSError, ValueError):
        return None


def _write_model_copy(model_file: Path, folder: Path) -> None:
    """Uncompress ``model_file``'s arrays into ``folder``, whole or not at all: they are written
    into a temporary folder beside it, which is then renamed (the first of several processes
    doing this at once wins; the others' copies are dropped)."""
    import lzma
    import shutil
    import tempfile

    import numpy as np

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        with lzma.open(model_file) as src, open(tmp / "model.npz", "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        with np.load(tmp / "model.npz", allow_pickle=False) as data:
            for name in MODEL_ARRAYS:
                np.save(tmp / f"{name}.npy", data[name], allow_pickle=False)
        (tmp / "model.npz").unlink()
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


