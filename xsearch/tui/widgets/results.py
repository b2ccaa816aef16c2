"""The ranked list of hits: rank, score, language badges, file, and a highlighted snippet."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ...present import display_path, snippet
from ...types import Hit, Translation

BADGE_COLOURS = ("magenta", "cyan", "green", "yellow", "blue", "red", "bright_magenta", "bright_cyan")
NAME_ROOM = 20
"""Cells of a header line kept for the file name before translation badges give way to ``+N``."""


def badge_style(lang: str, *, bold: bool = True) -> str:
    """A stable colour per language, so each language reads the same everywhere."""
    colour = BADGE_COLOURS[sum(map(ord, lang)) % len(BADGE_COLOURS)]
    return f"{'bold ' if bold else ''}black on {colour}"


def translation_badges(translations: Sequence[Translation], room: int) -> Text:
    """A space, then a badge per language version, best first, in at most ``room`` cells:
    those that do not fit are counted in a closing ``+N``."""
    out = Text(" ")
    for n, version in enumerate(translations):
        lang = version.lang or "und"
        rest = len(translations) - n
        if out.cell_len + len(lang) + 2 + (0 if rest == 1 else len(f" +{rest - 1}")) > room:
            out.append(f" +{rest}", style="dim")
            break
        out.append(f" {lang} ", style=badge_style(lang, bold=False))
    return out


def hit_prompt(rank: int, hit: Hit, width: int = 160) -> Text:
    """Two lines of at most ``width`` cells for one hit: its header, then a snippet with the matched words."""
    path = Path(display_path(hit.path))
    lang = hit.lang or "und"
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append(f"{rank:>2} ", style="bold")
    out.append(f"{hit.score:6.3f} ", style="cyan")
    out.append(f" {lang} ", style=badge_style(lang))
    if hit.translations:
        out.append_text(translation_badges(hit.translations, width - out.cell_len - NAME_ROOM))
    out.append(f" {path.name}" + (f"#{hit.record}" if hit.record else ""), style="bold")
    if str(path.parent) not in ("", "."):
        out.append(f"  {path.parent}", style="dim")
    out.truncate(width, overflow="ellipsis")
    line = Text("    ")
    line.append_text(snippet(hit.text, hit.highlights, width))
    line.truncate(width, overflow="ellipsis")
    return Text("\n").join([out, line])


class ResultList(OptionList):
    """Search results; moving the cursor shows the hit in the preview."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "app.open_hit", "Open"),
        Binding("y", "app.copy_hit", "Copy"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.hits: tuple[Hit, ...] = ()

    def show(self, hits: Sequence[Hit]) -> None:
        """Replace the list with ``hits`` and put the cursor on the first."""
        self.hits = tuple(hits)
        self._render_hits(0 if self.hits else None)

    def _render_hits(self, highlighted: int | None) -> None:
        # the scrollbar that a long list brings along appears without a resize: leave room for it up front
        width = max(self.content_region.width - self.styles.scrollbar_size_vertical - 1, 20)
        self.clear_options()
        self.add_options(Option(hit_prompt(rank, hit, width), id=str(rank - 1)) for rank, hit in enumerate(self.hits, 1))
        if highlighted is not None:
            self.highlighted = highlighted

    def on_resize(self) -> None:
        if self.hits:
            self._render_hits(self.highlighted)

    @property
    def current(self) -> Hit | None:
        """The hit under the cursor."""
        if self.highlighted is None or not 0 <= self.highlighted < len(self.hits):
            return None
        return self.hits[self.highlighted]
