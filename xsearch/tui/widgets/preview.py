"""The passage under the cursor, with its neighbours for context and the matched spans marked."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ...present import also_in, display_path, highlighted
from ...types import ChunkRow
from ...types import Hit

MATCH_STYLE = "bold reverse yellow"


def passage_in_context(hit: Hit, context: Sequence[ChunkRow]) -> Text:
    """The hit's chunk, preceded and followed by what its neighbours add (overlaps shown once)."""
    before = [row for row in context if row.start < hit.start]
    after = [row for row in context if row.end > hit.end]
    out = Text()
    for row in before:
        out.append(row.text[: max(0, min(hit.start, row.end) - row.start)], style="dim")
    if before and not out.plain.endswith(("\n", " ")):
        out.append(" ")
    out.append_text(highlighted(hit.text, hit.highlights, MATCH_STYLE))
    for row in after:
        tail = row.text[max(0, hit.end - row.start) :]
        if tail and not tail.startswith(("\n", " ")):
            out.append(" ")
        out.append(tail, style="dim")
    return out


class Preview(VerticalScroll):
    """Header (path, language, position, language versions) above the passage in context."""

    can_focus = True

    def compose(self) -> ComposeResult:
        yield Static(id="preview-head")
        yield Static(id="preview-body")

    def show(self, hit: Hit, context: Sequence[ChunkRow]) -> None:
        """Show ``hit`` with its neighbouring chunks ``context``."""
        row = next((r for r in context if r.id == hit.chunk_id), None)
        position = f"chunk {row.ord + 1}" if row is not None else "chunk"
        head = f"[b]{escape(display_path(hit.path))}[/]" + (f"  [dim]record {hit.record}[/]" if hit.record else "")
        body = passage_in_context(hit, context)
        if hit.title and not body.plain.lstrip("# \n").startswith(hit.title):  # a heading the passage shows
            head += f"\n{escape(hit.title)}"
        head += (f"\n[dim]language[/] {hit.lang or 'und'}  [dim]·[/]  {position}, characters {hit.start:,}–{hit.end:,}"
                 f"  [dim]·[/]  score {hit.score:.3f}")
        text = Text.from_markup(head)
        if hit.translations:
            text.append("\n").append_text(also_in(hit.translations, scores=True))
        self.query_one("#preview-head", Static).update(text)
        self.query_one("#preview-body", Static).update(body)
        self.scroll_home(animate=False)

    def clear(self, message: str = "") -> None:
        """Show ``message`` instead of a passage."""
        self.query_one("#preview-head", Static).update("")
        self.query_one("#preview-body", Static).update(message)
