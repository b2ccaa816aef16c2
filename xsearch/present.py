"""Presentation shared by the CLI and the terminal UI: paths, snippets and highlights as rich text."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

HIGHLIGHT_STYLE = "bold yellow"


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
