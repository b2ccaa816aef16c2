"""Presentation shared by the CLI and the terminal UI: paths, snippets and highlights as rich
text, a hit's language versions and the account of why it matched."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

    from .types import Hit, Translation

HIGHLIGHT_STYLE = "bold yellow"
LANG_STYLE = "magenta"
"""How a language code is shown in printed results."""
EXPLAIN_NAMES = {"translation_of_best": "feedback"}
"""Shorter names for some entries of :attr:`xsearch.Hit.explain`; the others show as they are."""
MATCHED_SHOWN = 6
"""Aligned words listed on the ``matched:`` line; the count of the rest follows."""
INDENT = 4
"""Columns the lines under a hit's header are indented by, wrapped lines included."""
PATH_STYLE = "bold blue"
NO_LINES = (".pdf", ".docx")
"""Formats whose text has no lines in the file: their links point at the file, not a line."""


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


def file_link(path: str, text: str, record: int = 0) -> str:
    """A ``file://`` URL of the passage ``text`` of ``path`` for a terminal hyperlink (OSC 8):
    the host name as the OSC 8 convention asks, and the passage's line as the fragment
    (``file://host/notes/a.txt#12``), which terminals such as kitty hand to an editor. Files
    without lines (PDF, Word) get no fragment."""
    import socket
    from urllib.parse import quote

    url = f"file://{quote(socket.gethostname())}{quote(os.path.abspath(path))}"
    return url if path.lower().endswith(NO_LINES) else f"{url}#{source_line(path, text, record)}"


def hit_header(rank: int, hit: Hit, *, link: bool = False) -> Text:
    """``rank. score [lang] path#record  title``; the path a ``file://`` hyperlink to the passage
    when ``link``."""
    from rich.style import Style
    from rich.text import Text

    line = Text()
    line.append(f"{rank:>2}. ", style="bold")
    line.append(f"{hit.score:.3f} ", style="cyan")
    line.append(f"[{hit.lang or 'und'}] ", style=LANG_STYLE)
    path_style = Style.parse(PATH_STYLE)
    if link and hit.path:
        path_style += Style(link=file_link(hit.path, hit.text, hit.record))
    line.append(display_path(hit.path) + (f"#{hit.record}" if hit.record else ""), style=path_style)
    if hit.title:
        line.append(f"  {hit.title}", style="dim")
    return line


def hit_block(rank: int, hit: Hit, *, link: bool = False, wrap: bool = True) -> list[RenderableType]:
    """A hit as printed: its header, then its snippet, other passages, language versions and
    explanation, each indented by :data:`INDENT` columns. With ``wrap``, long lines wrap to the
    same indent; without it (output for a pipe) each stays one line."""
    from rich.text import Text

    def indented(text: Text, first: int = INDENT) -> RenderableType:
        return Hanging(text, first) if wrap else Text(" " * first).append_text(text)

    rows: list[RenderableType] = [indented(hit_header(rank, hit, link=link), 0),
                                  indented(snippet(hit.text, hit.highlights))]
    for more in hit.more:
        rows.append(indented(Text(f"… {more.score:.3f} ", style="dim").append_text(
            snippet(more.text, more.highlights, 120))))
    if hit.translations:
        rows.append(indented(also_in(hit.translations)))
    if hit.explain is not None:
        rows.extend(indented(Text(row, style="dim")) for row in explain_lines(hit.explain))
    return rows


class Hanging:
    """``text`` wrapped to the console's width with every line but the first indented by
    :data:`INDENT` columns, the first by ``first``; no line is padded with trailing spaces."""

    def __init__(self, text: Text, first: int = INDENT) -> None:
        self.text = text
        self.first = first

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        rest, indent = self.text, self.first
        while rest.plain.strip():
            line = rest.wrap(console, max(1, options.max_width - indent))[0]
            if not line.plain:  # never stall on a line wrapping left empty
                line = rest[:1]
            rest = rest[len(line.plain):]
            rest = rest[len(rest.plain) - len(rest.plain.lstrip()):]
            line.rstrip()
            yield Text(" " * indent).append_text(line)
            indent = INDENT


def hit_line(rank: int, hit: Hit, *, link: bool = False) -> Text:
    """A hit on one line: its header, then its snippet (``--compact``)."""
    line = hit_header(rank, hit, link=link)
    line.append("  ")
    line.append_text(snippet(hit.text, hit.highlights))
    return line
