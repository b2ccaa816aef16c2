"""Presentation shared by the CLI and the terminal UI: paths, snippets and highlights as rich
text, a hit's language versions and the account of why it matched."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

    from .types import Translation

HIGHLIGHT_STYLE = "bold yellow"
LANG_STYLE = "magenta"
"""How a language code is shown in printed results."""
EXPLAIN_NAMES = {"translation_of_best": "feedback"}
"""Shorter names for some entries of :attr:`xsearch.Hit.explain`; the others show as they are."""
MATCHED_SHOWN = 6
"""Aligned words listed on the ``matched:`` line; the count of the rest follows."""


def display_path(path: str) -> str:
    """Relative to the working directory when the file lies under it, else as stored."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith(os.pardir) else relative


def highlighted(text: str, highlights: Sequence[tuple[int, int]] = (), style: str = HIGHLIGHT_STYLE) -> Text:
    """``text`` with the character spans ``highlights`` styled."""
    from rich.text import Text

    out = Text(text)
    for a, b in highlights:
        out.stylize(style, a, b)
    return out


def snippet(text: str, highlights: Sequence[tuple[int, int]] = (), width: int = 200,
            style: str = HIGHLIGHT_STYLE) -> Text:
    """One line of the passage around its first highlight, highlights styled."""
    from rich.text import Text

    start = max(0, highlights[0][0] - width // 4) if highlights else 0
    end = min(len(text), start + width)
    line = Text("…" if start else "")
    line.append(text[start:end])
    offset = len(line.plain) - (end - start)
    for a, b in highlights:
        if b > start and a < end:
            line.stylize(style, offset + max(a, start) - start, offset + min(b, end) - start)
    if end < len(text):
        line.append("…")
    return one_line(line)


def one_line(text: Text) -> Text:
    """``text`` with every run of whitespace shown as one space, styles kept."""
    from rich.text import Text

    out = Text()
    pos = 0
    for m in re.finditer(r"\s+", text.plain):
        out.append_text(text[pos : m.start()])
        out.append(" ")
        pos = m.end()
    out.append_text(text[pos:])
    return out


def source_line(path: str, text: str, record: int = 0) -> int:
    """The 1-based line of ``path`` where the passage ``text`` begins, for opening an editor there.

    JSON Lines records are one a line; other files are searched for the passage's first words.
    Falls back to line 1 when the passage cannot be found (extracted formats such as PDF).
    """
    if path.endswith(".jsonl"):
        return record + 1
    probe = text.strip()[:80]
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            content = handle.read()
    except OSError:
        return 1
    at = content.find(probe) if probe else -1
    return content.count("\n", 0, at) + 1 if at >= 0 else 1


def also_in(translations: Sequence[Translation], *, scores: bool = False, style: str = LANG_STYLE) -> Text:
    """``also in: de fr ja``: the languages of a hit's translations as given (best first), each
    code styled, with its score after it when ``scores``."""
    from rich.text import Text

    out = Text("also in:")
    for version in translations:
        out.append(" ")
        out.append(version.lang or "und", style=style)
        if scores and version.score is not None:
            out.append(f" {version.score:.3f}", style="dim")
    return out


def explain_lines(explain: Mapping[str, Any]) -> list[str]:
    """A hit's ``explain`` as at most two lines: every stage's score in stage order, then the
    score that ranked it (``why: dense 0.359 · maxsim 0.480 · feedback 0.517 → rank 0.449``),
    and the query words aligned to the passage's (``matched: Licht→light 0.68, …``)."""
    stages = [f"{EXPLAIN_NAMES.get(name, name)} {value:.3f}" for name, value in explain.items()
              if name != "rank_score" and isinstance(value, (int, float)) and not isinstance(value, bool)]
    why = "why: " + " · ".join(stages) if stages else "why:"
    if "rank_score" in explain:
        why += f" → rank {explain['rank_score']:.3f}"
    lines = [why]
    matched = explain.get("matched") or []
    if matched:
        pairs = [f"{_word(m['query'])}→{_word(m['passage'])} {m['cosine']:.2f}" for m in matched[:MATCHED_SHOWN]]
        rest = len(matched) - MATCHED_SHOWN
        lines.append("matched: " + ", ".join(pairs) + (f", and {rest} more" if rest > 0 else ""))
    return lines


def _word(text: str) -> str:
    return " ".join(str(text).split())
